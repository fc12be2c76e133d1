"""The HTTP player plays our live origin (netem.live.origin.LiveEdge) headless, over loopback.

Servers bind 127.0.0.1 port 0; the origin and the player both run `K` times faster than
real time (the origin's `SystemClock(time_scale=K)`, the player's `--time-scale K`), every
session is bounded (`run_bounded`) and ends by its duration. Checked: a low-latency session
settles at its target latency without stalling on a constant link, chunk by chunk; a
whole-segment session stays at its delay; the clock is synchronised with an origin whose
clock is off by 30 s through each UTCTiming scheme the origin offers; a clock that drifts
mid-session is caught by 425 (wait, synchronise again) and 410 (synchronise, seek to the
live edge). "No stall" (beyond the join's own, in the whole-segment case) allows a quarter
of a second in all: the sessions run on the wall clock of a shared machine. Unit cases: the
chunk parser on a real low-latency segment, the Date-header fallback of the clock
synchronisation.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from helpers import run_bounded

from netem.content import synthetic
from netem.live.clock import SystemClock
from netem.live.config import LiveConfig
from netem.live.origin import LiveEdge
from netem.live.presentation import LivePresentation
from netem.package import SyntheticPresentation
from netem.trace import constant
from player.http.chunks import ChunkTimer, track_info
from player.http.clocksync import http_date_s, synchronise
from player.http.fetcher import Body
from player.http.player import HttpPlayer

K = 4.0


def content():
    return synthetic((300e3, 750e3, 1.2e6), duration_s=20, segment_duration_s=2, seed=3)


async def play_live(config: LiveConfig, *, duration: float = 30.0, preset: str = "live-ll", abr: str = "dashjs",
                    clock=None, during=None, **player_kw):
    """One live session against one in-process origin: (summary, player, true clock offset)."""
    clock = clock or SystemClock(0.0, K)
    async with LiveEdge(SyntheticPresentation(content()), config=config, clock=clock, time_scale=K,
                        trace=constant(8e6, 3600.0, latency_s=0.02)) as edge:
        player = HttpPlayer(edge.url, abr=abr, preset=preset, time_scale=K, duration_s=duration, **player_kw)
        task = asyncio.ensure_future(player.run())
        if during is not None:
            await during(player, edge)
        summary = await task
        true_offset = edge.clock.now() - player.wall(player.clock.now())
        return summary, player, true_offset


def kinds(player) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in player.events_log:
        out[e.kind] = out.get(e.kind, 0) + 1
    return out


def test_low_latency_live_settles_at_its_target_chunk_by_chunk():
    s, player, _ = run_bounded(play_live(LiveConfig(chunk_s=0.5)), 60)
    assert s["complete"] and s["session_s"] == pytest.approx(30.0, abs=0.3)
    assert s["target_latency_s"] == 3.5
    assert abs(s["latency_end_s"] - 3.5) < 0.4, s
    assert s["rebuffer_s"] < 0.25 and s["seeks"] == 0
    k = kinds(player)
    assert k["clock_sync"] == 1 and k["live_join"] == 1 and k["rate"] >= 1
    assert k["chunk"] >= 3.5 * k["download"]         # four 0.5 s chunks per 2 s segment, each reported
    join = next(e for e in player.events_log if e.kind == "live_join")
    assert join.delay_source == "ServiceDescription" and join.low_latency
    assert s["live"]["refreshes"] >= 5                   # the MPD every minimumUpdatePeriod (2 s)


def test_whole_segment_live_stays_at_its_delay():
    s, player, _ = run_bounded(play_live(LiveConfig(), preset="live", duration=24.0), 60)
    assert s["target_latency_s"] == 8.0                  # 4 segment durations: no description
    assert s["latency_end_s"] == pytest.approx(8.0 + s["startup_s"] + s["rebuffer_s"], abs=0.3)
    assert s["playback_rate_mean"] == 1.0
    # The join point falls anywhere in its segment (edge - 8 s on the wall clock), so the first
    # segment buffers between 0 and 2 s and playback starts at once: the second download may
    # outlast it. That one stall is the join's, no longer than the second download's wait
    # beyond the buffer the join left; after it the session never stalls again.
    downloads = [e for e in player.events_log if e.kind == "download"]
    stalls = [e for e in player.events_log if e.kind == "stall_end"]
    join_left_s = downloads[0].buffer_s
    second_wait_s = downloads[1].latency_s + downloads[1].transfer_s
    assert all(e.segment == 1 for e in stalls), stalls
    assert s["rebuffer_s"] <= max(0.0, second_wait_s - join_left_s) + 0.25, (s["rebuffer_s"], join_left_s, second_wait_s)


@pytest.mark.parametrize("method", ["http-iso", "http-xsdate", "http-head", "direct"])
def test_clock_sync_against_an_origin_30_s_ahead(method):
    config = LiveConfig(chunk_s=0.5, utc_timing=(method,))
    s, player, true_offset = run_bounded(play_live(config, duration=12.0, clock=SystemClock(30.0, K)), 60)
    sync = next(e for e in player.events_log if e.kind == "clock_sync")
    assert sync.method == method
    # http-head reads a Date header: whole seconds, so within half a second
    assert abs(sync.offset_s - true_offset) < (0.6 if method == "http-head" else 0.1), (sync, true_offset)
    assert s["segments"] >= 4 and s["latency_end_s"] < 5.0, s


def test_a_clock_that_drifts_back_is_caught_by_425_then_a_new_sync():
    async def drift(player, edge):
        while player.core is None or len(player.core.chosen) < 3:
            await asyncio.sleep(0.02)
        edge.clock.offset_s -= 6.0                       # the origin's clock goes back 6 s

    s, player, _ = run_bounded(play_live(LiveConfig(chunk_s=0.5), duration=30.0, during=drift), 60)
    failures = [e for e in player.events_log if e.kind == "failure"]
    syncs = [e for e in player.events_log if e.kind == "clock_sync"]
    assert any("425" in f.reason for f in failures)
    assert len(syncs) >= 2 and any("re-synchronised" in n for n in syncs[-1].notes)
    assert syncs[-1].offset_s == pytest.approx(syncs[0].offset_s - 6.0, abs=0.2)
    assert s["complete"] and s["segments"] >= 8          # it went on playing


def test_a_clock_that_jumps_ahead_past_the_window_is_caught_by_410_and_a_seek():
    async def jump(player, edge):
        while player.core is None or len(player.core.chosen) < 3:
            await asyncio.sleep(0.02)
        edge.clock.offset_s += 100.0                     # beyond the 60 s time-shift buffer

    s, player, _ = run_bounded(play_live(LiveConfig(chunk_s=0.5), duration=30.0, during=jump), 60)
    assert any(e.kind == "failure" and "410" in e.reason for e in player.events_log)
    seeks = [e for e in player.events_log if e.kind == "seek"]
    assert seeks and seeks[0].reason == "gone" and seeks[0].skipped_s > 90
    assert s["complete"] and s["latency_end_s"] < 6.0, s


def test_the_chunk_parser_finds_the_cmaf_chunks_of_a_low_latency_segment():
    live = LivePresentation(SyntheticPresentation(content()), LiveConfig(chunk_s=0.5))
    lt = live.tracks[1]
    seg = live.segment(lt.index, 7)
    body = seg.read(0, seg.size)
    info = track_info(lt.track.init())
    got = []
    timer = ChunkTimer(got.append, lambda: info)
    data = bytearray()
    for i in range(0, len(body), 997):                  # arriving in odd pieces
        data += body[i:i + 997]
        timer.feed(data, i / 1000)
    assert [c.index for c in got] == [0, 1, 2, 3]
    assert sum(c.bytes for c in got) == seg.size and [c.bytes for c in got][-1] > 0
    assert np.cumsum([c.bytes for c in got]).tolist() == seg.chunk_ends
    assert sum(c.media_s for c in got) == pytest.approx(2.0) and got[0].media_s == pytest.approx(0.5)
    assert all(c.last_byte_s >= c.first_byte_s for c in got)


def test_clock_sync_falls_back_to_the_manifest_date_header():
    manifest = Body(b"", "http://o/m.mpd", t_sent=10.0, latency_s=0.2, t_done=10.3, edge=0, attempts=1,
                    date="Fri, 04 Dec 2026 18:00:00 GMT")
    sync = run_bounded(synchronise(None, (), lambda t: 1_000.0 + t, manifest))
    # the Date names a whole second: its middle, against the middle of the request (10.1 s)
    assert sync.method == "date-header"
    assert sync.offset_s == pytest.approx(http_date_s(manifest.date) - 1_010.1)
    assert http_date_s("Fri, 04 Dec 2026 18:00:00 GMT") == pytest.approx(1_796_407_200.5)
    none = run_bounded(synchronise(None, (), lambda t: t, Body(b"", "u", 0.0, 0.0, 0.0, 0, 1)))
    assert none.method == "none" and none.offset_s == 0.0


def test_periods_of_a_refreshed_mpd_join_the_session():
    """A new Period every 10 s: the MPD refreshes bring them, the segment numbers go on."""
    s, player, _ = run_bounded(play_live(LiveConfig(period_s=10.0), preset="live", duration=26.0), 60)
    notes = [e.message for e in player.events_log if e.kind == "note"]
    assert any("joins the session" in n for n in notes), notes
    # a boundary crossed late would stall a whole segment (2 s); the rest is the machine's timing
    # in real time (0.30 s seen once under a concurrent sweep on the 2-core machine)
    assert s["complete"] and s["rebuffer_s"] < 0.6 and s["missing"] == 0
    assert not any(e.kind == "failure" for e in player.events_log)
    assert s["segments"] >= 11


def test_without_a_duration_a_live_session_runs_until_stopped_and_keeps_its_summary():
    """No --duration: the session is open (a day at most); stopping it (the dashboard's q
    cancels the run) ends it there, with the summary of what was played."""
    async def main():
        async with LiveEdge(SyntheticPresentation(content()), config=LiveConfig(chunk_s=0.5),
                            clock=SystemClock(0.0, K), time_scale=K, trace=constant(8e6, 3600.0)) as edge:
            player = HttpPlayer(edge.url, abr="lolp", preset="live-ll", time_scale=K)
            task = asyncio.ensure_future(player.run())
            while player.core is None or len(player.core.chosen) < 4:
                await asyncio.sleep(0.02)
            assert player.core.live.end_s == 24 * 3600.0
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return player

    player = run_bounded(main(), 60)
    s = player.summary
    assert s["complete"] and "error" not in s and s["segments"] >= 4
    assert any(e.kind == "summary" for e in player.events_log) or s["session_s"] > 0


def test_play_live_on_the_command_line_ends_with_latency_and_no_prediction():
    """`abrlab play --live --low-latency` end to end (in-process origin, headless JSON): exit 0,
    a summary with the session's latency and target, and a prediction marked unavailable with
    its reason (a live session is not predicted), not a traceback."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "player.cli", "play", "--live", "--low-latency", "--chunk-duration",
                          "0.1", "--target-latency", "1", "--movie", "traces/content/twitch-3rung-0.5s.json",
                          "--trace", "traces/live/twitch-spike.json", "--abr", "lolp", "--preset", "live-ll",
                          "--duration", "8", "--time-scale", "4", "--headless", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=repo)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["complete"] and summary["target_latency_s"] == 1.0 and summary["latency_mean_s"] > 0
    assert summary["prediction"]["available"] is False and "live" in summary["prediction"]["reason"]
