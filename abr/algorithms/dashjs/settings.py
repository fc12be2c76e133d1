"""dash.js `Settings.js` values that several dash.js policies share (dashjs, l2a, lolp), as
documented parameters, and the throughput model they configure."""
from __future__ import annotations

from abr.algorithms._common import P_CHUNK_ESTIMATOR
from abr.algorithms.dashjs.throughput_model import throughput_model
from abr.base import Param, Policy
from abr.estimators import DualEwma

#: dash.js DEFAULT_VIDEO_BITRATE (kbit/s) as bit/s.
DEFAULT_VIDEO_BPS = 1_000_000.0

#: streaming.abr.throughput: the EWMA and the safety factor.
THROUGHPUT_PARAMS = (
    Param("fast_half_life", 3.0, "weight", "fast EWMA half-life (throughputFastHalfLifeSeconds), in "
          "units of weight = weight_per_ms × transfer ms"),
    Param("slow_half_life", 8.0, "weight", "slow EWMA half-life (throughputSlowHalfLifeSeconds)"),
    Param("weight_per_ms", 0.0015, "1/ms", "EWMA weight per millisecond of transfer "
          "(weightDownloadTimeMultiplicationFactor)"),
    Param("safety", 0.9, "ratio", "bandwidthSafetyFactor applied to the estimate"),
    P_CHUNK_ESTIMATOR,   # lowLatencyDownloadTimeCalculationMode
)

INITIAL_PARAM = Param("initial_bps", DEFAULT_VIDEO_BPS, "bit/s", "bitrate the first segment is chosen "
                      "by (dash.js DEFAULT_VIDEO_BITRATE 1000 kbit/s)")


def policy_throughput_model(policy: Policy, n: int) -> DualEwma:
    """The throughput model a policy with THROUGHPUT_PARAMS asks for."""
    return throughput_model(n, float(policy.fast_half_life), float(policy.slow_half_life),
                            float(policy.weight_per_ms))
