"""The crowd simulator (`player.core.crowd`): processor sharing against brute force, a group of
one against the lockstep simulator, the TCP-like model by hand, bad input."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, strategies as st

from netem import synth
from netem.content import Content, rungs_from_bitrates, synthetic
from netem.errors import InputError
from netem.trace import Trace
from player.core.crowd import Bottleneck, BulkFlow, CrowdClient, TcpModel, scale_capacity, simulate_crowd
from player.core.presets import PRESETS
from player.core.simulator import SessionSpec, simulate

GROUP_POLICIES = ["bola", "bba", "throughput", "robustmpc", "dynamic", "festive", "bolae", "dashjs", "fixed"]
SHARED_PRESETS = ["default", "sabre", "sabre-abandon", "dashjs-no-fast-switch"]   # the presets whose latency passes in trace time


@st.composite
def step_traces(draw, max_steps: int = 12, zero_rates: bool = True):
    n = draw(st.integers(1, max_steps))
    durs = draw(st.lists(st.floats(0.3, 8.0), min_size=n, max_size=n))
    rate = st.floats(2e5, 2e7)
    rates = draw(st.lists(st.one_of(st.just(0.0), rate) if zero_rates else rate, min_size=n, max_size=n))
    rates = np.array(rates)
    if not np.any(rates > 0):
        rates[0] = 1e6
    lat = draw(st.lists(st.floats(0.0, 0.2), min_size=n, max_size=n))
    return Trace(np.concatenate([[0.0], np.cumsum(durs)[:-1]]), rates, float(np.sum(durs)), latency_s=np.array(lat))


@st.composite
def movies(draw):
    n_rungs = draw(st.integers(1, 5))
    low = draw(st.floats(1.5e5, 8e5))
    rates = tuple(np.geomspace(low, low * draw(st.floats(3, 15)), n_rungs)) if n_rungs > 1 else (low,)
    return synthetic(bitrates_bps=rates, duration_s=2.0 * draw(st.integers(2, 14)), segment_duration_s=2.0,
                     seed=draw(st.integers(0, 50)))


@st.composite
def session_presets(draw):
    name = draw(st.sampled_from(SHARED_PRESETS))
    if draw(st.booleans()):
        return name
    return replace(PRESETS[name], init_bytes=draw(st.sampled_from([0, 700, 40_000])),
                   init_revalidated=draw(st.booleans()), init_at_start=draw(st.booleans()))


# -- a group of one is the single session ------------------------------------------------------
@given(step_traces(), movies(), st.sampled_from(GROUP_POLICIES), session_presets())
def test_group_of_one_equals_the_single_session(trace, movie, policy, preset):
    ref = simulate([SessionSpec(trace, movie, policy, preset=preset)])[0]
    got = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, policy, preset=preset)])])[0].clients[0]
    s = got.session
    assert s.chosen.tolist() == ref.chosen.tolist()
    assert got.complete and got.segments == movie.n_segments
    assert np.allclose(s.rebuffer_s, ref.rebuffer_s, rtol=1e-9, atol=1e-9)
    assert s.rebuffer_count == ref.rebuffer_count
    assert s.session_s == pytest.approx(ref.session_s, rel=1e-9, abs=1e-9)
    assert s.startup_s == pytest.approx(ref.startup_s, rel=1e-9, abs=1e-9)
    assert s.abandons == ref.abandons
    assert s.wasted_bytes == pytest.approx(ref.wasted_bytes, abs=1)
    assert got.summary()["qoe"]["total"] == pytest.approx(ref.summary()["qoe"]["total"], rel=1e-9, abs=1e-9)


# -- processor sharing against brute force -----------------------------------------------------
def brute_force(trace: Trace, clients: list[tuple[float, np.ndarray]], dt: float) -> list[np.ndarray]:
    """Completion times by small time steps: every dt, the capacity of the step is split equally
    among the clients with an object in flight; each client fetches its objects back to back
    from its start, with no latency. An independent integration of processor sharing."""
    t_end = trace.duration_s
    steps = np.arange(0.0, t_end, dt)
    rate = trace.rate_at(steps)
    pos = [0] * len(clients)
    left = [float(objs[0]) * 8.0 for _, objs in clients]
    done: list[list[float]] = [[] for _ in clients]
    for t, r in zip(steps, rate):
        active = [i for i, (start, objs) in enumerate(clients) if start <= t and pos[i] < objs.size]
        if not active:
            if all(pos[i] == objs.size for i, (_, objs) in enumerate(clients)):
                break
            continue
        share = r * dt / len(active)
        for i in active:
            left[i] -= share
            if left[i] <= 1e-9:
                over = -left[i] / (r / len(active)) if r > 0 else 0.0
                done[i].append(t + dt - over)
                pos[i] += 1
                objs = clients[i][1]
                left[i] = float(objs[pos[i]]) * 8.0 if pos[i] < objs.size else 0.0
    return [np.array(d) for d in done]


# a big buffer, no abandonment and no per-request overhead (the client's and server's own
# work, 3.5 ms in the default preset): the hand-worked figures below count link time only
BIG = replace(PRESETS["default"], buffer_cap_s=1e6, abandonment=False,
              link=replace(PRESETS["default"].link, overhead_s=0.0))


def fixed_rung_movie(sizes_bytes: np.ndarray) -> Content:
    """One rung, segments of 1 s with the given sizes (a 'fixed' policy then fetches exactly these)."""
    sizes = np.asarray(sizes_bytes, dtype=np.float64)[:, None]
    return Content(rungs_from_bitrates([float(sizes.mean() * 8.0)]), np.ones(sizes.shape[0]), sizes, name="objects")


@given(st.data())
def test_processor_sharing_matches_brute_force_integration(data):
    n_steps = data.draw(st.integers(1, 5))
    rates = np.array(data.draw(st.lists(st.floats(5e5, 4e6), min_size=n_steps, max_size=n_steps)))
    step_s = data.draw(st.floats(2.0, 6.0))
    reps = int(np.ceil(400.0 / (step_s * n_steps)))      # long enough never to wrap
    all_rates = np.tile(rates, reps)
    trace = Trace(step_s * np.arange(all_rates.size), all_rates, step_s * all_rates.size)
    clients = []
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.floats(0.0, 5.0))
        sizes = np.array(data.draw(st.lists(st.floats(2e4, 4e5), min_size=2, max_size=6)))
        clients.append((start, sizes))
    # a big buffer: no waits, every segment is requested as the previous one arrives
    big = BIG
    group = Bottleneck(trace, [CrowdClient(fixed_rung_movie(sz), "fixed", preset=big, start_s=start)
                               for start, sz in clients])
    res = simulate_crowd([group])[0]
    dt = 2e-3
    want = brute_force(trace, clients, dt)
    # the brute force errs by up to a step at each trace step and each completion it crosses
    crossings = int(max(w[-1] for w in want) / step_s) + sum(w.size for w in want) + 2
    for c, w in zip(res.clients, want):
        got = c.start_s + c.session.request_s + c.session.download_s
        assert got.size == w.size
        assert np.allclose(got, w, rtol=0, atol=crossings * dt * rates.max() / rates.min()), (got, w)


def test_two_equal_clients_split_a_constant_link_evenly():
    """Two clients asking for 1 Mbit each at the same time on 1 Mbit/s: both finish at 2 s."""
    trace = synth.constant(1e6, 100.0)
    movie = fixed_rung_movie(np.full(3, 125_000.0))
    big = BIG
    res = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, "fixed", preset=big) for _ in range(2)])])[0]
    for c in res.clients:
        assert c.session.download_s.tolist() == pytest.approx([2.0, 2.0, 2.0])
    m = res.metrics()
    assert m["utilisation"] == pytest.approx(1.0)
    assert m["jain_bitrate"] == pytest.approx(1.0)


def test_bulk_flow_takes_half_while_on():
    """One client fetching 2 Mbit objects on 2 Mbit/s: alone 1 s each; beside a bulk flow
    that is on during [1, 5) s, 2 s each."""
    trace = synth.constant(2e6, 100.0)
    movie = fixed_rung_movie(np.full(4, 250_000.0))
    big = BIG
    res = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, "fixed", preset=big)], bulk=[BulkFlow(1.0, 5.0)])])[0]
    c = res.clients[0].session
    assert c.download_s.tolist() == pytest.approx([1.0, 2.0, 2.0, 1.0])
    # the bulk flow got half of [1, 5): 4 Mbit = 500 kB
    assert res.bulk_bytes.tolist() == pytest.approx([500_000.0])
    m = res.metrics()
    assert m["utilisation"] == pytest.approx(1.0)
    assert m["player_share"] == pytest.approx(4.0 / 6.0)


def test_bulk_flow_stops_when_the_last_client_ends():
    trace = synth.constant(2e6, 100.0)
    movie = fixed_rung_movie(np.full(2, 250_000.0))
    big = BIG
    res = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, "fixed", preset=big)], bulk=[BulkFlow(0.0)])])[0]
    assert res.clients[0].end_s == pytest.approx(4.0)
    assert res.bulk_bytes.tolist() == pytest.approx([500_000.0])


def test_tcp_slow_start_by_hand():
    """A 70,000-byte object on 8 Mbit/s with a 10,000-byte initial window and a 0.1 s RTT:
    10 kB by 0.01 s (then the window waits for the round), 20 kB more by 0.12 s, the last
    40 kB by 0.24 s (that round was not limited by the window: cwnd stays 40 kB). An object
    requested at once keeps the window: 40 kB by 0.04 s, the round ends at 0.1 s, the last
    30 kB by 0.13 s. After an idle gap longer than the RTO it starts from 10 kB again."""
    trace = synth.constant(8e6, 100.0)
    tcp = TcpModel(rtt_s=0.1, initial_window_bytes=10_000, rto_s=1.0)
    movie = fixed_rung_movie(np.full(2, 70_000.0))
    big = BIG
    res = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, "fixed", preset=big)], tcp=tcp)])[0]
    d = res.clients[0].session.download_s
    assert d[0] == pytest.approx(0.24)
    assert d[1] == pytest.approx(0.13)
    # an idle gap longer than the RTO: a client whose buffer is capped waits between segments
    capped = replace(BIG, buffer_cap_s=1.5)
    res = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, "fixed", preset=capped)],
                                     tcp=replace(tcp, rto_s=0.3))])[0]
    s = res.clients[0].session
    assert s.wait_s[1] == pytest.approx(0.5)       # idle 0.5 s > RTO 0.3 s
    assert s.download_s.tolist() == pytest.approx([0.24, 0.24])


def test_tcp_window_limited_flow_leaves_its_share_to_the_others():
    """Beside a bulk flow on 8 Mbit/s, a fresh connection's first round (10 kB) finishes in
    0.02 s at half the link; the bulk flow has the whole link for the rest of the round."""
    trace = synth.constant(8e6, 100.0)
    tcp = TcpModel(rtt_s=0.1, initial_window_bytes=10_000, rto_s=1.0)
    movie = fixed_rung_movie(np.full(1, 10_000.0))
    big = BIG
    res = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, "fixed", preset=big, start_s=1.0)],
                                     bulk=[BulkFlow(0.0, 1.5)], tcp=tcp)])[0]
    assert res.clients[0].session.download_s[0] == pytest.approx(0.02)


def test_departure_ends_a_session_early():
    trace = synth.constant(1e6, 100.0)
    movie = synthetic(duration_s=40.0, segment_duration_s=2.0, seed=1)
    res = simulate_crowd([Bottleneck(trace, [CrowdClient(movie, "bba", watch_s=10.0),
                                             CrowdClient(movie, "bba")])])[0]
    a, b = res.clients
    assert not a.complete and a.end_s == pytest.approx(10.0) and 0 < a.segments < movie.n_segments
    s = a.summary()
    assert s["complete"] is False and len(s["chosen"]) == a.segments
    assert b.complete and b.segments == movie.n_segments


def test_groups_advance_together_and_independently():
    """Many bottlenecks in one call give each the result it gets alone."""
    movie = synthetic(duration_s=30.0, segment_duration_s=2.0, seed=2)
    groups = [Bottleneck(synth.markov(seed=s, duration_s=120.0, min_rate_bps=5e5, max_rate_bps=6e6),
                         [CrowdClient(movie, p, start_s=0.7 * i) for i, p in enumerate(("bola", "throughput", "bba"))])
              for s in range(4)]
    together = simulate_crowd(groups)
    for g, r in zip(groups, together):
        alone = simulate_crowd([g])[0]
        for a, b in zip(alone.clients, r.clients):
            assert a.session.chosen.tolist() == b.session.chosen.tolist()
            assert a.session.session_s == pytest.approx(b.session.session_s)


def test_scale_capacity():
    t = synth.markov(seed=1, duration_s=50.0)
    assert scale_capacity(t, 3).mean_rate_bps == pytest.approx(3 * t.mean_rate_bps)
    with pytest.raises(InputError):
        scale_capacity(t, 1.5)


@pytest.mark.parametrize("group,message", [
    (lambda m, t: Bottleneck(t, []), "at least one client"),
    (lambda m, t: Bottleneck(t, [CrowdClient(m, start_s=500.0)]), "after the trace ends"),
    (lambda m, t: Bottleneck(t, [CrowdClient(m, start_s=-1.0)]), "a time >= 0"),
    (lambda m, t: Bottleneck(t, [CrowdClient(m)], bulk=[BulkFlow(-2.0, 5.0)]), "0 <= start < stop"),
    (lambda m, t: Bottleneck(t, [CrowdClient(m)], bulk=[BulkFlow(5.0, 3.0)]), "0 <= start < stop"),
    (lambda m, t: Bottleneck(t, [CrowdClient(m, preset="pensieve")]), "outside trace time"),
    (lambda m, t: Bottleneck(t, [CrowdClient(m, watch_s=0.0)]), "viewing time"),
])
def test_bad_crowds_are_one_clear_line(group, message):
    movie = synthetic(duration_s=10.0, segment_duration_s=2.0)
    with pytest.raises(InputError, match=message) as err:
        simulate_crowd([group(movie, synth.constant(1e6, 100.0))])
    assert "\n" not in str(err.value)
    with pytest.raises(InputError):
        TcpModel(rtt_s=-1.0)
