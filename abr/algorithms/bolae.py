"""BOLA-E as dash.js ships it.

Spiteri, Sitaraman and Sparacio, "From Theory to Practice: Improving Bitrate Adaptation
in the DASH Reference Player", MMSys 2018; dash.js `BolaRule.js` (v3,
github.com/Dash-Industry-Forum/dash.js, src/streaming/rules/abr/), with
`InsufficientBufferRule.js` and `AbandonRequestsRule.js` from the same rule set.

* Utilities υ_m = ln(S_m) − ln(S_1) + 1. Buffer time = max(buffer target,
  10 s + 2 s × rungs); γp = (υ_M − 1) / (buffer time / 10 s − 1) and V = 10 s / γp, so
  the lowest rung is preferred below 10 s and the top one from the buffer time on.
* Start-up: choose by throughput (safety 0.9 × the dual-EWMA estimate) and set the
  placeholder buffer so BOLA would agree; steady state once a segment is buffered.
* Steady state: pick the rung maximising (V(υ_m + γp) − (Q + placeholder)) / S_m (ties to
  the higher rung, as dash.js compares with `>=`). BOLA-O: never go up past both the
  previous rung and the throughput rung. Placeholder buffer: grows by the idle time
  between a download's end and the next decision; decays ×0.99 and is capped at each
  new segment so it cannot outgrow that segment's rung; cleared on a rebuffer; used
  before asking the scheduler to pause (the pause BOLA wants is `last_info["delay_s"]`).
* Insufficient-buffer rule: rung capped at 0.5 × throughput × buffer / segment duration,
  from the third segment on.
* Abandonment (dash.js AbandonRequestsRule, on by default) also deflates the
  placeholder as dash.js's `onFragmentLoadingAbandoned` does.

The session clock gives the idle time as: now − previous decision − newest download
time, which includes the request latency (dash.js measures from the response end).
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import (ABANDON_PARAMS, P_INITIAL, InsufficientBuffer, AbandonsByThroughput,
                                    masked_argmax)
from abr.algorithms.throughput import ESTIMATOR_PARAMS, make_estimator
from abr.base import Ladder, Observation, Param, Policy, Progress, highest_below
from abr.estimators import newest_sample
from abr.registry import register


class BolaECore:
    """BOLA-E's per-session state and decision, vectorised (used by bolae and dynamic)."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, min_buffer_s: float,
                 per_rung_s: float, decay: float) -> None:
        b = bitrates_bps
        self.b = b
        self.top = b.size - 1
        u = np.log(b)
        self.u = u - u[0] + 1.0
        self.min_buffer = float(min_buffer_s)
        self.per_rung = float(per_rung_s)
        self.decay = float(decay)
        self.steady = np.zeros(n, dtype=bool)
        self.placeholder = np.zeros(n)
        self.t_prev = np.full(n, np.nan)
        self.Vp = np.full(n, np.nan)
        self.gp = np.full(n, np.nan)
        # minBufferLevelForQuality(q) = Vp · (gp + max_{i<q} c[q, i]), floored at 0
        R = b.size
        cmax = np.full(R, -np.inf)
        for q in range(1, R):
            i = np.arange(q)
            cmax[q] = np.max((b[q] * self.u[i] - b[i] * self.u[q]) / (b[q] - b[i]))
        self.cmax = cmax

    def params(self, target_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Vp, gp) per row for a buffer target (dash.js calculateBolaParameters)."""
        buffer_time = np.maximum(target_s, self.min_buffer + self.per_rung * self.b.size)
        gp = (self.u[-1] - 1.0) / (buffer_time / self.min_buffer - 1.0)
        return self.min_buffer / gp, gp

    def min_level(self, q: np.ndarray, Vp: np.ndarray, gp: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            lvl = Vp * (gp + self.cmax[q])
        return np.where(q > 0, np.maximum(lvl, 0.0), 0.0)

    def max_level(self, q: np.ndarray, Vp: np.ndarray, gp: np.ndarray) -> np.ndarray:
        return Vp * (self.u[q] + gp)

    def observe(self, s: np.ndarray, obs: Observation, dl_time: np.ndarray, new: np.ndarray,
                Vp: np.ndarray, gp: np.ndarray) -> np.ndarray:
        """Per-call bookkeeping for every row; returns the idle time since the last download."""
        self.Vp[s] = Vp
        self.gp[s] = gp
        buf = obs.buffer_s
        last = np.asarray(obs.last_rung, dtype=np.int64)
        ph = self.placeholder[s]
        # checkNewSegment: decay, and no larger than the last segment's rung justifies
        seg = new & (last >= 0)
        dl = np.nan_to_num(dl_time)
        cap = np.maximum(0.0, self.max_level(np.clip(last, 0, self.top), Vp, gp) - (buf + dl))
        ph = np.where(seg, np.minimum(ph * self.decay, cap), ph)
        # onBufferEmpty: a stall clears the placeholder in steady state
        ph = np.where(self.steady[s] & obs.playing & (buf <= 0.0), 0.0, ph)
        self.placeholder[s] = ph
        idle = obs.time_s - self.t_prev[s] - np.where(new, dl, 0.0)
        self.t_prev[s] = obs.time_s
        return np.where(np.isfinite(idle), np.maximum(idle, 0.0), 0.0)

    def decide(self, s: np.ndarray, buf: np.ndarray, est: np.ndarray, safe: np.ndarray,
               last: np.ndarray, idle: np.ndarray, Vp: np.ndarray, gp: np.ndarray,
               mask: np.ndarray, L: float, initial_q: np.ndarray) -> tuple[np.ndarray, dict]:
        """BOLA-E's rung for the rows `s` (session ids); all other arguments are per row."""
        b, top = self.b, self.top
        k = s.size
        q = np.empty(k, dtype=np.int64)
        delay = np.zeros(k)
        score = np.full(k, np.nan)
        steady = self.steady[s]
        ph = self.placeholder[s]
        q_tput = highest_below(np.nan_to_num(safe), b)
        have = ~np.isnan(est)

        st = ~steady  # start-up
        if st.any():
            qs = np.where(have[st], q_tput[st], initial_q[st])
            q[st] = qs
            ph_st = np.maximum(0.0, self.min_level(qs, Vp[st], gp[st]) - buf[st])
            ph[st] = np.where(have[st], ph_st, ph[st])
            go = have[st] & (buf[st] >= L)  # a segment is in (dash.js lastSegmentDurationS)
            steady_new = steady.copy()
            steady_new[st] = go
            self.steady[s] = steady_new
        sd = steady
        if sd.any():
            p = ph[sd] + idle[sd]
            level = buf[sd] + p
            sc = (Vp[sd, None] * (self.u + gp[sd, None])[:, :] - level[:, None]) / b[None, :]
            qq = masked_argmax(sc, mask[sd], last=True)
            lq = np.clip(last[sd], 0, top)
            qt = np.where(have[sd], q_tput[sd], qq)
            osc = (qq > lq) & (qq > qt)  # BOLA-O
            qq = np.where(osc, np.maximum(qt, lq), qq)
            d = np.maximum(0.0, level - self.max_level(qq, Vp[sd], gp[sd]))
            take = np.minimum(d, p)
            p = p - take
            d = np.where(qq == top, 0.0, d - take)
            q[sd] = qq
            ph[sd] = p
            delay[sd] = d
            score[sd] = sc[np.arange(qq.size), qq]
        self.placeholder[s] = ph
        return q, {"placeholder_s": ph, "delay_s": delay, "bola_score": score}

    def deflate(self, s: np.ndarray, new_q: np.ndarray, buf: np.ndarray) -> None:
        """dash.js onFragmentLoadingAbandoned: shrink the placeholder to the new rung."""
        Vp, gp = self.Vp[s], self.gp[s]
        want = np.where(new_q > 0, self.min_level(new_q, Vp, gp), self.min_buffer)
        cap = np.maximum(0.0, want - buf)
        self.placeholder[s] = np.where(np.isfinite(cap), np.minimum(self.placeholder[s], cap),
                                       self.placeholder[s])


