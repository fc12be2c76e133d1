"""dash.js `L2ARule` (src/streaming/rules/abr/L2ARule.js): Learn2Adapt-LowLatency.

Karagkioules, Mekuria, Griffioen and Wagenaar, "Online learning for low-latency adaptive
streaming", MMSys 2020 (github.com/unifiedstreaming/Learn2Adapt-LowLatency). Online convex
optimisation: a probability vector w over the rungs is moved by a Lagrangian gradient
step, projected back onto the simplex, and the rung whose bitrate is closest to the
expected bitrate Σ w_i·b_i is chosen; the Lagrangian multiplier Q tracks the buffer
displacement (how much faster than real time the chosen rungs download).

With dash.js's constants: horizon 4, vl = 4^0.99 (cautiousness), step size
alpha = max(horizon, vl·√horizon), REACT 2, B_target 1.5 s.

* Startup: like the throughput rule (the safe estimate), until a media segment has loaded
  since the rule's state was created and the buffer reaches B_target; then steady, with
  Q = vl and the previous w all on the rung just chosen.
* Steady, per segment, with c = the newest throughput sample (kbit/s, at least 1), V = the
  segment duration and r = the playback rate:
  sign_i = −1 from the first rung with r·bitrate_i > c on, else +1;
  w_i = w'_i + sign_i · V/(2·alpha) · (Q + vl) · r·bitrate_i / c;  w = Π_simplex(w);
  Q = max(0, Q − V + V·r·(Σ b_i·w_i + Σ b_i·(w_i − w'_i)) / c);
  rung = argmin_i |b_i − Σ b_j·w_j|; a step up of more than one rung is cut to one when
  the next rung's bitrate is at most c; if the chosen bitrate is at least c,
  Q = REACT · max(vl, Q).

dash.js mixes units in two places: the Q update and the step-up check take the bitrates in
bit/s (`rep.bandwidth`) against c in kbit/s, so Q grows a thousand times faster than the
paper's and the step-up cut never applies. `dashjs_units=true` (default) keeps that;
false uses kbit/s throughout, as the paper writes it.

The rule learns over the whole ladder; a rung the observation's mask forbids falls to the
highest allowed rung below it (the Policy's mask rule), where dash.js would leave it out
of its possible representations.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.switch_request import SwitchRequest, no_change, optimal_rung

STATE_NONE, STATE_STARTUP, STATE_STEADY = 0, 1, 2


def simplex_projection(y: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto the probability simplex (L2ARule.
    euclideanProjection; Chen and Ye, arXiv:1101.6081): sort descending, find the
    threshold t from the running sums, return max(y − t, 0)."""
    y = np.asarray(y, dtype=np.float64)
    k, m = y.shape
    s = -np.sort(-y, axis=1)
    cs = np.add.accumulate(s, axis=1)
    tmax = (cs[:, -1] - 1.0) / m
    if m > 1:
        t = (cs[:, :-1] - 1.0) / np.arange(1, m)
        hit = t >= s[:, 1:]
        first = np.argmax(hit, axis=1)
        tmax = np.where(hit.any(axis=1), t[np.arange(k), first], tmax)
    return np.maximum(y - tmax[:, None], 0.0)


