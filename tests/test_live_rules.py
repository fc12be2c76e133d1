"""The live session rules (player.core.live) by hand: the live delay's precedence, the join,
availability, chunk production and delivery, latency, seeks, the end by duration, and the
simulator's live sessions on a constant link."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import abr
from netem import formats
from netem.content import synthetic
from netem.errors import InputError
from netem.link import Link
from netem.trace import Trace, constant
from player.core.buffer import BufferState
from player.core.catchup import ServiceBounds
from player.core.live import (LiveFacts, whole_body_arrivals, LiveRows, LiveSettings, chunk_arrivals, chunk_shares, live_delay,
                              simulated_rows)
from player.core.presets import PRESETS
from player.core.rules import SegmentPlan
from player.core.session import SessionCore, drive_with_link
from player.core.simulator import SessionSpec, simulate

D = 2.0


def facts(**kw) -> LiveFacts:
    return LiveFacts(D, **kw)


def test_live_delay_in_dashjs_order_of_precedence():
    sd = ServiceBounds(latency_target_s=3.5)
    assert live_delay(facts(service=sd, suggested_delay_s=6.0)) == (3.5, "ServiceDescription")
    assert live_delay(facts(suggested_delay_s=6.0)) == (6.0, "suggestedPresentationDelay")
    assert live_delay(facts()) == (8.0, "4 segments")
    assert live_delay(facts(service=sd), delay_s=5.0) == (5.0, "setting")
    assert live_delay(facts(service=sd), delay_segments=3) == (6.0, "setting (segments)")
    delay, source = live_delay(facts(time_shift_depth_s=6.0))
    assert delay == 6.0 and "capped" in source


def test_settings_write_what_our_origin_writes():
    f = LiveSettings(chunk_s=0.5).facts(D)
    assert f.availability_time_offset_s == 1.5 and f.chunks == 4
    assert f.service == ServiceBounds(3.5, 2.625, 7.0, 0.96, 1.04)
    assert LiveSettings().facts(D).service == ServiceBounds() and LiveSettings().facts(D).chunks == 1
    with pytest.raises(InputError, match="join_phase"):
        LiveSettings(join_phase=1.0)
    with pytest.raises(InputError, match="unknown catch-up law"):
        LiveSettings(catchup="nope")


def rows(settings: LiveSettings, edge0: float, k_vod: int = 5, n: int = 1) -> LiveRows:
    sizes = np.tile(np.array([[100_000.0, 200_000.0]]), (k_vod, 1))
    return LiveRows(settings.facts(D), settings, sizes, n, edge0)


def test_join_availability_and_chunk_production():
    # edge at 101 s, delay 8 s (4 segments): playhead starts at 93 s, in segment 46 [92, 94)
    lv = rows(LiveSettings(), 101.0)
    assert lv.p0[0] == 93.0 and lv.j0[0] == 46
    assert lv.available_at(0, [0])[0] == pytest.approx(94.0 - 101.0)     # complete at 94 s: 7 s ago
    assert lv.available_at(4, [0])[0] == pytest.approx(102.0 - 101.0)    # segment 50 ends at 102 s
    # low latency, 0.5 s chunks: available from its first chunk (end − 1.5 s); chunks at +0.5 s each
    ll = rows(LiveSettings(chunk_s=0.5, target_latency_s=2.0), 101.0)
    assert ll.j0[0] == 49                                                  # 99 s lies in [98, 100)
    assert ll.available_at(0, [0])[0] == pytest.approx(98.5 - 101.0)
    assert ll.releases(1, [0])[0] == pytest.approx(np.array([100.5, 101.0, 101.5, 102.0]) - 101.0)
    assert ll.chunk_bytes(np.array([400.0]))[0] == pytest.approx([100.0] * 4)


def test_first_segment_plays_only_from_the_start_position():
    lv = rows(LiveSettings(), 101.0)   # starts at 93 s in segment [92, 94): 1 s of it is playable
    assert lv.rest_of_segment(0, [0])[0] == pytest.approx(1.0)
    assert lv.rest_of_segment(1, [0])[0] == pytest.approx(2.0)


def test_chunks_leave_when_produced_and_cross_the_link():
    link = Link([constant(1e6, 100.0)])
    idx = np.zeros(1, dtype=np.int64)
    sizes = np.full((1, 4), 62_500.0)                       # 0.5 s each at 1 Mbit/s
    releases = np.array([[0.5, 1.0, 1.5, 2.0]])
    start, end = chunk_arrivals(link, idx, np.zeros(1), sizes, releases)
    # the reader sees each chunk with its first 1500-byte packet: 12 ms after it leaves at 1 Mbit/s
    assert start[0] == pytest.approx([0.512, 1.012, 1.512, 2.012]) and end[0] == pytest.approx([1.0, 1.5, 2.0, 2.5])
    small = np.array([[1000.0, 3000.0]])                    # 8 ms and 24 ms at 1 Mbit/s
    start, end = chunk_arrivals(link, idx, np.zeros(1), small, np.array([[0.5, 1.0]]))
    assert start[0] == pytest.approx([0.508, 1.012]) and end[0] == pytest.approx([0.508, 1.024])
    fast = Link([constant(4e6, 100.0)])                     # 0.125 s each: at the producer's pace
    start, end = chunk_arrivals(fast, idx, np.zeros(1), sizes, releases)
    assert end[0] == pytest.approx([0.625, 1.125, 1.625, 2.125])
    start, end = chunk_arrivals(fast, idx, np.zeros(1), sizes, releases - 10.0)   # produced long ago
    assert end[0] == pytest.approx([0.125, 0.25, 0.375, 0.5])


def test_a_busy_reader_sees_back_to_back_chunks_late_but_not_chunks_that_wait_for_the_producer():
    link = Link([constant(1e6, 100.0)])
    idx = np.zeros(1, dtype=np.int64)
    sizes = np.full((1, 3), 12_500.0)                       # 0.1 s each at 1 Mbit/s
    # produced long ago: back to back from t = 0, ends at 0.1, 0.2, 0.3 s; the reader is busy
    # 20 ms after each chunk's end, so it sees chunks 1 and 2 at 0.12 and 0.22 s (chunk 0 with
    # its first 1000-byte read, 8 ms in)
    start, end = chunk_arrivals(link, idx, np.zeros(1), sizes, np.full((1, 3), -10.0), 1000.0, 0.02)
    assert start[0] == pytest.approx([0.008, 0.12, 0.22]) and end[0] == pytest.approx([0.1, 0.2, 0.3])
    # released every 0.5 s: each chunk's first read (8 ms) comes after the reader is free again
    start, end = chunk_arrivals(link, idx, np.zeros(1), sizes, np.array([[0.5, 1.0, 1.5]]), 1000.0, 0.02)
    assert start[0] == pytest.approx([0.508, 1.008, 1.508]) and end[0] == pytest.approx([0.6, 1.1, 1.6])
    # never later than the chunk's own end (a chunk shorter than the busy time)
    small = np.array([[12_500.0, 1_250.0]])                 # the second takes 10 ms
    start, end = chunk_arrivals(link, idx, np.zeros(1), small, np.full((1, 2), -10.0), 1000.0, 0.02)
    assert start[0] == pytest.approx([0.008, 0.11]) and end[0] == pytest.approx([0.1, 0.11])
    # a session's rows time chunks with its own reader (the call both drivers make)
    lv = rows(LiveSettings(chunk_s=0.5, first_read_bytes=1000.0, read_busy_s=0.02), 101.0)
    start, end = lv.arrivals(link, idx, np.zeros(1), sizes, np.full((1, 3), -10.0))
    assert start[0] == pytest.approx([0.008, 0.12, 0.22]) and end[0] == pytest.approx([0.1, 0.2, 0.3])


def test_a_shaped_links_first_read_is_one_grant_1500_bytes_or_5_ms_of_capacity():
    idx = np.zeros(1, dtype=np.int64)
    sizes = np.full((1, 2), 12_500.0)
    gone = np.full((1, 2), -10.0)
    # 1 Mbit/s: 5 ms carry 625 bytes, so the grant is 1,500 bytes (12 ms); back to back, the
    # second chunk's first grant starts where the first chunk ended (0.1 s)
    slow = Link([constant(1e6, 100.0)])
    start, end = chunk_arrivals(slow, idx, np.zeros(1), sizes, gone, 1500.0, 0.0, 0.005)
    assert start[0] == pytest.approx([0.012, 0.112]) and end[0] == pytest.approx([0.1, 0.2])
    # 8 Mbit/s: 5 ms carry 5,000 bytes, more than 1,500: the first read comes 5 ms in
    fast = Link([constant(8e6, 100.0)])
    start, end = chunk_arrivals(fast, idx, np.zeros(1), sizes, gone, 1500.0, 0.0, 0.005)
    assert start[0] == pytest.approx([0.005, 0.0175]) and end[0] == pytest.approx([0.0125, 0.025])
    # a chunk released after the link went idle: its first grant from its release
    start, end = chunk_arrivals(slow, idx, np.zeros(1), sizes, np.array([[0.0, 0.5]]), 1500.0, 0.0, 0.005)
    assert start[0] == pytest.approx([0.012, 0.512]) and end[0] == pytest.approx([0.1, 0.6])
    # the session's rows carry it
    lv = rows(LiveSettings(chunk_s=0.5, first_read_bytes=1500.0, first_read_s=0.005), 101.0)
    start, _ = lv.arrivals(fast, idx, np.zeros(1), sizes, gone)
    assert start[0] == pytest.approx([0.005, 0.0175])
    with pytest.raises(InputError, match="first_read_s"):
        LiveSettings(first_read_s=-0.001)


def test_a_segment_complete_when_asked_is_one_body_on_one_grid_of_grants():
    # 1 Mbit/s (1,500-byte grants, 12 ms each); chunks of 4,000, 2,000 and 3,500 bytes from t = 0
    link = Link([constant(1e6, 100.0)])
    idx = np.zeros(1, dtype=np.int64)
    sizes = np.array([[4_000.0, 2_000.0, 3_500.0]])
    start, end = whole_body_arrivals(link, idx, np.zeros(1), sizes, 1500.0, 0.005)
    # reads end at 1,500, 3,000, 4,500, 6,000, 7,500, 9,000 and 9,500 bytes (the last grant short).
    # chunk 0 (to byte 4,000): first read 12 ms, last the third (36 ms); chunk 1 (to 6,000) is
    # seen with the fourth read (48 ms) and ends with it; chunk 2 (to 9,500) is seen with the
    # fifth (60 ms) and ends with the body (76 ms)
    assert start[0] == pytest.approx([0.012, 0.048, 0.060]) and end[0] == pytest.approx([0.036, 0.048, 0.076])
    # with shaped reads, the session's rows use it for a segment produced when asked, and the
    # chunk-by-chunk grants for one still produced
    settings = LiveSettings(chunk_s=0.5, first_read_bytes=1500.0, first_read_s=0.005, shaped_reads=True)
    lv = rows(settings, 101.0)
    two = np.zeros(2, dtype=np.int64)
    sizes2 = np.repeat(sizes, 2, axis=0)
    produced = np.array([[-1.0, -0.5, -0.1], [0.0, 0.5, 1.0]])
    start, end = lv.arrivals(link, two, np.zeros(2), sizes2, produced)
    assert start[0] == pytest.approx([0.012, 0.048, 0.060])
    assert start[1] == pytest.approx([0.012, 0.512, 1.012]) and end[1] == pytest.approx([0.032, 0.516, 1.028])


def test_the_contents_own_chunks_replace_the_share_model():
    # 5 looped segments of 2 s, 2 rungs, 1 s chunks: chunk bytes per segment and rung
    settings = LiveSettings(chunk_s=1.0, target_latency_s=3.0, first_chunk_share=0.4)
    layout = np.zeros((5, 2, 2))
    for j in range(5):
        layout[j, 0] = [1_000.0 * (j + 1), 500.0]
        layout[j, 1] = [4_000.0 + j, 2_000.0]
    lv = LiveRows(settings.facts(D), settings, np.full((5, 2), 9_999.0), 1, 101.0, chunk_sizes_bytes=layout)
    j = int(lv.segment(0, [0])[0]) % 5                     # the content segment request 0 plays
    # the segments' sizes are the chunks' sums, the description's sizes aside
    assert lv.sizes_at(0, [0])[0] == pytest.approx([1_000.0 * (j + 1) + 500.0, 4_000.0 + j + 2_000.0])
    assert lv.chunk_bytes(np.array([0.0]), 0, [0], np.array([1]))[0] == pytest.approx([4_000.0 + j, 2_000.0])
    nxt = (j + 1) % 5
    assert lv.chunk_bytes(np.array([0.0]), 1, [0], np.array([0]))[0] == pytest.approx([1_000.0 * (nxt + 1), 500.0])
    # without the request (a size only), the model's shares: 40 % in the first chunk
    assert lv.chunk_bytes(np.array([10_000.0]))[0] == pytest.approx([4_000.0, 6_000.0])
    with pytest.raises(InputError, match="do not fit"):
        LiveRows(settings.facts(D), settings, np.full((5, 2), 1.0), 1, 101.0, chunk_sizes_bytes=layout[:, :, :1])


def test_the_first_chunk_carries_its_share_and_the_rest_split_by_media():
    assert chunk_shares(np.array([0.1] * 5)) == pytest.approx([0.2] * 5)
    # 40 % in the keyframe chunk, the other 60 % over four equal chunks
    assert chunk_shares(np.array([0.1] * 5), 0.4) == pytest.approx([0.4, 0.15, 0.15, 0.15, 0.15])
    # a shorter last chunk (0.05 s of 0.45 s) gets half an equal chunk's share of the rest
    assert chunk_shares(np.array([0.1, 0.1, 0.1, 0.1, 0.05]), 0.4) == pytest.approx(
        [0.4, 0.6 * 0.1 / 0.35, 0.6 * 0.1 / 0.35, 0.6 * 0.1 / 0.35, 0.6 * 0.05 / 0.35])
    assert chunk_shares(np.array([0.5]), 0.4) == pytest.approx([1.0])      # one chunk: all of it
    ll = rows(LiveSettings(chunk_s=0.5, first_chunk_share=0.4), 101.0)
    assert ll.chunk_bytes(np.array([1000.0]))[0] == pytest.approx([400.0, 200.0, 200.0, 200.0])
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(InputError, match="first_chunk_share"):
            LiveSettings(first_chunk_share=bad)


def test_latency_grows_in_a_stall_and_falls_when_playing_faster():
    lv = rows(LiveSettings(), 101.0)
    buf = BufferState.new(1, playing_from_start=True)
    buf.buffer_s[:] = 1.0
    assert lv.latency(buf, [0])[0] == pytest.approx(8.0)
    lv.elapse(buf, np.array([3.0]), [0])                   # 1 s played, then 2 s of stall
    assert lv.latency(buf, [0])[0] == pytest.approx(10.0)
    buf.buffer_s[:] = 4.0
    lv.rate[:] = 1.5
    lv.elapse(buf, np.array([2.0]), [0])                   # 3 s of media in 2 s
    assert lv.latency(buf, [0])[0] == pytest.approx(9.0)


def test_a_segment_gone_from_the_time_shift_buffer_seeks_to_the_live_edge():
    lv = rows(LiveSettings(time_shift_depth_s=10.0), 101.0)
    buf = BufferState.new(1, playing_from_start=True)
    buf.clock_s[:] = 30.0                                   # 30 s later, nothing played: latency 38 s
    seeked, gone = lv.before_request(buf, 0, [0])
    assert list(seeked) == [0] and gone[0]
    # the playhead jumps to the live edge − delay = 131 − 8 = 123 s: segment 61, from 123 s
    assert lv.segment(0, [0])[0] == 61 and lv.latency(buf, [0])[0] == pytest.approx(8.0)
    assert lv.rest_of_segment(0, [0])[0] == pytest.approx(1.0)


@pytest.mark.parametrize("preset", ["live", "live-ll", "dashjs-live"])
@pytest.mark.parametrize("policy", ["dynamic", "bola", "throughput", "dashjs", "l2a", "lolp"])
def test_simulated_live_on_a_constant_link(preset, policy):
    """A fast constant link: the session lasts its duration, stalls at most while starting,
    and its latency ends near the target (catch-up) or stays at delay + startup (none)."""
    content = synthetic((300e3, 750e3, 1.2e6), duration_s=40, segment_duration_s=2, seed=3)
    p = replace(PRESETS[preset], live=replace(PRESETS[preset].live, duration_s=120.0))
    r = simulate([SessionSpec(constant(20e6, 1000.0, latency_s=0.02), content, policy, preset=p)])[0]
    s = r.summary("twitch")
    assert r.session_s == pytest.approx(120.0)
    assert r.chosen.size >= 55                                   # about one segment per 2 s
    assert s["rebuffer_s"] <= 1.0 and s["seeks"] == 0
    target = 8.0 if preset == "live" else 3.5
    if preset == "live":
        assert s["latency_end_s"] == pytest.approx(target + r.startup_s + s["rebuffer_s"], abs=1e-6)
    else:
        assert abs(s["latency_end_s"] - target) < 0.3, s
    assert s["qoe"]["components"]["latency_penalty"] > 0


def test_duration_ends_the_session_and_drops_what_is_in_flight():
    # 0.1 Mbit/s: a 300 kbit/s segment of 2 s takes 6 s; the 20 s session ends mid-download
    content = synthetic((300e3,), duration_s=20, segment_duration_s=2, seed=1)
    p = replace(PRESETS["live"], live=replace(PRESETS["live"].live, duration_s=20.0))
    r = simulate([SessionSpec(constant(1e5, 100.0), content, "fixed", preset=p)])[0]
    assert r.session_s == pytest.approx(20.0)
    assert r.request_s[-1] + r.download_s[-1] <= 20.0
    assert r.summary()["bytes"] == int(r.size_bytes.sum())
    assert r.summary()["rebuffer_s"] > 0


def test_chunk_timing_reaches_the_policy():
    """A low-latency download's chunks are in the next observation: their bytes, times since
    the request and the buffer; how long the segment had been available."""
    seen = []

    class Spy(abr.Policy):
        name = "spy"

        def _select(self, obs):
            seen.append(obs)
            return np.zeros(obs.n, dtype=np.int64)

    content = synthetic((300e3,), duration_s=20, segment_duration_s=2, seed=1)
    p = replace(PRESETS["live-ll"], live=replace(PRESETS["live-ll"].live, duration_s=30.0))
    plan = SegmentPlan.from_content(content)
    core = SessionCore(plan, Spy(), p, live=simulated_rows(plan.durations_s, plan.sizes_bytes, p.live, 1))
    drive_with_link(core, Link([Trace(np.zeros(1), np.array([4e6]), 100.0)], p.link))
    late = seen[-1]
    assert late.chunk_bytes.shape == (1, 4) and np.all(late.chunk_bytes > 0)
    assert np.all(np.diff(late.chunk_end_s[0]) > 0) and late.chunk_end_s[0, -1] > 1.0   # paced by production
    assert np.isfinite(late.segment_available_s[0])
    assert late.target_latency_s[0] == 3.5 and late.latency_s[0] > 0 and late.playback_rate[0] > 0


REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]


def test_bundled_challenge_profiles_are_the_challenges():
    """traces/live/twitch-*.json hold the Twitch challenge's normal profiles (kbit/s, seconds)."""
    expected = {"cascade": ([1200, 800, 400, 800, 1200], [30] * 5),
                "intra-cascade": ([1000, 800, 600, 400, 200, 400, 600, 800, 1000], [15] * 9),
                "spike": ([1200, 300, 800], [10] * 3),
                "slow-jitters": ([500, 1200] * 3, [5] * 6),
                "fast-jitters": ([500, 1200] * 3, [0.25, 5, 0.1, 1, 0.25, 5])}
    for name, (kbps, secs) in expected.items():
        tr = formats.load(str(REPO / "traces" / "live" / f"twitch-{name}.json"))
        assert tr.rates_bps.tolist() == [k * 1000.0 for k in kbps], name
        assert tr.step_durations_s == pytest.approx(secs), name


