"""Every real session is a fidelity check: `abrlab play`'s prediction, the edge's clock
restart, `abrlab simulate --time-scale`, `abrlab fidelity player` and the dashboard's line.

Loopback only, bounded: short content at time scale 10-20, `asyncio.wait_for`, subprocess
timeouts. No assertion on timing here (tests/test_agreement.py holds the agreement itself).
"""
from __future__ import annotations

import asyncio
import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import first_line, run_bounded, stop_process

from netem import formats
from netem.errors import InputError
from netem.content import save as save_content, synthetic
from netem.edge import EdgeServer
from netem.package import SyntheticPresentation
from netem.shaper import Capacity, Scheduler
from netem.trace import constant
from player.cli.dashboard import DashboardModel, prediction_lines, render
from player.cli.main import main
from player.core.presets import get as get_preset

REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]
LADDER = (300e3, 750e3, 1.2e6, 2.85e6)


@pytest.fixture()
def files(tmp_path) -> tuple[str, str]:
    """A 20 s movie of 4 s segments and a constant 3 Mbit/s trace with 40 ms latency."""
    movie, trace = tmp_path / "movie.json", tmp_path / "trace.json"
    save_content(synthetic(LADDER, duration_s=20, segment_duration_s=4, seed=5, name="short-20s"), movie)
    formats.save(constant(3e6, 300.0, latency_s=0.04), trace, "sabre")
    return str(movie), str(trace)


