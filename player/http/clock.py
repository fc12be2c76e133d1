"""The HTTP player's clock: presentation seconds, which run `time_scale` times faster than the wall.

At ``--time-scale K`` an emulated edge serves ``trace.scaled(K)``; the player reads the same
trace in presentation seconds by multiplying the wall time it measures by K and dividing the
delays it sleeps by K. Every timeout, backoff and budget of the driver is stated in
presentation seconds and turned into wall seconds here, at the edge, by `wall`.
"""
from __future__ import annotations

import asyncio
import math
import os
import selectors
import sys
import time
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


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

    def rescale(self, time_scale: float) -> None:
        """Run at `time_scale` from now on, `now()` carrying on from where it is (the player
        adopting the time scale its edge announces, after the manifest)."""
        now = self.now()
        self.time_scale = float(time_scale)
        self.t0 = time.monotonic() - now / self.time_scale

    def wall(self, seconds: float) -> float:
        """Presentation seconds → wall seconds."""
        return max(0.0, seconds) / self.time_scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.wall(seconds))


def precise_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire within a fraction of a millisecond.

    asyncio's default loop on Linux waits in ``epoll``, whose timeout is whole milliseconds
    rounded up: every timer (a wait for room in the buffer, an edge's latency, the shaper's
    next grant) fires up to 1 ms late, 0.75 ms on average, and at ``--time-scale K`` that is
    K times as much session time. ``select`` takes microseconds (about 0.15 ms late on
    average); it handles descriptors below FD_SETSIZE (1024), plenty for one player and an
    in-process edge. Elsewhere (Windows) the default loop."""
    if os.name != "posix":
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def run_precise(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a `precise_loop` (Python 3.11 and later; on 3.10, the default loop)."""
    if sys.version_info < (3, 11):  # pragma: no cover - no loop_factory before asyncio.Runner
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=precise_loop) as runner:
        return runner.run(main)
