"""The simulator on cases worked by hand, preset semantics, devices and batch == single."""
from __future__ import annotations

import numpy as np
import pytest

import abr
from netem.content import Content, Rung, rungs_from_bitrates, synthetic
from netem.trace import Trace, constant
from player.core.device import BUILTIN
from player.core.simulator import SessionSpec, simulate


def flat_content(bitrates=(500e3, 1e6, 2e6), segments=3, seg_s=4.0) -> Content:
    b = np.array(bitrates)
    sizes = np.tile(b * seg_s / 8, (segments, 1))
    return Content(rungs_from_bitrates(b), np.full(segments, seg_s), sizes, name="flat")


class Recorder(abr.Policy):
    """Always rung 0; keeps every observation it was shown."""

    name = "recorder"
    seen: list = []

    def _select(self, obs):
        Recorder.seen.append(obs)
        return np.zeros(obs.n, dtype=int)


# the default preset's per-request overhead (3.5 ms of the client's and server's own work) comes
# before every first byte, like a latency
O = 0.0035


def test_constant_link_by_hand():
    # 500 kbit/s × 4 s = 250,000 bytes = 2 Mbit; at 1 Mbit/s each takes 2 s, plus 3.5 ms of overhead.
    r = simulate([SessionSpec(constant(1e6, 100.0), flat_content(), "lowest", preset="default")])[0]
    assert r.download_s == pytest.approx([2.0 + O] * 3)
    assert r.latency_s == pytest.approx([O] * 3)
    assert r.startup_s == pytest.approx(2.0 + O)
    assert r.buffer_s == pytest.approx([4.0, 6.0 - O, 8.0 - 2 * O])    # 4; 4-(2+O)+4; ...
    assert r.rebuffer_s.sum() == 0
    assert r.session_s == pytest.approx(3 * (2.0 + O) + 8.0 - 2 * O)   # last arrival + the buffer played out
    s = r.summary()
    assert s["time_avg_bitrate_bps"] == pytest.approx(500e3)  # 12 s of media over 12 s of playback
    assert s["qoe"]["total"] == pytest.approx(3 * 0.5)


def test_stall_is_counted_and_timed():
    # rung 2 (2 Mbit/s × 4 s = 8 Mbit) at 1 Mbit/s takes 8 s + 3.5 ms; buffer 4 s -> 4.0035 s stall each time
    r = simulate([SessionSpec(constant(1e6, 100.0), flat_content(), "highest")])[0]
    assert r.rebuffer_s == pytest.approx([0.0, 4.0 + O, 4.0 + O])
    assert r.rebuffer_count == 2
    s = r.summary()
    # linear QoE: 3 × 2 Mbit/s − 4.3 × 8.007 s − 0 switches
    assert s["qoe"]["total"] == pytest.approx(6.0 - 4.3 * (8.0 + 2 * O))
    assert s["qoe"]["components"]["rebuffer_penalty"] == pytest.approx(4.3 * (8.0 + 2 * O))


def test_sabre_preset_semantics():
    tr = Trace(np.array([0.0]), np.array([1e6]), 100.0, latency_s=np.array([0.1]))
    r = simulate([SessionSpec(tr, flat_content(segments=12, seg_s=3.0), "highest", preset="sabre")])[0]
    assert r.chosen[0] == 0                        # segment 1 at the lowest rung
    assert r.chosen[1:].min() == 2                 # then the policy decides
    assert r.rebuffer_s[0] == 0.0                  # the startup wait is not a stall
    assert r.latency_s == pytest.approx(0.1)       # the trace's latency per request
    # buffer never has to hold more than 25 s when a request goes out
    assert np.all(r.buffer_s - 3.0 <= 25.0 + 1e-9)


def test_sabre_waits_until_a_whole_segment_fits():
    r = simulate([SessionSpec(constant(100e6, 1000.0), flat_content(segments=20, seg_s=3.0), "lowest",
                              preset="sabre")])[0]
    waits = r.wait_s
    assert waits.max() > 0
    before_request = r.buffer_s[:-1] - waits[1:]
    assert np.all(before_request + 3.0 <= 25.0 + 1e-9)


