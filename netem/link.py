"""The analytical link: exact transfer times on trace-driven capacity, vectorised over sessions.

Each trace becomes a cumulative-capacity curve (knots of time → bits deliverable since
the period began, linear between knots; a Mahimahi trace has a jump of 1500 bytes at each
delivery opportunity). All traces' curves are laid end to end in one monotone array, so
one `np.searchsorted` answers every session at once in O(log n): no Python loop over
sessions or trace steps. Traces wrap: a transfer that outlasts the period continues from
the start, as Mahimahi and Pensieve do.

Per-request latency is either none, a fixed value, the trace's own latency at the request
time, or Sabre's integrated latency (a request needs one "latency unit"; a period of
latency L supplies 1/L units per second, so a latency that straddles a period change
takes part of each; the trace clock advances meanwhile). Pensieve adds its fixed 80 ms
outside trace time: `latency_advances_trace=False` says so, and the simulator then
keeps the session clock ahead of the trace clock by the latency it has paid.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from netem.errors import InputError
from netem.trace import MAHIMAHI_PACKET_BYTES, Trace

LATENCY_MODES = ("none", "fixed", "trace", "sabre")


@dataclass(frozen=True)
class LinkParams:
    """How a request turns into time. Units: seconds, and a fraction for efficiency."""

    latency: str = "none"          # none | fixed | trace | sabre
    latency_s: float = 0.0         # the fixed latency, when latency == "fixed"
    latency_advances_trace: bool = True
    overhead_s: float = 0.0        # fixed per-request time on top of the latency (client/server work)
    overhead_s_per_byte: float = 0.0   # and per byte of a VoD request (a played request's cost grows with its
                                       # size); live chunk timing (player.core.live) takes overhead_s only
    efficiency: float = 1.0        # fraction of capacity that carries payload
    noise: tuple[float, float] | None = None   # uniform multiplier range on transfer time
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency not in LATENCY_MODES:
            raise InputError(f"latency mode must be one of {', '.join(LATENCY_MODES)}, got {self.latency!r}")
        if not (0 < self.efficiency <= 1):
            raise InputError(f"efficiency must be in (0, 1], got {self.efficiency!r}")
        if not (self.latency_s >= 0 and np.isfinite(self.latency_s)):
            raise InputError(f"latency must be a non-negative number of seconds, got {self.latency_s!r}")
        if not (self.overhead_s >= 0 and np.isfinite(self.overhead_s)):
            raise InputError(f"overhead must be a non-negative number of seconds, got {self.overhead_s!r}")
        if not (self.overhead_s_per_byte >= 0 and np.isfinite(self.overhead_s_per_byte)):
            raise InputError(f"overhead per byte must be a non-negative number of seconds, got "
                             f"{self.overhead_s_per_byte!r}")
        if self.noise is not None:
            lo, hi = self.noise
            if not (0 < lo <= hi):
                raise InputError(f"noise range must satisfy 0 < low <= high, got {self.noise!r}")


#: Named presets. `sabre` and `pensieve` reproduce those simulators' network semantics.
PRESETS: dict[str, LinkParams] = {
    "ideal": LinkParams(),
    "trace-latency": LinkParams(latency="trace"),
    "sabre": LinkParams(latency="sabre"),
    "pensieve": LinkParams(latency="fixed", latency_s=0.08, latency_advances_trace=False, efficiency=0.95),
}


def preset(name: str, **overrides) -> LinkParams:
    if name not in PRESETS:
        raise InputError(f"unknown link preset {name!r}; known: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


class _PerCurve:
    """Per-curve arrays gathered for one array of curve indices and kept while the same
    index array comes back unchanged: the simulator asks every step for every session's
    curve, and these gathers were a dozen passes over the sessions per transfer. A different
    array (or the same one changed in place) is gathered afresh."""

    def __init__(self, **arrays: np.ndarray) -> None:
        self._arrays = arrays
        self._key: np.ndarray | None = None
        self._seen: np.ndarray | None = None
        self._values: dict[str, np.ndarray] = {}

    def __call__(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        idx = np.asarray(idx)
        if self._key is not idx or not np.array_equal(self._seen, idx):
            self._key, self._seen = idx, idx.copy()
            self._values = {name: a[idx] for name, a in self._arrays.items()}
        return self._values


class _Locator:
    """`np.searchsorted(a, local + offset[curve], side) - 1`, exactly, in O(1) per query.

    `a` holds several sorted runs (one per curve) laid end to end; curve i's queries fall in
    [offset_i, offset_i + span_i]. A table of buckets per curve (about two per knot) gives,
    for a query, a knot at or before its answer; a couple of vectorised steps forward reach
    the answer, and the rare query still short of it (a cluster of knots in one bucket) falls
    back to the binary search. The simulator asks this on every step for every session, and
    the binary search's scattered memory reads were the link's main cost.
    """

    ROUNDS = 2

    def __init__(self, a: np.ndarray, offset: np.ndarray, span: np.ndarray, counts: np.ndarray, side: str) -> None:
        self.a = a
        self.side = side
        self.padded = np.append(a, np.inf)          # a[k + 1] for k = len(a) - 1 is +inf
        nb = np.maximum(2 * counts, 1).astype(np.int64)
        self.buckets = nb
        self.width = np.where(span > 0, span / nb, 1.0)
        self.inv_width = 1.0 / self.width
        self.start = np.concatenate([[0], np.cumsum(nb)[:-1]]).astype(np.int64)
        edges = np.repeat(offset, nb) + (np.arange(int(nb.sum())) - np.repeat(self.start, nb)) * np.repeat(self.width, nb)
        # the answer for a query a hair below each bucket's lower edge: never past a query's answer
        slack = 1e-9 * np.maximum(np.abs(edges), 1.0)
        self.table = np.searchsorted(a, edges - slack, side=side) - 1
        self._per_curve = _PerCurve(inv_width=self.inv_width, top=nb - 1, start=self.start)

    def locate(self, idx: np.ndarray, local: np.ndarray, query: np.ndarray) -> np.ndarray:
        """The answer for `query` (= local + offset of curve `idx`, as the caller computed it)."""
        g = self._per_curve(idx)
        b = (local * g["inv_width"]).astype(np.int64)
        np.clip(b, 0, g["top"], out=b)
        k = self.table[g["start"] + b]
        a = self.padded
        right = self.side == "right"
        for _ in range(self.ROUNDS):
            nxt = a[k + 1]
            k += (nxt <= query) if right else (nxt < query)
        nxt = a[k + 1]
        short = (nxt <= query) if right else (nxt < query)
        if short.any():
            k[short] = np.searchsorted(self.a, query[short], side=self.side) - 1
        return k


class _Curves:
    """Several piecewise-linear non-decreasing curves laid end to end in one array.

    Curve i covers local time [0, period_i] with values [0, total_i]; it occupies global
    time [toff_i, toff_i + period_i] and global value [voff_i, voff_i + total_i].
    """

    def __init__(self, knots: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        n = len(knots)
        periods = np.array([k[0][-1] for k in knots], dtype=np.float64)
        totals = np.array([k[1][-1] for k in knots], dtype=np.float64)
        self.period = periods
        self.total = totals
        self.toff = np.concatenate([[0.0], np.cumsum(periods)[:-1]]) if n else np.zeros(0)
        self.voff = np.concatenate([[0.0], np.cumsum(totals)[:-1]]) if n else np.zeros(0)
        self.first = np.zeros(n, dtype=np.int64)
        self.last = np.zeros(n, dtype=np.int64)
        ts, vs, pos = [], [], 0
        for i, (t, v) in enumerate(knots):
            ts.append(t + self.toff[i])
            vs.append(v + self.voff[i])
            self.first[i], self.last[i] = pos, pos + t.size - 1
            pos += t.size
        self.t = np.concatenate(ts) if ts else np.zeros(0)
        self.v = np.concatenate(vs) if vs else np.zeros(0)
        # the same knots in each curve's own coordinates: the global arrays only locate a
        # knot; arithmetic stays local so results do not depend on which curves share a batch
        self.tl = np.concatenate([k[0] for k in knots]) if knots else np.zeros(0)
        self.vl = np.concatenate([k[1] for k in knots]) if knots else np.zeros(0)
        # per-segment slopes (segment k runs from knot k to k+1); a zero-length segment is a
        # jump (its slope is never used going forward), a flat one is never crossed backward
        dt = np.diff(self.tl, append=self.tl[-1:] if self.tl.size else self.tl)
        dv = np.diff(self.vl, append=self.vl[-1:] if self.vl.size else self.vl)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.slope = np.where(dt > 0, dv / np.where(dt > 0, dt, 1.0), 0.0)
            self.inv_slope = np.where(dv > 0, dt / np.where(dv > 0, dv, 1.0), 0.0)
        counts = self.last - self.first + 1
        self._by_time = _Locator(self.t, self.toff, periods, counts, "right")
        self._by_value = _Locator(self.v, self.voff, totals, counts, "left")
        self._per_curve = _PerCurve(toff=self.toff, voff=self.voff, last_seg=self.last - 1, first=self.first,
                                    period=self.period, total=self.total)

    def value_at(self, idx: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Local curve value at local time tau in [0, period)."""
        g = self._per_curve(idx)
        k = self._by_time.locate(idx, tau, tau + g["toff"])
        np.minimum(k, g["last_seg"], out=k)
        return self.vl[k] + (tau - self.tl[k]) * self.slope[k]

    def time_of(self, idx: np.ndarray, value: np.ndarray) -> np.ndarray:
        """First local time at which the curve reaches `value` in (0, total]."""
        g = self._per_curve(idx)
        j = self._by_value.locate(idx, value, value + g["voff"])
        np.maximum(j, g["first"], out=j)
        return self.tl[j] + (value - self.vl[j]) * self.inv_slope[j]

    def advance(self, idx: np.ndarray, start: np.ndarray, amount: np.ndarray) -> np.ndarray:
        """Absolute time (periods unrolled) at which `amount` more accrues after `start`."""
        g = self._per_curve(idx)
        period, total = g["period"], g["total"]
        cycles = np.floor(start / period)
        tau = start - cycles * period
        target = self.value_at(idx, tau) + amount
        extra = np.maximum(np.ceil(target / total) - 1.0, 0.0)
        rem = target - extra * total
        return (cycles + extra) * period + self.time_of(idx, rem)


