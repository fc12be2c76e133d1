"""dash.js `LoLpRule` (lolp/LoLpRule.js): LoL+'s rule around the learning controller.

No request without a throughput estimate. The latency is the player's live latency (0 when
unknown), the throughput the safe estimate; the QoE evaluator is set up per segment with
the ladder's min and max bitrate, and a fresh weight selector (target latency 1.5 s,
minimum buffer 0.3 s) serves each decision. The per-segment QoE dash.js logs from the
previous download is not read by any decision, so it is not kept here.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.lolp.learning_controller import LearningAbrController
from abr.algorithms.dashjs.switch_request import SwitchRequest, no_change

#: LoLpRule's weight-selector constants.
DWS_TARGET_LATENCY_S = 1.5
DWS_BUFFER_MIN_S = 0.3


class LoLpRule:
    """LoL+ for a ladder: its learning controller and the bitrates its QoE is scored in."""

    def __init__(self, n: int, bitrates_bps: np.ndarray, seed: int, learning_rate: float, sigma: float,
                 buffer_min_s: float, dashjs_units: bool) -> None:
        self.controller = LearningAbrController(n, bitrates_bps, seed, learning_rate, sigma, buffer_min_s)
        # LoLpWeightSelector scores bitrates in bit/s against penalties in kbit/s (dash.js)
        self.qoe_bitrates = bitrates_bps if dashjs_units else bitrates_bps / 1000.0

    def request(self, sessions: np.ndarray, active: np.ndarray, safe_bps: np.ndarray, latency_s: np.ndarray,
                buffer_s: np.ndarray, playback_rate: np.ndarray, current: np.ndarray,
                segment_duration_s: float, target_latency_s: np.ndarray) -> SwitchRequest:
        """getSwitchRequest for the `active` rows. Reason: `throughput_bps` (the safe estimate
        used), `latency_s`, and `learned`: whether the map chose (False: a low-buffer
        down-shift)."""
        n = sessions.size
        rung = no_change(n)
        learned = np.zeros(n, dtype=bool)
        latency = np.where(np.isfinite(latency_s) & (latency_s != 0), latency_s, 0.0)
        asks = active & np.isfinite(safe_bps)
        r = np.flatnonzero(asks)
        if r.size:
            cur = np.clip(current[r], 0, self.controller.bitrates_bps.size - 1)
            rung[r], learned[r] = self.controller.next_quality(
                sessions[r], safe_bps[r], latency[r], buffer_s[r], playback_rate[r], cur, segment_duration_s,
                self.qoe_bitrates, target_latency_s[r])
        return SwitchRequest(rung, {"throughput_bps": np.where(asks, safe_bps, np.nan),
                                    "latency_s": np.where(asks, latency, np.nan), "learned": learned})
