"""The simulator's fast paths give the answers of the straightforward code they replace.

Each fast path (issue 15) reorders work, never arithmetic: MPC's solve with sessions
innermost and its last level reduced as it is built, Sabre's rules laid out rungs ×
sessions, policy state indexed in place when every session decides, batch records
transposed on first use, the link's per-curve gathers kept for the same index array. These
tests hold each one to its reference, bit for bit, on random inputs. No test times anything.
"""
from __future__ import annotations

import numpy as np
import pytest

from abr.algorithms import mpc
from abr.algorithms._common import masked_argmax
from abr.algorithms.sabre_rules import bola_choice, bola_scores, fitting_rung, leading_true, quality_from_throughput
from abr.base import state_rows
from netem.link import Link, PRESETS
from netem.trace import Trace
from player.core.simulator import RECORDS, SessionSpec, simulate_batch
from player.lab.data import bundled_paths
from player.lab.sweep import _movie, _trace


def solve_reference(tree: mpc.SequenceTree, buffer_s, dt_s, last, heff, mu, seg_s):
    """MPC's solve as it was: `SequenceTree.levels` per chunk of 16 rows, the tie rule per chunk."""
    n = buffer_s.shape[0]
    R = tree.R
    best = np.zeros(n, dtype=np.int64)
    value = np.zeros(n)
    for lo in range(0, n, 16):
        hi = min(n, lo + 16)
        he = heff[lo:hi]
        for h, C in tree.levels(buffer_s[lo:hi], dt_s[lo:hi], last[lo:hi], mu, seg_s, int(he.max())):
            rows = np.flatnonzero(he == h + 1)
            if rows.size == 0:
                continue
            M = mpc.first_digit_min(C if rows.size == C.shape[0] else C[rows], R)
            k = mpc.pick_first(M)
            best[lo + rows] = R - 1 - k
            value[lo + rows] = -M[np.arange(rows.size), k]
    return best, value


@pytest.mark.parametrize("R,H", [(6, 5), (3, 3), (4, 1), (10, 2), (2, 6)])
@pytest.mark.parametrize("uniform", [True, False])
def test_mpc_solve_is_the_level_by_level_search(R, H, uniform):
    rng = np.random.default_rng(R * 100 + H * 10 + uniform)
    n = 237
    bitrates = np.sort(rng.uniform(0.2e6, 5e6, R))
    tree = mpc.SequenceTree(bitrates, H, 1.0)
    buffer_s = rng.uniform(0, 30, n)
    buffer_s[:5] = 0.0
    dt = rng.exponential(3.0, (n, H, R)).astype(np.float32)
    dt[rng.random((n, H, R)) < 0.05] = np.inf            # masked rungs
    dt[:3, :, :] = np.float32(2.0)                        # exact ties
    last = rng.integers(-1, R, n)
    heff = np.full(n, H) if uniform else rng.integers(1, H + 1, n)
    got = mpc.solve(tree, buffer_s, dt, last, heff.astype(np.int64), 4.3, 4.0)
    want = solve_reference(tree, buffer_s, dt, last, heff.astype(np.int64), 4.3, 4.0)
    assert np.array_equal(got[0], want[0])
    assert np.array_equal(got[1], want[1])


def test_mpc_last_level_keeps_only_digits_that_can_be_least():
    # 3 rungs 1, 2, 4 Mbit/s, smoothness 1: digit d is rung 2 - d. After the lowest rung
    # (p = 2) every rung costs -1 (bitrate gained = smoothness paid): the lowest, fastest
    # one wins them all. After the top rung (p = 0) each lower rung costs less QoE-wise but
    # is faster: nothing is dominated.
    tree = mpc.SequenceTree(np.array([1e6, 2e6, 4e6]), 2, 1.0)
    dt = np.array([[4.0, 4.5], [2.0, 2.2], [1.0, 1.1]], dtype=np.float32)   # (digit, session)
    keep = mpc.undominated_digits(tree.incT, dt)
    assert [k.tolist() for k in keep] == [[0, 1, 2], [1, 2], [2]]
    # one session where the middle rung downloads slower than the top: it is kept after p = 1
    dt[1, 1] = np.float32(5.0)
    keep = mpc.undominated_digits(tree.incT, dt)
    assert [k.tolist() for k in keep] == [[0, 1, 2], [0, 1, 2], [2]]
    # equal download times and costs: one of the two is kept, never both left out
    tree = mpc.SequenceTree(np.array([1e6, 1e6]), 2, 1.0)
    keep = mpc.undominated_digits(tree.incT, np.ones((2, 3), dtype=np.float32))
    assert all(k.size == 1 for k in keep)


