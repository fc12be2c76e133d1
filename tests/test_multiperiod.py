"""Several periods played in sequence: a short pre-roll with its own (shorter) ladder, then
the main content, each packaged by `abrlab content make` in its own folder and joined by
one MPD with a BaseURL per period. The plan is checked against the parts it was made of;
the sessions run over loopback against our edge (time scale 10, bounded)."""
from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import ATTEMPTS, MIN_SAME_RUNG, cbr, event_dicts, first_line, run_bounded, stop_process

from netem import synth
from netem.content import Content, synthetic
from netem.edge import EdgeServer
from netem.package import SyntheticPresentation
from netem.trace import constant
from player.http.player import HttpPlayer
from player.dash.loading import parse_manifest
from player.dash.playback import build, select
from player.core.events import SessionStart
from player.core.session import drive_with_link
from player.http.clock import run_precise
from player.lab import prediction as pr

K = 10.0
FAST = constant(20e6, 600.0, latency_s=0.02)
AD_LADDER = (300e3, 1.2e6)
MAIN_LADDER = (300e3, 750e3, 1.2e6, 2.85e6)


def ad() -> Content:
    return synthetic(AD_LADDER, duration_s=6.0, segment_duration_s=2.0, seed=7)


def main_movie(n: int = 5) -> Content:
    return synthetic(MAIN_LADDER, duration_s=n * 2.0, segment_duration_s=2.0, seed=3)


def join_periods(root: Path, parts: list[tuple[str, SyntheticPresentation]]) -> str:
    """Write each presentation to root/NAME/ and a manifest.mpd playing them in order (one
    Period per part, its BaseURL the part's folder). Returns the MPD text."""
    periods, start = [], 0.0
    head = None
    for name, pres in parts:
        pres.write(root / name)
        text = pres.mpd().decode()
        if head is None:
            head = text[:text.index("<Period")]
        body = text[text.index("<Period"):text.index("</Period>") + len("</Period>")]
        body = re.sub(r"<Period[^>]*>", f'<Period id="{name}" start="PT{start:g}S" duration="PT{pres.duration_s():g}S">'
                      f"\n    <BaseURL>{name}/</BaseURL>", body, count=1)
        periods.append("  " + body)
        start += pres.duration_s()
    head = re.sub(r'mediaPresentationDuration="[^"]*"', f'mediaPresentationDuration="PT{start:g}S"', head)
    text = head + "\n".join(periods) + "\n</MPD>\n"
    (root / "manifest.mpd").write_text(text)
    return text


def run(coro, timeout: float = 60.0):
    return run_bounded(coro, timeout)


async def play(root: Path, trace=FAST, edge_kw=None, **player_kw):
    async with EdgeServer(root, trace=trace, time_scale=K, **(edge_kw or {})) as edge:
        player = HttpPlayer(edge.url, time_scale=K, **player_kw)
        summary = await player.run()
        return summary, player, edge


def requests(player: HttpPlayer, what: str, track: str | None = None) -> list[dict]:
    return [e for e in event_dicts(player) if e["event"] == "request" and e["what"] == what and e["ok"]
            and (track is None or e["track"] == track)]


# ---------------------------------------------------------------------------------------------
# the plan


def test_plan_joins_the_periods_and_maps_the_shorter_ladder(tmp_path):
    a, m = ad(), main_movie()
    join_periods(tmp_path, [("ad", SyntheticPresentation(a, "timeline", audio=True)),
                            ("main", SyntheticPresentation(m, "number", audio=True))])
    pres = parse_manifest((tmp_path / "manifest.mpd").read_bytes(), "http://h/x/manifest.mpd")
    sel = select(pres)
    assert len(sel.periods) == 2 and sel.reference == 1           # the main period has the longer ladder
    # nearest bandwidth on a log scale, worked by hand: 750k is nearer 1.2M (ratio 1.6) than 300k (2.5)
    assert [r.id for r in sel.periods[0].rungs] == ["v0", "v1", "v1", "v1"]
    assert any("nearest bandwidth" in n for n in sel.notes)
    plan = build(sel, {})
    n_ad, n_main = a.n_segments, m.n_segments
    assert plan.n_segments == n_ad + n_main
    np.testing.assert_allclose(plan.bitrates_bps, MAIN_LADDER)
    np.testing.assert_allclose(plan.segment_plan.durations_s,
                               np.concatenate([a.segment_durations_s, m.segment_durations_s]))
    starts = plan.video[0].starts_s()
    np.testing.assert_allclose(starts[n_ad:], a.duration_s + np.cumsum(np.r_[0, m.segment_durations_s[:-1]]))
    # sizes: the pre-roll's rungs at the @bandwidth of the representation each rung plays there
    sizes = plan.segment_plan.sizes_bytes
    np.testing.assert_allclose(sizes[:n_ad, 1], 1.2e6 * 2.0 / 8)
    np.testing.assert_allclose(sizes[n_ad:, 1], 750e3 * 2.0 / 8)
    # URLs and init segments come from each period's own folder and representation
    top = plan.video[3]
    assert top.segment(0)[0] == "http://h/x/ad/v1/t0.m4s"
    assert top.segment(n_ad)[0] == "http://h/x/main/v3/1.m4s"
    assert top.init(k=0).url == "http://h/x/ad/v1/init.mp4"
    assert top.init(k=n_ad).url == "http://h/x/main/v3/init.mp4"
    assert top.init_key(0) == plan.video[2].init_key(0) != top.init_key(n_ad)
    # audio: each video segment takes the audio of its own time span, none left over
    flat = [j for js in plan.audio_for for j in js]
    assert flat == list(range(plan.audio.n_segments))
    d = plan.describe()
    assert [p["id"] for p in d["periods"]] == ["ad", "main"] and d["periods"][1]["start_s"] == a.duration_s
    with pytest.raises(IndexError):
        top.at(plan.n_segments)


