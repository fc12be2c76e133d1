"""dash.js 5's `BolaRule` (BOLA-E; src/streaming/rules/abr/BolaRule.js), vectorised.

Spiteri, Sitaraman and Sparacio, "From Theory to Practice: Improving Bitrate Adaptation in
the DASH Reference Player", MMSys 2018. With dash.js's constants:

* Utilities ln(b) − ln(b_0) + 1; buffer time max(bufferTimeDefault 18 s, 10 s + 2 s ×
  rungs); γp and Vp from it (`_calculateBolaParameters`); the minimum and maximum buffer
  level of each rung.
* Startup state: choose like the throughput rule and set the placeholder buffer so that
  BOLA agrees. The state is left once a media segment has loaded since BOLA's state was
  created (its `lastSegmentDurationS`; so never on its first call) and the buffer holds
  one segment duration.
* Steady state: argmax (Vp·(u_i − 1 + γp) − (buffer + placeholder)) / b_i, ties to the
  higher rung; never up past both the current and the throughput rung (BOLA-O). The
  placeholder grows by the idle time since the last download finished (or since the last
  call, when no finish is known), decays ×0.99 per segment and is capped by the last
  rung's top level, is cleared when the buffer runs empty, and pays for any excess before
  BOLA asks the scheduler to wait (the wait is the reason's `delay_s`; at the top rung the
  buffer target decides instead).
* An abandoned download deflates the placeholder (`_onFragmentLoadingAbandoned`).
* A re-fetched segment (fast switching: a segment no further than the most advanced one
  loaded) grows the placeholder by its duration, as it did not grow the buffer
  (`lastSegmentWasReplacement`).
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.switch_request import SwitchRequest, no_change, optimal_rung

MINIMUM_BUFFER_S = 10.0
MINIMUM_BUFFER_PER_BITRATE_LEVEL_S = 2.0
PLACEHOLDER_BUFFER_DECAY = 0.99

#: BolaRule's states, as stored per session.
STATE_NONE, STATE_STARTUP, STATE_STEADY = 0, 1, 2


class BolaRule:
    """BOLA's parameters for a ladder and its per-session state."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, buffer_time_default_s: float) -> None:
        b = bitrates_bps
        R = b.size
        self.bitrates_bps = b
        u = np.log(b)
        self.u = u - u[0] + 1.0
        self.one_bitrate = bool(R < 2 or np.argmax(self.u) == 0)
        buffer_time = max(float(buffer_time_default_s), MINIMUM_BUFFER_S + MINIMUM_BUFFER_PER_BITRATE_LEVEL_S * R)
        if not self.one_bitrate:
            self.gp = (self.u[-1] - 1.0) / (buffer_time / MINIMUM_BUFFER_S - 1.0)
            self.Vp = MINIMUM_BUFFER_S / self.gp
        else:
            self.gp = self.Vp = float("nan")
        # minimum buffer level per rung (_minBufferLevelForRepresentation)
        self.min_level = np.zeros(R)
        for q in range(1, R):
            i = np.arange(q)
            lv = self.Vp * (self.gp + (b[q] * self.u[i] - b[i] * self.u[q]) / (b[q] - b[i]))
            self.min_level[q] = max(0.0, float(np.max(lv))) if not self.one_bitrate else 0.0
        self.max_level = self.Vp * (self.u + self.gp)
        self.state = np.zeros(n, dtype=np.int8)
        self.loaded = np.zeros(n, dtype=bool)         # a segment loaded since the state exists (lastSegmentDurationS)
        self.placeholder = np.zeros(n)
        self.finish_known = np.zeros(n, dtype=bool)   # lastSegmentFinishTimeMs is set
        self.last_call = np.full(n, np.nan)           # lastCallTimeMs

    def on_segment_loaded(self, sessions: np.ndarray, later: np.ndarray, buffer_empty: np.ndarray,
                          buffer_before_s: np.ndarray, elapsed_s: np.ndarray, idle_s: np.ndarray,
                          last_rung: np.ndarray, replaced_s: np.ndarray | None = None) -> None:
        """The previous media segment's events, in dash.js's order: BUFFER_EMPTY during its
        download clears a steady placeholder; MEDIA_FRAGMENT_LOADED (`_checkNewSegment`,
        once the state exists) decays the placeholder and caps it so that the buffer at the
        request plus placeholder stays within the last rung's top level, then adds
        `replaced_s` (the duration of a re-fetched segment, 0 for a new one); METRIC_ADDED
        records the finish time."""
        s = sessions
        ph = self.placeholder[s]
        ph = np.where(buffer_empty & (self.state[s] == STATE_STEADY), 0.0, ph)
        exists = (self.state[s] > STATE_NONE) & later & (not self.one_bitrate)
        self.loaded[s] |= exists
        if exists.any():
            buf_at_request = buffer_before_s + np.maximum(elapsed_s - idle_s, 0.0)
            cap = np.maximum(0.0, self.max_level[np.clip(last_rung, 0, self.max_level.size - 1)] - buf_at_request)
            ph = np.where(exists, np.minimum(ph * PLACEHOLDER_BUFFER_DECAY, cap), ph)
            if replaced_s is not None:
                ph = np.where(exists, ph + replaced_s, ph)
        self.finish_known[s] |= later
        self.placeholder[s] = ph

    def request(self, sessions: np.ndarray, active: np.ndarray, buffer_s: np.ndarray, now_s: np.ndarray,
                last_rung: np.ndarray, idle_s: np.ndarray, safe_bps: np.ndarray,
                segment_duration_s: float) -> SwitchRequest:
        """BolaRule.getSwitchRequest for the `active` rows. Reason: `state` (the state it
        decided in: 1 startup, 2 steady, 0 not asked), `placeholder_s` after the decision
        and `delay_s`, the wait BOLA asks for before the request."""
        s = sessions
        n = s.size
        b = self.bitrates_bps
        rung = no_change(n)
        delay = np.zeros(n)
        state = np.zeros(n, dtype=np.int8)
        ph = self.placeholder[s]
        if active.any():
            rows = np.flatnonzero(active)
            new = self.state[s[rows]] == STATE_NONE
            self.state[s[rows[new]]] = STATE_STARTUP
            st = self.state[s[rows]]
            state[rows] = st
            # startup: choose by throughput, set the placeholder so BOLA agrees
            r1 = rows[(st == STATE_STARTUP) & np.isfinite(safe_bps[rows])]
            if r1.size:
                q = optimal_rung(safe_bps[r1], b)
                rung[r1] = q
                ph[r1] = np.maximum(0.0, self.min_level[q] - buffer_s[r1])
                go = self.loaded[s[r1]] & (buffer_s[r1] >= segment_duration_s)
                self.state[s[r1[go]]] = STATE_STEADY
            r2 = rows[st == STATE_STEADY]
            if r2.size:
                rung[r2], ph[r2], delay[r2] = self._steady(s[r2], buffer_s[r2], now_s[r2], last_rung[r2],
                                                           idle_s[r2], safe_bps[r2], ph[r2])
        self.placeholder[s] = ph
        return SwitchRequest(rung, {"state": state, "placeholder_s": ph.copy(), "delay_s": delay})

    def _steady(self, s: np.ndarray, buf: np.ndarray, now: np.ndarray, last: np.ndarray, idle: np.ndarray,
                safe: np.ndarray, ph: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steady-state rung, placeholder and delay for the rows of sessions `s`."""
        b = self.bitrates_bps
        R = b.size
        known = self.finish_known[s]
        since_call = np.nan_to_num(now - self.last_call[s])
        ph = ph + np.where(known, idle, np.maximum(since_call, 0.0))
        self.finish_known[s] = False
        self.last_call[s] = now
        level = buf + ph
        score = (self.Vp * (self.u[None, :] - 1.0 + self.gp) - level[:, None]) / b[None, :]
        q = (R - 1 - np.argmax(score[:, ::-1], axis=1)).astype(np.int64)  # ties to the higher rung
        cur = np.clip(last, 0, R - 1)
        qt = optimal_rung(safe, b)
        up = (q > cur) & (q > qt)
        q = np.where(up, np.where(qt > cur, qt, cur), q)
        d = np.maximum(0.0, level - self.max_level[q])
        pay = d <= ph  # first reduce the placeholder, then ask the scheduler to wait
        d, ph = np.where(pay, 0.0, d - ph), np.where(pay, ph - d, 0.0)
        d = np.where(q == R - 1, 0.0, d)  # at the top rung the buffer target decides
        return q, ph, d

    def on_abandon(self, sessions: np.ndarray, new_rung: np.ndarray, buffer_s: np.ndarray) -> None:
        """`_onFragmentLoadingAbandoned`: the placeholder may not exceed what the new rung's
        minimum level (10 s for the lowest) leaves above the buffer."""
        exists = (self.state[sessions] > STATE_NONE) & (not self.one_bitrate)
        if exists.any():
            r = sessions[exists]
            q = new_rung[exists]
            want = np.where(q > 0, self.min_level[q], MINIMUM_BUFFER_S)
            cap = np.maximum(0.0, want - buffer_s[exists])
            self.placeholder[r] = np.minimum(self.placeholder[r], cap)
