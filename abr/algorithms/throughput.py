"""Throughput rule with a dual EWMA estimate: dash.js, Shaka and Sabre.

* dash.js `ThroughputRule` + `ThroughputHistory` (github.com/Dash-Industry-Forum/dash.js,
  src/streaming/rules/abr/ThroughputRule.js, src/streaming/rules/ThroughputHistory.js):
  fast and slow EWMAs with half-lives 3 s and 8 s of download time, the minimum of the
  two, times the bandwidth safety factor 0.9; the highest rung at or below that.
* Shaka Player (`lib/abr/ewma_bandwidth_estimator.js`, `simple_abr_manager.js`): half-lives
  2 s and 5 s, samples under 16 kB ignored, no estimate before 128 kB; a variant is kept
  when the estimate is at least its bandwidth / 0.95 (`bandwidthDowngradeTarget`), i.e.
  safety 0.95. Shaka's 8 s switch interval is not modelled.
* Sabre `ThroughputRule` (Spiteri et al., MMSys 2018): the same EWMA (8 s / 3 s), safety
  0.9, plus its insufficient-buffer ("low-buffer") rule, here `low_buffer_rule=true`:
  the rung is capped so that a segment fits in safety · buffer · throughput bits, with the
  safety starting at 0.9 and shrinking by 0.9× per decision to 0.5.

Abandonment (on by default, as in dash.js and Sabre): see `_common.abandon_rule`.
A chunked low-latency download, when the session reports its chunk timing, gives its sample
by `chunk_estimator` (`abr.estimators.chunked`), as dash.js's FetchLoader does.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import (ABANDON_PARAMS, P_CHUNK_ESTIMATOR, P_INITIAL, AbandonsByThroughput,
                                    InsufficientBuffer)
from abr.base import Ladder, Observation, Param, Policy, Progress, highest_below
from abr.estimators import ChunkedSampler, DualEwma, newest_sample
from abr.registry import register

#: Estimator settings per player; explicit parameters override them.
PRESETS: dict[str, dict[str, float]] = {
    "dashjs": {"fast_half_life_s": 3.0, "slow_half_life_s": 8.0, "safety": 0.9,
               "min_sample_bytes": 0.0, "min_total_bytes": 0.0},
    "sabre": {"fast_half_life_s": 3.0, "slow_half_life_s": 8.0, "safety": 0.9,
              "min_sample_bytes": 0.0, "min_total_bytes": 0.0},
    "shaka": {"fast_half_life_s": 2.0, "slow_half_life_s": 5.0, "safety": 0.95,
              "min_sample_bytes": 16_000.0, "min_total_bytes": 128_000.0},
}

ESTIMATOR_PARAMS = (
    Param("preset", "dashjs", "-", "estimator defaults: dashjs (3 s / 8 s, safety 0.9), "
          "shaka (2 s / 5 s, safety 0.95, 16 kB / 128 kB minimums) or sabre (as dashjs)"),
    Param("fast_half_life_s", None, "s", "fast EWMA half-life in seconds of download time "
          "(None: from preset)"),
    Param("slow_half_life_s", None, "s", "slow EWMA half-life (None: from preset)"),
    Param("safety", None, "ratio", "bandwidth safety factor applied to the estimate "
          "(None: from preset)"),
    Param("min_sample_bytes", None, "bytes", "ignore samples smaller than this (None: from "
          "preset; Shaka 16000)"),
    Param("min_total_bytes", None, "bytes", "no estimate until this much was sampled (None: "
          "from preset; Shaka 128000)"),
)


def resolve_preset(policy: Policy) -> dict[str, float]:
    """The estimator settings: the preset's, overridden by explicitly given parameters."""
    name = str(policy.preset).lower()
    if name not in PRESETS:
        raise ValueError(f"{policy.name}: unknown preset {policy.preset!r}; "
                         f"known: {', '.join(PRESETS)}")
    out = dict(PRESETS[name])
    for key in out:
        v = getattr(policy, key)
        if v is not None:
            out[key] = float(v)
    return out


def make_estimator(policy: Policy, n: int) -> tuple[DualEwma, float]:
    cfg = resolve_preset(policy)
    est = DualEwma(n, cfg["fast_half_life_s"], cfg["slow_half_life_s"],
                   cfg["min_sample_bytes"], cfg["min_total_bytes"])
    return est, cfg["safety"]


@register("throughput")
class Throughput(AbandonsByThroughput, Policy):
    """Highest rung at or below safety × min(fast EWMA, slow EWMA) of throughput."""

    PARAMS = ESTIMATOR_PARAMS + (
        Param("low_buffer_rule", False, "bool", "Sabre's insufficient-buffer rule: cap the "
              "rung so a segment downloads within safety × buffer (safety 0.9 → 0.5)"),
        P_INITIAL,
        P_CHUNK_ESTIMATOR,
        Param("abandonment", True, "bool", "abandon a download that is too slow and refetch "
              "lower (dash.js AbandonRequestsRule, Sabre; on in both)"),
    ) + ABANDON_PARAMS

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        self.est, self.safety_factor = make_estimator(self, n_sessions)
        self.ibr = InsufficientBuffer(n_sessions, 0.9, 0.5, 0.9, 0)
        self.chunks = ChunkedSampler(n_sessions, self.chunk_estimator)

    def _select(self, obs: Observation) -> np.ndarray:
        s = obs.sessions
        b = self.ladder.bitrates_bps
        tput, dt, valid = newest_sample(obs.throughput_bps, obs.download_time_s)
        if obs.chunk_bytes.shape[1]:  # a chunked download: the sample its chunk timing gives
            rate, time_s, has = self.chunks.sample(obs, b)
            tput, dt = np.where(has, rate, tput), np.where(has, time_s, dt)
            valid = tput > 0
        self.last_delay_s = self.chunks.delay_s(s, obs.buffer_s)
        self.est.update(s, tput, dt, valid)
        est = self.est.estimate(s)
        none = np.isnan(est)
        target = np.where(none, float(self.initial_bps), est * self.safety_factor)
        q = highest_below(target, b)
        info = {"throughput_bps": est, "target_bps": target}
        if self.low_buffer_rule:
            cap, bound = self.ibr.cap(s, obs.buffer_s, est, obs.segment_duration_s, b)
            q = np.minimum(q, cap)
            info["low_buffer_bound_bps"] = bound
        self.last_info = info
        return q

