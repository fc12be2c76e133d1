"""Estimators over per-download samples: harmonic mean, dual EWMA (numpy only).

* `harmonic_mean(x, window)`: the harmonic mean of the newest `window` samples of each row
  of a NaN-padded history (the predictor of the MPC paper, Pensieve and FESTIVE).
* `DualEwma`: two exponentially weighted moving averages of throughput, each sample
  weighted by its download time, with the zero-start bias correction and the
  conservative minimum of a fast and a slow estimate (dash.js `ThroughputHistory` and
  5's `ThroughputModel`, Shaka `EwmaBandwidthEstimator`, Sabre `Ewma`).
* `js_round`: JavaScript's Math.round, for estimators that reproduce a player's rounding.

Sums run in a fixed order (`np.add.accumulate`) so that a row's estimate never depends on
which other rows share the batch: selecting for n sessions at once gives bit-for-bit the
same answers as n separate calls.

Units: bits per second, seconds, bytes.
"""
from __future__ import annotations

import numpy as np


def js_round(x: np.ndarray) -> np.ndarray:
    """JavaScript's Math.round: halves go up (not to even)."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def harmonic_mean(samples_bps: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic mean of the newest `window` valid samples per row, and how many there were.

    `samples_bps` is (n, H), newest last, NaN-padded on the left. Samples that are NaN or
    not positive are ignored. Rows without a valid sample get NaN.
    """
    x = np.asarray(samples_bps, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("throughput history must be a (sessions, samples) array")
    w = x[:, -window:] if window > 0 else x[:, :0]
    valid = w > 0  # False for NaN
    inv = np.divide(1.0, w, out=np.zeros(w.shape), where=valid)
    count = valid.sum(axis=1)
    if inv.shape[1] == 0:
        total = np.zeros(inv.shape[0])
    else:
        total = np.add.accumulate(inv, axis=1)[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(count > 0, count / total, np.nan)
    return est, count


def newest_sample(throughput_bps: np.ndarray, download_time_s: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The newest throughput sample and its download time per row, and whether it is valid."""
    if throughput_bps.shape[1] == 0:
        n = throughput_bps.shape[0]
        return np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool)
    tput = throughput_bps[:, -1].astype(np.float64, copy=False)
    dt = download_time_s[:, -1].astype(np.float64, copy=False)
    valid = tput > 0
    return tput, dt, valid


class DualEwma:
    """Fast and slow EWMAs of throughput with half-lives in units of sample weight.

    Each sample of rate `r` that took `t` seconds to download updates an estimate `e` as
    `e = a·e + (1 − a)·r` with `a = 0.5 ** (w / half_life)`, starting from 0, where the
    sample's weight `w` is `t` (half-lives in seconds of download time: Shaka, Sabre) or,
    with `weight_per_ms`, `weight_per_ms × t in ms` (dash.js 5's ThroughputModel:
    weightDownloadTimeMultiplicationFactor 0.0015, half-lives 3 and 8 in those units).
    Reading divides by `1 − 0.5 ** (W / half_life)` (W = total weight so far) to undo the
    zero start, and returns the smaller of the two.

    dash.js keeps its estimates in whole kbit/s: with `unit_bps=1000, whole_units=True`
    each sample is rounded to a whole unit before it is folded in, and the estimate is
    rounded to one when read (Math.round), then given back in bit/s.

    Shaka ignores samples smaller than `min_sample_bytes` and answers "no estimate" until
    `min_total_bytes` have been sampled; both are 0 for dash.js semantics.
    """

    def __init__(self, n: int, fast_half_life_s: float, slow_half_life_s: float,
                 min_sample_bytes: float = 0.0, min_total_bytes: float = 0.0,
                 weight_per_ms: float | None = None, unit_bps: float = 1.0,
                 whole_units: bool = False) -> None:
        if fast_half_life_s <= 0 or slow_half_life_s <= 0:
            raise ValueError("EWMA half-lives must be positive")
        if unit_bps <= 0 or (weight_per_ms is not None and weight_per_ms <= 0):
            raise ValueError("EWMA unit and weight per ms must be positive")
        self.fast_hl = float(fast_half_life_s)
        self.slow_hl = float(slow_half_life_s)
        self.min_sample_bytes = float(min_sample_bytes)
        self.min_total_bytes = float(min_total_bytes)
        self.weight_per_ms = None if weight_per_ms is None else float(weight_per_ms)
        self.unit_bps = float(unit_bps)
        self.whole_units = bool(whole_units)
        self.fast = np.zeros(n)
        self.slow = np.zeros(n)
        self.weight = np.zeros(n)
        self.total_bytes = np.zeros(n)

    def update(self, sessions: np.ndarray, rate_bps: np.ndarray, time_s: np.ndarray,
               valid: np.ndarray) -> None:
        """Fold one sample per row into the rows' sessions where `valid`."""
        if self.min_sample_bytes > 0:
            nbytes = rate_bps * np.nan_to_num(time_s) / 8.0
            valid = valid & (nbytes >= self.min_sample_bytes)
        if not valid.all():
            sessions, rate_bps, time_s = sessions[valid], rate_bps[valid], time_s[valid]
        if sessions.size == 0:
            return
        # dash.js never lets a download time be 0 ("|| 1" ms): keep the weight positive.
        t = np.where(np.isfinite(time_s) & (time_s > 0), time_s, 1e-3)
        w = t if self.weight_per_ms is None else self.weight_per_ms * t * 1000.0
        v = rate_bps / self.unit_bps
        if self.whole_units:
            v = js_round(v)
        af = np.power(0.5, w / self.fast_hl)
        as_ = np.power(0.5, w / self.slow_hl)
        self.fast[sessions] = (1.0 - af) * v + af * self.fast[sessions]
        self.slow[sessions] = (1.0 - as_) * v + as_ * self.slow[sessions]
        self.weight[sessions] += w
        self.total_bytes[sessions] += rate_bps * t / 8.0

    def estimate(self, sessions: np.ndarray) -> np.ndarray:
        """min(fast, slow) after the zero-start correction, in bit/s; NaN before any sample."""
        W = self.weight[sessions]
        ok = W > 0
        if self.min_total_bytes > 0:
            ok &= self.total_bytes[sessions] >= self.min_total_bytes
        with np.errstate(divide="ignore", invalid="ignore"):
            f = self.fast[sessions] / (1.0 - np.power(0.5, W / self.fast_hl))
            s = self.slow[sessions] / (1.0 - np.power(0.5, W / self.slow_hl))
            est = np.minimum(f, s)
            if self.whole_units:
                est = js_round(est)
            est = est * self.unit_bps
        return np.where(ok, est, np.nan)
