"""The analytical link against a brute-force integrator that walks the trace step by step."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from netem.link import Link, LinkParams, preset
from netem.trace import Trace, constant


def brute_force_finish(trace: Trace, start: float, bits: Fraction) -> tuple[Fraction, Fraction]:
    """When `bits` sent at `start` have arrived, and the rate of the step they finish in: the
    trace walked step by step (wrapping), whole periods skipped by division; plain Python, in
    exact rational arithmetic on the given floats."""
    F = Fraction
    if bits <= 0:
        return F(float(start)), F(0)
    duration = F(float(trace.duration_s))
    bounds = [F(float(t)) for t in trace.times_s] + [duration]
    steps = [(bounds[k], bounds[k + 1], F(float(trace.rates_bps[k]))) for k in range(len(trace.times_s))]
    period_bits = sum(r * (b - a) for a, b, r in steps)
    t = F(float(start))
    cycle = math.floor(t / duration)
    remaining = bits
    skipped = False
    while True:
        base = cycle * duration
        for a, b, r in steps:
            lo, hi = base + a, base + b
            if hi <= t:
                continue
            lo = max(lo, t)
            if r > 0 and r * (hi - lo) >= remaining:
                return lo + remaining / r, r
            remaining -= r * (hi - lo)
            t = hi
        cycle += 1
        if not skipped and remaining > period_bits:
            whole = math.floor(remaining / period_bits)
            if whole * period_bits >= remaining:
                whole -= 1
            remaining -= whole * period_bits
            cycle += whole
            t = cycle * duration
            skipped = True


def assert_finishes_as_brute_force(trace: Trace, start: float, bits: float, finish_s: float) -> None:
    """`finish_s` is, up to rounding, the exact finish of `bits` less or more one part in 10^9.

    The finish time jumps where a transfer ends exactly with an on-period followed by a gap
    (1 Mbit/s for 0.4 s, then 0 for 1 s; 10 Mbit ends at 34.0 s, a bit more at 35.0 s). Rounding
    on either side of such a tie moves the answer by the whole gap: 0.7 s as a float is a
    little less than 0.7 s, so the exact answer for the floats given can be the later one. Either
    side of a tie is right; a finish inside the gap is not. Away from ties the two finishes are
    nanoseconds apart."""
    eps, exact = Fraction(1, 10**9), Fraction(float(bits))
    lo, rate_lo = brute_force_finish(trace, start, exact * (1 - eps))
    hi, rate_hi = brute_force_finish(trace, start, exact * (1 + eps))
    rounding = eps * max(1, finish_s)

    def near(x: Fraction, rate: Fraction) -> bool:         # within the 10^-9 of bits, at that rate
        return abs(Fraction(finish_s) - x) <= 2 * eps * exact / rate + rounding

    assert lo - rounding <= finish_s <= hi + rounding, (finish_s, float(lo), float(hi))
    assert near(lo, rate_lo) or near(hi, rate_hi), (finish_s, float(lo), float(hi))   # never inside a gap


def brute_force_mahimahi(trace: Trace, start: float, size_bytes: float) -> float:
    """Mahimahi's own schedule: the k-th opportunity after `start` delivers the k-th packet."""
    packets = math.ceil(size_bytes / 1500)
    p = trace.packet_times_s
    n = 0
    cycle = math.floor(start / trace.duration_s)
    while True:
        for t in p:
            abs_t = cycle * trace.duration_s + t
            if abs_t > start:
                n += 1
                if n >= packets:
                    return abs_t
        cycle += 1


@st.composite
def traces(draw):
    n = draw(st.integers(1, 8))
    durs = draw(st.lists(st.floats(0.05, 5.0), min_size=n, max_size=n))
    rates = draw(st.lists(st.one_of(st.just(0.0), st.floats(1e3, 5e7)), min_size=n, max_size=n))
    if sum(r * d for r, d in zip(rates, durs)) <= 0:
        rates[0] = 1e6
    times = np.concatenate([[0.0], np.cumsum(durs)[:-1]])
    return Trace(times, np.array(rates), float(np.sum(durs)))


@given(st.lists(st.tuples(traces(), st.floats(0, 100), st.integers(1, 5_000_000)), min_size=1, max_size=6))
def test_link_matches_brute_force(cases):
    trs = [c[0] for c in cases]
    link = Link(trs, LinkParams())
    idx = np.arange(len(cases))
    start = np.array([c[1] for c in cases])
    size = np.array([c[2] for c in cases], dtype=float)
    got = link.transfer(idx, start, size)
    for i, (tr, s, b) in enumerate(cases):
        assert got.latency_s[i] == 0
        assert_finishes_as_brute_force(tr, s, b * 8, start[i] + got.transfer_s[i])


@given(traces(), st.floats(0, 50), st.integers(1, 2_000_000), st.integers(1, 2_000_000), st.floats(0, 10))
def test_transfer_monotone_in_size_and_start(tr, start, a, b, later):
    link = Link([tr])
    small, big = sorted((a, b))
    t_small = link.transfer(np.array([0]), np.array([start]), np.array([small])).transfer_s[0]
    t_big = link.transfer(np.array([0]), np.array([start]), np.array([big])).transfer_s[0]
    assert t_small <= t_big + 1e-9
    end_early = start + t_small
    end_late = start + later + link.transfer(np.array([0]), np.array([start + later]), np.array([small])).transfer_s[0]
    assert end_early <= end_late + 1e-9


