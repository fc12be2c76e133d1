"""The session rules module (player/core/rules.py) and the one summary (player/core/summary.py),
by hand-computed cases; and a policy's requested delay on both clocks."""
from __future__ import annotations

import numpy as np
import pytest

import abr
from netem.content import synthetic
from netem.link import Link
from netem.synth import markov
from netem.trace import constant
from player.core.presets import get as get_preset
from player.core.rules import (HISTORY_SAMPLES, History, InitTracker, SegmentPlan, SessionRows, accept_abandon)
from player.core.session import SessionCore, drive_with_link
from player.core import simulator
from player.core.simulator import SessionSpec, simulate
from player.core.summary import session_summary


def test_history_window_is_newest_last_and_nan_padded():
    h = History(2, capacity=10)
    h.push(np.array([1.0, 10.0]))
    h.push(np.array([2.0, 20.0]))
    w = h.window()
    assert w.shape == (2, HISTORY_SAMPLES)
    assert np.isnan(w[:, :-2]).all()
    assert w[0, -2:].tolist() == [1.0, 2.0] and w[1, -2:].tolist() == [10.0, 20.0]
    assert h.last().tolist() == [2.0, 20.0]


def test_history_rows_pushed_apart_keep_their_own_windows():
    h = History(3, capacity=4)
    h.push(np.array([1.0, 2.0, 3.0]))
    h.push(np.array([5.0]), rows=np.array([1]))       # only row 1 gets a second sample
    assert h.last().tolist() == [1.0, 5.0, 3.0]
    assert h.window(np.array([1]))[0, -2:].tolist() == [2.0, 5.0]
    assert np.isnan(h.window(np.array([0]))[0, -2])


def test_history_grows_past_its_capacity_keeping_the_last_window():
    h = History(1, capacity=2)
    for v in range(1, 12):
        h.push(np.array([float(v)]))
    assert h.window()[0].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]


def test_init_tracker_requests_on_change_and_revalidates_seen_rungs():
    p = get_preset("dashjs")                     # 710-byte inits, revalidated (304) when seen before
    t = InitTracker.new(p, 1, 3)
    rows = np.array([0])
    need, size = t.request(rows, np.array([2]))
    assert need.tolist() == [True] and size.tolist() == [710.0]
    need, size = t.request(rows, np.array([2]))  # same representation: no request
    assert need.tolist() == [False]
    need, size = t.request(rows, np.array([0]))
    assert size.tolist() == [710.0]
    need, size = t.request(rows, np.array([2]))  # back to a seen one: a 304, no body
    assert need.tolist() == [True] and size.tolist() == [0.0]


def test_only_a_lower_rung_abandons():
    assert accept_abandon(np.array([-1, 0, 2, 3, 1]), np.array([2, 2, 2, 2, 0])).tolist() == \
        [False, True, False, False, False]


def test_top_rung_target_applies_after_a_top_choice():
    c = synthetic(bitrates_bps=(1e6, 2e6, 3e6), duration_s=40, segment_duration_s=4, seed=1)
    p = get_preset("dashjs")                     # cap 18 s, top-rung target 30 s
    mask = np.array([[True, True, False], [True, True, True]])   # row 0 may not play rung 2
    rows = SessionRows(SegmentPlan.from_content(c), p, 2, mask=mask)
    rows.last_rung[:] = [1, 1]
    assert rows.buffer_target_s().tolist() == [30.0, 18.0]   # rung 1 is row 0's top, not row 1's


class DelayingLowest(abr.Policy):
    """Lowest rung; asks for a 2 s delay whenever the buffer is above 6 s (as BOLA does)."""

    def _select(self, obs: abr.Observation) -> np.ndarray:
        self.last_delay_s = np.where(obs.buffer_s > 6.0, 2.0, 0.0)
        return np.zeros(obs.n, dtype=np.int64)


def test_a_policy_delay_is_honoured_by_the_simulator_and_the_core_alike(monkeypatch):
    monkeypatch.setitem(abr.registry._REGISTRY, "delaying-lowest", DelayingLowest)   # noqa: SLF001 - test registration
    c = synthetic(bitrates_bps=(1e6, 2e6), duration_s=32, segment_duration_s=4, seed=2)
    tr = constant(100e6, 1000.0)             # 4 s of 1 Mbit/s media downloads in 0.04 s
    r = simulate([SessionSpec(tr, c, "delaying-lowest", preset="sabre")])[0]
    # by hand: segment 0 brings 4 s, segment 1 another 4 s (8 s > 6 s); from then on each
    # request waits 2 s first and the buffer grows by 4 − 2 s per segment, staying far below
    # Sabre's 25 s cap (so no buffer-full wait mixes in)
    assert r.wait_s[0] == 0.0 and r.wait_s[1] == 0.0
    assert np.allclose(r.wait_s[2:], 2.0)
    assert np.all(np.diff(r.request_s[2:]) >= 2.0)
    core = SessionCore(SegmentPlan.from_content(c), DelayingLowest(), get_preset("sabre"))
    drive_with_link(core, Link([tr], get_preset("sabre").link))
    assert core.now == pytest.approx(r.session_s, abs=1e-9)
    assert [e.reason for e in core.events if e.kind == "wait"].count("policy delay") == 6


