"""The live origin's clock: seconds since the Unix epoch, as the origin believes them.

Everything time-dependent in the live origin — which segments exist, the MPD, the
UTCTiming answers, when a low-latency chunk may leave — reads one clock with two methods:

* ``now() -> float``: the origin's wall-clock time (seconds since 1970-01-01 UTC);
* ``await sleep_until(t)``: return once ``now() >= t``.

`SystemClock` follows the machine's clock, optionally `offset_s` ahead (negative: behind)
to test a player's clock synchronisation, and optionally running `time_scale` times
faster than real time (``--time-scale K``: at start it reads the machine's time plus the
offset, then advances K seconds per real second). `ManualClock` moves only when a test
says so, so tests never wait on real time.
"""
from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

from netem.errors import InputError

#: Bound on the re-checks of `SystemClock.sleep_until` (the machine clock may step).
MAX_SLEEP_ROUNDS = 1000


class LiveClock(Protocol):
    """What the origin needs of a clock."""

    def now(self) -> float: ...

    async def sleep_until(self, t: float) -> None: ...


class SystemClock:
    """The machine's clock, shifted by `offset_s` and running `time_scale` times faster."""

    def __init__(self, offset_s: float = 0.0, time_scale: float = 1.0, anchor_s: float | None = None) -> None:
        if not math.isfinite(offset_s) or abs(offset_s) > 10 * 365 * 86400:
            raise InputError(f"clock offset must be finite seconds (at most ten years), got {offset_s!r}",
                             where="--clock-offset")
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise InputError(f"time scale must be positive, got {time_scale!r}", where="--time-scale")
        self.offset_s = float(offset_s)
        self.time_scale = float(time_scale)
        self.anchor_s = time.time() if anchor_s is None else float(anchor_s)

    def now(self) -> float:
        real = time.time()
        return self.anchor_s + (real - self.anchor_s) * self.time_scale + self.offset_s

    async def sleep_until(self, t: float) -> None:
        for _ in range(MAX_SLEEP_ROUNDS):
            ahead = t - self.now()
            if ahead <= 0:
                return
            await asyncio.sleep(ahead / self.time_scale)


class ManualClock:
    """A clock that stands still until `set` or `advance` moves it (for tests).

    `waiting` lists the times that sleepers are waiting for, so a test can tell that the
    origin is holding something back without sleeping itself."""

    def __init__(self, now_s: float) -> None:
        self._now = float(now_s)
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def now(self) -> float:
        return self._now

    @property
    def waiting(self) -> list[float]:
        return sorted(t for t, f in self._sleepers if not f.done())

    def set(self, now_s: float) -> None:
        if now_s < self._now:
            raise ValueError("a manual clock only moves forward")
        self._now = float(now_s)
        keep = []
        for t, fut in self._sleepers:
            if fut.done():
                continue
            if t <= self._now:
                fut.set_result(None)
            else:
                keep.append((t, fut))
        self._sleepers = keep

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            return
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((t, fut))
        await fut
