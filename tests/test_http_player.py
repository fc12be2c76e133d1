"""The HTTP player end to end over loopback: every addressing mode from our edge and from a
plain `python -m http.server`, through the shaping proxy, the edge's faults, CMCD, the
event schema, the command line. Servers bind 127.0.0.1:0; every session is bounded (time
scale 10, short content, `asyncio.wait_for`), no sleeps for timing.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import event_dicts, run_bounded, stop_process

from netem.content import Content, synthetic
from netem.edge import EdgeServer
from netem.package import SyntheticPresentation
from netem.trace import constant
from player.core.device import DeviceProfile
from player.core import events
from player.core.events import json_safe
from player.http.player import HttpConfig, HttpPlayer, PlaybackError
from player.dash.errors import ManifestError, UnsupportedManifest

REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]
LADDER = (300e3, 750e3, 1.2e6, 2.85e6)
K = 10.0
FAST = constant(20e6, 600.0, latency_s=0.02)


def run(coro, timeout: float = 30.0):
    return run_bounded(coro, timeout)


def movie(n: int = 6, seg: float = 2.0, seed: int = 1) -> Content:
    return synthetic(LADDER, duration_s=n * seg, segment_duration_s=seg, seed=seed)


async def session(source, *, trace=FAST, k: float = K, faults=(), edge_kw=None, **player_kw):
    """One session against one in-process edge: (summary, player, edge)."""
    async with EdgeServer(source, trace=trace, time_scale=k, faults=faults, **(edge_kw or {})) as edge:
        player = HttpPlayer(edge.url, time_scale=k, **player_kw)
        summary = await player.run()
        return summary, player, edge


def check_events(lines: list[dict]) -> None:
    """The event schema: known kinds, their fields, JSON-clean values, the core's clock forward."""
    assert lines
    last_core = -1.0
    for ev in lines:
        assert isinstance(ev["t_s"], (int, float)) and isinstance(ev["event"], str), ev
        assert ev["event"] in events.KINDS, ev
        missing = [f for f in events.field_names(ev["event"]) if f not in ev]
        assert not missing, (ev, missing)
        json.dumps(ev, allow_nan=False)
        if "session_t_s" in ev:
            assert ev["session_t_s"] >= last_core - 1e-6, ev
            last_core = ev["session_t_s"]


def kinds(player: HttpPlayer) -> dict[str, int]:
    out: dict[str, int] = {}
    for ev in player.events_log:
        out[ev.kind] = out.get(ev.kind, 0) + 1
    return out


def media_requests(player: HttpPlayer, track: str = "video", ok: bool = True) -> list[dict]:
    return [e for e in event_dicts(player) if e["event"] == "request" and e["what"] == "media"
            and e["track"] == track and (e["ok"] or not ok)]


SIM_FIELDS = {"abr", "abr_params", "trace", "movie", "device", "preset", "segments", "avg_bitrate_bps",
              "time_avg_bitrate_bps", "utility", "rebuffer_s", "rebuffer_count", "rebuffer_ratio", "startup_s",
              "switches", "switch_magnitude_bps", "bytes", "session_s", "qoe", "qoe_all", "chosen"}


# ---------------------------------------------------------------------------------------------
# addressing modes from our edge


@pytest.mark.parametrize("addressing", ["number", "timeline", "list", "base"])
def test_every_addressing_mode_from_the_edge(addressing):
    c = movie()
    pres = SyntheticPresentation(c, addressing, audio=True)
    s, player, edge = run(session(pres, abr="bba"))
    assert s["complete"] and s["segments"] == c.n_segments
    assert SIM_FIELDS <= set(s)
    assert set(s["qoe"]) == {"model", "total", "components", "segments"}
    check_events(event_dicts(player))
    k = kinds(player)
    assert k["decision"] == k["download"] == c.n_segments
    assert k["session_start"] == 1 and k["end"] == 1 and k["summary"] == 1
    # every video segment once, the audio segments alongside, init segments once per representation
    video = media_requests(player, "video")
    assert sorted(e["segment"] for e in video) == list(range(c.n_segments))
    assert len(media_requests(player, "audio")) == c.n_segments
    inits = [e["url"] for e in event_dicts(player) if e["event"] == "request" and e["what"] == "init"]
    assert len(inits) == len(set(inits))
    # the bytes reported are exactly the packaged sizes of what was chosen (plus audio and inits)
    chosen = np.array(s["chosen"])
    files = pres.files()
    vid = int(c.segment_sizes_bytes[np.arange(c.n_segments), chosen].sum())
    assert sum(e["bytes"] for e in video) == vid
    if addressing == "base":
        idx = [e for e in event_dicts(player) if e["event"] == "request" and e["what"] == "index"]
        assert len(idx) == len(LADDER) + 1   # one sidx (with the init) per representation, audio too
    else:
        init_bytes = sum(files[f"v{r}/init.mp4"] for r in set(chosen.tolist())) + files["a0/init.mp4"]
        audio = sum(files[p] for p in files if p.startswith("a0/") and not p.endswith("init.mp4"))
        assert s["bytes"] == vid + audio + init_bytes
    assert edge.records and all(r["status"] in (200, 206) for r in edge.records)


