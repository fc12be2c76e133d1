"""The real-time, trace-driven bottleneck shared by every response body of an edge (or proxy).

Two layers, in the style of h11:

* `Capacity` and `Scheduler` are sans-IO. `Capacity` is the link's cumulative-capacity
  curve C(t) (bytes the link can have carried by time t, wrapping the trace, with capacity
  outages cut out); `Scheduler` hands out transmission *grants* of one quantum at a time,
  deficit-round-robin over the flows that want to send. A grant starting at link position
  `pos` (bytes on the C curve) completes — and is released to its flow — at
  ``C⁻¹(pos + q)``, so bytes released by time t never exceed C(t) (the curve counted from
  the start). Their clock is a number you pass in: tests drive them with a fake clock.
* `Shaper` is the asyncio driver: one timer on the event loop, flows that ``await
  flow.take(n)`` before writing n bytes. A flow asks the scheduler only for bytes it has
  not asked for yet (`Scheduler.pending`: its demand and its grant in flight), so a writer
  that asks piece by piece (a live body, chunk by chunk) is granted exactly its bytes, each
  piece from its own first grant.

Time inside the scheduler is seconds since the shaper started on the *wall* clock; the
trace is replayed `time_scale` times faster (``trace.scaled(K)``), and outage windows given
in trace seconds are divided by K.

Pacing: a grant (quantum) is the next 5 ms of capacity on the curve, so it follows a
Mahimahi trace's local rate too, at least one 1500-byte packet and at most 256 KiB (≤ 16 KiB
below 26 Mbit/s, ≤ 5 ms above). At time scale K > 4 it is 20/K ms (at least 1 ms), so
a trace second still spans many quanta. A link that runs dry and gets new demand more than
`grace_s` (2 ms of trace time, so 2/K ms of wall time) later restarts at C(now): idle
capacity is not banked. A flow holding two
quanta of granted-but-unwritten bytes (its writer is blocked by a slow reader) is skipped,
as a full queue would be; grants that fell due while the timer was late are all released
(catch-up), whatever the writers' pace.
"""
from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from typing import Iterable

import numpy as np

from netem.errors import InputError
from netem.trace import MAHIMAHI_PACKET_BYTES, Trace

DEFAULT_QUANTUM_S = 0.005
MIN_QUANTUM_BYTES = MAHIMAHI_PACKET_BYTES
MAX_QUANTUM_BYTES = 256 * 1024
DEFAULT_GRACE_S = 0.002


