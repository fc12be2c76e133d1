"""dash.js plays our live origin (`player.cli.interop.live`, `abrlab interop dashjs --live`).

The pure pieces (which rung each live segment played at, latency statistics over the samples
taken while playing, stall attribution, the live agreement figures, the option checks) are
tested on hand-made inputs with hand-computed answers. The session test is marked `browser`:
it needs `make interop` and is skipped with the reason otherwise; it plays a short
low-latency live session (25 s) on a constant link.
"""
from __future__ import annotations

import json
import math

import pytest

from netem.errors import InputError, UsageError
from player.cli.interop import live_commands as interop_live
from player.cli.interop import dashjs as dj
from player.cli.interop import live


def _load(number, rung, t0, end, *, abandoned=False, error=None, nbytes=1000):
    return {"number": number, "rung": rung, "t0": t0, "end": end, "abandoned": abandoned, "error": error,
            "bytes": nbytes}


# -- which rung each segment played at ---------------------------------------------------------------------
def test_live_chosen_keeps_the_version_that_arrived_and_leaves_skipped_numbers_out():
    loads = [_load(100, 2, 0.0, 0.2, nbytes=500),
             _load(101, 2, 0.2, 0.9, abandoned=True, nbytes=300),   # abandoned, then fetched lower
             _load(101, 0, 0.9, 1.1, nbytes=200),
             _load(103, 1, 1.1, 1.5, nbytes=400),                   # 102 skipped by a seek
             _load(103, 2, 1.5, None),                              # a later request that never finished
             _load(104, 1, 1.6, None)]                              # cut by the session's end
    numbers, rungs, sizes, arrivals = live.live_chosen(loads)
    assert numbers == [100, 101, 103, 104]
    assert rungs == [2, 0, 1, 1]
    assert sizes == [500, 200, 400, 0]
    assert arrivals[:3] == [0.2, 1.1, 1.5] and math.isnan(arrivals[3])


def test_live_chosen_of_nothing():
    assert live.live_chosen([]) == ([], [], [], [])


# -- latency over the samples taken while playing ----------------------------------------------------------
def _samples(rows):
    return [(t, {"live_latency_s": lat, "playback_rate": rate, "low_latency_mode": mode, "target_latency_s": 3.0})
            for t, lat, rate, mode in rows]


def test_playing_samples_leave_out_startup_stalls_and_after_the_end():
    s = _samples([(0.5, 9.0, 1.0, True), (1.0, 3.0, 1.0, True), (3.0, 3.0, 1.0, True), (5.0, 9.0, 1.0, True),
                  (6.9, 9.0, 1.0, True), (7.0, 3.0, 1.0, True), (10.0, 3.0, 1.0, True), (10.5, 9.0, 1.0, True)])
    kept = live.playing_samples(s, startup_s=1.0, stalls=[(5.0, 7.0)], end_s=10.0)
    assert [t for t, _ in kept] == [1.0, 3.0, 7.0, 10.0]
    assert live.playing_samples(s, startup_s=math.nan, stalls=[], end_s=10.0) == []


def test_latency_stats_by_hand():
    s = _samples([(1, 3.0, 1.04, True), (2, 3.2, 1.0, True), (3, 2.8, 0.96, True), (4, 3.4, 1.0, True)])
    st = live.latency_stats(s)
    assert st["latency_mean_s"] == pytest.approx(3.1)
    # sorted 2.8 3.0 3.2 3.4; rank 0.95 × 3 = 2.85: 3.2 + 0.85 × 0.2
    assert st["latency_p95_s"] == pytest.approx(3.37)
    assert st["latency_max_s"] == pytest.approx(3.4) and st["latency_end_s"] == pytest.approx(3.4)
    assert st["playback_rate_mean"] == pytest.approx(1.0)
    assert st["target_latency_s"] == 3.0 and st["latency_samples"] == 4
    assert st["low_latency_mode"] is True


def test_low_latency_mode_is_true_only_if_every_sample_says_so():
    assert live.latency_stats(_samples([(1, 3.0, 1.0, True), (2, 3.0, 1.0, False)]))["low_latency_mode"] is False
    assert live.latency_stats(_samples([(1, 3.0, 1.0, None)]))["low_latency_mode"] is None
    empty = live.latency_stats([])
    assert math.isnan(empty["latency_mean_s"]) and empty["latency_samples"] == 0