def test_sidx_gives_exact_sizes_to_the_plan():
    c = movie(n=5)
    pres = SyntheticPresentation(c, "base")
    s, player, _ = run(session(pres, abr="bola", abr_params={"use_segment_sizes": True}))
    assert s["complete"]
    np.testing.assert_array_equal(player.plan.segment_plan.sizes_bytes, c.segment_sizes_bytes)
    ranges = [e["range"] for e in media_requests(player)]
    assert all(r is not None for r in ranges)


# ---------------------------------------------------------------------------------------------
# python -m http.server (no Range support in 3.11) and the shaping proxy


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """`python -m http.server` over content from `abrlab content make`, one dir per addressing."""
    root = tmp_path_factory.mktemp("www")
    c = movie(n=5)
    for addressing in ("number", "timeline", "list", "base"):
        SyntheticPresentation(c, addressing, audio=addressing != "list").write(root / addressing)
    mpd = (root / "number" / "manifest.mpd").read_text()
    (root / "number" / "live.mpd").write_text(
        mpd.replace('type="static"', 'type="dynamic" availabilityStartTime="2020-01-01T00:00:00Z"'))
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(15)
    m = re.search(r"port (\d+)", line[0] if line else "")
    if not m:
        proc.kill()
        pytest.fail(f"http.server did not start: {line!r}")
    try:
        yield f"http://127.0.0.1:{m.group(1)}", c, root
    finally:
        stop_process(proc)


@pytest.mark.parametrize("addressing", ["number", "timeline", "list", "base"])
def test_every_addressing_mode_from_http_server(http_server, addressing):
    base, c, _ = http_server
    player = HttpPlayer(f"{base}/{addressing}/manifest.mpd", abr="bba")
    s = run(player.run())
    assert s["complete"] and s["segments"] == c.n_segments
    check_events(event_dicts(player))
    if addressing == "base":
        # http.server answers ranges with the whole file: the player cuts what it needs
        assert s["ranges_ignored"] > 0 or all(e["status"] == 206 for e in media_requests(player))
        got = [e for e in event_dicts(player) if e["event"] == "request" and e["what"] == "media"]
        assert all(e["ok"] for e in got)


def test_through_the_shaping_proxy(http_server):
    from netem.proxy import ShapingProxy

    base, c, _ = http_server
    port = int(base.rsplit(":", 1)[1])

    async def go():
        async with ShapingProxy(("127.0.0.1", port), trace=constant(4e6, 600.0, latency_s=0.03), time_scale=K) as px:
            host, pport = px.address[:2]
            player = HttpPlayer(f"http://{host}:{pport}/number/manifest.mpd", abr="throughput",
                                abr_params={"abandonment": False}, time_scale=K)
            return await player.run(), player

    s, player = run(go())
    assert s["complete"] and s["segments"] == c.n_segments
    tps = [e["throughput_bps"] for e in event_dicts(player) if e["event"] == "download"]
    # the proxy's 4 Mbit/s link, as the player measures it in presentation time
    assert 2.5e6 < float(np.median(tps)) < 4.6e6
    lat = [e["latency_s"] for e in event_dicts(player) if e["event"] == "download"]
    assert min(lat) >= 0.03 * 0.9


# ---------------------------------------------------------------------------------------------
# the command line


