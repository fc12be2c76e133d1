"""The HTTP player's clock: presentation seconds, which run `time_scale` times faster than the wall.

At ``--time-scale K`` an emulated edge serves ``trace.scaled(K)``; the player reads the same
trace in presentation seconds by multiplying the wall time it measures by K and dividing the
delays it sleeps by K. Every timeout, backoff and budget of the driver is stated in
presentation seconds and turned into wall seconds here, at the edge, by `wall`.
"""
from __future__ import annotations

import asyncio
import math
import time


class Clock:
    """The player's clock in presentation seconds: wall time × `time_scale` since `start()`."""

    def __init__(self, time_scale: float = 1.0) -> None:
        k = float(time_scale)
        if not (math.isfinite(k) and k > 0):
            raise ValueError(f"time scale must be positive, got {time_scale!r}")
        self.time_scale = k
        self.t0 = time.monotonic()

    def start(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self.t0) * self.time_scale

    def wall(self, seconds: float) -> float:
        """Presentation seconds → wall seconds."""
        return max(0.0, seconds) / self.time_scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.wall(seconds))