def test_pensieve_preset_semantics():
    Recorder.seen = []
    abr.register("recorder")(Recorder)
    tr = constant(1e6, 1000.0)
    r = simulate([SessionSpec(tr, flat_content(bitrates=(300e3, 750e3, 1200e3), segments=30), "recorder",
                              preset="pensieve")])[0]
    assert r.chosen[0] == 1                        # segment 1 at rung 1
    # 750 kbit/s × 4 s = 375,000 B at 0.95 Mbit/s + 80 ms
    first = 375_000 * 8 / 0.95e6 + 0.08
    assert r.download_s[0] == pytest.approx(first)
    assert r.rebuffer_s[0] == pytest.approx(first)   # stalls counted from the first request
    # the second decision saw a throughput that includes the 80 ms
    obs = Recorder.seen[0]
    assert obs.last_throughput_bps[0] == pytest.approx(375_000 * 8 / first)
    # the last of the 30 segments is not played (Pensieve plays 48 of its 49); QoE over segments 2..29
    assert r.chosen.size == 29
    s = r.summary()
    assert s["qoe"]["segments"] == 28
    util = np.array([0.3, 0.75, 1.2])[r.chosen[1:]].sum()
    # segment 2's reward includes its switch from segment 1, so every switch counts
    smooth = np.abs(np.diff(np.array([0.3, 0.75, 1.2])[r.chosen])).sum()
    assert s["qoe"]["total"] == pytest.approx(util - 4.3 * r.rebuffer_s[1:].sum() - smooth)


def test_pensieve_sleeps_in_half_seconds():
    r = simulate([SessionSpec(constant(50e6, 1000.0), flat_content(bitrates=(300e3, 750e3), segments=40),
                              "lowest", preset="pensieve")])[0]
    w = r.wait_s[r.wait_s > 0]
    assert w.size > 0
    assert np.allclose(w / 0.5, np.round(w / 0.5))


def test_device_mask_is_respected():
    c = synthetic(bitrates_bps=(300e3, 1.2e6, 3e6, 6e6, 16e6), duration_s=60)
    r = simulate([SessionSpec(constant(100e6, 100.0), c, "highest", device=BUILTIN["mobile"])])[0]
    heights = np.array([rg.height for rg in c.rungs])
    assert heights[r.chosen].max() <= 720
    assert r.chosen.max() == int(np.max(np.nonzero(heights <= 720)))


@pytest.mark.parametrize("policy", ["bola", "throughput", "bba", "rb", "festive", "dynamic"])
def test_batch_equals_one_session_at_a_time(policy):
    rng = np.random.default_rng(7)
    c = synthetic(duration_s=80, seed=2)
    trs = []
    for i in range(5):
        d = rng.uniform(0.5, 4, 40)
        trs.append(Trace(np.concatenate([[0], np.cumsum(d)[:-1]]), rng.uniform(2e5, 6e6, 40), d.sum(),
                         latency_s=rng.uniform(0, 0.2, 40)))
    specs = [SessionSpec(t, c, policy) for t in trs]
    together = simulate(specs)
    alone = [simulate([s])[0] for s in specs]
    for a, b in zip(together, alone):
        assert np.array_equal(a.chosen, b.chosen)
        assert a.rebuffer_s == pytest.approx(b.rebuffer_s)
        assert a.session_s == pytest.approx(b.session_s)


def test_preset_policy_defaults_name_real_parameters():
    from player.core.presets import PRESETS

    for p in PRESETS.values():
        for name, params in p.abr_defaults.items():
            abr.get(name, **params)   # raises on an unknown parameter name


def test_abandonment_on_a_capacity_collapse():
    # 8 Mbit/s for 12 s, then 0.2 Mbit/s: the throughput rule is fetching a high rung when the
    # link collapses; dash.js's rule abandons once the projected time passes 1.8 segments
    tr = Trace(np.array([0.0, 12.0]), np.array([8e6, 0.2e6]), 200.0)
    c = flat_content(bitrates=(200e3, 1e6, 4e6), segments=12, seg_s=4.0)
    r = simulate([SessionSpec(tr, c, "throughput")])[0]
    s = r.summary()
    assert s["abandons"] >= 1 and s["wasted_bytes"] > 0
    # the segment that was abandoned finally arrived at a lower rung than was first asked
    assert r.chosen.min() == 0
    off = simulate([SessionSpec(tr, c, "throughput", preset="sabre")])[0].summary()
    assert off["abandons"] == 0 and off["wasted_bytes"] == 0     # Sabre's semantics: abandonment off


