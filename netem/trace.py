"""Bandwidth traces: piecewise-constant capacity over time, plus optional latency and loss.

A trace is one period of a periodic capacity signal: when a transfer outlasts it, it
wraps around, as Mahimahi and Pensieve's simulator do. Mahimahi traces additionally keep
their packet-level delivery schedule (`packet_times_s`), so the link model can reproduce
Mahimahi's own delivery times instead of a smoothed rate.

Loaders and writers for the on-disk formats live in `netem.formats`; this module is the
in-memory model and its statistics only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netem.errors import InputError

MAHIMAHI_PACKET_BYTES = 1500


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
        if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            raise InputError("step start times must be finite and strictly increasing", where=where)
        if not np.isfinite(self.duration_s) or self.duration_s <= t[-1]:
            raise InputError(f"duration {self.duration_s!r} s must exceed the last step start {t[-1]!r} s", where=where)
        if not np.all(np.isfinite(r)) or np.any(r < 0):
            raise InputError("rates must be finite and non-negative", where=where)
        for name in ("latency_s", "loss"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.shape != t.shape or not np.all(np.isfinite(v)) or np.any(v < 0):
                    raise InputError(f"{name} must be finite, non-negative and one per step", where=where)
                object.__setattr__(self, name, v)
        if self.packet_times_s is not None:
            p = np.asarray(self.packet_times_s, dtype=np.float64)
            if p.ndim != 1 or p.size == 0 or np.any(np.diff(p) < 0) or p[0] < 0 or p[-1] > self.duration_s:
                raise InputError("packet times must be sorted within [0, duration]", where=where)
            object.__setattr__(self, "packet_times_s", p)
        elif self.capacity_bits <= 0:
            raise InputError("total capacity is zero: a download would never finish", where=where)

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
        """Summary statistics in the project's units (seconds, bits per second)."""
        p10, p50, p90 = self.rate_percentile_bps(np.array([10.0, 50.0, 90.0]))
        return {
            "name": self.name,
            "format": self.format,
            "steps": int(self.times_s.size),
            "duration_s": self.duration_s,
            "mean_rate_bps": self.mean_rate_bps,
            "p10_rate_bps": float(p10),
            "p50_rate_bps": float(p50),
            "p90_rate_bps": float(p90),
            "min_rate_bps": float(self.rates_bps.min()),
            "max_rate_bps": float(self.rates_bps.max()),
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