@pytest.mark.parametrize("R,H,smooth", [(6, 5, 1.0), (4, 3, 1.0), (5, 4, 0.5), (10, 3, 1.0)])
def test_mpc_solve_with_pruned_last_level_is_the_full_search(R, H, smooth):
    """Download times that grow with the rung, as real segment sizes do, so the last level
    skips most (prefix, digit) pairs; some sessions' sizes out of order, some forbidden rungs."""
    rng = np.random.default_rng(R * 10 + H)
    n = 611
    bitrates = np.sort(rng.uniform(0.2e6, 5e6, R))
    tree = mpc.SequenceTree(bitrates, H, smooth)
    sizes = bitrates[None, None, :] * rng.uniform(0.7, 1.3, (n, H, 1))       # (n, H, R) in rung order
    sizes[:40] *= rng.uniform(0.8, 1.2, (40, H, R))                          # out of order
    dt = (sizes / rng.uniform(0.3e6, 6e6, (n, 1, 1))).astype(np.float32)
    dt[rng.random((n, H, R)) < 0.02] = np.inf
    buffer_s = rng.uniform(0, 20, n)
    last = rng.integers(-1, R, n)
    heff = np.full(n, H, dtype=np.int64)
    got = mpc.solve(tree, buffer_s, dt, last, heff, 4.3, 4.0)
    want = solve_reference(tree, buffer_s, dt, last, heff, 4.3, 4.0)
    assert np.array_equal(got[0], want[0])
    assert np.array_equal(got[1], want[1])


def test_bola_choice_is_the_masked_argmax_of_the_scores():
    rng = np.random.default_rng(1)
    n, R = 500, 7
    b = np.sort(rng.uniform(200, 6000, R))
    u = np.log(b / b[0])
    Vp = rng.uniform(0, 3000, n)
    level = rng.uniform(0, 30000, n)
    level[:20] = Vp[:20] * (u[3] + 5.0)                   # ties between rungs
    mask = rng.random((n, R)) < 0.8
    mask[:10] = False                                     # nothing allowed
    for m in (np.ones((n, R), dtype=bool), mask):
        want = masked_argmax(bola_scores(Vp, np.full(n, 5.0), u, level, b), m)
        assert np.array_equal(bola_choice(Vp, 5.0, u, level, b, m), want)
    Vp[7] = np.nan                                        # NaN goes where argmax puts it
    want = masked_argmax(bola_scores(Vp, np.full(n, 5.0), u, level, b), mask)
    assert np.array_equal(bola_choice(Vp, 5.0, u, level, b, mask), want)


def test_sabre_rung_scans_are_the_row_by_row_scans():
    rng = np.random.default_rng(2)
    n = 400
    b = np.sort(rng.uniform(200, 6000, 8))
    t = rng.uniform(0, 8000, n)
    t[:5] = [np.nan, 0.0, np.inf, 1e-300, 1e300]
    lat = rng.uniform(0, 500, n)
    p = 4000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = lat[:, None] + p * b[None, 1:] / t[:, None] <= p
    assert np.array_equal(quality_from_throughput(t, lat, p, b), np.cumprod(ok, axis=1).sum(axis=1))
    safe = rng.uniform(0, 3e7, n)
    ok = ~(b[None, 1:] * p > safe[:, None])
    assert np.array_equal(fitting_rung(safe, p, b), np.cumprod(ok, axis=1).sum(axis=1))
    x = rng.random((6, 9)) < 0.7
    assert np.array_equal(leading_true(x.T, axis=0), leading_true(x))


def test_state_rows_is_a_slice_only_for_every_session_in_order():
    assert state_rows(np.arange(5), 5) == slice(None)
    for s in ([0, 1, 2, 3], [1, 0, 2, 3, 4], [0, 1, 1, 3, 4], [0, 2, 3, 4, 4]):
        arr = np.array(s)
        assert state_rows(arr, 5) is arr
    assert isinstance(state_rows(np.arange(0), 0), np.ndarray)


