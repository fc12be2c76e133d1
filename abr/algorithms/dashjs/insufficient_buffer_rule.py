"""dash.js `InsufficientBufferRule` (src/streaming/rules/abr/InsufficientBufferRule.js).

From the third media segment on (`segmentIgnoreCount` 2, counted down by each appended
segment): the lowest rung while the buffer is empty (BUFFER_EMPTY), else the rung at or
below `throughputSafetyFactor` (0.7) × estimate × buffer / segment duration, so that the
next segment can arrive before the buffer runs out.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.switch_request import NO_CHANGE, SwitchRequest, optimal_rung


class InsufficientBufferRule:
    """Per-session count of appended media segments and the cap it decides."""

    def __init__(self, n: int, safety: float, ignore_segments: int) -> None:
        self.safety = float(safety)
        self.ignore_segments = int(ignore_segments)
        self.appended = np.zeros(n, dtype=np.int64)

    def on_bytes_appended(self, sessions: np.ndarray, appended: np.ndarray) -> None:
        """BYTES_APPENDED_END_FRAGMENT: one more media segment in the rows where `appended`."""
        self.appended[sessions] += appended

    def request(self, sessions: np.ndarray, later: np.ndarray, playing: np.ndarray,
                buffer_loaded: np.ndarray, estimate_bps: np.ndarray, buffer_s: np.ndarray,
                segment_duration_s: float, bitrates_bps: np.ndarray) -> SwitchRequest:
        """Reason: `bitrate_bps`, the bound it computed (safety × estimate × buffer / L), and
        `buffer_empty`, where it asked for the lowest rung because the buffer ran out."""
        active = later & (self.appended[sessions] >= self.ignore_segments)
        empty_now = active & playing & ~buffer_loaded
        bound = self.safety * estimate_bps * buffer_s / segment_duration_s
        ok = active & ~empty_now & np.isfinite(bound) & (bound > 0)
        rung = np.where(empty_now, 0, np.where(ok, optimal_rung(bound, bitrates_bps), NO_CHANGE))
        return SwitchRequest(rung.astype(np.int64), {"bitrate_bps": bound, "buffer_empty": empty_now})