def test_constant_rate_is_size_over_rate():
    link = Link([constant(8e6, 10.0)])
    got = link.transfer(np.array([0, 0]), np.array([0.0, 9.5]), np.array([1_000_000, 3_000_000]))
    # 1 MB = 8 Mbit at 8 Mbit/s -> 1 s; 3 MB -> 3 s, wrapping past the 10 s period
    assert got.transfer_s == pytest.approx([1.0, 3.0])


def test_zero_capacity_gap_is_waited_out():
    tr = Trace(np.array([0.0, 1.0, 3.0]), np.array([8e6, 0.0, 8e6]), 4.0)
    link = Link([tr])
    # 2 MB from t=0: 1 MB in the first second, nothing for 2 s, 1 MB in 1 s -> done at 4 s
    got = link.transfer(np.array([0]), np.array([0.0]), np.array([2_000_000]))
    assert got.transfer_s[0] == pytest.approx(4.0)


@given(st.lists(st.integers(0, 400), min_size=1, max_size=60), st.floats(0, 2.0), st.integers(1, 60_000))
def test_mahimahi_schedule_within_one_opportunity(ms, start, size):
    ms = sorted(ms)
    if ms[-1] == 0:
        ms.append(1)
    pt = np.array(ms, dtype=float) / 1000.0
    dur = ms[-1] / 1000.0
    tr = Trace(np.array([0.0]), np.array([len(ms) * 12000 / dur]), dur, packet_times_s=pt)
    link = Link([tr])
    got = start + link.transfer(np.array([0]), np.array([start]), np.array([size])).transfer_s[0]
    want = brute_force_mahimahi(tr, start, size)
    # our curve counts an opportunity at exactly `start` as past; Mahimahi may use one more
    gaps = np.diff(np.concatenate([pt, pt + dur]))
    one_opportunity = gaps.max() if gaps.size else dur
    assert got <= want + 1e-9
    assert want - got <= one_opportunity + 1e-9


def test_sabre_latency_straddles_periods():
    # latency 100 ms for 50 ms, then 200 ms: half a unit in the first period, the other
    # half needs 100 ms of the second -> 150 ms total (Sabre's do_latency_delay)
    tr = Trace(np.array([0.0, 0.05]), np.array([1e6, 1e6]), 10.0, latency_s=np.array([0.1, 0.2]))
    link = Link([tr], preset("sabre"))
    got = link.transfer(np.array([0]), np.array([0.0]), np.array([0]))
    assert got.latency_s[0] == pytest.approx(0.15)


def test_pensieve_preset_latency_outside_trace_time():
    link = Link([constant(1e6, 100.0)], preset("pensieve"))
    got = link.transfer(np.array([0]), np.array([0.0]), np.array([95_000]))
    # 95,000 bytes at 1 Mbit/s × 0.95 efficiency = 0.8 s, plus a fixed 80 ms
    assert got.transfer_s[0] == pytest.approx(0.8)
    assert got.latency_s[0] == pytest.approx(0.08)
    assert got.trace_advance_s[0] == pytest.approx(0.8)


def test_many_sessions_on_distinct_traces_vectorised():
    rng = np.random.default_rng(1)
    trs = []
    for i in range(50):
        n = rng.integers(1, 30)
        d = rng.uniform(0.1, 3, n)
        trs.append(Trace(np.concatenate([[0], np.cumsum(d)[:-1]]), rng.uniform(1e5, 1e7, n), d.sum()))
    link = Link(trs)
    idx = rng.integers(0, 50, 500)
    start = rng.uniform(0, 200, 500)
    size = rng.integers(1, 3_000_000, 500)
    got = link.transfer(idx, start, size)
    for i in range(0, 500, 25):
        assert_finishes_as_brute_force(trs[idx[i]], start[i], size[i] * 8, start[i] + got.transfer_s[i])


def test_noise_is_seeded():
    a = Link([constant(1e6)], LinkParams(noise=(0.9, 1.1), seed=3)).transfer(np.zeros(5, int), np.zeros(5), np.full(5, 1e5))
    b = Link([constant(1e6)], LinkParams(noise=(0.9, 1.1), seed=3)).transfer(np.zeros(5, int), np.zeros(5), np.full(5, 1e5))
    assert np.array_equal(a.transfer_s, b.transfer_s)
    assert np.all((a.transfer_s >= 0.8 * 0.9 - 1e-12) & (a.transfer_s <= 0.8 * 1.1 + 1e-12))


def test_trace_rate_at_steps_and_wraps():
    tr = Trace(np.array([0.0, 1.0, 3.0]), np.array([5e6, 0.0, 2e6]), 4.0)
    # inside each step, at a boundary (the new step's rate), and one period later
    assert tr.rate_at(np.array([0.5, 1.0, 2.9, 3.0, 4.5, 7.99])).tolist() == [5e6, 0.0, 0.0, 2e6, 5e6, 2e6]


def test_per_request_overhead_adds_to_latency_and_trace_time():
    tr = Trace(np.array([0.0]), np.array([8e6]), 100.0, latency_s=np.array([0.05]))
    base = Link([tr], preset("trace-latency")).transfer(np.array([0]), np.array([0.0]), np.array([1_000_000]))
    more = Link([tr], preset("trace-latency", overhead_s=0.025)).transfer(np.array([0]), np.array([0.0]),
                                                                         np.array([1_000_000]))
    assert base.latency_s[0] == pytest.approx(0.05) and more.latency_s[0] == pytest.approx(0.075)
    assert more.transfer_s[0] == pytest.approx(base.transfer_s[0]) == pytest.approx(1.0)
    assert more.trace_advance_s[0] == pytest.approx(1.075)
    with pytest.raises(Exception):
        LinkParams(overhead_s=-1.0)