def test_batch_records_are_per_session_rows():
    """The lockstep writes (K, n), one row per step; a batch returns (n, K), C-contiguous,
    each session's row the same as its own result's, the sizes whole bytes."""
    traces, movie = bundled_paths()
    specs = [SessionSpec(_trace(traces[i % len(traces)]), _movie(movie), "bola", {}, None, "sabre") for i in range(4)]
    res = simulate_batch(specs)
    K = res.chosen.shape[1]
    assert set(RECORDS) <= set(res.records)
    for k in RECORDS:
        rec = res.records[k]
        assert rec.shape == (4, K) and rec.flags.c_contiguous, k
    assert res.records["size"].dtype == np.int64
    for i in range(4):
        one = simulate_batch(specs[i:i + 1])
        for k in RECORDS:
            assert np.array_equal(res.records[k][i], one.records[k][0]), k


def test_the_link_gathers_again_for_an_index_array_changed_in_place():
    traces = [Trace(np.array([0.0, 1.0]), np.array([1e6, 4e6]), 2.0, latency_s=np.array([0.05, 0.1])),
              Trace(np.array([0.0]), np.array([2e5]), 1.0, latency_s=np.array([0.2]))]
    link = Link(traces, PRESETS["sabre"])
    idx = np.array([0, 1, 0, 1])
    start = np.array([0.0, 0.5, 1.5, 3.0])
    size = np.full(4, 1e5)
    first = link.transfer(idx, start, size)
    idx[:] = [1, 0, 1, 0]                                  # the same array, other curves
    again = link.transfer(idx, start, size)
    fresh = Link(traces, PRESETS["sabre"]).transfer(np.array([1, 0, 1, 0]), start, size)
    assert np.array_equal(again.total_s, fresh.total_s) and not np.array_equal(first.total_s, again.total_s)


@pytest.mark.parametrize("skip_first", [False, True])
def test_session_metrics_in_blocks_are_the_metrics_in_one_pass(monkeypatch, skip_first):
    from player.core import summary

    rng = np.random.default_rng(4)
    n, K = 700, 31
    chosen = rng.integers(0, 6, (n, K))
    rebuffer = np.where(rng.random((n, K)) < 0.1, rng.random((n, K)), 0.0)
    kw = dict(startup_s=rng.random(n), session_s=rng.random(n) * 100 + 120, stall_count=rng.integers(0, 5, n),
              bytes_=rng.integers(0, 10 ** 9, n), wasted_bytes=rng.integers(0, 10 ** 6, n),
              abandons=rng.integers(0, 3, n), heights=np.array([240, 360, 480, 720, 1080, 2160.0]),
              qoe_skip_first=skip_first)
    args = (chosen, rebuffer, np.full(K, 4.0), np.linspace(3e5, 6e6, 6))
    monkeypatch.setattr(summary, "METRIC_BLOCK_ROWS", 10 ** 6)
    whole = summary.session_metrics(*args, **kw)
    monkeypatch.setattr(summary, "METRIC_BLOCK_ROWS", 64)
    blocks = summary.session_metrics(*args, **kw)
    assert whole.keys() == blocks.keys()
    for k in whole:
        assert whole[k].dtype == blocks[k].dtype and np.array_equal(whole[k], blocks[k], equal_nan=True), k


def test_a_batch_keeping_no_records_has_the_same_metrics():
    traces, movie = bundled_paths()
    for preset, abr in (("sabre-abandon", "bola"), ("dashjs", "dashjs"), ("default", "bolae"), ("live", "dashjs")):
        specs = [SessionSpec(_trace(traces[i % len(traces)]), _movie(movie), abr, {}, None, preset) for i in range(9)]
        full, lean = simulate_batch(specs), simulate_batch(specs, keep=())
        assert np.array_equal(full.chosen, lean.chosen)
        for k in full.metrics:
            assert np.array_equal(full.metrics[k], lean.metrics[k], equal_nan=True), (preset, k)
        assert set(lean.records) < set(full.records)
        with pytest.raises(ValueError, match="kept no"):
            lean.session(0)
