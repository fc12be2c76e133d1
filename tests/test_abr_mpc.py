"""MPC family: the vectorised optimum equals a plain-Python search, RobustMPC's error bound
follows the published definition, FastMPC's table agrees with MPC and is cached on disk."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import abr
from abr import Ladder, Observation
from abr_support import PENSIEVE, abr_cache, brute_force_mpc, single  # noqa: F401


def obs_for(ladder: Ladder, samples_bps, buffer_s, last, sizes, segments_left, mask=None):
    """A one-session observation with the given throughput history (oldest first)."""
    H = 8
    hist = np.full((1, H), np.nan)
    k = min(len(samples_bps), H)
    if k:
        hist[0, -k:] = samples_bps[-k:]
    sizes = np.asarray(sizes, dtype=np.float64)[None]
    return Observation(
        sessions=np.array([0]), buffer_s=np.array([float(buffer_s)]), last_rung=np.array([last]),
        throughput_bps=hist, download_time_s=np.where(np.isnan(hist), np.nan, 1.0),
        next_sizes_bytes=sizes, segments_left=np.array([segments_left]),
        segment_index=np.array([0]), segment_duration_s=ladder.segment_duration_s,
        playing=np.array([True]),
        mask=np.ones((1, ladder.n), bool) if mask is None else np.asarray(mask)[None],
        time_s=np.array([0.0]), buffer_cap_s=np.array([60.0]))


def harmonic(xs):
    xs = xs[-5:]
    return len(xs) / sum(1.0 / x for x in xs)


@given(seed=st.integers(0, 2**32 - 1))
def test_mpc_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    R = int(rng.integers(1, 5))
    horizon = int(rng.integers(1, 5))
    kbps = np.sort(rng.choice(np.arange(100, 6000, 10), R, replace=False))
    ladder = Ladder(kbps * 1e3, float(rng.choice([1.0, 2.0, 4.0])))
    L = ladder.segment_duration_s
    sizes = ladder.bitrates_bps[None, :] * L / 8.0 * rng.uniform(0.5, 1.5, (horizon, R))
    samples = list(rng.lognormal(math.log(kbps.mean() * 1e3), 1.0, int(rng.integers(1, 8))))
    buffer_s = float(rng.uniform(0, 3 * L * horizon))
    last = int(rng.integers(-1, R))
    left = int(rng.integers(1, horizon + 3))
    mask = rng.random(R) < 0.7 if rng.random() < 0.3 else np.ones(R, bool)
    if not mask.any():
        mask[rng.integers(0, R)] = True
    policy = abr.get("mpc", horizon=horizon)
    policy.reset(1, ladder)
    q = int(policy.select(obs_for(ladder, samples, buffer_s, last, sizes, left, mask))[0])
    pred = harmonic(samples)
    heff = min(horizon, left)
    best = brute_force_mpc(ladder.bitrates_bps.tolist(), sizes.tolist(), buffer_s, pred, last,
                           heff, L, allowed=mask.tolist())
    vmax = max(best.values())
    tol = 2e-4 * max(1.0, abs(vmax))
    assert best[q] >= vmax - tol, (q, best)
    # Pensieve keeps the last maximum: no higher first rung may (exactly) tie the best
    assert all(best[r] < vmax - 1e-7 * max(1.0, abs(vmax)) for r in best if r > q), (q, best)
    assert policy.last_info["expected_qoe"][0] == pytest.approx(vmax, abs=tol)
    assert policy.last_info["predicted_bps"][0] == pytest.approx(pred, rel=1e-12)


def test_mpc_batch_of_many_sessions_matches_singles():
    """Chunking over sessions (hundreds of rows) changes nothing."""
    rng = np.random.default_rng(11)
    n = 300
    L = 4.0
    sizes = PENSIEVE.bitrates_bps[None, None, :] * L / 8 * rng.uniform(0.8, 1.2, (n, 5, 6))
    hist = rng.lognormal(np.log(2e6), 0.7, (n, 8))
    obs = Observation(
        sessions=np.arange(n), buffer_s=rng.uniform(0, 30, n), last_rung=rng.integers(-1, 6, n),
        throughput_bps=hist, download_time_s=np.ones((n, 8)), next_sizes_bytes=sizes,
        segments_left=rng.integers(1, 9, n), segment_index=np.zeros(n, int), segment_duration_s=L,
        playing=np.ones(n, bool), mask=rng.random((n, 6)) < 0.9, time_s=np.zeros(n),
        buffer_cap_s=np.full(n, 30.0))
    for name in ("mpc", "robustmpc"):
        p = abr.get(name)
        p.reset(n, PENSIEVE)
        q = p.select(obs)
        for i in range(0, n, 37):
            s = abr.get(name)
            s.reset(1, PENSIEVE)
            assert s.select(single(obs, i))[0] == q[i]


def test_robustmpc_error_bound_is_the_published_definition():
    """Pensieve test/mpc.py: error_t = |est_{t-1} − x_t| / x_t (0 at the first step),
    est = harmonic mean of the last 5 samples, prediction = est / (1 + max of the last 5
    errors)."""
    rng = np.random.default_rng(3)
    xs = list(rng.lognormal(np.log(2e6), 0.6, 14))
    p = abr.get("robustmpc")
    p.reset(1, PENSIEVE)
    sizes = np.tile(PENSIEVE.bitrates_bps * 4 / 8, (5, 1))
    p.select(obs_for(PENSIEVE, [], 0.0, -1, sizes, 40))  # nothing measured yet
    assert np.isnan(p.last_info["predicted_bps"][0])
    errors, prev_est = [], None
    for t in range(1, len(xs) + 1):
        seen = xs[:t]
        x = seen[-1]
        errors.append(0.0 if prev_est is None else abs(prev_est - x) / x)
        est = harmonic(seen)
        prev_est = est
        max_err = max(errors[-5:])
        p.select(obs_for(PENSIEVE, seen, 10.0, 2, sizes, 40))
        assert p.last_info["max_error"][0] == pytest.approx(max_err, rel=1e-12)
        assert p.last_info["predicted_bps"][0] == pytest.approx(est / (1 + max_err), rel=1e-12)


def test_mpc_first_choice_and_tie_rule():
    p = abr.get("mpc")
    p.reset(1, PENSIEVE)
    sizes = np.tile(PENSIEVE.bitrates_bps * 4 / 8, (5, 1))
    # nothing measured: the rung for 1 Mbit/s, Pensieve's DEFAULT_QUALITY = 1
    assert p.select(obs_for(PENSIEVE, [], 0.0, -1, sizes, 48))[0] == 1
    # one segment left, huge buffer, previous rung 1: every rung >= 1 scores
    # b_r − |b_r − b_1| = b_1 = 0.75, rung 0 scores 0.3 − 0.45; Pensieve keeps the last
    # maximum, the top rung
    assert p.select(obs_for(PENSIEVE, [2e6], 40.0, 1, sizes, 1))[0] == 5


def test_horizon_limit():
    with pytest.raises(ValueError):
        abr.get("mpc", horizon=12).reset(1, PENSIEVE)


# -- FastMPC ------------------------------------------------------------------------------
SMALL = {"buffer_max_s": 30.0, "buffer_step_s": 1.5, "tput_bins": 30}


def test_fastmpc_table_agrees_with_mpc_at_grid_points(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fast = abr.get("fastmpc", **SMALL)
    fast.reset(1, PENSIEVE)
    mpc = abr.get("mpc")
    mpc.reset(1, PENSIEVE)
    nominal = np.tile(PENSIEVE.bitrates_bps * 4.0 / 8.0, (5, 1))
    rng = np.random.default_rng(0)
    for _ in range(300):
        b = float(fast.buffers[rng.integers(0, fast.buffers.size)])
        t = float(fast.tputs[rng.integers(0, fast.tputs.size)])
        last = int(rng.integers(-1, 6))
        left = int(rng.integers(1, 8))
        o = obs_for(PENSIEVE, [t], b, last, nominal, left)
        assert fast.select(o)[0] == mpc.select(o)[0], (b, t, last, left)


def test_fastmpc_table_is_cached_on_disk(tmp_path, monkeypatch):
    from abr.algorithms import fastmpc

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fastmpc.clear_memory()
    p = abr.get("fastmpc", **SMALL)
    p.reset(2, PENSIEVE)
    files = list((tmp_path / "abrlab").glob("fastmpc-*.npy"))
    assert len(files) == 1
    fastmpc.clear_memory()

    def boom(*a, **k):
        raise AssertionError("table rebuilt instead of loaded")

    monkeypatch.setattr(fastmpc, "build_table", boom)
    q = abr.get("fastmpc", **SMALL)
    q.reset(1, PENSIEVE)
    assert np.array_equal(q.table, p.table)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    other = Ladder(np.array([200e3, 800e3, 3000e3]), 2.0)
    abr.get("fastmpc", **SMALL).reset(1, other)
    assert len(list((tmp_path / "abrlab").glob("fastmpc-*.npy"))) == 2


def test_fastmpc_unwritable_cache_still_works(tmp_path, monkeypatch):
    from abr.algorithms import fastmpc

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    fastmpc.clear_memory()
    p = abr.get("fastmpc", **SMALL)
    p.reset(1, PENSIEVE)
    sizes = np.tile(PENSIEVE.bitrates_bps * 4 / 8, (5, 1))
    assert 0 <= p.select(obs_for(PENSIEVE, [3e6], 12.0, 2, sizes, 30))[0] < 6