def row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a_i·b_i per row, summed left to right (as dash.js's loop; batch-independent)."""
    p = np.broadcast_to(a * b, np.broadcast_shapes(np.shape(a), np.shape(b)))
    return np.add.accumulate(p, axis=1)[:, -1] if p.shape[1] else np.zeros(p.shape[0])


class L2ARule:
    """L2A's constants for a ladder and its per-session state (state, w, Q)."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, horizon: float, vl: float, alpha: float,
                 react: float, buffer_target_s: float, dashjs_units: bool) -> None:
        R = bitrates_bps.size
        self.bitrates_bps = bitrates_bps
        self.kbit = bitrates_bps / 1000.0                       # Representation.bitrateInKbit
        self.q_bitrates = bitrates_bps if dashjs_units else self.kbit   # what the Q update and step-up use
        self.horizon, self.vl, self.alpha, self.react = float(horizon), float(vl), float(alpha), float(react)
        self.buffer_target_s = float(buffer_target_s)
        self.state = np.zeros(n, dtype=np.int8)
        self.loaded = np.zeros(n, dtype=bool)       # a segment loaded since the state exists (lastSegmentDurationS)
        self.prev_w = np.zeros((n, R))
        self.Q = np.zeros(n)

    def on_segment_loaded(self, sessions: np.ndarray, later: np.ndarray) -> None:
        """MEDIA_FRAGMENT_LOADED for the previous segment (only once the state exists)."""
        self.loaded[sessions] |= (self.state[sessions] > STATE_NONE) & later

    def request(self, sessions: np.ndarray, active: np.ndarray, buffer_s: np.ndarray, current: np.ndarray,
                safe_bps: np.ndarray, last_sample_kbps: np.ndarray, playback_rate: np.ndarray,
                segment_duration_s: float) -> SwitchRequest:
        """getSwitchRequest for the `active` rows. Reason: `state` it decided in (1 startup,
        2 steady, 0 not asked), the multiplier `lagrangian_q` after the decision."""
        s = sessions
        n = s.size
        rung = no_change(n)
        act = np.flatnonzero(active)
        new = act[self.state[s[act]] == STATE_NONE]
        self.state[s[new]] = STATE_STARTUP        # _getInitialL2AState: w = [], Q = 0
        self.prev_w[s[new]] = 0.0
        self.Q[s[new]] = 0.0
        state = np.where(active, self.state[s], STATE_NONE).astype(np.int8)
        r1 = np.flatnonzero((state == STATE_STARTUP) & np.isfinite(safe_bps))
        if r1.size:
            q = optimal_rung(safe_bps[r1], self.bitrates_bps)
            rung[r1] = q
            go = self.loaded[s[r1]] & (buffer_s[r1] >= self.buffer_target_s)
            g = s[r1[go]]
            self.state[g] = STATE_STEADY
            self.Q[g] = self.vl
            self.prev_w[g] = np.eye(self.bitrates_bps.size)[q[go]]
        r2 = np.flatnonzero(state == STATE_STEADY)
        if r2.size:
            rung[r2] = self._steady(s[r2], np.clip(current[r2], 0, self.bitrates_bps.size - 1),
                                    last_sample_kbps[r2], playback_rate[r2], segment_duration_s)
        return SwitchRequest(rung, {"state": state, "lagrangian_q": self.Q[s].copy()})

    def _steady(self, s: np.ndarray, cur: np.ndarray, sample_kbps: np.ndarray, rate: np.ndarray,
                V: float) -> np.ndarray:
        b, kbit, bq = self.bitrates_bps, self.kbit, self.q_bitrates
        R = b.size
        c = np.where(sample_kbps < 1.0, 1.0, sample_kbps)[:, None]   # no division by 0 in an outage
        r = rate[:, None]
        Q = self.Q[s]
        prev_w = self.prev_w[s]
        sign = np.where(np.logical_or.accumulate(r * kbit[None, :] > c, axis=1), -1.0, 1.0)
        w = prev_w + sign * (V / (2 * self.alpha)) * ((Q[:, None] + self.vl) * (r * kbit[None, :] / c))
        w = simplex_projection(w)
        diff = w - prev_w
        self.prev_w[s] = w
        c1 = c[:, 0]
        Q = np.maximum(0.0, Q - V + V * rate * ((row_dot(bq[None, :], w) + row_dot(bq[None, :], diff)) / c1))
        q = np.argmin(np.abs(b[None, :] - row_dot(w, b[None, :])[:, None]), axis=1).astype(np.int64)
        up = (q > cur) & (bq[np.minimum(cur + 1, R - 1)] <= c1)     # a cautious, stepwise ascent
        q = np.where(up, cur + 1, q)
        Q = np.where(kbit[q] >= c1, self.react * np.maximum(self.vl, Q), Q)
        self.Q[s] = Q
        return q