def test_cli_json_lines_and_summary_like_simulate(http_server, tmp_path):
    base, c, root = http_server
    log = tmp_path / "events.jsonl"
    out = subprocess.run(ABRLAB + ["play", f"{base}/timeline/manifest.mpd", "--headless", "--json", "--abr", "bba",
                                   "--cmcd", "headers", "--log", str(log)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    summary = lines[-1]
    events = lines[:-1]
    check_events(events)
    assert "event" not in summary and summary["segments"] == c.n_segments
    # the same fields as `abrlab simulate --json`
    from netem import content as content_mod, formats

    content_mod.save(c, tmp_path / "movie.json")
    formats.save(constant(5e6, 100.0), tmp_path / "trace.json", "sabre")
    sim = subprocess.run(ABRLAB + ["simulate", "--trace", str(tmp_path / "trace.json"), "--movie",
                                   str(tmp_path / "movie.json"), "--abr", "bba", "--json"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert sim.returncode == 0, sim.stderr
    sim_summary = json.loads(sim.stdout)
    assert set(sim_summary) <= set(summary)
    assert set(sim_summary["qoe"]) == set(summary["qoe"])
    logged = [json.loads(x) for x in log.read_text().splitlines()]
    assert logged[-1] == summary and len(logged) == len(lines)


def test_cli_plain_progress(http_server):
    base, c, _ = http_server
    out = subprocess.run(ABRLAB + ["play", f"{base}/number/manifest.mpd", "--headless", "--abr", "bola"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("segment ") >= c.n_segments and "QoE (linear)" in out.stdout


def test_cli_live_mpd_whose_segments_never_exist_is_one_line(http_server):
    """A live MPD is played live; when its segments are not where it says (a VoD directory
    relabelled dynamic: 404 for segments long available), every rung is tried, then one line."""
    base, _, _ = http_server
    out = subprocess.run(ABRLAB + ["play", f"{base}/number/live.mpd", "--headless", "--json"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 1, out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "missing (HTTP 404) at every representation" in err[0] and "Traceback" not in out.stderr
    kinds = [json.loads(line).get("event") for line in out.stdout.splitlines()]
    assert "clock_sync" in kinds and "live_join" in kinds and kinds.count("missing") >= 4


def test_cli_errors_are_one_line(http_server):
    base, _, _ = http_server
    missing = subprocess.run(ABRLAB + ["play", f"{base}/nothere.mpd", "--headless"], capture_output=True,
                             text=True, timeout=60, cwd=REPO)
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr and "Traceback" not in missing.stderr
    down = subprocess.run(ABRLAB + ["play", "http://127.0.0.1:9/manifest.mpd", "--headless", "--max-retry", "0.5"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert down.returncode == 2 and "unavailable: " in down.stderr and "Traceback" not in down.stderr
    local = subprocess.run(ABRLAB + ["play", "manifest.mpd", "--headless"], capture_output=True, text=True,
                           timeout=60, cwd=REPO)
    assert local.returncode == 2 and "unsupported" in local.stderr
    bad = subprocess.run(ABRLAB + ["play", f"{base}/number/manifest.mpd", "--abr", "nope"], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_cli_against_abrlab_serve(tmp_path):
    from netem import content as content_mod

    content_mod.save(movie(n=4), tmp_path / "movie.json")
    serve = subprocess.Popen(ABRLAB + ["serve", "--movie", str(tmp_path / "movie.json"), "--rate", "8000000",
                                       "--latency", "0.02", "--time-scale", "10", "--audio"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        line: list[str] = []
        t = threading.Thread(target=lambda: line.append(serve.stdout.readline()), daemon=True)
        t.start()
        t.join(20)
        assert line and line[0].startswith("http://"), line
        out = subprocess.run(ABRLAB + ["play", line[0].strip(), "--headless", "--json", "--time-scale", "10",
                                       "--abr", "throughput", "--device", "mobile"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout.splitlines()[-1])
        assert summary["complete"] and summary["segments"] == 4 and summary["device"] == "mobile"
    finally:
        stop_process(serve)


# ---------------------------------------------------------------------------------------------
# faults of the edge


def test_5xx_are_retried():
    c = movie(n=6)
    s, player, edge = run(session(SyntheticPresentation(c, "number"), faults=["5xx:p=0.4,path=*.m4s"], edge_kw={"seed": 3},
                                  abr="bba"))
    assert s["complete"] and s["retries"] > 0
    assert any(r["status"] == 503 for r in edge.records)
    retries = [e for e in event_dicts(player) if e["event"] == "retry"]
    assert retries and all(e["backoff_s"] > 0 for e in retries)
    check_events(event_dicts(player))


def test_404_on_one_representation_switches_rung():
    c = movie(n=5)
    s, player, _ = run(session(SyntheticPresentation(c, "number"), faults=["404:path=/v2/3.m4s"], abr="fixed",
                               abr_params={"rung": 2}))
    assert s["complete"] and s["chosen"][2] == 1 and s["chosen"][3] == 2
    miss = [e for e in event_dicts(player) if e["event"] == "missing"]
    assert miss and miss[0]["segment"] == 2 and miss[0]["rung"] == 2 and miss[0]["to_rung"] == 1
    check_events(event_dicts(player))


def test_404_everywhere_is_a_clear_error():
    c = movie(n=5)

    async def go():
        async with EdgeServer(SyntheticPresentation(c, "number"), trace=FAST, time_scale=K, faults=["404:path=*/3.m4s"]) as e:
            player = HttpPlayer(e.url, time_scale=K, abr="bba")
            with pytest.raises(PlaybackError, match="segment 3 is missing .* every representation"):
                await player.run()
            return player

    player = run(go())
    assert event_dicts(player)[-1]["event"] == "error"
    assert player.summary is not None and player.summary["complete"] is False and player.summary["segments"] == 2


def test_mid_body_stall_longer_than_the_idle_timeout_resumes():
    c = movie(n=4)
    s, player, edge = run(session(SyntheticPresentation(c, "number"), faults=["stall:after=30000,for=40,path=*/2.m4s,to=5"],
                                  abr="fixed", abr_params={"rung": 1}))
    assert s["complete"]
    retry = [e for e in event_dicts(player) if e["event"] == "retry"]
    assert retry and "no data" in retry[0]["reason"] and retry[0]["resume_from"] >= 30000
    resumed = [e for e in event_dicts(player) if e["event"] == "request" and e.get("resume_from")]
    assert resumed and resumed[0]["ok"] and resumed[0]["status"] == 206
    assert any(r["range"] and r["range"].startswith("bytes=30000-") for r in edge.records)
    assert s["wasted_bytes"] == 0


def test_short_stall_is_waited_out():
    c = movie(n=4)
    s, player, _ = run(session(SyntheticPresentation(c, "number"), faults=["stall:after=30000,for=3,path=*/2.m4s"],
                               abr="fixed", abr_params={"rung": 1}))
    assert s["complete"] and s["retries"] == 0
    seg1 = [e for e in event_dicts(player) if e["event"] == "download" and e["segment"] == 1][0]
    assert seg1["transfer_s"] >= 3.0


def test_reset_after_n_bytes_resumes_until_complete():
    c = movie(n=4)
    s, player, edge = run(session(SyntheticPresentation(c, "number"), faults=["reset:after=40000,path=*/2.m4s"],
                                  abr="fixed", abr_params={"rung": 2}))
    assert s["complete"]
    size = int(c.segment_sizes_bytes[1, 2])
    attempts = [e for e in event_dicts(player) if e["event"] == "request" and e["segment"] == 1 and e["what"] == "media"]
    assert len(attempts) == -(-size // 40000)      # each attempt moves 40 kB further
    assert attempts[-1]["ok"] and sum(a["bytes"] for a in attempts) == size


def test_slow_first_byte():
    c = movie(n=4)
    s, player, _ = run(session(SyntheticPresentation(c, "number"), faults=["slow-first-byte:delay=1.5,path=*.m4s"], abr="bba"))
    assert s["complete"] and s["retries"] == 0
    assert all(e["latency_s"] >= 1.5 for e in event_dicts(player) if e["event"] == "download")
    # beyond the first-byte timeout: retried (the fault applies to half of the requests)
    s2, player2, _ = run(session(SyntheticPresentation(c, "number"), faults=["slow-first-byte:delay=8,p=0.5,path=*.m4s"],
                                 edge_kw={"seed": 1}, abr="bba", config=HttpConfig(first_byte_timeout_s=3.0)))
    assert s2["complete"] and s2["retries"] > 0
    assert any("no response within" in e["reason"] for e in event_dicts(player2) if e["event"] == "retry")


def test_outage_causes_a_stall_and_cmcd_reports_it():
    c = movie(n=8)
    small = DeviceProfile("small-buffer", buffer_target_s=4.0)
    s, player, edge = run(session(SyntheticPresentation(c, "number"), trace=constant(3e6, 600.0, latency_s=0.02),
                                  faults=["outage:from=3,for=8"], abr="bba", cmcd="query", device=small))
    assert s["complete"] and s["rebuffer_s"] > 0 and s["rebuffer_count"] >= 1
    assert any(e["event"] == "stall_start" for e in event_dicts(player))
    after = [r["cmcd"] for r in edge.records if r["path"].endswith(".m4s")]
    assert any(c.get("bs") is True for c in after)


def test_bounded_retry_then_clear_error():
    c = movie(n=4)

    async def go():
        async with EdgeServer(SyntheticPresentation(c, "number"), trace=FAST, time_scale=K,
                              faults=["5xx:p=1,status=502,path=*/3.m4s"]) as e:
            player = HttpPlayer(e.url, time_scale=K, abr="bba", config=HttpConfig(max_retry_s=4.0))
            with pytest.raises(PlaybackError) as info:
                await player.run()
            return player, str(info.value)

    player, msg = run(go())
    assert "segment 3" in msg and "gave up after" in msg and "HTTP 502" in msg and "\n" not in msg
    assert "(retry budget 4 s)" in msg
    assert player.summary["segments"] == 2 and player.summary["error"] == msg


def _two_edges_mpd(root: Path, ports: list[int]) -> str:
    """manifest2.mpd: the presentation in `root` with one BaseURL per edge."""
    text = (root / "manifest.mpd").read_text()
    bases = "".join(f"  <BaseURL>http://127.0.0.1:{p}/</BaseURL>\n" for p in ports)
    text = text.replace("  <Period", bases + "  <Period", 1)
    (root / "manifest2.mpd").write_text(text)
    return "manifest2.mpd"


@pytest.mark.parametrize("how", ["mpd-baseurls", "extra-origin"])
def test_edge_death_fails_over_to_the_second_edge(tmp_path, how):
    c = movie(n=8)
    SyntheticPresentation(c, "number").write(tmp_path)
    trace = constant(2e6, 600.0, latency_s=0.02)

    async def go():
        faults = ["die:at=3,edge=0"]
        e0 = EdgeServer(tmp_path, trace=trace, time_scale=K, faults=faults, index=0, mpd="manifest2.mpd")
        e1 = EdgeServer(tmp_path, trace=trace, time_scale=K, faults=faults, index=1, mpd="manifest2.mpd")
        await e0.start()
        await e1.start()
        try:
            paced = DeviceProfile("paced", buffer_target_s=4.0)   # the session outlives the edge
            if how == "mpd-baseurls":
                _two_edges_mpd(tmp_path, [e0.port, e1.port])
                player = HttpPlayer(e0.url, time_scale=K, abr="bba", device=paced)
            else:
                player = HttpPlayer(f"{e0.base_url}/manifest.mpd", time_scale=K, abr="bba", device=paced,
                                    extra_origins=[e1.base_url])
            s = await player.run()
            return s, player, e0, e1
        finally:
            await e0.stop()
            await e1.stop()

    s, player, e0, e1 = run(go())
    assert e0.dead and s["complete"] and s["failovers"] >= 1 and s["session_s"] > 3.0
    fo = [e for e in event_dicts(player) if e["event"] == "failover"]
    assert fo[0]["from_edge"] == 0 and fo[0]["to_edge"] == 1 and fo[0]["until_s"] > fo[0]["t_s"]
    served = {r["path"] for r in e1.records if r["status"] in (200, 206)}
    assert any(p.endswith(".m4s") for p in served)
    check_events(event_dicts(player))


# ---------------------------------------------------------------------------------------------
# abandonment, devices, CMCD


def test_abandonment_refetches_lower_and_counts_waste():
    from netem.synth import steps

    c = movie(n=8)
    trace = steps([8e6, 0.4e6], [5.0, 600.0], latency_s=0.02)
    s, player, _ = run(session(SyntheticPresentation(c, "number"), trace=trace, abr="throughput"))
    assert s["complete"] and s["abandons"] >= 1 and s["wasted_bytes"] > 0
    ab = [e for e in event_dicts(player) if e["event"] == "abandon"]
    assert all(e["to_rung"] < e["from_rung"] for e in ab)
    assert any(not e["ok"] and "abandoned" in (e["error"] or "") for e in media_requests(player, ok=False))


def test_device_mask_and_buffer_target_as_the_simulator():
    c = movie(n=6)
    dev = DeviceProfile("small", 700, 400, 30.0, ("avc1", "mp4a"), buffer_target_s=4.0)
    s, player, _ = run(session(SyntheticPresentation(c, "number"), abr="highest", device=dev))
    np.testing.assert_array_equal(player.plan.mask, dev.mask(c))
    assert max(s["chosen"]) == int(np.flatnonzero(dev.mask(c))[-1])
    assert any(e["event"] == "wait" for e in event_dicts(player))   # the 4 s target paces requests
    assert player.core.buffer_cap_s == 4.0 and s["device"] == "small"


@pytest.mark.parametrize("mode", ["query", "headers"])
def test_cmcd_keys_arrive_in_the_access_log(mode, tmp_path):
    from netem.accesslog import read

    c = movie(n=5)
    log = tmp_path / "access.jsonl"
    s, player, edge = run(session(SyntheticPresentation(c, "number", audio=True), abr="bba", cmcd=mode,
                                  edge_kw={"access_log": str(log)}))
    assert s["complete"]
    recs = read(log)
    media = [r for r in recs if r["path"].endswith(".m4s") and r["path"].startswith("/v")]
    keys = set().union(*(r["cmcd"].keys() for r in media))
    assert {"br", "bl", "d", "mtp", "nor", "ot", "sid", "cid", "su", "tb"} <= keys
    sid = {r["cmcd"]["sid"] for r in recs}
    assert sid == {player.cmcd.sid}
    first = media[0]["cmcd"]
    assert first["ot"] == "v" and first["su"] is True and "mtp" not in first
    assert all(r["cmcd"]["ot"] == "a" for r in recs if r["path"].startswith("/a0/") and "init" not in r["path"])
    assert all(r["cmcd"]["ot"] == "i" for r in recs if r["path"].endswith("init.mp4"))
    assert [r["cmcd"]["ot"] for r in recs if r["path"].endswith(".mpd")] == ["m"]
    for r in media:
        br = r["cmcd"]["br"]
        assert br in {int(b / 1000) for b in LADDER} and r["cmcd"]["d"] == 2000
        assert r["cmcd"]["bl"] % 100 == 0
    assert "nor" not in media[-1]["cmcd"] and media[0]["cmcd"]["nor"] == "2.m4s"


# ---------------------------------------------------------------------------------------------
# observing a session (the dashboard's hook) and small units


def test_listeners_and_event_stream():
    c = movie(n=4)

    async def go():
        async with EdgeServer(SyntheticPresentation(c, "number"), trace=FAST, time_scale=K) as e:
            player = HttpPlayer(e.url, time_scale=K, abr="bba")
            seen, heard, streamed, snaps = [], [], [], []

            async def alistener(ev):
                seen.append(ev.kind)

            player.add_listener(alistener)
            player.add_listener(heard.append)
            player.add_listener(lambda ev: snaps.append(player.snapshot()) if isinstance(ev, events.Download) else None)

            async def consume():
                async for ev in player.events():
                    streamed.append(ev)

            task = asyncio.ensure_future(consume())
            await asyncio.sleep(0)
            await player.run()
            await asyncio.wait_for(task, 5)
            return player, seen, heard, streamed, snaps

    player, seen, heard, streamed, snaps = run(go())
    assert streamed == player.events_log == heard and isinstance(streamed[-1], events.Summary)
    assert "download" in seen
    # listeners get the typed events: a download's fields by name, its JSON line the same values
    downloads = [e for e in heard if isinstance(e, events.Download)]
    assert [d.segment for d in downloads] == list(range(c.n_segments))
    assert all(d.throughput_bps == pytest.approx(d.bytes * 8 / d.transfer_s) for d in downloads)   # default preset
    assert downloads[0].as_dict()["bytes"] == downloads[0].bytes
    decisions = [e for e in heard if isinstance(e, events.Decision)]
    assert len(decisions) == c.n_segments and set(decisions[-1].observation) >= {"buffer_s", "last_throughput_bps"}
    assert len(snaps) == c.n_segments and snaps[-1]["segment"] == c.n_segments
    assert {"buffer_s", "rung", "throughput_bps", "ladder_bps", "allowed", "stalls"} <= set(snaps[0])


def test_json_safe():
    v = json_safe({"a": np.float64("nan"), "b": np.array([1, 2]), "c": (np.int64(3), float("inf"))})
    assert v == {"a": None, "b": [1, 2], "c": [3, None]}


def test_edges_order_and_penalty():
    from player.http.fetcher import Edges

    e = Edges(3, penalty_s=10.0)
    assert e.order(0.0) == [0, 1, 2]
    assert e.fail(0, 1.0) == 1 and e.order(2.0) == [1, 2]
    assert e.fail(1, 2.0) == 2 and e.order(3.0) == [2]
    e.fail(2, 3.0)
    assert e.order(4.0) == [0, 1, 2]          # all in penalty: the soonest back first
    assert e.order(11.5) == [0]               # edge 0 is back after its penalty
    assert e.order(12.5) == [0, 1]


def test_unsupported_inputs():
    with pytest.raises(UnsupportedManifest):
        HttpPlayer("file:///tmp/manifest.mpd")
    assert issubclass(UnsupportedManifest, ManifestError)


def test_playback_plan_from_a_manifest():
    from player.dash.loading import parse_manifest
    from player.dash.playback import build, select

    c = movie(n=5, seg=4.0)
    pres = parse_manifest(SyntheticPresentation(c, "list", audio=True).mpd(), "http://h/m/manifest.mpd")
    sel = select(pres)
    plan = build(sel, {}, extra_origins=["http://other:8080"])
    np.testing.assert_allclose(plan.segment_plan.durations_s, c.segment_durations_s)
    np.testing.assert_allclose(plan.bitrates_bps, c.bitrates_bps)
    np.testing.assert_allclose(plan.segment_plan.sizes_bytes, np.tile(c.bitrates_bps * 4.0 / 8, (5, 1)))
    assert [len(a) for a in plan.audio_for] == [1] * 5                    # one audio segment per video one
    assert plan.video[0].segment(0, 1)[0] == "http://other:8080/m/v0/1.m4s"
    assert plan.video[0].init(1).url == "http://other:8080/m/v0/init.mp4"


def test_cmcd_keys_and_syntax():
    from urllib.parse import parse_qs, urlsplit

    from netem.accesslog import cmcd_from_request, parse_cmcd
    from player.http import cmcd

    d = cmcd.CmcdData(ot="v", sid="s-1", cid='c"1', br_bps=2_850_000, d_s=2.0, tb_bps=4.3e6, bl_s=8.24,
                      mtp_bps=12_345_678, nor="../v3/5.m4s", su=True, bs=False)
    keys = d.keys()
    assert keys == {"ot": "v", "sid": "s-1", "cid": 'c"1', "sf": "d", "st": "v", "br": 2850, "d": 2000, "tb": 4300,
                    "bl": 8200, "mtp": 12300, "nor": "../v3/5.m4s", "su": True}
    text = cmcd.serialize(keys)
    assert text == ('bl=8200,br=2850,cid="c\\"1",d=2000,mtp=12300,nor="../v3/5.m4s",ot=v,sf=d,sid="s-1",st=v,'
                    'su,tb=4300')
    assert parse_cmcd(text) == keys
    url = cmcd.query_url("http://h/v/1.m4s?x=1", keys)
    q = parse_qs(urlsplit(url).query)
    assert q["x"] == ["1"] and parse_cmcd(q["CMCD"][0]) == keys
    hdrs = cmcd.headers(keys)
    assert set(hdrs) == {"CMCD-Object", "CMCD-Request", "CMCD-Session"}     # no bs: no CMCD-Status
    assert hdrs["CMCD-Object"] == "br=2850,d=2000,ot=v,tb=4300"
    assert cmcd_from_request(None, hdrs) == keys
    starved = cmcd.CmcdData(ot="a", sid="s", bs=True, mtp_bps=float("nan")).keys()
    assert starved["bs"] is True and "mtp" not in starved and "su" not in starved
    assert cmcd.headers(starved)["CMCD-Status"] == "bs"
    assert cmcd.relative("http://h/a/v0/1.m4s", "http://h/a/v0/2.m4s") == "2.m4s"
    assert cmcd.relative("http://h/a/v0/1.m4s", "http://h/a/v1/2.m4s") == "../v1/2.m4s"
    assert cmcd.relative("http://h/a/1.m4s", "http://o/a/2.m4s") == "http://o/a/2.m4s"
    with pytest.raises(ValueError):
        cmcd.CmcdData(ot="zz", sid="s").keys()
