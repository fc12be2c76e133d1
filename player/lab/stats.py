"""Statistics for comparisons: bootstrap confidence intervals and paired tests (scipy).

Per policy: mean QoE with a 95% bootstrap CI (BCa where it is defined, else percentile),
median, p10, and the usual streaming metrics. Between policies: Wilcoxon signed-rank on
the same sessions (trace × device × preset), Holm-corrected across all pairs, so a marked
difference survives the number of comparisons made.
"""
from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

ALPHA = 0.05


def _f(row: dict, key: str) -> float:
    return float(row[key])


def _mean_of(rows: list[dict], key: str) -> float | None:
    """The mean of a column over the rows that have it (live columns; None for VoD rows)."""
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "", "nan")]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def bootstrap_ci(values: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    from scipy import stats  # scipy.stats costs ~1 s to import: only when statistics are computed
    v = np.asarray(values, dtype=float)
    if v.size < 2 or np.all(v == v[0]):
        return float(v.mean()), float(v.mean())
    res = stats.bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=2000,
                          method="BCa", random_state=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    if not (math.isfinite(lo) and math.isfinite(hi)):
        res = stats.bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=2000,
                              method="percentile", random_state=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
    return float(lo), float(hi)


def policy_label(row: dict) -> str:
    return row["abr"] + (f"[{row['abr_params']}]" if row.get("abr_params") else "")


def summarise(rows: list[dict]) -> dict:
    """Per policy (× device × preset) table and paired comparisons, as plain JSON data."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(policy_label(r), r["device"], r["preset"])].append(r)
    table = []
    for (pol, dev, pre), rs in sorted(groups.items()):
        q = np.array([_f(r, "qoe") for r in rs])
        lo, hi = bootstrap_ci(q)
        session = np.array([_f(r, "session_s") for r in rs])
        rebuf = np.array([_f(r, "rebuffer_s") for r in rs])
        switches = np.array([_f(r, "switches") for r in rs])
        table.append({
            "abr": pol, "device": dev, "preset": pre, "sessions": len(rs),
            "qoe_model": rs[0]["qoe_model"],
            "qoe_mean": float(q.mean()), "qoe_ci95": [lo, hi],
            "qoe_median": float(np.median(q)), "qoe_p10": float(np.percentile(q, 10)),
            "avg_bitrate_bps": float(np.mean([_f(r, "avg_bitrate_bps") for r in rs])),
            "rebuffer_ratio": float(rebuf.sum() / session.sum()) if session.sum() > 0 else 0.0,
            "rebuffer_s_mean": float(rebuf.mean()),
            "switches_per_min": float(switches.sum() / (session.sum() / 60.0)) if session.sum() > 0 else 0.0,
            "startup_s_mean": float(np.mean([_f(r, "startup_s") for r in rs])),
            "latency_mean_s": _mean_of(rs, "latency_mean_s"),
            "latency_max_s": _mean_of(rs, "latency_max_s"),
            "playback_rate_mean": _mean_of(rs, "playback_rate_mean"),
        })
    return {"policies": table, "paired": paired_tests(rows)}


def paired_tests(rows: list[dict]) -> list[dict]:
    from scipy import stats  # scipy.stats costs ~1 s to import: only when statistics are computed
    """Wilcoxon signed-rank between every two policies on the sessions they share."""
    # collect per (device, preset) the QoE of each policy on each trace occurrence
    cells: dict[tuple, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    occurrence: dict[tuple, int] = defaultdict(int)
    for r in rows:
        pol = policy_label(r)
        k = (pol, r["device"], r["preset"], r["trace"])
        occurrence[k] += 1
        cells[(r["device"], r["preset"])][pol][(r["trace"], occurrence[k])] = _f(r, "qoe")
    out = []
    for (dev, pre), pols in sorted(cells.items()):
        for a, b in itertools.combinations(sorted(pols), 2):
            common = sorted(set(pols[a]) & set(pols[b]))
            if len(common) < 2:
                continue
            x = np.array([pols[a][c] for c in common])
            y = np.array([pols[b][c] for c in common])
            d = x - y
            if np.all(d == 0):
                p = 1.0
            else:
                p = float(stats.wilcoxon(x, y, zero_method="wilcox").pvalue)
            out.append({"a": a, "b": b, "device": dev, "preset": pre, "sessions": len(common),
                        "mean_diff": float(d.mean()), "median_diff": float(np.median(d)),
                        "a_better_frac": float(np.mean(d > 0)), "p": p})
    # Holm-Bonferroni across every pair tested
    order = np.argsort([o["p"] for o in out])
    m = len(out)
    running = 0.0
    for rank, i in enumerate(order):
        adj = min(1.0, (m - rank) * out[i]["p"])
        running = max(running, adj)
        out[i]["p_holm"] = running
        out[i]["significant"] = running < ALPHA
    return out
