"""Statistics for comparisons: bootstrap confidence intervals and paired tests.

Per policy: mean QoE with a 95% bootstrap CI (BCa where it is defined, else percentile),
median, p10, and the usual streaming metrics. Between policies: Wilcoxon signed-rank on
the same sessions (trace and occurrence × device × preset), Holm-corrected across all
pairs, so a marked difference survives the number of comparisons made.

The bootstrap is computed here with numpy, not with `scipy.stats.bootstrap`: the same
resamples (`Generator.integers(0, n, (2000, n))` from `default_rng(seed)`, drawn in blocks
of rows, which gives the same stream), the same BCa formulas, but the jackknife of the
mean in closed form — leaving out x_i gives (Σx − x_i)/(n − 1) — where scipy builds an
n × (n − 1) array (seconds at 10,000 sessions). The intervals equal scipy's to rounding
(tests/test_stats.py). Only the paired test needs `scipy.stats` (imported there: it costs
about a second).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from player.lab.table import SweepRows

ALPHA = 0.05
N_RESAMPLES = 2000
_BLOCK_ELEMENTS = 1 << 16   # resampled values at once: 512 KiB stays in cache (1 MiB blocks: twice slower)
_NORMAL = NormalDist()


def ndtr(x: float) -> float:
    """The standard normal CDF (as scipy.special.ndtr; scipy.special costs ~0.4 s to import)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def ndtri(p: float) -> float:
    """The standard normal quantile (as scipy.special.ndtri): -inf at 0, +inf at 1."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return _NORMAL.inv_cdf(p)


def quantile_sorted(v: np.ndarray, q: float) -> float:
    """The q-quantile of sorted `v`, numpy's default ("linear") method to the last bit
    (np.quantile's own path imports numpy.ma, ~20 ms, for nothing here)."""
    n = v.size
    h = (n - 1) * q
    i = min(max(int(math.floor(h)), 0), n - 1)
    j = min(i + 1, n - 1)
    t = h - i
    a, b = float(v[i]), float(v[j])
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


def median_sorted(v: np.ndarray) -> float:
    """The median of sorted `v`, as np.median computes it."""
    n = v.size
    return float(v[n // 2]) if n % 2 else float(np.mean(v[n // 2 - 1:n // 2 + 1]))


def bootstrap_means(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """The mean of each of `n_resamples` resamples with replacement (scipy's resamples for
    the same seed), computed in blocks so memory stays bounded."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK_ELEMENTS // max(n, 1))
    dtype = np.int32 if n < 2**31 else np.int64
    out = np.empty(n_resamples)
    for k in range(0, n_resamples, rows):
        b = min(rows, n_resamples - k)
        out[k:k + b] = np.take(v, rng.integers(0, n, (b, n), dtype=dtype)).mean(axis=-1)
    return out


def bca_levels(values: np.ndarray, theta_b: np.ndarray, alpha: float) -> tuple[float, float]:
    """The BCa quantile levels (Efron & Tibshirani 14.3, 15.4) for the mean of `values`
    given its bootstrap distribution `theta_b`; NaN when undefined."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    theta = v.mean()
    pct = (np.count_nonzero(theta_b < theta) + np.count_nonzero(theta_b <= theta)) / (2.0 * theta_b.size)
    z0 = ndtri(float(pct))
    jack = (v.sum() - v) / (n - 1)          # the mean without each observation
    u = (n - 1) * (jack.mean() - jack)
    with np.errstate(invalid="ignore", divide="ignore"):
        a_hat = float((np.sum(u ** 3) / n ** 3) / (6.0 * (np.sum(u ** 2) / n ** 2) ** 1.5))
    if not (math.isfinite(z0) and math.isfinite(a_hat)):
        return math.nan, math.nan
    z_a = ndtri(alpha)
    levels = []
    for z in (z0 + z_a, z0 - z_a):
        denom = 1 - a_hat * z
        levels.append(ndtr(z0 + z / denom) if denom != 0 else math.nan)
    return levels[0], levels[1]


def bootstrap_ci(values: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A bootstrap confidence interval for the mean: BCa, or percentile where BCa is
    undefined (every resample on one side of the mean)."""
    v = np.asarray(values, dtype=float)
    if v.size < 2 or np.all(v == v[0]):
        return float(v.mean()), float(v.mean())
    theta_b = bootstrap_means(v, seed=seed)
    alpha = (1 - confidence) / 2
    lo_q, hi_q = bca_levels(v, theta_b, alpha)
    if not (math.isfinite(lo_q) and math.isfinite(hi_q)):
        lo_q, hi_q = alpha, 1 - alpha
    theta_b = np.sort(theta_b)
    return quantile_sorted(theta_b, lo_q), quantile_sorted(theta_b, hi_q)


def live_mean(values: np.ndarray) -> float | None:
    """The mean of a live column over the sessions that have it (None: none is live)."""
    v = values[np.isfinite(values)]
    return float(v.mean()) if v.size else None


def summarise(rows: SweepRows) -> dict:
    """Per policy (× device × preset) table and paired comparisons, as plain JSON data.

    Every figure is computed over sorted values, so it depends on the sessions, not on the
    order their rows reached sessions.csv (a resumed or parallel sweep gives the same
    figures, to the last bit, as one run in one process)."""
    table = []
    for g, label in enumerate(rows.groups):
        sel = rows.group == g
        if not sel.any():
            continue
        col = {name: np.sort(v[sel]) for name, v in rows.values.items()}
        q = col["qoe"]
        lo, hi = bootstrap_ci(q)
        session_total = float(col["session_s"].sum())
        table.append({
            "abr": label.abr, "params": label.params, "device": label.device, "preset": label.preset,
            "sessions": int(q.size), "qoe_model": rows.qoe_model,
            "qoe_mean": float(q.mean()), "qoe_ci95": [lo, hi],
            "qoe_median": median_sorted(q), "qoe_p10": quantile_sorted(q, 0.1),
            "avg_bitrate_bps": float(col["avg_bitrate_bps"].mean()),
            "rebuffer_ratio": float(col["rebuffer_s"].sum() / session_total) if session_total > 0 else 0.0,
            "rebuffer_s_mean": float(col["rebuffer_s"].mean()),
            "switches_per_min": float(col["switches"].sum() / (session_total / 60.0)) if session_total > 0 else 0.0,
            "startup_s_mean": float(col["startup_s"].mean()),
            # live sessions: the means over sessions of each one's mean and maximum latency and mean rate
            **{name: live_mean(col[name]) if name in col else None
               for name in ("latency_mean_s", "latency_max_s", "playback_rate_mean")},
        })
    return {"policies": table, "paired": paired_tests(rows)}


def paired_tests(rows: SweepRows) -> list[dict]:
    """Wilcoxon signed-rank between every two policies on the sessions they share (the same
    trace occurrence, device and preset), Holm-Bonferroni across every pair tested."""
    cells: dict[tuple[str, str], list[int]] = {}
    for g, label in enumerate(rows.groups):
        cells.setdefault((label.device, label.preset), []).append(g)
    if not any(len(gs) > 1 for gs in cells.values()):
        return []
    from scipy import stats  # scipy.stats costs ~1 s to import: only when there is a pair to test

    width = int(rows.occurrence.max()) + 1 if len(rows) else 1
    pair_key = rows.trace.astype(np.int64) * width + rows.occurrence
    qoe = rows.values["qoe"]
    out = []
    for (dev, pre), gs in sorted(cells.items()):
        gs = sorted(gs, key=lambda g: rows.groups[g].abr)
        for ia, a in enumerate(gs):
            for b in gs[ia + 1:]:
                sa, sb = rows.group == a, rows.group == b
                common, ia_idx, ib_idx = np.intersect1d(pair_key[sa], pair_key[sb], return_indices=True)
                if common.size < 2:
                    continue
                x, y = qoe[sa][ia_idx], qoe[sb][ib_idx]
                d = x - y
                p = 1.0 if np.all(d == 0) else float(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
                out.append({"a": rows.groups[a].abr, "b": rows.groups[b].abr, "device": dev, "preset": pre,
                            "sessions": int(common.size), "mean_diff": float(d.mean()),
                            "median_diff": float(np.median(d)), "a_better_frac": float(np.mean(d > 0)), "p": p})
    order = np.argsort([o["p"] for o in out], kind="stable")
    m = len(out)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * out[i]["p"]))
        out[i]["p_holm"] = running
        out[i]["significant"] = running < ALPHA
    return out