def test_one_period_is_unchanged(tmp_path):
    m = main_movie()
    pres = parse_manifest(SyntheticPresentation(m, "list", audio=True).mpd(), "http://h/m/manifest.mpd")
    plan = build(select(pres), {})
    assert len(plan.selection.periods) == 1 and plan.n_segments == m.n_segments
    assert [t.rep.id for t in plan.video] == ["v0", "v1", "v2", "v3"]
    assert all(len(t.parts) == 1 for t in plan.video)


# ---------------------------------------------------------------------------------------------
# sessions over HTTP


@pytest.mark.parametrize("addressing", ["number", "timeline", "list", "base"])
def test_periods_play_in_sequence_over_http(tmp_path, addressing):
    a, m = ad(), main_movie()
    parts = [("ad", SyntheticPresentation(a, addressing, audio=True)), ("main", SyntheticPresentation(m, addressing, audio=True))]
    join_periods(tmp_path, parts)
    s, player, edge = run(play(tmp_path, abr="bba"))
    n = a.n_segments + m.n_segments
    assert s["complete"] and s["segments"] == n and len(s["chosen"]) == n
    # every segment of every period exactly once, at the rung chosen, from its period's folder
    video = requests(player, "media", "video")
    assert sorted(e["segment"] for e in video) == list(range(n))
    plan = player.plan
    for e in video:
        k, r = e["segment"], s["chosen"][e["segment"]]
        folder = "ad" if k < a.n_segments else "main"
        rep = plan.video[r].rep_at(k).id
        assert re.search(rf"/{folder}/{rep}[/.]", e["url"]), (k, r, e["url"])
    # the bytes of the chosen media are exactly the packaged sizes of the representations played
    sizes = {**{f"ad/{p}": v for p, v in parts[0][1].files().items()},
             **{f"main/{p}": v for p, v in parts[1][1].files().items()}}
    want = 0
    for k, r in enumerate(s["chosen"]):
        rep = plan.video[r].rep_at(k).id
        j = k if k < a.n_segments else k - a.n_segments
        content = a if k < a.n_segments else m
        want += int(content.segment_sizes_bytes[j, int(rep[1:])])
    assert sum(e["bytes"] for e in video) == want
    # audio from both periods; init segments of both periods' representations, each once
    audio = requests(player, "media", "audio")
    assert len(audio) == plan.audio.n_segments
    assert {e["url"].split("/")[3] for e in audio} == {"ad", "main"}
    if addressing != "base":
        inits = [e["url"] for e in requests(player, "init")]
        assert len(inits) == len(set(inits))
        assert any("/ad/a0/init.mp4" in u for u in inits) and any("/main/a0/init.mp4" in u for u in inits)
        played = {f"/{'ad' if k < a.n_segments else 'main'}/{plan.video[r].rep_at(k).id}/init.mp4"
                  for k, r in enumerate(s["chosen"])}
        assert {u for u in inits if "/v" in u} == {u for u in inits if any(u.endswith(p) for p in played)}
        assert len([u for u in inits if "/v" in u]) == len(played)
    else:
        # one sidx per representation of each period (the init comes with it)
        idx = requests(player, "index")
        assert len(idx) == len(AD_LADDER) + len(MAIN_LADDER) + 2
    # the session ends at the end of the last period, after all of it has played
    assert s["session_s"] >= a.duration_s + m.duration_s - 1e-6


