"""`abrlab fidelity sabre` plumbing, with a tiny stand-in for Sabre's sabre.py written here (so
the tests need no Sabre checkout): argv per session, -noa, captured output, the agreement
judgement, reports and side-by-side logs, Sabre failures, a missing Sabre."""
from __future__ import annotations

import csv
import json
import math
import textwrap

import pytest

from player.cli.main import main
from player.lab.fidelity.agreement import Goals, SessionPair, summarise
from player.lab.fidelity.sabre import SabreProgram, compare, parse_output

KBPS = [500, 1000, 2000]
SEGMENTS = 10

# Prints what Sabre prints. `throughput` reports what our simulator must get on a fast
# constant link (segment 0 at the lowest rung, then the top: 500 + 9 × 2000 kbit/s), `bola`
# 10% more; 1 s of rebuffering without -noa; `dynamic` fails inside.
FAKE_SABRE = textwrap.dedent('''
    import argparse, json
    parser = argparse.ArgumentParser()
    for flag in ("-n", "-m", "-a"):
        parser.add_argument(flag)
    parser.add_argument("-v", action="store_true")
    parser.add_argument("-noa", action="store_true")
    parser.add_argument("-ao", action="store_true")
    args = parser.parse_args()
    movie = json.load(open(args.m))
    json.load(open(args.n))
    if args.a == "dynamic":
        raise ZeroDivisionError("float division by zero")
    b = movie["bitrates_kbps"]
    n = len(movie["segment_sizes_bits"])
    total = b[0] + (n - 1) * b[-1]
    if args.a == "bola":
        total *= 1.10
    print("30000")
    if args.v:
        print("[0] Network: 50000,20  (q=2: bitrate=2000)")
        print("[0-50]  0: q=0 s=1500000/1500000 t=50=20+30 bl=0->0->3000")
        print("full buffer delay 1000 bl=22000")
        print("[50-100]  1: q=2 s=600000/6000000 t=50=20+30  ABANDONED to 0 - 600000/6000000 bits in 50=20+30 ttfb+ttdl  bl=3000->2950->2950")
        print("[100-250]  1: q=2 s=6000000/6000000 t=150=20+130 bl=2950->2800->5800")
    print("buffer size: 25000")
    print("total played bitrate: %f" % total)
    print("total rebuffer: %f" % ((0.0 if args.noa else 1.0) + (2.0 if args.ao else 0.0)))
    print("total rebuffer events: 0.000000")
''')


@pytest.fixture
def setup(tmp_path):
    sabre = tmp_path / "sabre" / "src" / "sabre.py"
    sabre.parent.mkdir(parents=True)
    sabre.write_text(FAKE_SABRE)
    movie = tmp_path / "movie.json"
    movie.write_text(json.dumps({"segment_duration_ms": 3000, "bitrates_kbps": KBPS,
                                 "segment_sizes_bits": [[k * 3000 for k in KBPS]] * SEGMENTS}))
    traces = tmp_path / "fast"
    traces.mkdir()
    for name in ("a", "b"):
        (traces / f"{name}.json").write_text(json.dumps([{"duration_ms": 60000, "bandwidth_kbps": 50000,
                                                          "latency_ms": 20}]))
    return tmp_path, sabre, movie, traces


def test_agreeing_and_disagreeing_sessions(setup):
    root, sabre, movie, traces = setup
    res = compare(SabreProgram(root / "sabre"), [traces], movie, ["throughput", "bola"], keep_logs=True)
    by = {(p.policy, p.trace.split("/")[-1]): p for p in res.pairs}
    assert len(res.pairs) == 4
    expected_bps = (500 + 9 * 2000) * 1000 / 10
    t = by[("throughput", "a.json")]
    assert t.ours_bitrate_bps == pytest.approx(expected_bps)
    assert t.peer_bitrate_bps == pytest.approx(expected_bps)
    assert t.peer_rebuffer_s == 0.0 and t.agrees(Goals())
    b = by[("bola", "b.json")]
    assert b.peer_bitrate_bps == pytest.approx(1.10 * expected_bps)
    assert b.bitrate_diff == pytest.approx(b.ours_bitrate_bps / (1.10 * expected_bps) - 1)
    assert b.bitrate_diff < -0.05 and not b.agrees(Goals())
    sums = {s.policy: s for s in summarise(res.pairs)}
    assert sums["throughput"].share == 1.0 and sums["throughput"].meets_goal
    assert sums["bola"].share == 0.0 and not sums["bola"].meets_goal
    # the side-by-side log: Sabre's completed attempt per segment, and its abandoned rung
    log = res.logs[("fast", "throughput", str(traces / "a.json"))]
    assert log[0]["sabre_rung"] == 0 and log[1]["sabre_rung"] == 2
    assert log[1]["sabre_abandoned_rungs"] == [2] and log[1]["sabre_wait_s"] == pytest.approx(1.0)
    assert log[1]["ours_rung"] == 2 and log[2]["sabre_rung"] is None


