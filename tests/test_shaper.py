"""The trace-driven bottleneck: sans-IO scheduling on a fake clock, then a short real-time check."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from hypothesis import given, strategies as st

from netem.errors import InputError
from netem.shaper import Capacity, Scheduler, Shaper
from netem.trace import Trace, constant


def jain(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(x.sum() ** 2 / (x.size * (x ** 2).sum()))


def drive(sched: Scheduler, flows, until: float, take: bool = True, step: float | None = None):
    """Run the scheduler on a fake clock: jump to each grant (or by `step`), writers take
    all their credit at once. Returns [(time, {flow id: bytes taken so far})]."""
    got = {f.id: 0 for f in flows}
    history = []
    t = 0.0
    for _ in range(1_000_000):
        nt = sched.next_time()
        if nt is None:
            break
        t = nt if step is None else max(t + step, nt)
        if t > until:
            break
        for f in sched.advance(t):
            if take:
                got[f.id] += sched.take(f, 1 << 40, t)
        history.append((t, dict(got)))
    return history


# -- capacity curve -------------------------------------------------------------------------
def test_capacity_curve_integrates_and_inverts_with_wrap():
    tr = Trace(np.array([0.0, 1.0, 2.0]), np.array([8e6, 0.0, 16e6]), 3.0)  # 1 MB, 0, 2 MB per s
    c = Capacity(tr)
    assert c.bytes_at(0.5) == pytest.approx(0.5e6)
    assert c.bytes_at(1.7) == pytest.approx(1e6)
    assert c.bytes_at(2.5) == pytest.approx(2e6)
    assert c.bytes_at(3.0 + 0.5) == pytest.approx(3e6 + 0.5e6)  # wraps
    assert c.time_at(1e6) == pytest.approx(1.0)  # earliest time, not inside the zero step
    assert c.time_at(1.5e6) == pytest.approx(2.25)
    for b in np.linspace(1, 20e6, 57):
        assert c.bytes_at(c.time_at(b)) == pytest.approx(b, rel=1e-9)


def test_capacity_outages_cut_capacity_out():
    c = Capacity(constant(8e6, 10.0), outages=[(1.0, 2.0), (1.5, 3.0), (5.0, 6.0)])  # merged to (1,3),(5,6)
    assert c.outages == [(1.0, 3.0), (5.0, 6.0)]
    assert c.bytes_at(2.5) == pytest.approx(1e6)
    assert c.bytes_at(4.0) == pytest.approx(2e6)
    assert c.bytes_at(7.0) == pytest.approx(4e6)
    assert c.time_at(1.5e6) == pytest.approx(3.5)
    assert c.rate_at(2.0) == 0.0 and c.rate_at(4.0) == 8e6


def test_capacity_mahimahi_packets():
    tr = Trace(np.array([0.0]), np.array([1.0]), 1.0, packet_times_s=np.array([0.1, 0.2, 0.2, 0.9]))
    c = Capacity(tr)
    assert c.bytes_at(0.05) == 0
    assert c.bytes_at(0.2) == 3 * 1500
    assert c.bytes_at(1.15) == 5 * 1500
    assert c.time_at(3000) == pytest.approx(0.2)
    assert c.time_at(6000) == pytest.approx(0.9)
    assert c.time_at(6001) == pytest.approx(1.1)


def test_bad_outage_window():
    with pytest.raises(InputError):
        Capacity(constant(1e6, 1.0), outages=[(2.0, 1.0)])


# -- scheduling on a fake clock --------------------------------------------------------------
def test_single_flow_takes_exactly_the_capacity_time():
    cap = Capacity(Trace(np.array([0.0, 1.0]), np.array([8e6, 24e6]), 2.0))
    s = Scheduler(cap)
    f = s.open(2_500_000, now=0.0)
    hist = drive(s, [f], until=100)
    t_end, got = hist[-1]
    assert got[f.id] == 2_500_000
    assert t_end == pytest.approx(cap.time_at(2_500_000))  # 1 MB in 1 s, 1.5 MB at 3 MB/s = 1.5 s
    assert t_end == pytest.approx(1.5)
    # never ahead of the capacity curve, pacing in small quanta
    prev_t, prev = 0.0, 0
    for t, g in hist:
        assert g[f.id] <= cap.bytes_at(t) + 1e-6
        assert g[f.id] - prev <= max(16 * 1024, cap.rate_at(prev_t) * 0.005 / 8) + 1
        prev_t, prev = t, g[f.id]


def test_idle_capacity_is_not_banked():
    s = Scheduler(Capacity(constant(8e6, 60.0)))
    f = s.open(0, now=0.0)
    s.add_demand(f, 1_000_000, now=5.0)  # the link was idle for 5 s
    hist = drive(s, [f], until=100)
    assert hist[0][0] > 5.0
    assert hist[-1][0] == pytest.approx(6.0)


def test_fair_share_among_identical_flows():
    s = Scheduler(Capacity(constant(20e6, 60.0)))
    flows = [s.open(10_000_000, now=0.0) for _ in range(20)]
    hist = drive(s, flows, until=3.0)
    t, got = hist[-1]
    assert jain(list(got.values())) >= 0.99
    assert sum(got.values()) == pytest.approx(Capacity(constant(20e6, 60.0)).bytes_at(t), rel=1e-6)


def test_late_driver_catches_up_without_losing_capacity():
    cap = Capacity(constant(8e6, 60.0))
    s = Scheduler(cap)
    f = s.open(float("inf"), now=0.0)
    hist = drive(s, [f], until=2.0, step=0.05)  # woken only every 50 ms
    t, got = hist[-1]
    assert got[f.id] == pytest.approx(cap.bytes_at(t), abs=s.quantum(t))


def test_outage_releases_nothing_inside_the_window():
    cap = Capacity(constant(8e6, 60.0), outages=[(0.5, 1.5)])
    s = Scheduler(cap)
    f = s.open(2_000_000, now=0.0)
    hist = drive(s, [f], until=100)
    assert not [t for t, _ in hist if 0.5 < t < 1.5]
    assert hist[-1][0] == pytest.approx(3.0)


def test_blocked_writer_stops_consuming_the_link():
    s = Scheduler(Capacity(constant(8e6, 60.0)))
    slow = s.open(10_000_000, now=0.0)
    fast = s.open(10_000_000, now=0.0)
    got = {slow.id: 0, fast.id: 0}
    t = 0.0
    while s.next_time() is not None and t < 1.0:
        t = s.next_time()
        for f in s.advance(t):
            if f is fast:
                got[f.id] += s.take(f, 1 << 40, t)
    assert slow.credit <= 3 * s.quantum(t)  # capped: a full queue is skipped
    assert got[fast.id] >= 0.95 * 1e6 - slow.credit


def test_closed_flow_frees_the_link():
    s = Scheduler(Capacity(constant(8e6, 60.0)))
    a = s.open(10_000_000, now=0.0)
    b = s.open(500_000, now=0.0)
    s.close(a)
    hist = drive(s, [b], until=100)
    assert hist[-1][0] == pytest.approx(0.5)


@given(rates=st.lists(st.floats(0.0, 50e6), min_size=1, max_size=6),
       demands=st.lists(st.integers(1, 3_000_000), min_size=1, max_size=5),
       step=st.sampled_from([None, 0.013, 0.2]))
def test_never_ahead_of_capacity_and_work_conserving(rates, demands, step):
    if sum(rates) < 1e5:
        rates = rates + [1e6]
    tr = Trace(np.arange(len(rates), dtype=float) * 0.5, np.array(rates), len(rates) * 0.5)
    cap = Capacity(tr)
    s = Scheduler(cap)
    flows = [s.open(d, now=0.0) for d in demands]
    hist = drive(s, flows, until=1e6, step=step)
    total = 0
    for t, got in hist:
        total = sum(got.values())
        assert total <= cap.bytes_at(t) + 1e-6
    assert total == sum(demands)
    # backlogged from 0 to the end: finished no later than the capacity allows (+ one wake step)
    t_end = hist[-1][0]
    assert t_end <= cap.time_at(sum(demands)) + (step or 0) + 1e-6


# -- the asyncio driver, real time -------------------------------------------------------------
def test_asyncio_driver_paces_at_the_trace_rate():
    # 2 Mbit/s then 6 Mbit/s (1 s each), replayed 10× faster: 2.5 Mbit over 1.5 trace s
    tr = Trace(np.array([0.0, 1.0]), np.array([2e6, 6e6]), 2.0)
    size = 500_000  # bytes: 250 kB in the first trace second, 250 kB at 750 kB/s
    expected_wall = Capacity(tr).time_at(size) / 10

    async def main():
        sh = Shaper(tr, time_scale=10)
        sh.start()
        t0 = time.monotonic()
        sent = 0
        flow = sh.open(size)
        while sent < size:
            sent += await flow.take(size - sent)
        flow.close()
        return time.monotonic() - t0

    took = asyncio.run(asyncio.wait_for(main(), 10))
    assert took == pytest.approx(expected_wall, rel=0.25)


def test_asyncio_driver_shares_fairly():
    async def main():
        sh = Shaper(constant(40e6, 60.0), time_scale=1)
        sh.start()
        counts = [0] * 4
        deadline = time.monotonic() + 0.4

        async def one(i):
            flow = sh.open(float("inf"))
            while time.monotonic() < deadline:
                counts[i] += await flow.take(1 << 20)
            flow.close()

        await asyncio.gather(*(one(i) for i in range(4)))
        return counts

    counts = asyncio.run(asyncio.wait_for(main(), 10))
    assert jain(counts) >= 0.95
    assert sum(counts) <= 40e6 / 8 * 0.5


def test_a_writer_asking_piece_by_piece_is_granted_its_bytes_and_no_more():
    # a live body: each piece (a CMAF chunk) is asked for when the writer reaches it. The
    # grant in flight already holds the last bytes a writer waits for; asking for them
    # again granted a phantom grant, which the next piece then used (its first write the
    # size of the previous tail) or, at a body's end, cost the link its time
    pieces = [12_808, 7_426, 4_058]

    async def main():
        sh = Shaper(constant(4e6, 60.0), time_scale=1)
        sh.start()
        flow = sh.open(0)
        writes = []
        for piece in pieces:
            left = piece
            while left:
                n = await flow.take(left)
                writes.append(n)
                left -= n
        granted = flow.granted
        flow.close()
        return writes, granted

    writes, granted = asyncio.run(asyncio.wait_for(main(), 10))
    assert sum(writes) == sum(pieces)
    assert granted == sum(pieces)          # with the phantom grants: 12,808 + 308 + 7,426 + 2,426 + ...
