"""RB, the rate-based baseline of the MPC and Pensieve papers.

Yin et al., "A Control-Theoretic Approach for Dynamic Adaptive Video Streaming over HTTP",
SIGCOMM 2015, §7 ("RB": the harmonic mean of the last 5 chunks' throughput as the
prediction, then the highest bitrate below it); Mao et al., "Neural Adaptive Video
Streaming with Pensieve", SIGCOMM 2017, §5.1 (same baseline).
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import P_INITIAL
from abr.base import Observation, Param, Policy, highest_below
from abr.estimators import harmonic_mean
from abr.registry import register


@register("rb")
class RateBased(Policy):
    """Highest rung at or below the harmonic mean of the last `window` throughput samples."""

    PARAMS = (
        Param("window", 5, "samples", "throughput samples in the harmonic mean (papers: 5)"),
        Param("safety", 1.0, "ratio", "multiply the prediction by this before choosing "
              "(papers: 1.0, no margin)"),
        P_INITIAL,
    )

    def _select(self, obs: Observation) -> np.ndarray:
        b = self.ladder.bitrates_bps
        est, _ = harmonic_mean(obs.throughput_bps, int(self.window))
        pred = np.where(np.isnan(est), float(self.initial_bps), est * float(self.safety))
        self.last_info = {"predicted_bps": est, "target_bps": pred}
        return highest_below(pred, b)
