"""Invariants of streaming, checked by hypothesis against the sans-IO session core.

A RuleBasedStateMachine plays a driver that does odd things on purpose: downloads finish
after random delays, fail, get abandoned, and the clock ticks at random. After every step
the invariants are checked against a ledger the test keeps itself (not the core's own
counters), so a bookkeeping bug in the core shows up as a disagreement.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import abr
from netem.content import synthetic
from player.core.presets import PRESETS
from player.core.session import Done, Fetch, SegmentPlan, SessionCore, Wait

EPS = 1e-6
POLICIES = ["bola", "bba", "throughput", "rb", "robustmpc", "dynamic", "random", "festive", "bolae", "sabre-bolae",
            "sabre-dynamic"]


class SessionMachine(RuleBasedStateMachine):
    @initialize(policy=st.sampled_from(POLICIES), preset=st.sampled_from(sorted(PRESETS)),
                segments=st.integers(2, 12), seg_s=st.sampled_from([1.0, 2.0, 4.0]),
                rungs=st.integers(1, 6), seed=st.integers(0, 1000),
                mask_bits=st.integers(0, 63))
    def setup(self, policy, preset, segments, seg_s, rungs, seed, mask_bits):
        bitrates = np.geomspace(300e3, 6e6, rungs)
        self.content = synthetic(bitrates_bps=tuple(bitrates), duration_s=segments * seg_s,
                                 segment_duration_s=seg_s, seed=seed)
        mask = np.array([(mask_bits >> r) & 1 == 1 for r in range(rungs)])
        if not mask.any():
            mask[0] = True
        self.mask = mask
        self.preset = PRESETS[preset]
        self.core = SessionCore(SegmentPlan.from_content(self.content), abr.get(policy), self.preset, mask=mask)
        self.cap = self.core.buffer_cap_s
        self.pending: Fetch | None = None
        self.wait_until: float | None = None
        self.done = False
        # the test's own ledger
        self.media_in = 0.0           # media seconds of completed segments
        self.bytes_completed = 0
        self.bytes_wasted = 0
        self.last_now = 0.0
        self.prev_buffer = 0.0
        self.prev_played = 0.0
        self.startups = 0
        self.ends = 0

    # -- driver actions -------------------------------------------------------------------------
    @precondition(lambda self: self.pending is None and not self.done)
    @rule(delay=st.floats(0, 5))
    def ask(self, delay):
        now = self.core.now + delay
        if self.wait_until is not None:
            now = max(now, self.wait_until)
        action = self.core.next_action(now)
        self.wait_until = None
        if isinstance(action, Fetch):
            assert 0 <= action.rung < self.content.n_rungs
            assert self.mask[action.rung] or not self.mask.any(), "chose a masked rung"
            self.pending = action
        elif isinstance(action, Wait):
            assert action.until_s > self.core.now
            self.wait_until = action.until_s
        else:
            assert isinstance(action, Done)
            self.done = True

    @precondition(lambda self: self.pending is not None)
    @rule(latency=st.floats(0, 1), transfer=st.floats(1e-3, 12))
    def complete(self, latency, transfer):
        f = self.pending
        size = int(f.expected_bytes)
        self.core.download_done(self.core.now + latency + transfer, size, latency, transfer)
        if not f.refetch:   # a re-fetch (dash.js's fast switching) replaces media buffered or played: none added
            self.media_in += float(self.content.segment_durations_s[f.segment])
        self.bytes_completed += size
        self.pending = None
        st_ = self.core.state   # a stall ends with a new segment, once the buffer holds the resume level
        assert f.refetch or not st_.stalled[0] or st_.buffer_s[0] < st_.resume_s - 1e-12, \
            "a completed download of a new segment must end a stall"

    @precondition(lambda self: self.pending is not None)
    @rule(after=st.floats(0, 6), wasted=st.integers(0, 100_000))
    def fail(self, after, wasted):
        self.core.download_failed(self.core.now + after, wasted, "injected")
        self.bytes_wasted += wasted
        self.pending = None

    @precondition(lambda self: self.pending is not None and self.pending.rung > 0)
    @rule(after=st.floats(0, 3), frac=st.floats(0, 1))
    def abandon(self, after, frac):
        f = self.pending
        wasted = int(frac * f.expected_bytes)
        new = self.core.abandoned(self.core.now + after, wasted, f.rung - 1)
        self.bytes_wasted += wasted
        assert new.segment == f.segment and new.rung == f.rung - 1
        self.pending = new

    @rule(dt=st.floats(0, 8))
    def tick(self, dt):
        before_stalled = bool(self.core.state.stalled[0])
        before_buffer = float(self.core.state.buffer_s[0])
        self.core.tick(self.core.now + dt)
        if self.core.state.stalled[0] and not before_stalled:
            # a stall starts only when the buffer ran out (down to the preset's floor), after playback started
            floor = self.core.state.floor_s
            assert self.core.state.playing[0]
            assert before_buffer - floor < dt + EPS
            assert self.core.state.buffer_s[0] <= floor + EPS

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def buffer_bounds(self):
        b = float(self.core.state.buffer_s[0])
        assert b >= -EPS, "buffer went negative"
        assert b <= self.cap + float(self.content.segment_durations_s.max()) + EPS, "buffer above cap + one segment"

    @invariant()
    def media_conservation(self):
        s = self.core.state
        assert math.isclose(self.media_in, float(s.played_s[0]) + float(s.buffer_s[0]), abs_tol=1e-6)

    @invariant()
    def bytes_conservation(self):
        assert self.core.bytes_downloaded == self.bytes_completed + self.bytes_wasted
        assert self.core.wasted_bytes == self.bytes_wasted

    @invariant()
    def time_moves_forward(self):
        assert self.core.now >= self.last_now - 1e-12
        self.last_now = self.core.now
        ts = [e.t_s for e in self.core.events]
        assert all(a <= b + 1e-12 for a, b in zip(ts, ts[1:])), "event times out of order"
        assert all(0 <= t <= self.core.now + 1e-9 for t in ts)

    @invariant()
    def buffer_changes_only_by_downloads_and_playback(self):
        s = self.core.state
        played = float(s.played_s[0])
        # buffer now = buffer before + media that arrived since − media played since
        arrived = self.media_in - getattr(self, "_media_seen", 0.0)
        assert math.isclose(float(s.buffer_s[0]), self.prev_buffer + arrived - (played - self.prev_played), abs_tol=1e-6)
        self.prev_buffer, self.prev_played, self._media_seen = float(s.buffer_s[0]), played, self.media_in

    @invariant()
    def stall_accounting(self):
        s = self.core.state
        total = float(s.stall_s[0])
        assert math.isclose(total, sum(self.core.rebuffer_per_segment) + self.core._stall_during_fetch, abs_tol=1e-6)
        starts = [e for e in self.core.events if e.kind == "stall_start"]
        assert len(starts) == int(s.stall_count[0])
        if not self.preset.startup_is_stall and not s.playing[0]:
            assert total == 0.0, "a stall before playback started"

    @invariant()
    def startup_once_end_once(self):
        kinds = [e.kind for e in self.core.events]
        assert kinds.count("startup") <= 1
        assert kinds.count("end") <= 1
        if self.done:
            assert kinds.count("end") == 1 and kinds[-1] == "end"
            played = self.content.n_segments - (0 if self.preset.last_segment_played else 1)  # pensieve: not the last
            assert len(self.core.chosen) == played
            if self.preset.play_out_at_end:
                assert math.isclose(float(self.core.state.played_s[0]),
                                    float(self.content.segment_durations_s[:played].sum()), abs_tol=1e-6)


TestSessionInvariants = SessionMachine.TestCase