def test_abandon_runs_sabre_without_noa(setup):
    root, sabre, movie, traces = setup
    res = compare(SabreProgram(sabre), [traces], movie, ["throughput"], abandon=True)
    assert all(p.peer_rebuffer_s == 1.0 and not p.agrees(Goals()) for p in res.pairs)
    assert all(p.rebuffer_diff_s == pytest.approx(-1.0) for p in res.pairs)


def test_extra_arguments_reach_each_side(setup):
    root, sabre, movie, traces = setup
    res = compare(SabreProgram(sabre), [traces], movie, ["bola"], sabre_args=["-ao"], abr_params={"osc": True})
    assert all(p.peer_rebuffer_s == 2.0 for p in res.pairs)
    with pytest.raises(ValueError, match="unknown parameter"):
        compare(SabreProgram(sabre), [traces], movie, ["bola"], abr_params={"nope": 1})


def test_cli_report_and_failures(setup, capsys):
    root, sabre, movie, traces = setup
    out = root / "out"
    rc = main(["fidelity", "sabre", "--sabre", str(root / "sabre"), "--traces", str(traces), "--movie", str(movie),
               "--abr", "throughput,dynamic", "--out", str(out), "--sessions"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "ZeroDivisionError" in text and "NOT met" in text and "100%" in text
    rows = list(csv.DictReader(open(out / "sessions.csv")))
    assert len(rows) == 4
    failed = [r for r in rows if r["policy"] == "dynamic"]
    assert all(r["ok"] == "False" and "ZeroDivisionError" in r["error"] for r in failed)
    summary = json.loads((out / "summary.json").read_text())
    assert {s["policy"]: s["failed"] for s in summary["summary"]} == {"throughput": 0, "dynamic": 2}
    assert (out / "logs" / "fast" / "throughput" / "a.jsonl").read_text().count("\n") == SEGMENTS


def test_cli_missing_sabre_is_one_line(setup, capsys):
    root, sabre, movie, traces = setup
    rc = main(["fidelity", "sabre", "--sabre", str(root / "nowhere"), "--traces", str(traces), "--movie", str(movie)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Sabre not found" in err
    rc = main(["fidelity", "sabre", "--sabre", str(sabre), "--traces", str(traces), "--movie", str(movie),
               "--abr", "bba"])
    assert rc == 2 and "no policy bba" in capsys.readouterr().err


def test_other_trace_formats_are_converted_for_both(setup):
    root, sabre, movie, traces = setup
    mm = root / "mm"
    mm.mkdir()
    # Mahimahi: 1500-byte opportunities, 5 per ms = 60 Mbit/s, over 1 s
    (mm / "x.down").write_text("".join(f"{t}\n" for t in range(1, 1001) for _ in range(5)))
    res = compare(SabreProgram(sabre), [mm], movie, ["throughput"])
    assert len(res.pairs) == 1 and res.pairs[0].trace_set == "mm" and not res.pairs[0].error
    assert res.pairs[0].agrees(Goals())


def test_parse_output_of_sabre_lines():
    text = "\n".join([
        "buffer size: 25000",
        "[0-1115]  0: q=0 s=382840/382840 t=1115=100+1015 bl=0->0->3000",
        "abr delay 250 bl=2000",
        "[1365-1986]  1: q=3 s=24000/1794368 t=621=100+521  ABANDONED to 0 - 24000/1794368 bits in "
        "621=100+521 ttfb+ttdl  bl=3000->2378->2378",
        "[1986-2600]  1: q=0 s=382840/382840 t=614=100+514 bl=2378->1764->4764",
        "total played bitrate: 271365.000000",
        "total rebuffer: 1.250000",
    ])
    run = parse_output(text)
    assert run.summary["buffer size"] == 25000
    assert run.avg_bitrate_bps(199) == pytest.approx(271365_000 / 199)
    assert run.rebuffer_s == 1.25
    assert [a["abandoned"] for a in run.attempts] == [False, True, False]
    a = run.attempts[1]
    assert (a["segment"], a["rung"], a["bytes"], a["latency_s"], a["delay_s"]) == (1, 3, 3000, 0.1, 0.25)
    assert run.final_attempts()[1]["buffer_s"] == pytest.approx(4.764)
    assert math.isnan(parse_output("").rebuffer_s)


def test_agreement_thresholds():
    g = Goals()
    ok = SessionPair("s", "t", "p", 1.05e6, 0.5, 1.0e6, 0.0)
    assert ok.agrees(g)                          # exactly at both limits
    assert not SessionPair("s", "t", "p", 1.06e6, 0.0, 1.0e6, 0.0).agrees(g)
    assert not SessionPair("s", "t", "p", 1.0e6, 0.0, 1.0e6, 0.6).agrees(g)
    assert not SessionPair("s", "t", "p", 1.0e6, 0.0, error="boom").agrees(g)
    s = summarise([ok] * 9 + [SessionPair("s", "t", "p", 2e6, 0.0, 1e6, 0.0)])[0]
    assert s.share == 0.9 and s.meets_goal and s.mean_bitrate_diff == pytest.approx((9 * 0.05 + 1.0) / 10)