# -- the capacity curve -----------------------------------------------------------------------
class Capacity:
    """Cumulative capacity C(t) in bytes of a (possibly scaled) trace, wrapping, minus outages.

    `outages` are (start_s, end_s) windows on the same clock as the trace (already scaled);
    the link carries nothing inside them.
    """

    def __init__(self, trace: Trace, outages: Iterable[tuple[float, float]] = ()) -> None:
        self.trace = trace
        self.period_s = float(trace.duration_s)
        self.packets = trace.packet_times_s
        if self.packets is not None:
            self.period_bytes = float(self.packets.size * MAHIMAHI_PACKET_BYTES)
            self._mean_rate = self.period_bytes * 8 / self.period_s
        else:
            durs = trace.step_durations_s
            self._times = trace.times_s
            self._rates = trace.rates_bps
            self._cum = np.concatenate([[0.0], np.cumsum(self._rates * durs / 8.0)])
            self.period_bytes = float(self._cum[-1])
            self._mean_rate = self.period_bytes * 8 / self.period_s
        if self.period_bytes <= 0:
            raise InputError("trace has no capacity", where=trace.source or trace.name)
        self.outages = _merge(outages)
        # raw bytes of capacity removed by all outages ending at or before each one's start
        self._removed = []
        acc = 0.0
        for a, b in self.outages:
            self._removed.append(acc)
            acc += self._raw_bytes(b) - self._raw_bytes(a)
        self._total_removed = acc

    # raw curve (no outages) -----------------------------------------------------------------
    def _raw_bytes(self, t: float) -> float:
        if t <= 0:
            return 0.0
        n, r = divmod(t, self.period_s)
        if self.packets is not None:
            k = int(np.searchsorted(self.packets, r, side="right"))
            return n * self.period_bytes + k * MAHIMAHI_PACKET_BYTES
        k = int(np.searchsorted(self._times, r, side="right")) - 1
        return n * self.period_bytes + float(self._cum[k]) + float(self._rates[k]) * (r - float(self._times[k])) / 8.0

    def _raw_time(self, b: float) -> float:
        """Earliest t with raw C(t) >= b."""
        if b <= 0:
            return 0.0
        n = math.floor(b / self.period_bytes)
        rem = b - n * self.period_bytes
        if rem <= 0:  # exactly a whole number of periods: reached at the end of period n-1
            n -= 1
            rem = self.period_bytes
        if self.packets is not None:
            j = max(0, math.ceil(rem / MAHIMAHI_PACKET_BYTES - 1e-9) - 1)
            j = min(j, self.packets.size - 1)
            return n * self.period_s + float(self.packets[j])
        k = int(np.searchsorted(self._cum, rem, side="left"))  # first cum >= rem
        k = min(max(k, 1), self._rates.size)
        step = k - 1
        rate = float(self._rates[step])
        t = float(self._times[step]) + ((rem - float(self._cum[step])) * 8.0 / rate if rate > 0 else 0.0)
        return n * self.period_s + t

    def _raw_rate(self, t: float) -> float:
        if self.packets is not None:
            return self._mean_rate
        r = t % self.period_s
        k = int(np.searchsorted(self._times, r, side="right")) - 1
        return float(self._rates[max(k, 0)])

    # public ---------------------------------------------------------------------------------
    def bytes_at(self, t: float) -> float:
        """Bytes the link can have carried in [0, t]."""
        raw = self._raw_bytes(t)
        for (a, b), removed in zip(self.outages, self._removed):
            if t <= a:
                return raw - removed
            if t < b:
                return self._raw_bytes(a) - removed
        return raw - self._total_removed

    def time_at(self, b: float) -> float:
        """The earliest time t with bytes_at(t) >= b."""
        offset = 0.0
        for (a, e), removed in zip(self.outages, self._removed):
            if self._raw_bytes(a) - removed >= b:
                break
            offset = removed + self._raw_bytes(e) - self._raw_bytes(a)
        return self._raw_time(b + offset)

    def rate_at(self, t: float) -> float:
        """Capacity (bit/s) at time t; Mahimahi traces report their mean rate."""
        for a, b in self.outages:
            if a <= t < b:
                return 0.0
        return self._raw_rate(t)

    def in_outage(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.outages)


def _merge(windows: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in windows):
        if not (math.isfinite(a) and b > a):
            raise InputError(f"outage window ({a}, {b}) must have from < to")
        a = max(a, 0.0)
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


# -- the scheduler (sans-IO) ------------------------------------------------------------------
class Flow:
    """One sender on the bottleneck. `demand` is bytes it still wants granted (may be inf)."""

    __slots__ = ("id", "demand", "credit", "deficit", "granted", "closed", "waiter", "__weakref__")

    def __init__(self, fid: int, demand: float) -> None:
        self.id = fid
        self.demand = float(demand)
        self.credit = 0  # granted, not yet taken by the writer
        self.deficit = 0.0
        self.granted = 0  # bytes granted over the flow's life
        self.closed = False
        self.waiter: asyncio.Future | None = None

    def __repr__(self) -> str:  # pragma: no cover
        return f"Flow({self.id}, demand={self.demand}, credit={self.credit})"


