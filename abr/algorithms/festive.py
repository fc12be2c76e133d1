"""FESTIVE: Jiang, Sekar and Zhang, "Improving Fairness, Efficiency, and Stability in
HTTP-based Adaptive Video Streaming with FESTIVE", CoNEXT 2012, §5.

* Bandwidth estimate: harmonic mean of the last 20 throughput samples, times p = 0.85.
* Stateful, gradual switching: from rung k (level k+1 counting from 1) the reference
  rung goes up by one only after k+1 consecutive segments at rung k and only if that
  rung's bitrate fits the estimate; it goes down by one at once when the current
  bitrate exceeds the estimate.
* Delayed update: switch to the reference only if its score is no worse than staying:
  score(b) = stability(b) + α · efficiency(b), efficiency(b) = |b / min(w, b_ref) − 1|,
  stability = 2^n for the current rung and 2^(n+1) for the reference, n = switches in
  the last 20 s; α = 12.

The randomised request scheduling of §4 (a fairness device between competing players)
is a download-timing decision and is not modelled by a rung choice.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import P_INITIAL
from abr.base import Ladder, Observation, Param, Policy, highest_below
from abr.estimators import harmonic_mean
from abr.registry import register

_RING = 64  # switch times remembered per session (more than any 20 s window holds)


@register("festive")
class Festive(Policy):
    """Harmonic mean of 20 samples × 0.85, gradual switching, stability/efficiency score."""

    PARAMS = (
        Param("window", 20, "samples", "throughput samples in the harmonic mean (paper: 20)"),
        Param("p", 0.85, "ratio", "fraction of the estimate targeted (paper: 0.85)"),
        Param("alpha", 12.0, "-", "weight of efficiency against stability (paper: 12)"),
        Param("switch_window_s", 20.0, "s", "switches counted for the stability score over "
              "this much session time (paper: 20 s)"),
        P_INITIAL,
    )

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        self.prev_rung = np.full(n_sessions, -1, dtype=np.int64)
        self.prev_time = np.full(n_sessions, np.nan)
        self.run = np.zeros(n_sessions, dtype=np.int64)
        self.switch_times = np.full((n_sessions, _RING), -np.inf)
        self.switch_pos = np.zeros(n_sessions, dtype=np.int64)

    def _select(self, obs: Observation) -> np.ndarray:
        s = obs.sessions
        b = self.ladder.bitrates_bps
        top = b.size - 1
        cur = np.asarray(obs.last_rung, dtype=np.int64)
        prev = self.prev_rung[s]
        # segments downloaded in a row at the current rung, and switches (dated by the
        # decision that made them)
        self.run[s] = np.where(cur < 0, 0, np.where(cur == prev, self.run[s] + 1, 1))
        switched = (cur != prev) & (prev >= 0) & (cur >= 0)
        if switched.any():
            ss = s[switched]
            self.switch_times[ss, self.switch_pos[ss] % _RING] = self.prev_time[ss]
            self.switch_pos[ss] += 1
        self.prev_rung[s] = cur
        self.prev_time[s] = obs.time_s
        n_sw = (self.switch_times[s] > (obs.time_s - float(self.switch_window_s))[:, None]).sum(axis=1)

        hm, _ = harmonic_mean(obs.throughput_bps, int(self.window))
        w = hm * float(self.p)
        none = np.isnan(w)
        fresh = highest_below(np.where(none, float(self.initial_bps), w), b)

        c = np.clip(cur, 0, top)
        run = self.run[s]
        down = (cur > 0) & (b[c] > w)
        up = ~down & (cur >= 0) & (cur < top) & (run >= c + 1) & (b[np.minimum(c + 1, top)] <= w)
        ref = np.where(down, c - 1, np.where(up, c + 1, c))
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = np.minimum(w, b[ref])
            eff_cur = np.abs(b[c] / denom - 1.0)
            eff_ref = np.abs(b[ref] / denom - 1.0)
        stab = np.power(2.0, n_sw)
        score_cur = stab + float(self.alpha) * eff_cur
        score_ref = 2.0 * stab + float(self.alpha) * eff_ref
        move = (ref != c) & (score_ref <= score_cur)
        q = np.where(move, ref, c)
        q = np.where(none | (cur < 0), fresh, q)
        self.last_info = {"predicted_bps": w, "reference_rung": np.where(none | (cur < 0), fresh, ref),
                          "switches": n_sw, "score_current": score_cur, "score_reference": score_ref}
        return q