@pytest.mark.parametrize("abr,params", [("throughput", {"abandonment": False}), ("dynamic", {})])
def test_session_over_periods_agrees_with_the_simulated_one(tmp_path, abr, params):
    """One model, two clocks, across a period boundary: the HTTP session and its prediction
    (`player.lab.prediction`, as `abrlab play` makes it: the simulator from the session's
    trace offset, the per-request overhead it measured, each request's own delay when
    replayed) choose the same rungs on a trace that forces switches in both periods."""
    a, m = cbr(ad()), cbr(main_movie(n=10))
    join_periods(tmp_path, [("ad", SyntheticPresentation(a, "list")), ("main", SyntheticPresentation(m, "list"))])
    trace = synth.steps([4e6, 0.9e6, 3.5e6, 0.6e6], 5.0, latency_s=0.05)

    async def go():
        async with EdgeServer(tmp_path, trace=trace, time_scale=K) as edge:
            player = HttpPlayer(edge.url, time_scale=K, abr=abr, abr_params=params)
            player.add_listener(lambda ev: isinstance(ev, SessionStart) and edge.restart_clock())
            summary = await player.run()
            return summary, player, max(0.0, (player.session_start_monotonic - edge.t0) * K)

    for _attempt in range(ATTEMPTS):
        s, player, offset = run_precise(asyncio.wait_for(go(), 60))
        assert s["complete"] and s["segments"] == a.n_segments + m.n_segments
        content = pr.content_of_plan(player.plan.segment_plan)
        record = pr.predict_played(player.events_log, s, trace, content, abr=abr, abr_params=params,
                                   trace_offset_s=offset)
        replayed = record["replayed"]
        print(f"\n{abr}: same rung {record['same_rung']:.0%} (replayed {replayed['same_rung']:.0%})\n"
              f"  http {s['chosen']}\n  sim  {record['predicted']['chosen']}")
        if replayed["same_rung"] >= MIN_SAME_RUNG:
            break
    assert replayed["same_rung"] >= MIN_SAME_RUNG, (s["chosen"], record["predicted"]["chosen"])
    assert len(set(s["chosen"][a.n_segments:])) > 1, "the trace should force switches after the boundary"
    assert abs(replayed["stall_diff_s"]) <= 0.5


def test_clear_then_protected_period(tmp_path):
    """A clear pre-roll, then ClearKey-protected content: the license comes before the first
    protected segment and only protected segments are decrypted."""
    pytest.importorskip("cryptography")
    from netem.cenc import Protection

    a, m = ad(), main_movie(n=4)
    join_periods(tmp_path, [("ad", SyntheticPresentation(a, "number")),
                            ("main", SyntheticPresentation(m, "number", protection=Protection.default()))])
    s, player, edge = run(play(tmp_path, abr="bba", edge_kw={"protection": Protection.default()}))
    assert s["complete"] and s["license"] is not None
    assert s["decrypted_segments"] == m.n_segments
    dec = [e["segment"] for e in event_dicts(player) if e["event"] == "decrypt"]
    assert sorted(dec) == list(range(a.n_segments, a.n_segments + m.n_segments))
    lic_t = min(e["t_s"] for e in event_dicts(player) if e["event"] == "license")
    first_protected = min(e["t_s"] for e in event_dicts(player) if e["event"] == "download"
                          and e.get("segment") == a.n_segments)
    assert lic_t <= first_protected


def test_cli_mpd_info_and_play_over_plain_http_server(tmp_path):
    """`abrlab mpd info` shows both periods; `abrlab play URL --headless --json` plays them
    from `python -m http.server` and its summary counts every segment of both."""
    import json
    import subprocess
    import sys

    a, m = ad(), main_movie(n=3)
    join_periods(tmp_path, [("ad", SyntheticPresentation(a, "number")), ("main", SyntheticPresentation(m, "timeline"))])
    cli = [sys.executable, "-m", "player.cli"]
    out = subprocess.run(cli + ["mpd", "info", str(tmp_path / "manifest.mpd"), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert [len(p["adaptation_sets"][0]["representations"]) for p in info["periods"]] == [2, 4]
    srv = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                            "--directory", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    try:
        port = re.search(r"port (\d+)", first_line(srv)).group(1)
        out = subprocess.run(cli + ["play", f"http://127.0.0.1:{port}/manifest.mpd", "--headless", "--json",
                                    "--abr", "bba"], capture_output=True, text=True, timeout=120)
    finally:
        stop_process(srv)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    summary = lines[-1]
    assert summary["complete"] and summary["segments"] == a.n_segments + m.n_segments
    start = next(e for e in lines if e.get("event") == "session_start")
    assert [p["id"] for p in start["plan"]["periods"]] == ["ad", "main"]


def test_multi_period_manifests_of_the_corpus_become_plans(shared_dir):
    """Every static multi-period manifest in ../shared/mpd whose indexes are in the MPD gets a
    plan covering every period's segments in order (or a one-line refusal: never a crash)."""
    from player.dash.errors import ManifestError

    built = 0
    for f in sorted((shared_dir / "mpd").rglob("*.mpd")):
        try:
            pres = parse_manifest(f.read_bytes(), "http://example.com/" + f.name)
        except ManifestError:
            continue
        if len(pres.periods) < 2 or pres.is_live:
            continue
        try:
            sel = select(pres)
            if any(r.needs_sidx for _, r in sel.representations()):
                continue
            plan = build(sel, {})
        except ManifestError as e:
            assert "\n" not in str(e)
            continue
        counts = [len(c.rungs[0].segment_index) for c in sel.periods]
        assert plan.n_segments == sum(counts), f.name
        starts = plan.video[0].starts_s()
        assert np.all(np.diff(starts) > -1e-6), f.name
        built += 1
    assert built >= 1
