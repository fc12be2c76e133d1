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
