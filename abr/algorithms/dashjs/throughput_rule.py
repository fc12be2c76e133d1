"""dash.js `ThroughputRule` (src/streaming/rules/abr/ThroughputRule.js): the highest rung at
or below the safe throughput estimate, while the buffer is loaded (above the stall
threshold, BUFFER_LOADED) or the stream is dynamic (live: any buffer level), and no
abandonment holds the rung (ABANDON_LOAD)."""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.switch_request import NO_CHANGE, SwitchRequest, optimal_rung


def throughput_rule(safe_bps: np.ndarray, buffer_loaded: np.ndarray, abandon_load: np.ndarray,
                    bitrates_bps: np.ndarray) -> SwitchRequest:
    """The rung each row's safe estimate affords; NO_CHANGE without an estimate, with the
    buffer empty, or in ABANDON_LOAD. Reason: the safe throughput (bit/s)."""
    asks = np.isfinite(safe_bps) & buffer_loaded & ~abandon_load
    rung = np.where(asks, optimal_rung(safe_bps, bitrates_bps), NO_CHANGE).astype(np.int64)
    return SwitchRequest(rung, {"throughput_bps": np.where(asks, safe_bps, np.nan)})
