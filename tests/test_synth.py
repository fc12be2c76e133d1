"""Synthetic traces: shapes, determinism by seed, and that each parameter does what it says."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netem import synth
from netem.errors import InputError


def test_constant():
    tr = synth.constant(2.5e6, 12.0, latency_s=0.03)
    assert tr.mean_rate_bps == 2.5e6 and tr.duration_s == 12.0 and tr.format == "synthetic"
    np.testing.assert_array_equal(tr.latency_s, [0.03])


def test_steps_scalar_and_per_step_durations():
    tr = synth.steps([4e6, 1e6, 4e6], 20.0)
    np.testing.assert_array_equal(tr.times_s, [0, 20, 40])
    assert tr.duration_s == 60.0 and tr.mean_rate_bps == 3e6
    tr = synth.steps([1e6, 0.0, 2e6], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(tr.times_s, [0, 1, 3])
    assert tr.capacity_bits == 7e6


def test_outages_shape_and_capacity():
    tr = synth.outages(4e6, period_s=10.0, outage_s=2.0, duration_s=30.0)
    np.testing.assert_array_equal(tr.times_s, [0, 8, 10, 18, 20, 28])
    np.testing.assert_array_equal(tr.rates_bps, [4e6, 0] * 3)
    assert tr.mean_rate_bps == pytest.approx(4e6 * 8 / 10)
    cut = synth.outages(4e6, 10.0, 2.0, 25.0, outage_rate_bps=1e5)
    assert cut.duration_s == 25.0 and cut.times_s[-1] == 20.0
    assert synth.outages(1e6, 10.0, 0.0, 30.0).times_s.size == 1


@pytest.mark.parametrize("call", [
    lambda: synth.outages(1e6, 10.0, 10.0, 30.0),
    lambda: synth.outages(0.0, 10.0, 1.0, 30.0),
    lambda: synth.steps([0.0, 0.0], 1.0),
    lambda: synth.steps([1e6, -1.0], 1.0),
    lambda: synth.steps([1e6, 1e6], [1.0]),
    lambda: synth.constant(float("nan")),
    lambda: synth.markov(min_rate_bps=5e6, max_rate_bps=1e6),
    lambda: synth.markov(switch_prob=1.5),
    lambda: synth.markov(step_s=1e-9, duration_s=1e6),
    lambda: synth.constant(1e6, latency_s=-1.0),
])
def test_bad_parameters_are_input_errors(call):
    with pytest.raises(InputError):
        call()


def test_markov_is_reproducible_by_seed():
    a, b, c = synth.markov(seed=5), synth.markov(seed=5), synth.markov(seed=6)
    np.testing.assert_array_equal(a.rates_bps, b.rates_bps)
    assert not np.array_equal(a.rates_bps, c.rates_bps)
    assert a.duration_s == 300.0 and a.times_s.size == 300


def test_markov_without_noise_sits_on_log_spaced_states():
    tr = synth.markov(min_rate_bps=1e5, max_rate_bps=1e7, n_states=5, noise=0.0, switch_prob=0.5, seed=1)
    states = np.geomspace(1e5, 1e7, 5)
    assert set(np.unique(tr.rates_bps)) <= set(states)
    assert np.unique(tr.rates_bps).size >= 3


def test_markov_switch_probability_controls_switching():
    def switches(p: float) -> int:
        tr = synth.markov(noise=0.0, switch_prob=p, duration_s=2000, seed=3)
        return int(np.count_nonzero(np.diff(tr.rates_bps)))

    assert switches(0.0) == 0
    assert switches(0.05) < switches(0.3)
    assert switches(0.3) == pytest.approx(0.3 * 2000, rel=0.2)


def test_markov_noise_widens_and_floor_clips():
    bare = synth.markov(noise=0.0, seed=2, duration_s=1000)
    noisy = synth.markov(noise=0.3, seed=2, duration_s=1000)
    ratio = noisy.rates_bps / bare.rates_bps  # same chain: noise is drawn independently of switching
    assert 0.2 < np.std(ratio) < 0.4
    floored = synth.markov(noise=2.0, floor_bps=150e3, seed=2, duration_s=1000)
    assert floored.rates_bps.min() == 150e3


def test_markov_last_step_is_cut_and_latency_applies():
    tr = synth.markov(step_s=0.7, duration_s=10.0, latency_s=0.05)
    assert tr.times_s.size == 15 and tr.duration_s == 10.0
    assert tr.step_durations_s[-1] == pytest.approx(0.2)
    assert tr.mean_latency_s() == pytest.approx(0.05)


@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.floats(0, 1), st.floats(0.1, 5), st.floats(0, 1))
def test_markov_always_valid(seed, n_states, p, step_s, noise):
    tr = synth.markov(seed=seed, n_states=n_states, switch_prob=p, step_s=step_s, noise=noise, duration_s=60,
                      floor_bps=1e4)
    assert tr.capacity_bits > 0
    assert tr.rates_bps.min() >= 1e4
    assert tr.duration_s == 60