def test_stalls_count_with_the_segment_they_waited_for():
    rebuf = live.stall_segments([(2.5, 3.5), (6.0, 7.5)], [1.0, 2.0, 3.0, math.nan, 5.0])
    # the first stall waited for the segment that arrived at 3.0; nothing arrived after the second: the last
    assert rebuf.tolist() == [0.0, 0.0, 1.0, 0.0, 1.5]
    assert live.stall_segments([(1.0, 2.0)], []).size == 0


# -- the live agreement figures -----------------------------------------------------------------------------
def _summary(chosen, latency, stall, ok=True):
    return {"chosen": chosen, "latency_mean_s": latency, "rebuffer_s": stall, "avg_bitrate_bps": 1e6, "ok": ok}


def test_compare_live_by_hand():
    real = _summary([2, 2, 1, 1, 2, 2, 2, 2, 2, 2, 0], 3.3, 0.5)
    sim = _summary([2, 2, 2, 1, 2, 2, 2, 2, 2, 2], 3.0, 0.0)
    c = interop_live.compare_live(real, sim)
    assert c["segments_compared"] == 10 and c["same_rung"] == pytest.approx(0.9)
    assert c["latency_diff_s"] == pytest.approx(0.3) and c["stall_diff_s"] == pytest.approx(0.5)
    assert c["ok"] is True
    assert interop_live.compare_live(_summary([2] * 10, 3.6, 0.0), sim)["ok"] is False     # latency 0.6 off
    assert interop_live.compare_live(_summary([2] * 10, 3.0, 1.2), sim)["ok"] is False     # stalls 1.2 s off
    assert interop_live.compare_live(_summary([0] * 10, 3.0, 0.0), sim)["ok"] is False     # 10 % same rung
    assert interop_live.compare_live(_summary([2] * 10, 3.0, 0.0, ok=False), sim)["ok"] is False
    assert interop_live.compare_live(_summary([], 3.0, 0.0), sim)["ok"] is False