def play_json(*args: str, timeout: float = 90) -> tuple[list[dict], dict]:
    r = subprocess.run([*ABRLAB, "play", "--headless", "--json", *args], capture_output=True, text=True,
                       timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    return lines[:-1], lines[-1]


def test_play_reports_the_prediction_of_its_session(files):
    movie, trace = files
    events, s = play_json("--movie", movie, "--trace", trace, "--time-scale", "10")
    p = s["prediction"]
    assert p["available"] and p["preset"] == "default" and p["notes"] == []
    # the edge replayed the trace from the session's start
    assert 0.0 <= p["trace_offset_s"] < 0.05
    # every segment's request measured (no abandonment, no retry), the mean as the overhead
    downloads = [e for e in events if e["event"] == "download"]
    assert p["overhead"]["samples"] == len(downloads) == s["segments"] == 5
    assert p["overhead_s"] == p["overhead"]["mean_s"] >= 0.0
    assert len(p["predicted"]["chosen"]) == 5 and p["segments"] == 5
    assert 0.0 <= p["same_rung"] <= 1.0 and p["qoe_played"] == s["qoe"]["total"]
    same = sum(a == b for a, b in zip(s["chosen"], p["predicted"]["chosen"])) / 5
    assert p["same_rung"] == pytest.approx(same)
    assert p["meets_goal"] == (p["same_rung"] >= 0.9 and abs(p["qoe_rel_diff"]) <= 0.02)
    assert p["goal"] == {"same_rung": 0.9, "qoe_rel_diff": 0.02}
    assert set(p["replayed"]) == {"same_rung", "first_divergence", "qoe_rel_diff", "stall_diff_s", "meets_goal"}


def test_plain_output_ends_with_the_prediction(files):
    movie, trace = files
    r = subprocess.run([*ABRLAB, "play", "--headless", "--movie", movie, "--trace", trace, "--time-scale", "10"],
                       capture_output=True, text=True, timeout=90, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    tail = r.stdout[r.stdout.index("average bitrate"):]
    assert "prediction: abrlab simulate --preset default, the trace from 0.0" in tail
    assert "same rung" in tail and "played," in tail and "goal (same rung >= 90%, QoE within 2%)" in tail


@pytest.fixture()
def served(files):
    """`abrlab serve` of the movie over the trace (another process: a network abrlab play does not run)."""
    movie, trace = files
    proc = subprocess.Popen([*ABRLAB, "serve", "--movie", movie, "--trace", trace, "--time-scale", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        yield first_line(proc), movie, trace
    finally:
        stop_process(proc)


def test_a_network_we_do_not_run_is_predicted_only_with_its_trace(served):
    url, movie, trace = served
    _, s = play_json(url, "--time-scale", "10")
    assert s["prediction"]["available"] is False and "--trace" in s["prediction"]["reason"]
    _, s = play_json(url, "--time-scale", "10", "--trace", trace, "--movie", movie)
    p = s["prediction"]
    assert p["available"] and len(p["predicted"]["chosen"]) == s["segments"]
    assert any("0 assumed" in n for n in p["notes"]) and p["trace_offset_s"] == 0.0
    _, s = play_json(url, "--time-scale", "10", "--trace", trace)          # sizes from the manifest
    assert s["prediction"]["available"] and any("estimates" in n for n in s["prediction"]["notes"])
    bad = subprocess.run([*ABRLAB, "play", url, "--headless", "--movie", movie], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert bad.returncode == 2 and "--trace" in bad.stderr and "Traceback" not in bad.stderr
    edge_only = subprocess.run([*ABRLAB, "play", url, "--headless", "--fault", "5xx:p=0.1"], capture_output=True,
                               text=True, timeout=60, cwd=REPO)
    assert edge_only.returncode == 2 and "in-process edge" in edge_only.stderr


def test_edge_restarts_its_trace_clock_only_when_idle(tmp_path):
    pres = SyntheticPresentation(synthetic(LADDER, duration_s=8, segment_duration_s=4, seed=1))

    async def go():
        async with EdgeServer(pres, trace=constant(1e6, 60.0), time_scale=10) as edge:
            t0 = edge.t0
            await asyncio.sleep(0.01)
            assert edge.restart_clock() and edge.t0 > t0 and edge.trace_time() < 0.05
    run_bounded(go(), 10)
    # the scheduler (sans-IO): an open flow keeps the link where it is
    s = Scheduler(Capacity(constant(8e6, 10.0)))
    f = s.open(10_000, now=1.0)
    assert s.pos > 0 and not s.restart()
    s.close(f)
    assert s.restart() and s.pos == 0.0


def test_simulate_time_scale_scales_the_preset_overhead(files, tmp_path):
    movie, trace = files
    over = get_preset("default").link.overhead_s

    def download_s(k: str) -> list[float]:
        log = tmp_path / f"log{k}.jsonl"
        r = subprocess.run([*ABRLAB, "simulate", "--trace", trace, "--movie", movie, "--abr", "fixed", "--log",
                            str(log), "--json", "--time-scale", k], capture_output=True, text=True, timeout=60,
                           cwd=REPO)
        assert r.returncode == 0, r.stderr
        return [json.loads(x)["download_s"] for x in log.read_text().splitlines()]

    one, five = download_s("1"), download_s("5")
    # the lowest rung on a constant link: each download is 4 x overhead longer at time scale 5
    assert [b - a for a, b in zip(one, five)] == pytest.approx([4 * over] * 5)
    r = subprocess.run([*ABRLAB, "simulate", "--trace", trace, "--movie", movie, "--time-scale", "0"],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 2 and "time scale" in r.stderr and "Traceback" not in r.stderr


def test_fidelity_player_writes_its_report(files, tmp_path, capsys):
    movie, trace = files
    sets = tmp_path / "set-a"
    sets.mkdir()
    Path(trace).rename(sets / "constant.json")
    out = tmp_path / "out"
    rc = main(["fidelity", "player", "--traces", str(sets), "--movie", movie, "--time-scale", "20", "--out",
               str(out), "--sessions", "--repeat", "2"])
    text = capsys.readouterr().out
    assert rc == 0 and "set-a" in text and "predicted: ok" in text and "again: ok" in text
    summary = json.loads((out / "summary.json").read_text())
    row = summary["summary"][0]
    assert row["trace_set"] == "set-a" and row["traces"] == 1 and row["sessions"] == 2 and row["time_scale"] == 20
    assert 0.0 <= row["predicted_same_rung"] <= 1.0 and 0.0 <= row["plain_same_rung"] <= 1.0
    assert 0.0 <= row["replayed_same_rung"] <= 1.0 and row["replayed_ok"] in (0, 1)
    assert row["again_traces"] == 1 and row["again_ok"] in (0, 1) and 0.0 <= row["again_same_rung"] <= 1.0
    with open(out / "sessions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["repeat"] for r in rows] == ["0", "1"] and rows[0]["trace"] == "constant.json"
    assert rows[0]["predicted_ok"] in ("True", "False") and rows[0]["replayed_meets_goal"] in ("True", "False")
    assert rows[0]["again_ok"] == "" and rows[1]["again_ok"] in ("True", "False")
    side = [json.loads(x) for x in (out / "logs" / "set-a" / "x20" / "constant.json.r0.side.jsonl").read_text()
            .splitlines()]
    assert [r["segment"] for r in side] == [0, 1, 2, 3, 4]
    assert all("played_rung" in r and "predicted_rung" in r for r in side)
    play = (out / "logs" / "set-a" / "x20" / "constant.json.r0.play.jsonl").read_text().splitlines()
    assert json.loads(play[-1])["prediction"]["available"]


@pytest.mark.parametrize("argv,message", [
    (["--time-scale", "0"], "--time-scale must be positive"),
    (["--repeat", "0"], "--repeat must be at least 1"),
    (["--abr", "nope"], "nope"),
])
def test_fidelity_player_bad_input_is_one_line(files, tmp_path, capsys, argv, message):
    movie, trace = files
    rc = main(["fidelity", "player", "--traces", trace, "--movie", movie, *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_dashboard_lines_and_panel():
    assert prediction_lines(None) == ["after the session"]
    assert prediction_lines({"available": False, "reason": "x"}) == ["none (see the summary)"]
    rec = {"available": True, "same_rung": 0.9333, "qoe_rel_diff": -0.0151, "meets_goal": True}
    assert prediction_lines(rec) == ["93% same rung", "QoE -1.5%, goal met"]
    assert prediction_lines({**rec, "meets_goal": False, "qoe_rel_diff": None}) == ["93% same rung", "QoE —"]
    from rich.console import Console
    console = Console(width=120, height=40, record=True)
    console.print(render(DashboardModel(prediction=rec), 120, 40))
    text = console.export_text()
    assert re.search(r"prediction\s+93% same rung", text) and "QoE -1.5%, goal met" in text
    small = Console(width=80, height=24, record=True)        # narrow: the lines wrap, nothing is lost
    small.print(render(DashboardModel(prediction=rec), 80, 24))
    narrow = small.export_text()
    assert "93% same" in narrow and "goal met" in narrow


def _played(trace: str, repeat: int, chosen: list[int], qoe: float, rebuffer_s: float, *, k: float = 5.0):
    from player.lab.fidelity.player import PlayedSession

    return PlayedSession("set", trace, f"/traces/{trace}", k, repeat,
                         {"chosen": chosen, "qoe": {"total": qoe}, "rebuffer_s": rebuffer_s})


def test_fidelity_player_judges_each_repeat_against_the_first():
    from player.lab.fidelity.player import judge_again, summarise

    first = _played("a.json", 0, [0, 1, 2, 2, 2, 2, 2, 2, 2, 2], 10.0, 0.0)
    same = _played("a.json", 1, [0, 1, 2, 2, 2, 2, 2, 2, 2, 2], 10.1, 0.0)      # 100% same, QoE +1%
    parted = _played("a.json", 2, [0, 1, 1, 1, 2, 2, 2, 2, 2, 2], 9.0, 0.5)     # 80% same, QoE -10%
    other_k = _played("a.json", 1, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1.0, 3.0, k=1.0)
    alone = _played("b.json", 0, [1] * 10, 5.0, 0.0)
    sessions: list = []
    for s in (first, same, parted, other_k, alone):
        judge_again(s, sessions)
        sessions.append(s)
    assert first.again is None and alone.again is None
    assert other_k.again is None  # its time scale has no first repeat
    assert same.again.same_rung == 1.0 and same.again.qoe_rel_diff == pytest.approx(0.01)
    assert parted.again.same_rung == pytest.approx(0.8) and parted.again.first_divergence == 2
    assert parted.again.qoe_rel_diff == pytest.approx(-0.1) and parted.again.stall_diff_s == pytest.approx(0.5)
    assert same.row()["again_ok"] is True and parted.row()["again_ok"] is False
    at5 = [s for s in summarise(sessions) if s.time_scale == 5.0][0]
    # a.json's median over its two later repeats: same rung (100 + 80) / 2 = 90%, |QoE| (1 + 10) / 2 = 5.5%
    assert at5.traces == 2 and at5.again_traces == 1 and at5.again_ok == 0
    assert at5.again_same_rung == pytest.approx(0.9) and at5.again_abs_qoe_rel == pytest.approx(0.055)
    assert at5.again_abs_stall_s == pytest.approx(0.25)


def test_a_cost_per_byte_in_the_link_the_simulator_and_the_core(tmp_path):
    from netem.link import Link, LinkParams
    from player.core.rules import SegmentPlan
    from player.core.session import SessionCore, drive_with_link
    from player.lab.fidelity.player import PlainCost, plain_summary
    from player.lab.prediction import predict, with_overhead
    from netem.content import synthetic as make

    trace = constant(3e6, 300.0, latency_s=0.04)
    link = Link([trace], LinkParams(latency="trace", overhead_s=0.002, overhead_s_per_byte=1e-8))
    t = link.transfer(np.zeros(2, dtype=np.int64), np.zeros(2), np.array([0.0, 1e6]))
    # 40 ms of trace latency + 2 ms + 10 ns per byte: 42 ms and 52 ms before the first byte
    assert t.latency_s.tolist() == pytest.approx([0.042, 0.052])
    with pytest.raises(InputError):
        LinkParams(overhead_s_per_byte=-1e-9)
    movie = make(LADDER, duration_s=20, segment_duration_s=4, seed=5, name="short-20s")
    first_segment_bytes = 126_909               # the lowest rung's first segment (`fixed` plays rung 0)
    assert int(movie.segment_sizes_bytes[0][0]) == first_segment_bytes
    none = predict(trace, movie, "fixed", {}).summary()
    micro = predict(trace, movie, "fixed", {}, overhead_s_per_byte=1e-6).summary()
    # the startup is the first download: 1 µs per byte makes it exactly 0.126909 s longer
    assert micro["startup_s"] - none["startup_s"] == pytest.approx(0.126909, abs=1e-9)
    # the time scale multiplies both costs
    p5 = with_overhead("default", 0.003, 1e-9).at_time_scale(5)
    assert (p5.link.overhead_s, p5.link.overhead_s_per_byte) == pytest.approx((0.015, 5e-9))
    # the batch simulator and the session core on the link model agree with a cost per byte
    p = with_overhead("default", 0.004, 3e-9)
    batch = predict(trace, movie, "bola", {}, preset=p).summary()
    core = SessionCore(SegmentPlan.from_content(movie), p.policy("bola", {}), p)
    drive_with_link(core, Link([trace], p.link))
    assert core.summary()["chosen"] == batch["chosen"]
    assert core.summary()["qoe"]["total"] == pytest.approx(batch["qoe"]["total"])
    formats.save(trace, tmp_path / "t.json", "sabre")
    save_content(movie, tmp_path / "m.json")
    plain = plain_summary(str(tmp_path / "t.json"), str(tmp_path / "m.json"), "bola", {}, "default", 1.0, PlainCost())
    assert plain["qoe"]["total"] == pytest.approx(predict(trace, movie, "bola", {}).summary()["qoe"]["total"])
    with pytest.raises(InputError):              # a cost is refused where the link is made
        plain_summary(str(tmp_path / "t.json"), str(tmp_path / "m.json"), "bola", {}, "default", 1.0,
                      PlainCost(per_request_s=math.nan))


def test_the_measured_overhead_is_a_line_through_the_requests():
    from player.lab.prediction import RequestTiming, measured_overhead

    def timing(size: int, overhead_s: float) -> RequestTiming:   # all of it before the request went out
        return RequestTiming(0, 0.0, overhead_s, 0.01, 0.1, size, 0.11)

    rising = measured_overhead([timing(1_000_000, 0.003), timing(2_000_000, 0.005), timing(3_000_000, 0.007)])
    # 1 ms + 2 ms per MB, through the mean (5 ms at 2 MB)
    assert rising.mean_s == pytest.approx(0.005) and rising.per_byte_s == pytest.approx(2e-9)
    assert rising.base_s == pytest.approx(0.001)
    falling = measured_overhead([timing(1_000_000, 0.007), timing(2_000_000, 0.005), timing(3_000_000, 0.003)])
    assert falling.per_byte_s == 0.0 and falling.base_s == pytest.approx(0.005)    # never a negative slope
    two = measured_overhead([timing(1_000_000, 0.003), timing(2_000_000, 0.005)])
    assert two.per_byte_s == 0.0 and two.base_s == pytest.approx(0.004)            # too few for a line


def test_fidelity_player_judges_a_recorded_run_again(files, tmp_path, capsys):
    movie, trace = files
    sets = tmp_path / "set-a"
    sets.mkdir()
    Path(trace).rename(sets / "constant.json")
    out, again = tmp_path / "out", tmp_path / "again"
    assert main(["fidelity", "player", "--traces", str(sets), "--movie", movie, "--time-scale", "20", "--out",
                 str(out), "--repeat", "2", "--json"]) == 0
    played = json.loads(capsys.readouterr().out)
    # nothing played: the same sessions, the same judgement
    assert main(["fidelity", "player", "--from", str(out), "--out", str(again), "--json"]) == 0
    judged = json.loads(capsys.readouterr().out)
    assert judged["summary"] == played["summary"]
    assert judged["run"]["from"] == str(out) and judged["run"]["movie"] == movie and judged["run"]["repeat"] == 2
    with open(out / "sessions.csv") as a, open(again / "sessions.csv") as b:
        assert list(csv.DictReader(a)) == list(csv.DictReader(b))
    # a plain prediction 200 ms per request dearer (x20: 4 s of session time) parts from the session
    assert main(["fidelity", "player", "--from", str(out), "--plain-overhead-ms", "200", "--json"]) == 0
    dear = json.loads(capsys.readouterr().out)
    assert dear["run"]["plain_cost"] == {"per_request_s": 0.2, "per_byte_s": 0.0}
    assert dear["summary"][0]["plain_ok"] == 0 and dear["summary"][0]["predicted_ok"] == played["summary"][0]["predicted_ok"]
    # errors are one line
    for argv, message in ((["--from", str(out), "--out", str(out)], "would be overwritten"),
                          (["--from", str(tmp_path / "none")], "no recorded sessions"),
                          (["--from", str(out), "--plain-overhead-per-mb-ms", "-1"], "--plain-overhead-per-mb-ms")):
        assert main(["fidelity", "player", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