class _StepValues:
    """Per-step values of several periodic traces, laid end to end for one searchsorted."""

    def __init__(self, steps: Sequence[tuple[np.ndarray, float, np.ndarray | None]]) -> None:
        periods = np.array([d for _, d, _ in steps], dtype=np.float64)
        self.period = periods
        self.toff = np.concatenate([[0.0], np.cumsum(periods)[:-1]])
        self.t = np.concatenate([t + off for (t, _, _), off in zip(steps, self.toff)])
        self.v = np.concatenate([np.zeros_like(t) if v is None else v for t, _, v in steps])
        counts = np.array([t.size for t, _, _ in steps], dtype=np.int64)
        self._by_time = _Locator(self.t, self.toff, periods, counts, "right")
        self._per_curve = _PerCurve(period=self.period, toff=self.toff)

    def at(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        g = self._per_curve(idx)
        tau = np.mod(t, g["period"])
        k = self._by_time.locate(idx, tau, tau + g["toff"])
        return self.v[k]


def capacity_knots(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative capacity (bits) over one period, as knots of a piecewise-linear curve."""
    if trace.packet_times_s is not None:
        times, counts = np.unique(trace.packet_times_s, return_counts=True)
        cum = np.cumsum(counts).astype(np.float64) * (MAHIMAHI_PACKET_BYTES * 8)
        before = np.concatenate([[0.0], cum[:-1]])
        t = np.concatenate([[0.0], np.repeat(times, 2), [trace.duration_s]])
        v = np.concatenate([[0.0], np.column_stack([before, cum]).ravel(), [cum[-1]]])
        return t, v
    t = np.append(trace.times_s, trace.duration_s)
    v = np.concatenate([[0.0], np.cumsum(trace.rates_bps * trace.step_durations_s)])
    return t, v


def latency_unit_knots(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    """Sabre's latency units over one period: slope 1/L; a zero-latency step starts with a
    jump of one whole unit (any pending latency ends there at once)."""
    lat = trace.latency_s if trace.latency_s is not None else np.zeros_like(trace.times_s)
    d = trace.step_durations_s
    zero = lat <= 1e-9  # below a nanosecond is no latency (and 1/L would overflow)
    rise = np.where(zero, 0.0, d / np.where(zero, 1.0, lat))
    jump = zero.astype(np.float64)
    # knots: (t_k, U_k) -> (t_k, U_k + jump_k) -> (t_{k+1}, U_k + jump_k + rise_k)
    u_after_jump = np.cumsum(jump + rise) - rise
    u_start = u_after_jump - jump
    t = np.concatenate([np.column_stack([trace.times_s, trace.times_s]).ravel(), [trace.duration_s]])
    v = np.concatenate([np.column_stack([u_start, u_after_jump]).ravel(), [u_after_jump[-1] + rise[-1]]])
    return t, v


@dataclass
class Transfers:
    """Result of a batch of requests; all arrays over the requests."""

    latency_s: np.ndarray    # request sent → first byte
    transfer_s: np.ndarray   # first byte → last byte
    trace_advance_s: np.ndarray  # trace time consumed (latency excluded when it is outside trace time)

    @property
    def total_s(self) -> np.ndarray:
        return self.latency_s + self.transfer_s


@dataclass
class Link:
    """Exact transfer times on a set of traces. Build once per sweep, query per step."""

    traces: Sequence[Trace]
    params: LinkParams = field(default_factory=LinkParams)

    def __post_init__(self) -> None:
        self.traces = list(self.traces)
        if not self.traces:
            raise InputError("a link needs at least one trace")
        self._cap = _Curves([capacity_knots(tr) for tr in self.traces])
        self._lat_units = None
        self._lat_steps = None
        if self.params.latency in ("trace", "sabre"):
            self._lat_steps = _StepValues([(tr.times_s, tr.duration_s, tr.latency_s) for tr in self.traces])
        if self.params.latency == "sabre":
            self._lat_units = _Curves([latency_unit_knots(tr) for tr in self.traces])
        self._rng = np.random.default_rng(self.params.seed)

    def latency(self, idx: np.ndarray, start_s: np.ndarray) -> np.ndarray:
        """Time from request to first byte for requests sent at trace time `start_s`."""
        p = self.params
        if p.latency == "none":
            return np.zeros_like(start_s)
        if p.latency == "fixed":
            return np.full_like(start_s, p.latency_s)
        if p.latency == "trace":
            return self._trace_latency(idx, start_s)
        lat_now = self._trace_latency(idx, start_s)
        end = self._lat_units.advance(idx, start_s, np.ones_like(start_s))
        return np.where(lat_now > 1e-9, np.maximum(end - start_s, 0.0), 0.0)

    def _trace_latency(self, idx: np.ndarray, start_s: np.ndarray) -> np.ndarray:
        return self._lat_steps.at(idx, start_s)

    def transfer(self, idx: np.ndarray, start_s: np.ndarray, size_bytes: np.ndarray,
                 overhead_s: np.ndarray | None = None) -> Transfers:
        """Requests sent at trace time `start_s` on traces `idx`, of `size_bytes` each.
        `overhead_s`: each request's own overhead, in place of the link's `overhead_s` and
        `overhead_s_per_byte` (a session replayed with the overheads measured in it,
        `player.lab.prediction`)."""
        idx = np.asarray(idx, dtype=np.int64)
        start = np.asarray(start_s, dtype=np.float64)
        size = np.asarray(size_bytes, dtype=np.float64)
        bits = size * 8.0 / self.params.efficiency
        lat = self.latency(idx, start)
        if overhead_s is not None:
            lat = lat + np.asarray(overhead_s, dtype=np.float64)
        elif self.params.overhead_s_per_byte:
            lat = lat + (self.params.overhead_s + self.params.overhead_s_per_byte * size)
        elif self.params.overhead_s:     # the usual case: one scalar, no pass over the sizes
            lat = lat + self.params.overhead_s
        first_byte = start + lat if self.params.latency_advances_trace else start
        done = self._cap.advance(idx, first_byte, bits)
        xfer = np.where(bits > 0, np.maximum(done - first_byte, 0.0), 0.0)  # no negative round-off
        if self.params.noise is not None:
            xfer = xfer * self._rng.uniform(*self.params.noise, size=xfer.shape)
        adv = lat + xfer if self.params.latency_advances_trace else xfer
        return Transfers(latency_s=lat, transfer_s=xfer, trace_advance_s=adv)

    def capacity_time(self, idx: np.ndarray, start_s: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """The trace time at which `bits` more capacity (at full efficiency) has accrued after
        trace time `start_s` (never before it): the inverse of `delivered_bits`, for drivers
        that share the capacity among flows (the crowd's processor sharing)."""
        idx = np.asarray(idx, dtype=np.int64)
        start = np.asarray(start_s, dtype=np.float64)
        return np.maximum(self._cap.advance(idx, start, np.asarray(bits, dtype=np.float64)), start)

    def deliver(self, idx: np.ndarray, start_s: np.ndarray, size_bytes: np.ndarray) -> np.ndarray:
        """Trace time at which `size_bytes` more have crossed the link when they start flowing at
        trace time `start_s`: no request latency, no noise, the link's efficiency applied. A
        chunked body (live low latency) is a run of these, each piece leaving once it is
        produced; idle capacity between pieces is not banked."""
        start = np.asarray(start_s, dtype=np.float64)
        bits = np.asarray(size_bytes, dtype=np.float64) * 8.0 / self.params.efficiency
        return np.where(bits > 0, self.capacity_time(idx, start, bits), start)

    def delivered_bits(self, idx: np.ndarray, start_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
        """Capacity (bits, at full efficiency) between two trace times: for progress checks."""
        idx = np.asarray(idx, dtype=np.int64)
        def cum(t):
            t = np.asarray(t, dtype=np.float64)
            cycles = np.floor(t / self._cap.period[idx])
            return cycles * self._cap.total[idx] + self._cap.value_at(idx, t - cycles * self._cap.period[idx])
        return cum(end_s) - cum(start_s)
