"""dash.js `LoLpQoeEvaluator.calculateSingleUseQoe` (lolp/LoLpQoEEvaluator.js), vectorised.

QoE of one segment = bitrate reward − rebuffer penalty − latency penalty − playback-speed
penalty, with the weights dash.js gives (Bentaleb 2020):

* bitrate reward: segment duration × bitrate;
* rebuffer: max bitrate (kbit/s) × rebuffer s;
* latency: min bitrate (kbit/s) × 0.05 × latency up to 1.1 s, max bitrate (kbit/s) × 0.1 ×
  latency above (up to 1e8 s; beyond that nothing);
* playback speed: min bitrate (kbit/s) × |1 − rate|.

A single-use evaluation has no previous bitrate, so no switch penalty. LoLpRule passes the
bitrate in bit/s while the penalties are scaled in kbit/s (the caller chooses).
"""
from __future__ import annotations

import numpy as np

#: (latency threshold s, penalty factor on min / max bitrate): the first threshold at or above
#: the latency applies.
LATENCY_LOW_S = 1.1
LATENCY_HIGH_S = 100_000_000.0


def single_use_qoe(bitrate: np.ndarray, rebuffer_s: np.ndarray, latency_s: np.ndarray,
                   playback_rate: np.ndarray, segment_duration_s: float, min_kbps: float,
                   max_kbps: float) -> np.ndarray:
    """calculateSingleUseQoe, broadcast over its arguments."""
    reward = segment_duration_s if segment_duration_s else 1.0
    rebuffer_penalty = max_kbps if max_kbps else 1000.0
    speed_penalty = min_kbps if min_kbps else 200.0
    low, high = min_kbps * 0.05, max_kbps * 0.1
    latency_sum = np.where(latency_s <= LATENCY_LOW_S, low * latency_s,
                           np.where(latency_s <= LATENCY_HIGH_S, high * latency_s, 0.0))
    return (reward * bitrate - rebuffer_penalty * rebuffer_s - latency_sum
            - speed_penalty * np.abs(1 - playback_rate))