# -- init segments (SessionPreset.init_bytes) ------------------------------------------------------
def _init_preset(**kw):
    """The default preset with segment 1 at rung 0 (so `highest` switches once, at segment 2),
    abandonment off and a 20 ms per-request overhead; init-segment options from `kw`."""
    from dataclasses import replace

    from netem.link import preset as link_preset
    from player.core.presets import get

    return replace(get("default"), name="init-test", first_rung=0, abandonment=False,
                   link=link_preset("trace-latency", overhead_s=0.02), **kw)


def test_a_switch_costs_one_init_request_on_a_constant_link():
    # 1 Mbit/s, 100 ms latency, 20 ms overhead; 500 kbit/s and 1 Mbit/s × 4 s: 250 kB and 500 kB.
    # An init request of 1000 B costs 0.1 + 0.02 + 8000 / 1e6 = 0.128 s; a media one 0.12 s + bytes.
    tr = constant(1e6, 1000.0, latency_s=0.1)
    c = flat_content(bitrates=(500e3, 1e6), segments=3, seg_s=4.0)
    init = 0.1 + 0.02 + 1000 * 8 / 1e6
    on = simulate([SessionSpec(tr, c, "highest", preset=_init_preset(init_bytes=1000))])[0]
    off = simulate([SessionSpec(tr, c, "highest", preset=_init_preset())])[0]
    assert on.chosen.tolist() == off.chosen.tolist() == [0, 1, 1]
    assert off.init_s is None
    assert on.init_s == pytest.approx([init, init, 0.0])           # the first, the switch, no switch
    assert on.download_s == pytest.approx([2.12, 4.12, 4.12])       # media alone, as without inits
    assert off.download_s == pytest.approx(on.download_s)
    assert on.request_s == pytest.approx([0.0, init + 2.12, 2 * init + 6.24])
    assert on.request_s - off.request_s == pytest.approx([0.0, init, 2 * init])
    # segment 2 drains 4.248 s from a 4 s buffer: the init's time stalls like the download's
    assert on.rebuffer_s == pytest.approx(off.rebuffer_s + [0.0, init, 0.0])
    assert on.session_s == pytest.approx(off.session_s + 2 * init)


def test_no_switch_no_init_request_after_the_first():
    tr = constant(1e6, 1000.0, latency_s=0.1)
    c = flat_content(bitrates=(500e3, 1e6), segments=4, seg_s=4.0)
    on = simulate([SessionSpec(tr, c, "lowest", preset=_init_preset(init_bytes=1000))])[0]
    off = simulate([SessionSpec(tr, c, "lowest", preset=_init_preset())])[0]
    assert on.init_s == pytest.approx([0.128, 0.0, 0.0, 0.0])
    assert on.request_s[1:] - off.request_s[1:] == pytest.approx(0.128)
    # the first init before the session clock (init_at_start=False): no cost at all
    late = simulate([SessionSpec(tr, c, "lowest", preset=_init_preset(init_bytes=1000, init_at_start=False))])[0]
    assert late.init_s == pytest.approx(0.0)
    for f in ("request_s", "download_s", "rebuffer_s", "buffer_s"):
        assert getattr(late, f) == pytest.approx(getattr(off, f))
    assert late.session_s == pytest.approx(off.session_s)


def test_option_off_is_the_old_simulator():
    # only the dashjs presets request init segments; with init_bytes = 0 a preset (given by name
    # or as an object) simulates exactly as before: no init time anywhere
    from dataclasses import replace

    from player.core.presets import PRESETS, get

    assert [n for n, p in PRESETS.items() if p.init_bytes] == ["dashjs", "dashjs-no-fast-switch"]
    c = synthetic(duration_s=60, seed=4)
    tr = Trace(np.array([0.0, 7.0, 19.0]), np.array([3e6, 4e5, 2e6]), 40.0, latency_s=np.array([0.05, 0.2, 0.1]))
    by_name = simulate([SessionSpec(tr, c, "dynamic")])[0]
    by_object = simulate([SessionSpec(tr, c, "dynamic", preset=replace(get("default")))])[0]
    assert by_name.init_s is None and by_object.init_s is None
    assert np.array_equal(by_name.chosen, by_object.chosen)
    assert np.array_equal(by_name.rebuffer_s, by_object.rebuffer_s) and by_name.session_s == by_object.session_s
    assert by_object.summary()["preset"] == "default"
    dj = simulate([SessionSpec(tr, c, "dashjs", preset=replace(get("dashjs"), init_bytes=0))])[0]
    assert dj.init_s is None and all(row["init_s"] == 0.0 for row in dj.segment_log())