DASH_PARAMS = ESTIMATOR_PARAMS + (
    Param("buffer_target_s", None, "s", "dash.js stableBufferTime, the buffer target "
          "(None: the observation's buffer_cap_s; dash.js default 12 s)"),
    Param("min_buffer_s", 10.0, "s", "BOLA prefers the lowest rung below this buffer "
          "(dash.js MINIMUM_BUFFER_S)"),
    Param("min_buffer_per_rung_s", 2.0, "s", "buffer time is at least min_buffer_s + this × "
          "rungs (dash.js MINIMUM_BUFFER_PER_BITRATE_LEVEL_S)"),
    Param("placeholder_decay", 0.99, "ratio", "placeholder buffer multiplier per segment "
          "(dash.js PLACEHOLDER_BUFFER_DECAY)"),
    Param("insufficient_buffer_rule", True, "bool", "cap the rung at safety × throughput × "
          "buffer / segment duration (dash.js InsufficientBufferRule, on by default)"),
    Param("ibr_safety", 0.5, "ratio", "safety factor of the insufficient-buffer rule "
          "(dash.js v3: 0.5)"),
    Param("ibr_ignore_segments", 2, "segments", "the insufficient-buffer rule starts after "
          "this many downloads (dash.js SEGMENT_IGNORE_COUNT 2)"),
    P_INITIAL,
    Param("abandonment", True, "bool", "abandon a download that is too slow and refetch "
          "lower (dash.js AbandonRequestsRule; on by default)"),
) + ABANDON_PARAMS


