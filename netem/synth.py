"""Synthetic bandwidth traces: small, seeded, reproducible, in seconds and bits per second.

Real traces say how networks behave; synthetic ones isolate one behaviour at a time (a
step down, a periodic outage, a noisy random walk) so an ABR algorithm's reaction can be
read off directly. Every generator returns a `Trace` (format "synthetic") and takes an
optional constant `latency_s` (per-request latency, seconds) applied to every step.

Random generators take a `seed` and draw all their random numbers up front from one
`numpy.random.default_rng(seed)` in a fixed order, so the same arguments give the same
trace on every machine and numpy version that keeps the PCG64 stream stable.

Parameters obey the physical bounds of `netem.trace` (rates at most MAX_RATE_BPS, lengths
at most MAX_DURATION_S, latency at most MAX_LATENCY_S); a parameter outside them is
refused by name.
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

import numpy as np

from netem.errors import InputError
from netem.trace import MAX_DURATION_S, MAX_LATENCY_S, MAX_RATE_BPS, Trace

#: Most steps a generator will produce (guards against e.g. a 1 µs step over a day).
MAX_STEPS = 10_000_000
KINDS: tuple[str, ...] = ("constant", "steps", "outages", "markov")


def constant(rate_bps: float, duration_s: float = 60.0, *, latency_s: float | None = None) -> Trace:
    """One rate for the whole trace.

    rate_bps: capacity, bits per second (> 0). duration_s: period length, seconds (> 0).
    """
    _positive("rate_bps", rate_bps, MAX_RATE_BPS)
    _positive("duration_s", duration_s, MAX_DURATION_S)
    return _trace(np.array([0.0]), np.array([float(rate_bps)]), duration_s, latency_s,
                  "constant", f"synth:constant(rate_bps={rate_bps:g}, duration_s={duration_s:g})")


def steps(rates_bps: Sequence[float], step_s: float | Sequence[float] = 20.0, *,
          latency_s: float | None = None) -> Trace:
    """A staircase: rate `rates_bps[k]` (bits per second, >= 0) for `step_s` seconds each.

    step_s: one duration for every step, or one per step (seconds, > 0). At least one
    rate must be positive so the trace can carry data.
    """
    rates = np.asarray(rates_bps, dtype=np.float64).ravel()
    if rates.size == 0:
        raise InputError("steps needs at least one rate")
    if rates.size > MAX_STEPS:
        raise InputError(f"{rates.size} steps is more than the limit of {MAX_STEPS}")
    if not np.all(np.isfinite(rates)) or np.any(rates < 0) or np.any(rates > MAX_RATE_BPS):
        raise InputError(f"every rate must be a number of bits per second in [0, {MAX_RATE_BPS:g}] (MAX_RATE_BPS)")
    durations = np.asarray(step_s, dtype=np.float64)
    if durations.ndim == 0:
        durations = np.full(rates.shape, float(durations))
    if durations.shape != rates.shape:
        raise InputError(f"got {durations.size} step durations for {rates.size} rates")
    if not np.all(np.isfinite(durations)) or np.any(durations <= 0):
        raise InputError("every step duration must be a positive number of seconds")
    if durations.sum() > MAX_DURATION_S:
        raise InputError(f"the steps last {durations.sum():g} s, more than the limit of {MAX_DURATION_S:g} s "
                         "(MAX_DURATION_S)")
    if not np.any(rates > 0):
        raise InputError("every rate is 0: the trace could never deliver a byte")
    ends = np.cumsum(durations)
    times = np.concatenate([[0.0], ends[:-1]])
    return _trace(times, rates, float(ends[-1]), latency_s, "steps",
                  f"synth:steps({rates.size} steps)")


def outages(base_rate_bps: float, period_s: float, outage_s: float, duration_s: float,
            outage_rate_bps: float = 0.0, *, latency_s: float | None = None) -> Trace:
    """Periodic outages: every `period_s` seconds, `period_s - outage_s` at the base rate,
    then `outage_s` at `outage_rate_bps` (0 = a full outage). The trace starts in the good
    phase and the last period is cut at `duration_s`.

    base_rate_bps, outage_rate_bps: bits per second (base > 0, outage >= 0).
    period_s, outage_s, duration_s: seconds, with 0 <= outage_s < period_s, so every
    period carries data and the total capacity is positive.
    """
    _positive("base_rate_bps", base_rate_bps, MAX_RATE_BPS)
    _positive("period_s", period_s, MAX_DURATION_S)
    _positive("duration_s", duration_s, MAX_DURATION_S)
    _non_negative("outage_rate_bps", outage_rate_bps, MAX_RATE_BPS)
    _non_negative("outage_s", outage_s, MAX_DURATION_S)
    if outage_s >= period_s:
        raise InputError(f"outage_s ({outage_s:g} s) must be shorter than period_s ({period_s:g} s)")
    n_periods = math.ceil(duration_s / period_s - 1e-9)
    if 2 * n_periods > MAX_STEPS:
        raise InputError(f"{n_periods} periods is more than the limit of {MAX_STEPS // 2}")
    starts = np.arange(n_periods) * float(period_s)
    if outage_s > 0:
        times = np.column_stack([starts, starts + (period_s - outage_s)]).ravel()
        rates = np.tile([float(base_rate_bps), float(outage_rate_bps)], n_periods)
    else:
        times, rates = starts[:1], np.array([float(base_rate_bps)])
    keep = times < duration_s - 1e-12
    return _trace(times[keep], rates[keep], duration_s, latency_s, "outages",
                  f"synth:outages(base={base_rate_bps:g} bps, period={period_s:g} s, outage={outage_s:g} s)")


def markov(*, min_rate_bps: float = 0.2e6, max_rate_bps: float = 4.3e6, n_states: int = 10,
           switch_prob: float = 0.1, step_s: float = 1.0, duration_s: float = 300.0, noise: float = 0.1,
           floor_bps: float = 0.05e6, seed: int = 0, latency_s: float | None = None) -> Trace:
    """A Markov chain over bandwidth states with per-step noise, in the style of the
    synthetic traces Pensieve was trained and tested on.

    - min_rate_bps, max_rate_bps: the lowest and highest state, bits per second; the
      `n_states` states are spread log-uniformly between them (equal ratios, so a switch
      means a similar relative change anywhere in the range).
    - switch_prob: probability (0..1) of leaving the current state at each step; the new
      state is another one, nearer ones likelier (weight 2^-distance), so the rate
      drifts more often than it jumps.
    - step_s: step length, seconds; the last step is cut at `duration_s` (seconds).
    - noise: per-step gaussian noise as a fraction of the state's rate (standard
      deviation), so 0.1 means ±10 % typical wobble; 0 gives the bare chain.
    - floor_bps: noisy rates are clipped at this floor, bits per second (>= 0); they are
      clipped at MAX_RATE_BPS above.
    - seed: integer seed; the starting state is drawn too.
    """
    _positive("min_rate_bps", min_rate_bps, MAX_RATE_BPS)
    _positive("max_rate_bps", max_rate_bps, MAX_RATE_BPS)
    _positive("step_s", step_s, MAX_DURATION_S)
    _positive("duration_s", duration_s, MAX_DURATION_S)
    _non_negative("noise", noise)
    _non_negative("floor_bps", floor_bps, MAX_RATE_BPS)
    if not max_rate_bps >= min_rate_bps:
        raise InputError(f"max_rate_bps ({max_rate_bps:g}) must be at least min_rate_bps ({min_rate_bps:g})")
    if int(n_states) != n_states or n_states < 1:
        raise InputError(f"n_states must be a positive integer, got {n_states!r}")
    if not 0.0 <= switch_prob <= 1.0:
        raise InputError(f"switch_prob must be between 0 and 1, got {switch_prob!r}")
    n_steps = math.ceil(duration_s / step_s - 1e-9)
    if n_steps > MAX_STEPS:
        raise InputError(f"{n_steps} steps is more than the limit of {MAX_STEPS}")
    n_states = int(n_states)
    states = np.geomspace(float(min_rate_bps), float(max_rate_bps), n_states)
    rng = np.random.default_rng(seed)
    first = int(rng.integers(n_states))
    leave = rng.random(n_steps) < switch_prob
    gauss = rng.standard_normal(n_steps)  # drawn before the picks: same noise whatever switch_prob is
    switches = np.flatnonzero(leave) if n_states > 1 else np.empty(0, dtype=np.int64)
    picks = rng.random(switches.size)
    chain = _walk(first, switches, picks, n_states, n_steps)
    rates = np.clip(states[chain] * (1.0 + noise * gauss), floor_bps, MAX_RATE_BPS)
    times = np.arange(n_steps) * float(step_s)
    return _trace(times, rates, duration_s, latency_s, "markov",
                  f"synth:markov(seed={seed}, {min_rate_bps:g}..{max_rate_bps:g} bps, {n_states} states, "
                  f"p={switch_prob:g}, step={step_s:g} s, noise={noise:g})")


def _walk(first: int, switches: np.ndarray, picks: np.ndarray, n_states: int, n_steps: int) -> np.ndarray:
    """State index per step; only the steps that switch are visited in Python."""
    visited = [first]
    if switches.size:
        idx = np.arange(n_states)
        weights = 0.5 ** np.abs(idx[:, None] - idx[None, :]).astype(np.float64)
        np.fill_diagonal(weights, 0.0)
        cdfs = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1).tolist()
        for u in picks.tolist():
            visited.append(min(bisect.bisect_right(cdfs[visited[-1]], u), n_states - 1))
    bounds = np.concatenate([[0], switches, [n_steps]])
    return np.repeat(np.array(visited, dtype=np.int64), np.diff(bounds))


def _trace(times: np.ndarray, rates: np.ndarray, duration_s: float, latency_s: float | None,
           name: str, source: str) -> Trace:
    latency = None
    if latency_s is not None:
        _non_negative("latency_s", latency_s, MAX_LATENCY_S)
        latency = np.full(times.shape, float(latency_s))
    return Trace(times, rates, float(duration_s), latency_s=latency, name=name, source=source, format="synthetic")


def _positive(name: str, value: float, high: float = math.inf) -> None:
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and 0 < value <= high):
        raise InputError(f"{name} must be a positive number{_at_most(high)}, got {value!r}")


def _non_negative(name: str, value: float, high: float = math.inf) -> None:
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and 0 <= value <= high):
        raise InputError(f"{name} must be a number >= 0{_at_most(high)}, got {value!r}")


def _at_most(high: float) -> str:
    return "" if math.isinf(high) else f" and at most {high:g}"
