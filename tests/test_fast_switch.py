"""Fast switching (`player.core.fast_switch`, dash.js's `fastSwitchEnabled`): the rules one by
one, and whole sessions worked out by hand on both clocks (the batch simulator and the
session core driven on the analytical link)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import abr
from abr.algorithms.dashjs.bola_rule import BolaRule
from netem.content import Content, Rung
from netem.link import Link, preset as link_preset
from netem.trace import Trace
from player.core.buffer import BufferState
from player.core.fast_switch import FastSwitch
from player.core.presets import PRESETS
from player.core.rules import History
from player.core.session import SegmentPlan, SessionCore, drive_with_link
from player.core.simulator import SessionSpec, simulate

BITRATES = (1e6, 2e6, 4e6)
SEG_S = 2.0


def _content(n_segments: int = 6) -> Content:
    """Segments of 2 s whose sizes are exactly bitrate × duration (250 kB, 500 kB, 1 MB)."""
    sizes = np.tile(np.array(BITRATES) * SEG_S / 8.0, (n_segments, 1)).astype(np.int64)
    return Content(tuple(Rung(b) for b in BITRATES), np.full(n_segments, SEG_S), sizes, name="steps")


def _flat(rate_bps: float) -> Trace:
    return Trace(np.array([0.0]), np.array([rate_bps]), 1000.0, latency_s=np.array([0.0]))


#: dash.js's session rules without what would blur hand arithmetic: no per-request overhead,
#: no latency, no init segments, no abandonment, no buffer target in reach, no 500 ms steps
PRESET = replace(PRESETS["dashjs"], name="dashjs-by-hand", link=link_preset("trace-latency"), init_bytes=0,
                 abandonment=False, buffer_cap_s=60.0, buffer_cap_top_s=None, buffer_cap_top_long_s=None,
                 wait_quantum_s=0.0, stall_gap_s=0.0)


class Scripted(abr.Policy):
    """The rung of each decision, in order, from `script` ("0,0,2": then the last one on)."""

    PARAMS = (abr.Param("script", "0", "-", "rungs of the decisions, comma separated"),)

    def _reset(self, n_sessions, ladder):
        self.rungs = [int(x) for x in str(self.script).split(",")]
        self.count = np.zeros(n_sessions, dtype=np.int64)

    def _select(self, obs):
        s = np.asarray(obs.sessions)
        i = np.minimum(self.count[s], len(self.rungs) - 1)
        self.count[s] += 1
        return np.array(self.rungs)[i]


SCRIPTED = f"{__file__}:Scripted"   # a policy from a file, not registered for every other test


def _both(trace: Trace, script: str, preset=PRESET, n_segments: int = 6):
    """The session on both clocks: (simulator result, session core)."""
    content = _content(n_segments)
    res = simulate([SessionSpec(trace, content, SCRIPTED, {"script": script}, preset=preset)])[0]
    core = SessionCore(SegmentPlan.from_content(content), abr.get(SCRIPTED, script=script), preset)
    drive_with_link(core, Link([trace], preset.link))
    return res, core


# -- the rules ------------------------------------------------------------------------------------
def _state(frontier: int, buffered: list[int], margin_s: float = 0.0, gap_s: float = 0.0) -> FastSwitch:
    fs = FastSwitch(np.full(6, SEG_S), 3, 1, margin_s, gap_s, 10.0)
    fs.frontier[:] = frontier
    fs.buffered_rung[0, :len(buffered)] = buffered
    return fs


def _target(fs: FastSwitch, rung: int, last: int, playhead_s: float, buffer_s: float, now_s: float = 20.0) -> int:
    return int(fs.target(np.array([0]), np.array([rung]), np.array([last]), np.array([playhead_s]),
                         np.array([buffer_s]), np.array([now_s]))[0])


def test_a_switch_above_the_rung_at_the_playhead_refetches_the_segment_being_played():
    fs = _state(4, [0, 0, 1, 1])
    # playhead 4.5 s is in segment 2 (4-6 s), buffered at rung 1
    assert _target(fs, 2, 1, 4.5, 3.5) == 2
    # a switch down that is still above the rung buffered at the playhead re-fetches too (1 < 2)
    assert _target(fs, 2, 0, 4.5, 3.5) == 2
    # not above it: no re-fetch; no quality change: none either
    assert _target(fs, 1, 2, 4.5, 3.5) == -1
    assert _target(fs, 2, 2, 4.5, 3.5) == -1
    # a playhead at the buffer's end (8 s, segments 0-3 buffered) has nothing to re-fetch
    assert _target(fs, 2, 1, 8.0, 0.0) == -1
    # the segment boundary belongs to the segment that starts there (threshold 0)
    assert _target(fs, 2, 1, 4.0, 4.0) == 2


def test_the_margin_moves_the_segment_looked_up_and_needs_that_much_buffer():
    fs = _state(4, [0, 0, 0, 1], margin_s=3.0)
    # playhead 2.5 + 3 s = 5.5 s: segment 2 (rung 0 < 2)
    assert _target(fs, 2, 0, 2.5, 5.5) == 2
    # a buffer shorter than the margin: no re-fetch
    assert _target(fs, 2, 0, 2.5, 2.9) == -1


def test_no_refetch_while_an_abandonment_holds():
    fs = _state(4, [0, 0, 1, 1])
    fs.abandoned(np.array([0]), np.array([15.0]))
    assert _target(fs, 2, 1, 4.5, 3.5, now_s=24.9) == -1     # ABANDON_LOAD for 10 s
    assert _target(fs, 2, 1, 4.5, 3.5, now_s=25.0) == 2


def test_after_a_stall_the_playhead_reads_the_gap_short():
    fs = _state(2, [0, 0], gap_s=0.08)
    buf = BufferState.new(1)
    buf.played_s[0] = 4.0
    assert fs.playhead_s(buf)[0] == 4.0                  # no stall yet: the media played
    buf.stall_count[0] = 1
    assert fs.playhead_s(buf)[0] == pytest.approx(3.92)
    # so a switch up right when segment 2 ends the stall re-fetches segment 1 (2-4 s)
    assert _target(fs, 2, 0, fs.playhead_s(buf)[0], 2.0) == 1


def test_a_refetched_version_plays_only_if_it_arrives_before_its_segment_starts():
    fs = FastSwitch(np.full(4, SEG_S), 3, 2, 0.0, 0.0, 10.0)
    rows = np.array([0, 1])
    for k in range(3):  # segments 0-2 at rung 0, 250 kB each
        fs.arrived(rows, np.full(2, k), np.zeros(2, dtype=np.int64), np.full(2, 250e3), np.zeros(2))
    assert fs.frontier.tolist() == [3, 3] and fs.next_index.tolist() == [3, 3]
    # segment 1 (2-4 s) again at rung 2 (1 MB): row 0's playhead is at 1.9 s, row 1's at 2.1 s
    plays = fs.arrived(rows, np.array([1, 1]), np.array([2, 2]), np.full(2, 1e6), np.array([1.9, 2.1]))
    assert plays.tolist() == [True, False]
    assert fs.played_rung[:, 1].tolist() == [2, 0] and fs.buffered_rung[:, 1].tolist() == [2, 2]
    assert fs.next_index.tolist() == [2, 2] and fs.frontier.tolist() == [3, 3]
    assert fs.refetches.tolist() == [1, 1]
    # row 0 played the new 1 MB and wasted the old 250 kB; row 1 the other way round
    assert fs.wasted_bytes().tolist() == [250e3, 1e6]


def test_a_version_fetched_before_is_a_304_with_its_first_downloads_sample():
    fs = FastSwitch(np.full(4, SEG_S), 3, 1, 0.0, 0.0, 10.0)
    row = np.array([0])
    fs.arrived(row, np.array([0]), np.array([1]), np.array([500e3]), np.array([0.0]), None, 0.1, 2.0)
    assert fs.body_bytes(row, 0, np.array([1]), np.array([500e3]))[0] == 0.0
    assert fs.body_bytes(row, 0, np.array([2]), np.array([1e6]))[0] == 1e6
    size, lat, xfer = fs.sample(row, 0, np.array([1]), np.array([500e3]), np.array([0.0]), np.array([0.05]),
                                np.array([0.001]))
    assert (size[0], xfer[0]) == (500e3, 2.0) and lat[0] == pytest.approx(0.1)
    fs.arrived(row, np.array([0]), np.array([1]), np.array([500e3]), np.array([0.0]), np.array([0.0]), 0.05, 0.001)
    assert fs.fetched_bytes[0] == 500e3                  # the 304 brought no bytes
    assert fs.first_s[0, 0, 1].tolist() == pytest.approx([0.1, 2.0])   # and the first download's timing stays


def test_bola_grows_its_placeholder_by_a_refetched_segments_duration():
    b = BolaRule(1, np.array(BITRATES), 18.0)
    b.state[0] = 2
    b.placeholder[0] = 1.0
    s, yes = np.array([0]), np.array([True])
    # decay 0.99, under the cap (rung 2's top level, far above), then + 2 s for the re-fetch
    b.on_segment_loaded(s, yes, np.array([False]), np.array([5.0]), np.array([1.0]), np.array([0.0]),
                        np.array([2]), np.array([2.0]))
    assert b.placeholder[0] == pytest.approx(0.99 + 2.0)


# -- whole sessions, by hand ----------------------------------------------------------------------------
def test_a_switch_up_refetches_the_buffer_from_the_playhead():
    """8 Mbit/s: a segment takes 0.25 s at rung 0 and 1 s at rung 2. Decisions 1-3 choose rung
    0 (segments 0-2 arrive at 0.25, 0.5, 0.75 s; playback from 0.25 s), then rung 2: at 0.75 s
    the playhead is 0.5 s into segment 0, so segments 0, 1, 2 are fetched again at rung 2,
    arriving at 1.75 s (playhead 1.5 s: segment 0 has started, too late), 2.75 s (2.5 s:
    segment 1 too late) and 3.75 s (3.5 s, before segment 2 starts at 4 s: it plays at rung
    2). Then segments 3-5 at rung 2, by 6.75 s, with 5.5 s left to play."""
    res, core = _both(_flat(8e6), "0,0,0,2")
    assert res.chosen.tolist() == core.chosen == [0, 0, 2, 2, 2, 2]
    assert [(r["segment"], r["rung"], r["played"]) for r in res.refetches] == [(0, 2, False), (1, 2, False),
                                                                               (2, 2, True)]
    assert [r["request_s"] for r in res.refetches] == pytest.approx([0.75, 1.75, 2.75])
    assert res.request_s.tolist() == pytest.approx([0.0, 0.25, 0.5, 3.75, 4.75, 5.75])
    assert res.rebuffer_s.sum() == 0.0 and core.stall_count == 0
    assert res.session_s == pytest.approx(6.75 + 5.5) and core.now == pytest.approx(res.session_s)
    # the buffer did not grow while re-fetching: 5.5 s at 0.75, 2.5 s at 3.75, then 3.5 s after segment 3
    assert res.buffer_s[3] == pytest.approx(3.5)
    s = res.summary()
    assert s["refetches"] == core.refetches == 3
    assert s["bytes"] == core.summary()["bytes"] == 2 * 250_000 + 4 * 1_000_000
    # fetched 3 × 250 kB + 6 × 1 MB; wasted: segments 0 and 1 at rung 2, segment 2 at rung 0
    assert s["wasted_bytes"] == core.summary()["wasted_bytes"] == 2 * 1_000_000 + 250_000


def test_refetching_drains_the_buffer_into_a_stall_that_only_new_media_ends():
    """2 Mbit/s: a segment takes 1 s at rung 0 and 4 s at rung 2. Segments 0 and 1 at rung 0
    (arriving at 1 and 2 s, 3 s of buffer left), then rung 2, then rung 0 again: segment 0 is
    re-fetched at rung 2 from 2 to 6 s (the buffer runs out at 5 s: a stall), the next
    decision (rung 0, not above the rung 0 buffered at the playhead) carries on with segment
    1 at rung 0, fetched before: a 304 that takes no time, and the stall goes on until the
    new segment 2 arrives at 7 s. One stall of 2 s."""
    res, core = _both(_flat(2e6), "0,0,2,0")
    assert [(r["segment"], r["rung"], r["played"], r["size_bytes"]) for r in res.refetches] == [
        (0, 2, False, 1_000_000), (1, 0, False, 0)]
    assert res.chosen.tolist() == core.chosen == [0, 0, 0, 0, 0, 0]
    assert res.rebuffer_s.tolist() == pytest.approx([0, 0, 2.0, 0, 0, 0])
    assert core.rebuffer_per_segment == pytest.approx(res.rebuffer_s.tolist())
    assert res.rebuffer_count == core.stall_count == 1
    assert res.request_s[2] == pytest.approx(6.0)
    assert res.summary()["wasted_bytes"] == core.summary()["wasted_bytes"] == 1_000_000


def test_without_fast_switching_the_switch_applies_from_the_next_new_segment():
    res, core = _both(_flat(8e6), "0,0,0,2", preset=replace(PRESET, fast_switch=False))
    assert res.chosen.tolist() == core.chosen == [0, 0, 0, 2, 2, 2]
    assert res.refetches is None and "refetches" not in res.summary()


def test_dashjs_presets_fast_switch_on_by_default_and_off_in_the_variant():
    assert PRESETS["dashjs"].fast_switch and PRESETS["dashjs"].fast_switch_margin_s == 0.0
    off = PRESETS["dashjs-no-fast-switch"]
    assert not off.fast_switch
    assert replace(off, name="dashjs", fast_switch=True, stall_gap_s=PRESETS["dashjs"].stall_gap_s,
                   doc=PRESETS["dashjs"].doc) == PRESETS["dashjs"]


# -- what fast switching exercised first -----------------------------------------------------------
def test_history_keeps_each_rows_samples_after_some_rows_pushed_alone():
    # re-fetches push samples for some rows only; a push for every row after that must still
    # put each row's value in that row's own next column
    h = History(3, 4)
    h.push(np.array([1.0, 2.0, 3.0]))
    h.push(np.array([10.0]), np.array([1]))
    h.push(np.array([4.0, 5.0, 6.0]))
    assert h.window()[:, -2:].tolist() == [[1.0, 4.0], [10.0, 5.0], [3.0, 6.0]]
    assert h.window()[1, -3] == 2.0 and np.isnan(h.window()[0, -3])