def test_summary_of_an_incomplete_session_is_over_what_was_played():
    # 10 segments of 2 s exist; 3 arrived at rungs 0, 1, 1 (1 and 4 Mbit/s); 5 s were played
    # (2 s of rung 0, 2 s of rung 1, 1 s of rung 1), startup at 1 s, session clock 7 s.
    s = session_summary(np.array([0, 1, 1]), np.zeros(3), np.full(10, 2.0), np.array([1e6, 4e6]),
                        startup_s=1.0, session_s=7.0, stall_count=0, bytes_=0, played_s=5.0, n_segments=10)
    assert s["complete"] is False and s["segments"] == 3
    assert s["avg_bitrate_bps"] == pytest.approx((1e6 + 4e6 + 4e6) / 3)
    # time average over the 6 s from startup: (2×1 + 2×4 + 1×4) Mbit / 6 s
    assert s["time_avg_bitrate_bps"] == pytest.approx(14e6 / 6.0)
    assert s["switches"] == 1 and s["switch_magnitude_bps"] == pytest.approx(3e6)
    # linear QoE: utility 1 + 4 + 4 = 9, smoothness |4 − 1| = 3
    assert s["qoe"]["total"] == pytest.approx(6.0)


def test_summary_of_a_session_with_nothing_played():
    s = session_summary(np.zeros(0, dtype=np.int64), np.zeros(0), np.full(5, 2.0), np.array([1e6, 2e6]),
                        startup_s=float("nan"), session_s=3.0, stall_count=0, bytes_=0, played_s=0.0, n_segments=5)
    assert s["segments"] == 0 and s["complete"] is False
    assert s["avg_bitrate_bps"] == 0.0 and s["time_avg_bitrate_bps"] == 0.0 and s["qoe"]["total"] == 0.0


def test_a_pure_abandonment_rule_offered_in_bulk_equals_one_offer_at_a_time(monkeypatch):
    """Offering several progress points per call to a pure rule (ABANDON_IS_PURE) must give
    what offering them one by one gives: same rungs, stalls, wasted bytes, abandonments."""
    c = synthetic(duration_s=60, segment_duration_s=2, seed=3)
    traces = [markov(seed=s, duration_s=200.0, min_rate_bps=0.05e6, max_rate_bps=10e6, step_s=0.5)
              for s in range(12)]
    for name, preset in (("throughput", "default"), ("bolae", "default"), ("dynamic", "default"),
                         ("sabre-throughput", "default"), ("sabre-bola", "default"), ("sabre-bolae", "default"),
                         ("sabre-dynamic", "default"), ("sabre-dynamicdash", "default"), ("bola", "sabre-abandon")):
        specs = [SessionSpec(t, c, name, preset=preset) for t in traces]
        bulk = simulate(specs)
        monkeypatch.setattr(simulator, "OFFERS_IN_BULK", 1)
        one = simulate(specs)
        monkeypatch.undo()
        assert sum(r.abandons for r in one) > 0, f"{name}: the case must exercise abandonment"
        for a, b in zip(bulk, one):
            assert a.chosen.tolist() == b.chosen.tolist()
            assert a.rebuffer_s.tolist() == b.rebuffer_s.tolist()
            assert (a.wasted_bytes, a.abandons, a.session_s) == (b.wasted_bytes, b.abandons, b.session_s)


def test_a_session_quit_early_is_summarised_over_what_was_played():
    """Issue: a session ended with q reported a time-average bitrate above the top rung
    (every downloaded segment counted over the short time played)."""
    c = synthetic(bitrates_bps=(1e6, 4e6), duration_s=120, segment_duration_s=4, seed=5)
    core = SessionCore(SegmentPlan.from_content(c), abr.get("highest"), get_preset("default"))
    # fetch 7 segments quickly (0.1 s each): 28 s of media buffered (the cap is 30 s), 0.6 s played
    for _ in range(7):
        action = core.next_action(core.now)
        core.download_done(core.now + 0.1, int(action.expected_bytes), 0.0, 0.1)
    s = core.summary()
    assert s["complete"] is False and s["segments"] == 7
    assert s["played_s"] == pytest.approx(0.6)             # playback started with segment 1 at 0.1 s
    # the media played is all rung 1 (4 Mbit/s): never above the top rung
    assert s["time_avg_bitrate_bps"] == pytest.approx(4e6)
