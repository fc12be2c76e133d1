"""The sans-IO session core agrees with the batch simulator (one model, two clocks)."""
from __future__ import annotations

import numpy as np
import pytest

import abr
from netem.content import synthetic
from netem.link import Link
from netem.trace import Trace, constant
from player.presets import get as get_preset
from player.session import Done, Fetch, SegmentPlan, SessionCore, Wait, drive_with_link
from player.simulate import SessionSpec, simulate


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
        core = SessionCore(SegmentPlan.from_content(c), abr.get(policy, **p.abr_defaults.get(policy, {})), p)
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
    assert waits and all(e.data["seconds"] > 0 for e in waits)
    assert core.ended and isinstance(core.next_action(core.now), Done)
