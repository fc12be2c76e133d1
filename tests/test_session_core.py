"""The sans-IO session core agrees with the batch simulator (one model, two clocks)."""
from __future__ import annotations

import numpy as np
import pytest

import abr
from netem.content import synthetic
from netem.link import Link
from netem.trace import Trace, constant
from player.core.presets import get as get_preset
from player.core.session import Done, Fetch, SegmentPlan, SessionCore, Wait, drive_with_link
from player.core.simulator import SessionSpec, simulate


def random_trace(seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.5, 4, 60)
    return Trace(np.concatenate([[0], np.cumsum(d)[:-1]]), rng.uniform(1e5, 6e6, 60), d.sum(),
                 latency_s=rng.uniform(0, 0.2, 60))


@pytest.mark.parametrize("preset", ["default", "sabre", "pensieve"])
@pytest.mark.parametrize("policy", ["bola", "bba", "throughput", "robustmpc", "dynamic"])
def test_core_driven_by_link_equals_simulator(policy, preset):
    c = synthetic(duration_s=100, seed=3)
    for seed in range(3):
        tr = random_trace(seed)
        sim = simulate([SessionSpec(tr, c, policy, preset=preset)])[0]
        p = get_preset(preset)
        core = SessionCore(SegmentPlan.from_content(c), p.policy(policy), p)
        drive_with_link(core, Link([tr], p.link))
        assert core.chosen == sim.chosen.tolist()
        assert np.array(core.rebuffer_per_segment) == pytest.approx(sim.rebuffer_s, abs=1e-9)
        assert core.stall_count == sim.rebuffer_count
        assert core.now == pytest.approx(sim.session_s)


def test_core_protocol_errors_and_events():
    c = synthetic(duration_s=20, seed=1)
    core = SessionCore(SegmentPlan.from_content(c), abr.get("lowest"), get_preset("default"))
    a = core.next_action(0.0)
    assert isinstance(a, Fetch) and a.segment == 0
    with pytest.raises(RuntimeError):
        core.next_action(0.0)                    # one request at a time
    core.download_done(1.0, int(a.expected_bytes), 0.1, 0.9)
    with pytest.raises(ValueError):
        core.tick(0.5)                           # time never goes backwards
    kinds = [e.kind for e in core.events]
    assert kinds == ["decision", "download", "startup"]
    # a failure leaves the same segment to fetch again
    b = core.next_action(1.0)
    core.download_failed(1.5, 1000, "HTTP 503")
    again = core.next_action(1.5)
    assert again.segment == b.segment and core.wasted_bytes == 1000


def test_core_waits_when_buffer_full():
    c = synthetic(duration_s=200, seed=1)
    core = SessionCore(SegmentPlan.from_content(c), abr.get("lowest"), get_preset("sabre"))
    drive_with_link(core, Link([constant(100e6, 1000.0)]))
    waits = [e for e in core.events if e.kind == "wait"]
    assert waits and all(e.seconds > 0 for e in waits)
    assert core.ended and isinstance(core.next_action(core.now), Done)


class Scripted(abr.Policy):
    """Rungs from a fixed list, one per decision (not registered: the core takes the object)."""

    name = "scripted"

    def __init__(self, plan):
        super().__init__()
        self.plan = list(plan)

    def _select(self, obs):
        return np.array([self.plan[int(obs.segment_index[0])]])


def _flat_plan(segments=5):
    c = synthetic(bitrates_bps=(500e3, 1e6, 2e6), duration_s=4.0 * segments, segment_duration_s=4.0, seed=1)
    return SegmentPlan(c.segment_durations_s, c.bitrates_bps, np.tile(c.bitrates_bps * 4.0 / 8, (segments, 1)))


def test_fetch_names_the_init_request_and_a_revalidation_has_no_body():
    from dataclasses import replace

    p = replace(get_preset("default"), abandonment=False, init_bytes=700, init_revalidated=True)
    core = SessionCore(_flat_plan(), Scripted([0, 0, 1, 0, 1]), p)
    inits = []
    t = 0.0
    for _ in range(5):
        a = core.next_action(t)
        while isinstance(a, Wait):
            t = a.until_s
            a = core.next_action(t)
        inits.append(a.init_bytes)
        t += 1.0
        core.download_done(t, int(a.expected_bytes), 0.1, 0.9)
    # the first; none without a switch; 1 is new; 0 and 1 again: 304s without body
    assert inits == [700.0, None, 700.0, 0.0, 0.0]
    assert [e.kind for e in core.events].count("download") == 5
    # off: no init request is ever named
    core = SessionCore(_flat_plan(), Scripted([0, 1, 0, 1, 0]), get_preset("default"))
    assert core.next_action(0.0).init_bytes is None


def test_core_init_requests_cost_what_the_simulator_charges():
    # a 1 Mbit/s link, 100 ms latency, the dashjs preset's 18 ms overhead; a revalidation costs
    # one latency + overhead and no transfer
    from dataclasses import replace

    tr = constant(1e6, 1000.0, latency_s=0.1)
    p = replace(get_preset("default"), abandonment=False, init_bytes=1000, init_revalidated=True,
                link=replace(get_preset("dashjs").link))
    link = Link([tr], p.link)
    ovh = p.link.overhead_s
    core = drive_with_link(SessionCore(_flat_plan(), Scripted([0, 1, 0, 0, 2]), p), link)
    plain = drive_with_link(SessionCore(_flat_plan(), Scripted([0, 1, 0, 0, 2]),
                                        replace(p, init_bytes=0)), link)
    full, reval = 0.1 + ovh + 1000 * 8 / 1e6, 0.1 + ovh
    starts = [e.t_s for e in core.events if e.kind == "decision"]
    starts0 = [e.t_s for e in plain.events if e.kind == "decision"]
    # inits before segments 1, 2 (new), 3 (304), 5 (new): cumulative delays
    assert np.diff(np.array(starts) - np.array(starts0)) == pytest.approx([full, full, reval, 0.0])
    assert core.chosen == plain.chosen == [0, 1, 0, 0, 2]


@pytest.mark.parametrize("policy", ["dashjs", "throughput", "bola"])
def test_core_equals_simulator_with_the_dashjs_preset(policy):
    c = synthetic(duration_s=90, seed=5)
    p = get_preset("dashjs")
    for seed in range(3):
        tr = random_trace(seed)
        sim = simulate([SessionSpec(tr, c, policy, preset="dashjs")])[0]
        core = SessionCore(SegmentPlan.from_content(c), p.policy(policy), p)
        drive_with_link(core, Link([tr], p.link))
        assert core.chosen == sim.chosen.tolist()
        assert np.array(core.rebuffer_per_segment) == pytest.approx(sim.rebuffer_s, abs=1e-9)
        assert core.now == pytest.approx(sim.session_s)