# -- the options ---------------------------------------------------------------------------------------------
def _cli(capsys, *argv):
    from player.cli.main import main

    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--low-latency"], "--low-latency needs --live"),
    (["--duration", "30"], "--duration needs --live"),
    (["--live"], "--live needs --duration"),
    (["--live", "--duration", "30", "--target-latency", "3"], "need --low-latency"),
    (["--live", "--duration", "30", "--time-scale", "2"], "VoD sessions only"),
    (["--live", "--duration", "30", "--fast-switch", "off"], "--fast-switch apply to VoD sessions only"),
    (["--live", "--duration", "-1"], "--duration"),
])
def test_live_options_fail_in_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("ABRLAB_INTEROP_DIR", str(tmp_path / "nothing-here"))   # checks come before the browser
    code, err = _cli(capsys, "interop", "dashjs", "--trace", "t.json", "--movie", "m.json", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_live_run_settings_for_the_origin_and_the_preset():
    run = live.LiveRun(60.0, True, 3.0, 0.1).check()
    cfg = run.config()
    assert cfg.low_latency and cfg.chunk_s == 0.1 and cfg.target_latency_s == 3.0
    p = interop_live.live_preset(run)
    assert p.name == "dashjs-live" and p.live.duration_s == 60.0 and p.live.chunk_s == 0.1
    assert p.live.target_latency_s == 3.0
    whole = live.LiveRun(60.0).check()
    assert whole.config().chunk_s is None and whole.preset_overrides()["target_latency_s"] is None
    with pytest.raises(UsageError):
        live.LiveRun(60.0, False, 3.0).check()
    with pytest.raises(InputError):
        live.LiveRun(math.inf, True).check()


def test_the_page_is_served_beside_the_live_mpd():
    class Origin:
        mpd_path = "manifest.mpd"

        def lookup(self, url_path, raw_path, base_url):
            return ("origin", url_path, base_url)

    src = live._WithPage(Origin(), b"<html></html>")
    page = src.lookup("/" + dj.PAGE_NAME, "/" + dj.PAGE_NAME, "http://h")
    assert page.size == 13 and page.read(0, 6) == b"<html>"
    assert src.lookup("/manifest.mpd", "/manifest.mpd", "http://h") == ("origin", "/manifest.mpd", "http://h")
    assert src.mpd_path == "manifest.mpd"


# -- one real live session -------------------------------------------------------------------------------------
_WHY = dj.availability()


@pytest.mark.browser
@pytest.mark.timeout(300)
@pytest.mark.skipif(_WHY is not None, reason=f"dash.js interop not set up: {_WHY}")
def test_dashjs_plays_the_low_latency_origin(tmp_path):
    """25 s of low-latency live at 5 Mbit/s with a 3 s target: dash.js is in low-latency mode,
    keeps its latency within 0.5 s of the target, and every segment it played is one of ours."""
    from netem.content import save, synthetic

    c = synthetic([200e3, 600e3, 1000e3], duration_s=10.0, segment_duration_s=0.5, seed=3, name="tiny-ll")
    movie = tmp_path / "tiny-ll.json"
    save(c, movie)
    trace = tmp_path / "flat.json"
    trace.write_text(json.dumps([{"duration_ms": 60000, "bandwidth_kbps": 5000, "latency_ms": 20}]))
    out = live.run(str(trace), str(movie), live.LiveRun(25.0, True, 3.0, 0.1), cache_dir=str(tmp_path / "cache"),
                   max_height=144, startup_timeout_s=30.0, stuck_timeout_s=20.0)
    s = out.summary
    assert s["ok"], s["problems"]
    assert s["low_latency_mode"] is True
    assert abs(s["latency_mean_s"] - 3.0) <= 0.5, s["latency_mean_s"]
    assert s["latency_samples"] >= 20
    assert s["target_latency_s"] == pytest.approx(3.0, abs=0.01)
    assert s["live"]["low_latency"] and s["live"]["chunk_s"] == 0.1
    assert len(s["chosen"]) >= 40 and all(0 <= r < 3 for r in s["chosen"])   # 25 s of 0.5 s segments
    assert math.isfinite(s["startup_s"]) and s["startup_s"] < 5
    kinds = {e["event"] for e in out.events}
    assert {"request", "decision", "download", "startup", "sample"} <= kinds
    assert [e["t_s"] for e in out.events] == sorted(e["t_s"] for e in out.events)
    # the summary is made again from what was recorded, by the same rules
    again = live.reassemble_live(out.raw, s)
    assert again.summary["chosen"] == s["chosen"]
    assert again.summary["latency_mean_s"] == pytest.approx(s["latency_mean_s"])


def test_the_prediction_joins_where_dashjs_joined():
    run = live.LiveRun(60.0, True, 3.0, 0.1)
    assert interop_live.live_preset(run).live.join_segment == 0
    assert interop_live.live_preset(run, first_number=3592908394).live.join_segment == 3592908393


def test_whole_segment_live_is_predicted_without_chunks_or_catch_up():
    p = interop_live.live_preset(live.LiveRun(60.0))
    assert p.live.chunk_s is None and p.live.target_latency_s is None and p.live.catchup == "none"
    assert p.live.duration_s == 60.0


def test_the_low_latency_prediction_simulates_the_encoded_contents_own_chunks(tmp_path):
    import numpy as np
    from netem import content as content_mod
    from netem.content import Content, rungs_from_bitrates
    from netem.live.config import LiveConfig
    from netem.live.presentation import LivePresentation
    from netem.package import SyntheticPresentation

    sizes = np.array([[60_000 + 1000 * k, 150_000 + 1000 * k] for k in range(4)])
    desc = Content(rungs_from_bitrates([300e3, 750e3]), np.full(4, 2.0), sizes, name="small")
    pres = SyntheticPresentation(desc)
    pres.write(tmp_path / "enc")
    movie = tmp_path / "enc" / "content.json"
    content_mod.save(desc, movie)
    run = live.LiveRun(60.0, True, 3.0, 0.5)
    got = live.chunked_movie(str(movie), str(tmp_path / "enc"), run)
    assert got == str(tmp_path / "enc" / "content-chunks-0.5s.json")
    layout = content_mod.load(got).chunk_layout(0.5)
    origin = LivePresentation(pres, LiveConfig(chunk_s=0.5, target_latency_s=3.0))
    seg = origin.segment(origin.track("v1").index, 6)          # live segment 6: the loop's segment 2
    assert layout[2, 1].tolist() == np.diff([0] + list(seg.chunk_ends)).tolist()
    # whole segments, or no encoded media beside the description: the description itself
    assert live.chunked_movie(str(movie), str(tmp_path / "enc"), live.LiveRun(60.0)) == str(movie)
    assert live.chunked_movie(str(movie), str(tmp_path / "elsewhere"), run) == str(movie)