class DashRules(AbandonsByThroughput, Policy):
    """The dash.js rule set: dual-EWMA throughput rule, BOLA-E, insufficient buffer."""

    PARAMS = DASH_PARAMS

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        self.est, self.safety_factor = make_estimator(self, n_sessions)
        self.core = BolaECore(n_sessions, ladder.bitrates_bps, float(self.min_buffer_s),
                              float(self.min_buffer_per_rung_s), float(self.placeholder_decay))
        s = float(self.ibr_safety)
        self.ibr = InsufficientBuffer(n_sessions, s, s, 1.0, int(self.ibr_ignore_segments))

    def _use_bola(self, obs: Observation) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _select(self, obs: Observation) -> np.ndarray:
        s = obs.sessions
        b = self.ladder.bitrates_bps
        L = float(obs.segment_duration_s)
        tput, dl, new = newest_sample(obs.throughput_bps, obs.download_time_s)
        self.est.update(s, tput, dl, new)
        est = self.est.estimate(s)
        safe = est * self.safety_factor
        initial_q = highest_below(np.full(obs.n, float(self.initial_bps)), b)
        q = np.where(np.isnan(est), initial_q, highest_below(np.nan_to_num(safe), b))
        info: dict[str, np.ndarray] = {"throughput_bps": est, "safe_throughput_bps": safe}
        if b.size > 1:
            target = (np.asarray(obs.buffer_cap_s, dtype=np.float64)
                      if self.buffer_target_s is None
                      else np.full(obs.n, float(self.buffer_target_s)))
            Vp, gp = self.core.params(target)
            idle = self.core.observe(s, obs, dl, new, Vp, gp)
            use = self._use_bola(obs)
            info["bola"] = use
            rows = np.flatnonzero(use)
            if rows.size:
                qb, binfo = self.core.decide(
                    s[rows], obs.buffer_s[rows], est[rows], safe[rows],
                    np.asarray(obs.last_rung)[rows], idle[rows], Vp[rows], gp[rows],
                    np.asarray(obs.mask, dtype=bool)[rows], L, initial_q[rows])
                q[rows] = qb
                for key, v in binfo.items():
                    full = np.full(obs.n, np.nan)
                    full[rows] = v
                    info[key] = full
        if self.insufficient_buffer_rule:
            cap, bound = self.ibr.cap(s, obs.buffer_s, est, L, b)
            q = np.minimum(q, cap)
            info["ibr_bound_bps"] = bound
        self.last_info = info
        return q

    def abandon_taken(self, progress: Progress, rows: np.ndarray, rungs: np.ndarray) -> None:
        """BOLA-E's placeholder deflates for the rung abandoned to."""
        if self.ladder.n > 1:
            self.core.deflate(np.asarray(progress.sessions)[rows], rungs[rows],
                              np.asarray(progress.buffer_s, dtype=np.float64)[rows])


@register("bolae")
class BolaE(DashRules):
    """BOLA-E (dash.js BolaRule) with placeholder buffer, BOLA-O and the buffer safeguard."""

    def _use_bola(self, obs: Observation) -> np.ndarray:
        return np.ones(obs.n, dtype=bool)
