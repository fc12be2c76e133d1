"""Bandwidth traces: piecewise-constant capacity over time, plus optional latency and loss.

A trace is one period of a periodic capacity signal: when a transfer outlasts it, it
wraps around, as Mahimahi and Pensieve's simulator do. Mahimahi traces additionally keep
their packet-level delivery schedule (`packet_times_s`), so the link model can reproduce
Mahimahi's own delivery times instead of a smoothed rate.

Loaders and writers for the on-disk formats live in `netem.formats`; this module is the
in-memory model and its statistics only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from netem.errors import InputError

MAHIMAHI_PACKET_BYTES = 1500

# -- physical bounds ------------------------------------------------------------------------
# A trace is refused when a value lies outside these bounds (loaders name the file, the line
# or entry and the value). They are far beyond any real network, and chosen so that every
# derived number stays finite and exact enough in float64 and int64: capacity per period
# is at most MAX_RATE_BPS × MAX_DURATION_S = 1e22 bits (no overflow, no NaN in the link
# model), a Sabre rate of at most 1e10 kbit/s and a duration of at most 1e12 ms are whole
# int64 numbers when written back.

#: Highest capacity of any step, bit/s: 10 Tbit/s, 12 times the fastest single link
#: standardised today (800 Gbit/s Ethernet) and 10,000 times a fast LTE cell.
MAX_RATE_BPS = 10e12
#: Longest trace period, seconds: 1e9 s (about 31.7 years). Real traces last minutes to
#: hours; a float64 time near 1e9 s still resolves 0.1 µs, far below Mahimahi's 1 ms.
MAX_DURATION_S = 1e9
#: Highest per-request latency, seconds: one hour. A geostationary round trip is 0.6 s and
#: the worst bufferbloat a few seconds; `abrlab serve --latency` has the same bound.
MAX_LATENCY_S = 3600.0
#: Loss is a probability: at most 1.
MAX_LOSS = 1.0


def first_outside(values: np.ndarray, low: float, high: float) -> int:
    """Index of the first value outside [low, high] (NaN is outside), or -1 when none is.

    Two reductions (NaN propagates through min and max, so it fails them); the index is
    looked for only when something is wrong.
    """
    if values.size == 0 or (values.min() >= low and values.max() <= high):
        return -1
    return int(np.argmin((values >= low) & (values <= high)))


def format_limit(value: float) -> str:
    """A bound as text: "1e+13" when that is exact, else with thousands separators
    ("34,359,738,368"), so a message never rounds the limit it states."""
    short = f"{value:g}"
    return short if float(short) == value else f"{value:,.0f}"


def range_problem(value: float, low: float, high: float, unit: str) -> str:
    """Why `value` lies outside [low, high], in words: "is not finite", "is negative",
    "is below 1 s", "is above the limit of 1e+07 Mbit/s"."""
    if not math.isfinite(value):
        return "is not finite"
    if value < low:
        return "is negative" if low == 0 else f"is below {low:g} {unit}"
    return f"is above the limit of {format_limit(high)} {unit}"


@dataclass(frozen=True, eq=False)
class Trace:
    """One period of capacity: step k holds `rates_bps[k]` from `times_s[k]` to the next start.

    `times_s[0]` is 0 and starts strictly increase; the last step ends at `duration_s`,
    after which the trace repeats. `latency_s` and `loss` are per step when present.
    `packet_times_s` (Mahimahi) holds every 1500-byte delivery opportunity in one period,
    sorted; when present it, not the rates, defines delivery for the link model.
    """

    times_s: np.ndarray
    rates_bps: np.ndarray
    duration_s: float
    latency_s: np.ndarray | None = None
    loss: np.ndarray | None = None
    name: str = "trace"
    source: str = ""
    format: str = "memory"
    packet_times_s: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Check the invariants and the physical bounds (`MAX_RATE_BPS` and the others
        above), with a few whole-array comparisons so loading stays cheap."""
        t = np.asarray(self.times_s, dtype=np.float64)
        r = np.asarray(self.rates_bps, dtype=np.float64)
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "rates_bps", r)
        object.__setattr__(self, "duration_s", float(self.duration_s))
        where = self.source or self.name
        if t.ndim != 1 or t.shape != r.shape or t.size == 0:
            raise InputError("trace needs at least one step with matching times and rates", where=where)
        if t[0] != 0.0:
            raise InputError(f"trace must start at time 0, starts at {t[0]!r} s", where=where)
        if not (t[1:] > t[:-1]).all():  # NaN compares false, so this also finds NaN
            raise InputError("step start times must be finite and strictly increasing", where=where)
        if not self.duration_s > t[-1]:
            raise InputError(f"duration {self.duration_s!r} s must exceed the last step start {t[-1]!r} s", where=where)
        if not self.duration_s <= MAX_DURATION_S:
            raise InputError(f"duration {self.duration_s!r} s "
                             f"{range_problem(self.duration_s, 0.0, MAX_DURATION_S, 's (MAX_DURATION_S)')}",
                             where=where)
        self._check_steps("rate", "bit/s (MAX_RATE_BPS)", r, MAX_RATE_BPS, where)
        for name, high, unit in (("latency_s", MAX_LATENCY_S, "s (MAX_LATENCY_S)"), ("loss", MAX_LOSS, "(MAX_LOSS)")):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.shape != t.shape:
                    raise InputError(f"{name} must have one value per step", where=where)
                self._check_steps(name, unit, v, high, where)
                object.__setattr__(self, name, v)
        if self.packet_times_s is not None:
            p = np.asarray(self.packet_times_s, dtype=np.float64)
            if p.ndim != 1 or p.size == 0 or np.any(np.diff(p) < 0) or p[0] < 0 or p[-1] > self.duration_s:
                raise InputError("packet times must be sorted within [0, duration]", where=where)
            object.__setattr__(self, "packet_times_s", p)
        elif not r.any():  # every step lasts > 0 s, so capacity is zero only when every rate is
            raise InputError("total capacity is zero: a download would never finish", where=where)

    @staticmethod
    def _check_steps(what: str, unit: str, values: np.ndarray, high: float, where: str) -> None:
        i = first_outside(values, 0.0, high)
        if i >= 0:
            value = float(values[i])
            raise InputError(f"step {i}: {what} {value!r} {range_problem(value, 0.0, high, unit)}", where=where)

    # -- derived quantities -------------------------------------------------------------
    @property
    def step_durations_s(self) -> np.ndarray:
        return np.diff(np.append(self.times_s, self.duration_s))

    @property
    def capacity_bits(self) -> float:
        """Bits the link can carry in one period."""
        if self.packet_times_s is not None:
            return float(self.packet_times_s.size * MAHIMAHI_PACKET_BYTES * 8)
        return float(np.dot(self.rates_bps, self.step_durations_s))

    @property
    def mean_rate_bps(self) -> float:
        return self.capacity_bits / self.duration_s

    def rate_percentile_bps(self, q: float | np.ndarray) -> np.ndarray | float:
        """Time-weighted percentile of capacity (q in 0..100): the rate the link is at or
        below for q% of the time."""
        d = self.step_durations_s
        order = np.argsort(self.rates_bps, kind="stable")
        cum = np.cumsum(d[order]) / d.sum()
        idx = np.searchsorted(cum, np.asarray(q, dtype=float) / 100.0, side="left")
        idx = np.clip(idx, 0, order.size - 1)
        out = self.rates_bps[order][idx]
        return float(out) if np.ndim(out) == 0 else out

    def window_rates_bps(self, window_s: float = 1.0) -> tuple[float, float]:
        """(lowest, highest) capacity averaged over whole aligned windows of `window_s` seconds.

        The windows are [k·w, (k+1)·w) for k = 0 .. floor(duration/w) - 1: whole windows
        of one period, from its start; a period shorter than one window is one window.
        For a Mahimahi trace they are its 1-second packet counts (the rate curve equals
        the delivered packets at every whole second), so packets a millisecond apart in a
        short last bin are not reported as a rate, as the largest step rate would be.

        Cost is O(steps), not O(windows): a window inside a single step has that step's
        rate, so only the windows holding a step boundary are integrated.
        """
        w = float(window_s)
        if not (math.isfinite(w) and w > 0):
            raise InputError(f"window must be a positive number of seconds, got {window_s!r}")
        if self.duration_s < w:
            return self.mean_rate_bps, self.mean_rate_bps
        ends = np.append(self.times_s, self.duration_s)  # step j spans [ends[j], ends[j+1])
        cum = np.concatenate([[0.0], np.cumsum(self.rates_bps * np.diff(ends))])
        whole = self.rates_bps[np.ceil(ends[:-1] / w) * w + w <= ends[1:]]
        k = np.floor(self.times_s[1:] / w)
        starts = k[(k != self.times_s[1:] / w) & ((k + 1) * w <= self.duration_s)] * w  # a step starts inside
        capacity = np.interp(starts + w, ends, cum) - np.interp(starts, ends, cum)
        rates = np.concatenate([whole, capacity / w])
        return float(rates.min()), float(rates.max())

    def mean_latency_s(self) -> float | None:
        if self.latency_s is None:
            return None
        d = self.step_durations_s
        return float(np.dot(self.latency_s, d) / d.sum())

    def rate_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """Capacity (bit/s) at time t, wrapping; for a Mahimahi trace, its 1-second bins."""
        t = np.asarray(t_s, dtype=np.float64)
        k = np.searchsorted(self.times_s, np.mod(t, self.duration_s), side="right") - 1
        return self.rates_bps[np.clip(k, 0, self.times_s.size - 1)]

    def latency_at(self, t_s: np.ndarray | float) -> np.ndarray:
        """The trace's own per-request latency at time t (wrapping); 0 when it has none."""
        t = np.asarray(t_s, dtype=np.float64)
        if self.latency_s is None:
            return np.zeros_like(t)
        k = np.searchsorted(self.times_s, np.mod(t, self.duration_s), side="right") - 1
        return self.latency_s[np.clip(k, 0, self.times_s.size - 1)]

    def summary(self) -> dict:
        """Summary statistics in the project's units (seconds, bits per second).

        Percentiles are time-weighted over the steps; the lowest and the peak rate are over
        aligned 1-second windows (`window_rates_bps`), so one short step cannot set them.
        """
        p10, p50, p90 = self.rate_percentile_bps(np.array([10.0, 50.0, 90.0]))
        low_1s, peak_1s = self.window_rates_bps(1.0)
        return {
            "name": self.name,
            "format": self.format,
            "steps": int(self.times_s.size),
            "duration_s": self.duration_s,
            "mean_rate_bps": self.mean_rate_bps,
            "p10_rate_bps": float(p10),
            "p50_rate_bps": float(p50),
            "p90_rate_bps": float(p90),
            "min_rate_1s_bps": low_1s,
            "peak_rate_1s_bps": peak_1s,
            "mean_latency_s": self.mean_latency_s(),
            "packets": None if self.packet_times_s is None else int(self.packet_times_s.size),
        }

    def scaled(self, time_scale: float) -> "Trace":
        """The same trace replayed `time_scale` times faster: rates × K, times ÷ K."""
        k = float(time_scale)
        if not np.isfinite(k) or k <= 0:
            raise InputError(f"time scale must be positive, got {time_scale!r}")
        return Trace(
            times_s=self.times_s / k,
            rates_bps=self.rates_bps * k,
            duration_s=self.duration_s / k,
            latency_s=None if self.latency_s is None else self.latency_s / k,
            loss=self.loss,
            name=self.name,
            source=self.source,
            format=self.format,
            packet_times_s=None if self.packet_times_s is None else self.packet_times_s / k,
        )


def constant(rate_bps: float, duration_s: float = 60.0, latency_s: float | None = None, name: str = "constant") -> Trace:
    """A trace with one constant rate (useful in tests and as a default)."""
    lat = None if latency_s is None else np.array([latency_s])
    return Trace(np.array([0.0]), np.array([float(rate_bps)]), duration_s, latency_s=lat, name=name, source=name)