def test_simulate_and_compare_take_live_presets(tmp_path):
    movie = str(REPO / "traces" / "content" / "twitch-3rung-0.5s.json")
    trace = str(REPO / "traces" / "live" / "twitch-spike.json")
    out = subprocess.run(ABRLAB + ["simulate", "--trace", trace, "--movie", movie, "--abr", "lolp", "--preset",
                                   "live-ll", "--chunk-duration", "0.1", "--target-latency", "1",
                                   "--live-duration", "30", "--qoe", "twitch", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["session_s"] == pytest.approx(30.0) and s["target_latency_s"] == 1.0 and s["segments"] > 40
    assert set(s["qoe"]["components"]) >= {"latency_penalty", "speed_penalty"}
    out = subprocess.run(ABRLAB + ["compare", "--traces", trace, "--movie", movie, "--abr", "dynamic,l2a",
                                   "--preset", "live-ll", "--chunk-duration", "0.1", "--live-duration", "30",
                                   "--out", str(tmp_path / "cmp"), "--no-plots", "--executor", "inprocess"],
                         capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "latency s" in out.stdout
    rows = list(csv.DictReader(open(tmp_path / "cmp" / "sessions.csv")))
    assert len(rows) == 2 and all(float(r["latency_mean_s"]) > 0 for r in rows)
    bad = subprocess.run(ABRLAB + ["simulate", "--trace", trace, "--movie", movie, "--live-duration", "30"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert bad.returncode == 2 and "is not live" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    bad = subprocess.run(ABRLAB + ["simulate", "--trace", trace, "--movie", movie, "--preset", "live-ll"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert bad.returncode == 2 and "must be shorter than the segments" in bad.stderr


def test_a_buffer_within_rounding_of_the_media_played_is_exactly_empty():
    """At a playback rate, 1 s of media played over 1 s less a rounding residue leaves the
    buffer at exactly 0 with no stall (a 1e-16 s residue read as "not empty" made the session
    core and the simulator choose different rungs for the same live session)."""
    for dt in (1.0 - 1e-15, 1.0, 1.0 + 1e-15):
        st = BufferState.new(1)
        st.add(np.array([1.0]), np.array([0.0]))
        stall = st.elapse(np.array([dt]), rate=np.array([1.0]))
        assert st.buffer_s[0] == 0.0 and stall[0] == 0.0 and not st.stalled[0]
    st = BufferState.new(1)
    st.add(np.array([1.0]), np.array([0.0]))
    stall = st.elapse(np.array([2.0]), rate=np.array([0.5]))     # 1 s of media at half speed: no stall
    assert st.buffer_s[0] == 0.0 and stall[0] == 0.0
    stall = st.elapse(np.array([0.5]), rate=np.array([1.0]))     # then a real stall
    assert stall[0] == 0.5 and st.stalled[0]


def test_a_simulated_session_joins_at_the_segment_asked_for():
    from player.core.live import simulated_start

    s0 = LiveSettings(chunk_s=0.1, target_latency_s=3.0)
    facts = s0.facts(0.5)
    base = simulated_start(s0, facts, 120)
    later = simulated_start(LiveSettings(chunk_s=0.1, target_latency_s=3.0, join_segment=7), facts, 120)
    assert later - base == pytest.approx(3.5)                  # 7 segments of 0.5 s further
    assert int((base - 3.0) // 0.5) % 120 == 0                 # the playhead starts in content segment 0 ...
    assert int((later - 3.0) // 0.5) % 120 == 7                # ... and 7
    wrapped = simulated_start(LiveSettings(chunk_s=0.1, target_latency_s=3.0, join_segment=127), facts, 120)
    assert wrapped == pytest.approx(later)                     # modulo the 120-segment loop
    with pytest.raises(InputError, match="join_segment"):
        LiveSettings(join_segment=-1)
