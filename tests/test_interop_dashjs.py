"""dash.js in headless Chromium through the shaped edge (`player.cli.interop.dashjs`).

The session test is marked `browser`: it needs `make interop` (Debian chromium, the dashjs npm
package 5.x and the Python playwright driver in .interop/) and is skipped with the reason
otherwise. The other tests check the harness's pieces without a browser.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from player.cli.interop import dashjs as interop

SIMULATE_FIELDS = {"abr", "abr_params", "trace", "movie", "device", "preset", "segments", "avg_bitrate_bps",
                   "time_avg_bitrate_bps", "utility", "rebuffer_s", "rebuffer_count", "rebuffer_ratio",
                   "startup_s", "switches", "switch_magnitude_bps", "bytes", "session_s", "qoe", "qoe_all",
                   "chosen"}


def _movie(tmp_path: Path, duration_s: float = 8.0) -> Path:
    from netem.content import save, synthetic

    c = synthetic([300e3, 750e3, 1500e3], duration_s=duration_s, segment_duration_s=2.0, seed=2, name="tiny")
    p = tmp_path / "tiny.json"
    save(c, p)
    return p


def _trace(tmp_path: Path, kbps: float = 2000.0, latency_ms: float = 40.0) -> Path:
    p = tmp_path / "flat.json"
    p.write_text(json.dumps([{"duration_ms": 60000, "bandwidth_kbps": kbps, "latency_ms": latency_ms}]))
    return p


# -- no browser -----------------------------------------------------------------------------------
def test_availability_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("ABRLAB_INTEROP_DIR", str(tmp_path / "nothing-here"))
    reason = interop.availability()
    assert reason is not None and "make interop" in reason


def test_content_key_follows_movie_duration_and_height(tmp_path):
    m = _movie(tmp_path)
    k = interop.content_key(m, 8.0, 144, "veryfast")
    assert k == interop.content_key(m, 8.0, 144, "veryfast")
    assert k != interop.content_key(m, 6.0, 144, "veryfast")
    assert k != interop.content_key(m, 8.0, 360, "veryfast")


def test_check_urls_finds_a_missing_segment(tmp_path):
    from netem.content import load
    from netem.package import SyntheticPresentation

    pres = SyntheticPresentation(load(_movie(tmp_path)), addressing="number")
    root = tmp_path / "site"
    pres.write(root)
    assert interop.check_urls(root) == []
    (root / "v1" / "2.m4s").unlink()
    missing = interop.check_urls(root)
    assert missing == ["v1/2.m4s"]


def test_rule_names_from_reasons():
    assert interop._rule_of({"message": "[ThroughputRule]: Switching to ..."}) == "ThroughputRule"
    assert interop._rule_of({"message": "[InsufficientBufferRule]: Limiting ..."}) == "InsufficientBufferRule"
    assert interop._rule_of({"message": "[AbandonRequestRule][video] is asking ..."}) == "AbandonRequestsRule"
    assert interop._rule_of({"state": "BOLA_STATE_STEADY", "bufferLevel": 14.0}) == "BolaRule"
    assert interop._rule_of(None) == "unknown"


# -- one real session -------------------------------------------------------------------------------
_WHY = interop.availability()


@pytest.mark.browser
@pytest.mark.timeout(240)
@pytest.mark.skipif(_WHY is not None, reason=f"dash.js interop not set up: {_WHY}")
def test_dashjs_session_end_to_end(tmp_path):
    """One short session (8 s of content, 2 Mbit/s): the watchdog's conditions hold, the events
    follow `abrlab play --json`'s schema and the summary has `abrlab simulate --json`'s fields."""
    movie, trace = _movie(tmp_path), _trace(tmp_path)
    out = interop.run(str(trace), str(movie), cache_dir=str(tmp_path / "cache"), max_height=144,
                      timeout_s=60.0, startup_timeout_s=30.0, stuck_timeout_s=20.0)
    s = out.summary
    w = s["watchdog"]
    assert w["quality_change_rendered"], s["problems"]
    assert w["video_width"] > 0, s["problems"]
    assert w["frames_rose"] and w["frames_decoded"] > 0, s["problems"]
    assert s["ok"], s["problems"]
    assert SIMULATE_FIELDS <= set(s)
    assert s["segments"] == 4 and len(s["chosen"]) == 4
    assert all(0 <= r < 3 for r in s["chosen"])
    first = next(e for e in out.events if e["event"] == "decision")
    assert first["segment"] == 0 and first["rung"] == 1   # the rung at or below 1000 kbit/s: 750
    assert math.isfinite(s["startup_s"]) and 0 < s["startup_s"] < 5
    assert s["session_s"] >= 8.0 - 0.5
    assert s["player"].startswith("dash.js 5.")

    kinds = [e["event"] for e in out.events]
    for need in ("request", "decision", "download", "startup", "end", "sample", "dashjs"):
        assert need in kinds, need
    assert all(isinstance(e["t_s"], float) or isinstance(e["t_s"], int) for e in out.events)
    assert [e["t_s"] for e in out.events] == sorted(e["t_s"] for e in out.events)
    fields = {
        "decision": ("segment", "rung", "observation", "rule"),
        "download": ("segment", "rung", "bytes", "latency_s", "transfer_s", "throughput_bps", "buffer_s", "stall_s"),
        "stall_start": ("buffer_s",), "stall_end": ("segment",), "startup": ("startup_s",), "end": ("played_s",),
        "abandon": ("segment", "from_rung", "to_rung", "wasted_bytes"),
    }
    for e in out.events:
        for f in fields.get(e["event"], ()):
            assert f in e, (e["event"], f)
    downloads = [e for e in out.events if e["event"] == "download"]
    assert {e["segment"] for e in downloads} == {0, 1, 2, 3}   # (fast switching may fetch one twice)
    # dash.js's own record of the rungs: every rendered video quality is one the edge served
    rendered = {e["new"]["index"] for e in out.events if e["event"] == "dashjs"
                and e["name"] == "QUALITY_CHANGE_RENDERED" and e.get("media") == "video"}
    assert rendered and rendered <= {e["rung"] for e in downloads}
    # the link was shaped: 2 Mbit/s, so no segment can have arrived faster than that
    for e in downloads:
        if e["transfer_s"] and not e["cached"]:
            assert e["throughput_bps"] < 2.6e6
    # the simulator's prediction runs on the same encoded content
    from player.cli.commands.interop import simulate_prediction
    sim, _ = simulate_prediction(str(trace), s["movie"])
    assert set(sim) >= SIMULATE_FIELDS and sim["segments"] == 4
    assert np.array(sim["chosen"]).size == 4


# -- fast switching on dash.js's side and the prediction's (no browser) ---------------------------------
def _load(kind: str, wall_s: float, index: int, rung: int, nbytes: int, playhead_s: float) -> dict:
    return {"wall_ms": wall_s * 1000.0, "kind": kind, "media": "video", "type": "MediaSegment",
            "url": f"http://127.0.0.1/v{rung}/{index + 1}.m4s", "index": index,
            "representation": {"id": f"v{rung}", "index": rung}, "bytes_total": nbytes, "bytes_loaded": nbytes,
            "time_s": playhead_s}


def test_a_segment_loaded_again_counts_at_the_rung_that_played(tmp_path):
    """Recorded loads: segments 0 and 1 at rung 1, then both again at rung 2 (fast switching),
    arriving with the playhead at 0.9 s (segment 0, 0-2 s, already playing: too late) and at
    1.3 s (before segment 1 starts at 2 s: it plays at rung 2)."""
    movie = _movie(tmp_path, duration_s=4.0)
    t0 = 1000.0
    events = []
    for start, end, k, rung, nbytes, playhead in ((0.0, 0.5, 0, 1, 100, 0.0), (0.6, 1.0, 1, 1, 110, 0.4),
                                                  (1.0, 1.5, 0, 2, 300, 0.9), (1.5, 1.9, 1, 2, 320, 1.3)):
        events.append(_load("FRAGMENT_LOADING_STARTED", t0 + start, k, rung, nbytes, playhead))
        events.append(_load("FRAGMENT_LOADING_COMPLETED", t0 + end, k, rung, nbytes, playhead))
    events += [{"wall_ms": (t0 + 0.5) * 1000.0, "kind": "video:playing", "time_s": 0.0},
               {"wall_ms": (t0 + 4.6) * 1000.0, "kind": "video:ended", "time_s": 4.0}]
    raw = {"events": events, "samples": [], "resource_timing": [], "edge_records": [], "t0_wall": t0,
           "started_wall": t0 - 1.0, "stop_reason": "ended"}
    out = interop.reassemble(raw, {"movie": str(movie), "trace": "flat.json", "content_dir": str(tmp_path)})
    s = out.summary
    assert s["chosen"] == [1, 2] and s["refetches"] == 2
    assert s["bytes"] == 100 + 320 and s["wasted_bytes"] == 110 + 300
    assert [e["refetch"] for e in out.events if e["event"] == "download"] == [False, False, True, True]


def test_whether_a_refetched_version_plays_from_the_playhead_or_the_samples():
    assert interop.version_plays(1.9, [], 5.0, 2.0) and not interop.version_plays(2.1, [], 5.0, 2.0)
    # no playhead recorded: interpolated between the page's samples (session time, media time)
    samples = [(10.0, 4.0), (10.5, 4.5)]
    assert interop.version_plays(None, samples, 10.2, 4.3)          # media time 4.2 then
    assert not interop.version_plays(None, samples, 10.4, 4.3)      # 4.4
    assert not interop.version_plays(None, [], 10.4, 4.3)           # nothing known: not counted


def test_the_prediction_follows_the_sessions_fast_switch_setting():
    from player.cli.commands.interop import prediction_preset

    assert prediction_preset().name == "dashjs" and prediction_preset().fast_switch
    assert prediction_preset("on").name == "dashjs"
    assert prediction_preset("off").name == "dashjs-no-fast-switch"
    assert prediction_preset("off", "free").init_bytes == 0 and prediction_preset().init_bytes == 710
    assert prediction_preset("off", name="dashjs").name == "dashjs"


def test_the_prediction_lists_every_request_with_its_decision(tmp_path):
    from netem.content import save, synthetic
    from player.cli.commands.interop import simulate_prediction

    # 3 s segments on dash.js's kind of ladder and a link that rises: switches up, re-fetches
    c = synthetic([230e3, 477e3, 991e3, 2056e3], duration_s=36.0, segment_duration_s=3.0, seed=1)
    movie = tmp_path / "m.json"
    save(c, movie)
    trace = tmp_path / "rise.json"
    trace.write_text(json.dumps([{"duration_ms": 6000, "bandwidth_kbps": 700, "latency_ms": 40},
                                 {"duration_ms": 60000, "bandwidth_kbps": 4000, "latency_ms": 40}]))
    sim, requests = simulate_prediction(str(trace), str(movie))
    again = [r for r in requests if r["refetch"]]
    assert sim["refetches"] == len(again) > 0
    assert len(requests) == c.n_segments + len(again)
    assert [r["request_s"] for r in requests] == sorted(r["request_s"] for r in requests)
    assert all("rule" in r for r in requests)                  # one decision per request, in order
    # a re-fetch goes back to a segment already requested as new
    firsts = {}
    for i, r in enumerate(requests):
        firsts.setdefault(r["segment"], i)
    assert all(firsts[r["segment"]] < requests.index(r) for r in again)


def test_side_by_side_pairs_each_request_for_a_segment_in_turn():
    from player.cli.commands.interop import side_by_side

    def dec(t, k, r, rule):
        return {"t_s": t, "event": "decision", "segment": k, "rung": r, "rule": rule, "observation": {}}

    def dl(t, k, r, again):
        return {"t_s": t, "event": "download", "segment": k, "rung": r, "refetch": again}

    # dash.js: 0 at rung 1, 1 at rung 1, then 0 again at rung 3, abandoned for rung 2
    events = [dec(0.0, 0, 1, "initial"), dl(1.0, 0, 1, False), dec(1.0, 1, 1, "no change"), dl(2.0, 1, 1, False),
              dec(2.0, 0, 3, "ThroughputRule"), {"t_s": 2.5, "event": "abandon", "segment": 0, "from_rung": 3},
              dec(2.5, 0, 2, "AbandonRequestsRule"), dl(3.5, 0, 2, True)]

    def req(t, k, r, again):
        return {"segment": k, "rung": r, "request_s": t, "sent_s": t, "download_s": 1.0, "rebuffer_s": 0.0,
                "refetch": again}

    requests = [req(0.0, 0, 1, False), req(1.0, 1, 1, False), req(2.0, 0, 2, True)]
    lines = side_by_side(events, requests).splitlines()
    rows = [line for line in lines[1:] if line[:3].strip() in ("", "**", "R", "**R")][:4]
    # the re-fetch decision (rung 3) and the request after the abandonment (rung 2) both meet
    # the simulator's second request for segment 0 (rung 2): the first differs, the second agrees
    assert rows[2].startswith("**R") and rows[3].startswith("  R") and rows[3].rstrip().endswith("R")
    assert rows[0].startswith("   ") and "re-fetches: dash.js 1, sim 1" in lines[-1]