class Scheduler:
    """Deficit-round-robin grants on a `Capacity` curve, one grant in flight at a time.

    Drive it with: `open()` / `close(flow)`, `add_demand(flow, n, now)`, `take(flow, n, now)`
    (consume granted credit), `next_time()` (when the in-flight grant completes) and
    `advance(now)` (release every grant due by `now`; returns the flows that got credit).
    """

    def __init__(self, capacity: Capacity, *, quantum_s: float = DEFAULT_QUANTUM_S,
                 min_quantum: int = MIN_QUANTUM_BYTES, max_quantum: int = MAX_QUANTUM_BYTES,
                 credit_cap: int | None = None, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.cap = capacity
        self.quantum_s = float(quantum_s)
        self.min_quantum = int(min_quantum)
        self.max_quantum = int(max_quantum)
        self.credit_cap = int(credit_cap) if credit_cap else 0  # 0: two quanta
        self.grace_s = float(grace_s)
        self.pos = 0.0  # link position on the C curve (bytes)
        self.flows: OrderedDict[int, Flow] = OrderedDict()  # round-robin order
        self._next_id = 0
        self._inflight: tuple[Flow, int, float] | None = None  # (flow, bytes, release time)
        self._idle_since = 0.0
        self._catchup: dict[int, int] = {}
        self.released_bytes = 0

    # flows ---------------------------------------------------------------------------------
    def open(self, demand: float = 0.0, now: float = 0.0) -> Flow:
        f = Flow(self._next_id, demand)
        self._next_id += 1
        self.flows[f.id] = f
        if demand > 0:
            self._kick(now)
        return f

    def close(self, flow: Flow) -> None:
        """Remove a flow; its grant in flight (not yet sent) goes back to the link."""
        flow.closed = True
        flow.demand = 0.0
        self.flows.pop(flow.id, None)
        if self._inflight is not None and self._inflight[0] is flow:
            self.pos -= self._inflight[1]
            self._idle_since = self.cap.time_at(self.pos)
            self._schedule()

    def add_demand(self, flow: Flow, nbytes: float, now: float) -> None:
        flow.demand += nbytes
        self._kick(now)

    def take(self, flow: Flow, nbytes: int, now: float) -> int:
        """Consume up to `nbytes` of the flow's granted credit; returns how many."""
        n = min(int(nbytes), flow.credit)
        if n > 0:
            flow.credit -= n
            self._kick(now)  # it may be eligible again
        return n

    def _eligible(self, f: Flow, cap: int) -> bool:
        # credit released by the advance() in progress does not count: a late timer
        # catches up on every grant that was due, whatever the writers' pace
        held = f.credit - self._catchup.get(f.id, 0)
        return f.demand >= 1 and held < cap and not f.closed

    # link --------------------------------------------------------------------------------------
    def quantum(self, t: float) -> int:
        """Bytes per grant at time t: the next 5 ms of capacity, within [1500 B, 256 KiB]."""
        q = self.cap.bytes_at(t + self.quantum_s) - self.cap.bytes_at(t)
        return int(round(min(self.max_quantum, max(self.min_quantum, q))))

    def _kick(self, now: float) -> None:
        """Start a grant if the link is idle and someone wants to send."""
        if self._inflight is not None:
            return
        if now - self._idle_since > self.grace_s:  # really idle: capacity meanwhile is lost
            self.pos = max(self.pos, self.cap.bytes_at(now))
        self._schedule()

    def _schedule(self) -> None:
        """Pick the next flow (deficit round robin) and put one grant in flight."""
        self._inflight = None
        if not self.flows:
            return
        q = self.quantum(self.cap.time_at(self.pos))
        cap = self.credit_cap or 2 * q
        for _ in range(len(self.flows)):
            fid, f = next(iter(self.flows.items()))
            if not self._eligible(f, cap):
                f.deficit = 0.0
                self.flows.move_to_end(fid)
                continue
            if f.deficit < 1:
                f.deficit += q  # a new turn
            g = int(min(f.deficit, f.demand))
            f.deficit -= g
            f.demand -= g
            if f.demand < 1:
                f.deficit = 0.0
            if f.deficit < 1:
                self.flows.move_to_end(fid)  # its turn is over
            self.pos += g
            self._inflight = (f, g, self.cap.time_at(self.pos))
            return

    def next_time(self) -> float | None:
        return None if self._inflight is None else self._inflight[2]

    def pending(self, flow: Flow) -> float:
        """Bytes the flow asked for and has not been given yet: its demand and its grant in
        flight. A writer that wants more than this must ask (`add_demand`)."""
        inflight = self._inflight[1] if self._inflight is not None and self._inflight[0] is flow else 0
        return flow.demand + inflight

    def restart(self) -> bool:
        """Back to link position 0, as at a new start (the caller's clock restarts at 0 too).
        Only an idle link restarts: with a flow open nothing changes and it returns False."""
        if self.flows or self._inflight is not None:
            return False
        self.pos = 0.0
        self._idle_since = 0.0
        return True

    def advance(self, now: float) -> list[Flow]:
        """Release every grant completing by `now`, scheduling the next ones."""
        woken: dict[int, Flow] = {}
        self._catchup = {}
        while self._inflight is not None and self._inflight[2] <= now:
            f, g, t = self._inflight
            self._inflight = None
            self.released_bytes += g
            if not f.closed:
                f.credit += g
                f.granted += g
                woken[f.id] = f
                self._catchup[f.id] = self._catchup.get(f.id, 0) + g
            self._idle_since = t
            self._schedule()
        self._catchup = {}
        return list(woken.values())


# -- the asyncio driver -------------------------------------------------------------------------
class ShapedFlow:
    """A flow on a running `Shaper`: ``n = await flow.take(want)`` then write n bytes."""

    def __init__(self, shaper: "Shaper", flow: Flow) -> None:
        self._shaper = shaper
        self._flow = flow

    @property
    def granted(self) -> int:
        return self._flow.granted

    def add_demand(self, nbytes: float) -> None:
        self._shaper._sched.add_demand(self._flow, nbytes, self._shaper.now())
        self._shaper._arm()

    async def take(self, want: int) -> int:
        """Wait until some of `want` bytes may be sent; returns how many (≥ 1)."""
        sh = self._shaper
        f = self._flow
        while True:
            n = sh._sched.take(f, want, sh.now())
            if n:
                sh._arm()
                return n
            if f.closed:
                raise ConnectionError("flow closed")
            pending = sh._sched.pending(f)
            if pending < want:  # bytes never asked for (not even in the grant in flight): ask now
                sh._sched.add_demand(f, want - pending, sh.now())
            sh._arm()
            fut = asyncio.get_running_loop().create_future()
            f.waiter = fut
            try:
                await fut
            finally:
                f.waiter = None

    def close(self) -> None:
        self._shaper._sched.close(self._flow)
        self._shaper._arm()

    def __enter__(self) -> "ShapedFlow":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Shaper:
    """A trace-driven bottleneck on the running event loop.

    `trace` is replayed `time_scale`× faster; `outages` are (from_s, to_s) windows in trace
    seconds since start; `latency_s` (trace seconds) overrides the trace's own per-request
    latency. `start()` must be called inside the loop (the edge does it on startup).
    """

    def __init__(self, trace: Trace, *, time_scale: float = 1.0, outages: Iterable[tuple[float, float]] = (),
                 latency_s: float | None = None, quantum_s: float | None = None,
                 grace_s: float = DEFAULT_GRACE_S) -> None:
        k = float(time_scale)
        if not math.isfinite(k) or k <= 0:
            raise InputError(f"time scale must be positive, got {time_scale!r}")
        if quantum_s is None:  # finer pacing when replaying faster, at most ~1000 grants/s
            quantum_s = min(DEFAULT_QUANTUM_S, max(0.001, 0.02 / k))
        self.time_scale = k
        self.trace = trace
        self.scaled = trace.scaled(k) if k != 1.0 else trace
        self.capacity = Capacity(self.scaled, [(a / k, b / k) for a, b in outages])
        self.latency_s = latency_s
        # the grace is trace time: at K× a wall-clock grace would bank K× as much idle capacity
        self._sched = Scheduler(self.capacity, quantum_s=quantum_s, grace_s=grace_s / k)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t0 = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # clock ------------------------------------------------------------------------------------
    def start(self, t0: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time() if t0 is None else t0

    @property
    def t0(self) -> float:
        """Loop time (time.monotonic) at which trace time 0 was."""
        return self._t0

    def restart(self, t0: float | None = None) -> bool:
        """Replay the trace from its start again, from loop time `t0` (default now). Only
        between bodies: with a body in flight nothing changes and it returns False."""
        if self._loop is None:
            self.start(t0)
            return True
        if not self._sched.restart():
            return False
        self._t0 = self._loop.time() if t0 is None else t0
        return True

    def now(self) -> float:
        """Wall seconds since start."""
        return self._loop.time() - self._t0

    def trace_time(self) -> float:
        return self.now() * self.time_scale

    def request_latency(self) -> float:
        """Wall seconds to wait before a response's first byte."""
        if self.latency_s is not None:
            return self.latency_s / self.time_scale
        return float(self.scaled.latency_at(self.now()))

    # flows -------------------------------------------------------------------------------------
    def open(self, demand: float = 0.0) -> ShapedFlow:
        if self._loop is None:
            self.start()
        f = self._sched.open(demand, self.now())
        self._arm()
        return ShapedFlow(self, f)

    @property
    def released_bytes(self) -> int:
        return self._sched.released_bytes

    # timer -------------------------------------------------------------------------------------
    def _arm(self) -> None:
        t = self._sched.next_time()
        if t is None:
            return
        if self._timer is not None:
            if self._timer_at == t:
                return
            self._timer.cancel()
        self._timer_at = t
        self._timer = self._loop.call_at(self._t0 + t, self._tick)

    def _tick(self) -> None:
        due = self._timer_at if self._timer_at is not None else 0.0
        self._timer = None
        self._timer_at = None
        for f in self._sched.advance(max(self.now(), due)):
            w = f.waiter
            if w is not None and not w.done():
                w.set_result(None)
        self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for f in list(self._sched.flows.values()):
            self._sched.close(f)
            if f.waiter is not None and not f.waiter.done():
                f.waiter.set_result(None)
