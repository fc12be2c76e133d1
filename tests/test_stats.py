"""Statistics: the numpy bootstrap equals scipy's BCa for the same resamples; the paired
tests pair the same sessions (player/lab/stats.py)."""
from __future__ import annotations

import numpy as np
import pytest

from player.lab import stats
from player.lab.table import GroupLabel, SweepRows


def scipy_ci(v: np.ndarray, method: str) -> tuple[float, float]:
    from scipy import stats as sps

    res = sps.bootstrap((v,), np.mean, confidence_level=0.95, n_resamples=2000, method=method,
                        rng=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@pytest.mark.parametrize("n, seed", [(2, 1), (7, 2), (20, 3), (57, 4), (200, 5), (1001, 6)])
def test_bootstrap_ci_equals_scipy_bca(n, seed):
    rng = np.random.default_rng(seed)
    v = np.concatenate([rng.lognormal(3, 1.2, n - n // 5), -rng.exponential(900, n // 5)])  # skewed, like QoE
    assert stats.bootstrap_ci(v) == pytest.approx(scipy_ci(v, "BCa"), rel=1e-12, abs=1e-12)


def test_bootstrap_means_are_scipys_resamples():
    from scipy import stats as sps

    v = np.random.default_rng(9).normal(size=333)
    res = sps.bootstrap((v,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(0))
    assert np.array_equal(stats.bootstrap_means(v), res.bootstrap_distribution)


def test_where_bca_is_undefined_the_percentile_interval_is_used(monkeypatch):
    v = np.array([0.0, 1.0, 2.0, 3.0])
    above = np.linspace(2.0, 3.0, 2000)        # every resample mean above the sample mean: z0 = inf
    assert all(np.isnan(stats.bca_levels(v, above, 0.025)))
    monkeypatch.setattr(stats, "bootstrap_means", lambda values, seed=0: above)
    assert stats.bootstrap_ci(v) == pytest.approx(tuple(np.quantile(above, [0.025, 0.975])), rel=1e-15)


def test_a_heavy_tail_gives_the_same_interval_as_scipy():
    v = np.array([0.0] * 30 + [1000.0])
    assert stats.bootstrap_ci(v) == pytest.approx(scipy_ci(v, "BCa"), rel=1e-12)


def test_constant_and_single_values_have_a_point_interval():
    assert stats.bootstrap_ci(np.full(10, 3.5)) == (3.5, 3.5)
    assert stats.bootstrap_ci(np.array([2.0])) == (2.0, 2.0)


def test_the_normal_functions_match_scipy_special():
    from scipy.special import ndtr, ndtri

    for p in (1e-12, 0.025, 0.3, 0.5, 0.975, 1 - 1e-9):
        assert stats.ndtri(p) == pytest.approx(float(ndtri(p)), rel=1e-13)
    for x in (-8.0, -1.96, 0.0, 0.4, 3.0):
        assert stats.ndtr(x) == pytest.approx(float(ndtr(x)), rel=1e-13, abs=1e-300)
    assert stats.ndtri(0.0) == -np.inf and stats.ndtri(1.0) == np.inf


def test_paired_tests_pair_the_same_trace_occurrence():
    # two policies on 3 traces x 2 occurrences, rows in different orders; b = a - 1 on each session
    from scipy import stats as sps

    a = np.array([5.0, 7.0, 1.0, 9.0, 4.0, 6.5])
    trace = np.array([0, 1, 2, 0, 1, 2])
    occ = np.array([0, 0, 0, 1, 1, 1])
    order = np.array([3, 0, 5, 1, 4, 2])
    noise = np.array([0.5, 0.25, 1.5, 0.75, 0.1, 2.0])
    groups = [GroupLabel("a", "", "none", "default"), GroupLabel("b", "", "none", "default")]
    rows = SweepRows("linear", groups, np.r_[np.zeros(6, int), np.ones(6, int)], np.r_[trace, trace[order]],
                     np.r_[occ, occ[order]], {"qoe": np.r_[a, (a - noise)[order]]})
    (p,) = stats.paired_tests(rows)
    assert p["sessions"] == 6 and p["mean_diff"] == pytest.approx(noise.mean())
    assert p["a_better_frac"] == pytest.approx(1.0)
    assert p["p"] == pytest.approx(sps.wilcoxon(a, a - noise).pvalue)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 1000])
def test_quantiles_are_numpys_to_the_last_bit(n):
    v = np.sort(np.random.default_rng(n).normal(0, 300, n))
    for q in (0.0, 0.025, 0.1, 0.5, 0.77, 0.975, 1.0):
        assert stats.quantile_sorted(v, q) == np.quantile(v, q)
    assert stats.quantile_sorted(v, 10 / 100) == np.percentile(v, 10)
    assert stats.median_sorted(v) == np.median(v)


def test_the_summary_does_not_depend_on_the_order_of_the_rows():
    rng = np.random.default_rng(5)
    n = 600
    values = {"qoe": np.concatenate([rng.normal(50, 200, n - 20), -rng.exponential(5000, 20)]),
              "avg_bitrate_bps": rng.uniform(3e5, 6e6, n), "rebuffer_s": rng.exponential(3, n),
              "session_s": rng.uniform(500, 700, n), "switches": rng.integers(0, 40, n).astype(float),
              "startup_s": rng.uniform(0.5, 3, n)}
    groups = [GroupLabel("a", "", "none", "default"), GroupLabel("b", "", "none", "default")]
    group, trace, occ = np.arange(n) % 2, (np.arange(n) // 2) % 50, np.arange(n) // 100
    a = stats.summarise(SweepRows("linear", groups, group, trace, occ, values))
    p = rng.permutation(n)          # the order a resumed or parallel run may have written them in
    b = stats.summarise(SweepRows("linear", groups, group[p], trace[p], occ[p], {k: v[p] for k, v in values.items()}))
    assert a == b
