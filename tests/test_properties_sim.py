"""Properties of the batch simulator and the QoE models (hypothesis)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import abr
from netem.content import synthetic
from netem.link import Link
from netem.trace import Trace
from player.core import catchup, qoe
from player.core.live import LiveSettings, simulated_rows
from player.core.presets import PRESETS
from player.core.session import SegmentPlan, SessionCore, drive_with_link
from player.core.simulator import SessionSpec, simulate

POLICIES = ["bola", "bba", "throughput", "rb", "robustmpc", "mpc", "dynamic", "festive", "bolae", "random", "fixed",
            "dashjs", "sabre-bola", "sabre-bolae", "sabre-throughput", "sabre-dynamic", "sabre-dynamicdash"]
LIVE_POLICIES = ["dynamic", "bola", "throughput", "dashjs", "l2a", "lolp", "robustmpc", "bba"]
VOD_PRESETS = sorted(name for name, p in PRESETS.items() if p.live is None)
LIVE_PRESETS = sorted(name for name, p in PRESETS.items() if p.live is not None)


@st.composite
def traces(draw):
    n = draw(st.integers(1, 25))
    durs = np.array(draw(st.lists(st.floats(0.2, 6.0), min_size=n, max_size=n)))
    rates = np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(5e4, 2e7)), min_size=n, max_size=n)))
    if (rates * durs).sum() <= 0:
        rates[0] = 1e6
    lat = np.array(draw(st.lists(st.floats(0, 0.3), min_size=n, max_size=n)))
    return Trace(np.concatenate([[0.0], np.cumsum(durs)[:-1]]), rates, float(durs.sum()), latency_s=lat)


@st.composite
def contents(draw):
    rungs = draw(st.integers(1, 6))
    lo = draw(st.floats(1e5, 1e6))
    return synthetic(bitrates_bps=tuple(np.geomspace(lo, lo * draw(st.floats(2, 20)), rungs)) if rungs > 1 else (lo,),
                     duration_s=draw(st.integers(2, 16)) * 2.0, segment_duration_s=2.0,
                     seed=draw(st.integers(0, 100)))


@st.composite
def preset_variants(draw):
    """A named preset, as it is or with its init-segment, top-rung buffer and fast-switching
    options redrawn."""
    p = PRESETS[draw(st.sampled_from(VOD_PRESETS))]
    if draw(st.booleans()):
        return p.name
    top = draw(st.one_of(st.none(), st.floats(5.0, 40.0)))
    return replace(p, init_bytes=draw(st.sampled_from([0, 1, 700, 50_000])), init_at_start=draw(st.booleans()),
                   init_revalidated=draw(st.booleans()), buffer_cap_top_s=top,
                   buffer_cap_top_long_s=draw(st.one_of(st.none(), st.floats(5.0, 60.0))),
                   long_form_s=draw(st.sampled_from([10.0, 600.0])), fast_switch=draw(st.booleans()),
                   fast_switch_margin_s=draw(st.sampled_from([0.0, 1.0, 4.5])),
                   stall_gap_s=draw(st.sampled_from([0.0, 0.08, 1.0])))


@given(st.lists(traces(), min_size=1, max_size=4), contents(), st.sampled_from(POLICIES), preset_variants())
def test_batch_simulator_equals_session_core_one_at_a_time(trs, content, policy, preset):
    """Differential: the vectorised simulator and the sans-IO core agree session by session,
    for every preset and its init-segment and top-rung buffer options."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    results = simulate([SessionSpec(t, content, policy, preset=preset) for t in trs])
    for tr, res in zip(trs, results):
        assert_core_agrees(tr, content, policy, p, res)
        if p.init_bytes:
            assert res.init_s is not None and np.all(res.init_s >= 0)


def assert_core_agrees(tr, content, policy: str, p, res) -> None:
    """The session core, driven on the analytical link, did what the simulator's `res` did:
    the same rungs, stalls and clock (and with fast switching, the same re-fetches and the
    same bytes played and wasted)."""
    core = SessionCore(SegmentPlan.from_content(content), p.policy(policy), p)
    drive_with_link(core, Link([tr], p.link))
    assert core.chosen == res.chosen.tolist()
    assert np.allclose(core.rebuffer_per_segment, res.rebuffer_s, atol=1e-7)
    assert core.stall_count == res.rebuffer_count
    assert core.now == pytest.approx(res.session_s, abs=1e-7)
    if p.fast_switch:
        summary = core.summary()
        assert core.refetches == len(res.refetches) == res.summary()["refetches"]
        assert summary["bytes"] == res.summary()["bytes"]
        assert abs(summary["wasted_bytes"] - res.summary()["wasted_bytes"]) <= 1 + core.abandons


@settings(max_examples=40)
@given(st.lists(traces(), min_size=1, max_size=3), st.sampled_from(["dashjs", "throughput", "bola", "dynamic"]),
       st.sampled_from([0, 710]), st.sampled_from([0.0, 3.0]), st.sampled_from([0.0, 0.09]), st.integers(0, 50))
def test_fast_switching_agrees_on_both_clocks_and_in_batches(trs, policy, init_bytes, margin_s, gap_s, seed):
    """Fast switching on a 3 s ladder like dash.js's (where switches up are common): the
    batch, each session alone and the session core agree."""
    p = replace(PRESETS["dashjs"], init_bytes=init_bytes, fast_switch_margin_s=margin_s, stall_gap_s=gap_s)
    content = synthetic(bitrates_bps=(2.3e5, 4.8e5, 9.9e5, 2.06e6, 5.0e6), duration_s=36.0,
                        segment_duration_s=3.0, seed=seed)
    together = simulate([SessionSpec(tr, content, policy, preset=p) for tr in trs])
    for tr, res in zip(trs, together):
        alone = simulate([SessionSpec(tr, content, policy, preset=p)])[0]
        assert alone.chosen.tolist() == res.chosen.tolist() and alone.refetches == res.refetches
        assert_core_agrees(tr, content, policy, p, res)


@given(traces(), contents(), st.sampled_from(POLICIES), st.sampled_from(VOD_PRESETS))
def test_simulated_session_invariants(tr, content, policy, preset):
    r = simulate([SessionSpec(tr, content, policy, preset=preset)])[0]
    p = PRESETS[preset]
    assert np.all(r.buffer_s >= 0)
    cap = max(p.buffer_cap_s, p.top_cap_s(float(content.segment_durations_s.sum())) or 0.0)
    assert np.all(r.buffer_s <= cap + content.segment_durations_s.max() + 1e-9)
    assert np.all(np.diff(r.request_s) >= 0), "requests out of order in time"
    assert np.all(r.download_s >= 0) and np.all(r.rebuffer_s >= 0) and np.all(r.wait_s >= 0)
    assert r.rebuffer_count <= np.count_nonzero(r.rebuffer_s) + 1
    if not p.startup_is_stall:
        assert r.rebuffer_s[0] == 0.0, "no stall before playback starts"
    s = r.summary()
    played = np.arange(r.chosen.size)   # every segment, or all but the last (pensieve)
    assert r.chosen.size == content.n_segments - (0 if p.last_segment_played else 1)
    assert s["bytes"] == int(content.segment_sizes_bytes[played, r.chosen].sum())


@st.composite
def live_presets(draw):
    """A live preset with its origin and player settings redrawn: whole segments or chunks,
    a ServiceDescription target or not, every catch-up law, a short duration, any join."""
    p = PRESETS[draw(st.sampled_from(LIVE_PRESETS))]
    law = draw(st.sampled_from(catchup.names()))
    chunk = draw(st.one_of(st.none(), st.sampled_from([0.2, 0.5, 0.7, 1.0])))
    settings = LiveSettings(duration_s=draw(st.floats(5.0, 60.0)), catchup=law, chunk_s=chunk,
                            target_latency_s=draw(st.one_of(st.none(), st.floats(1.0, 8.0))),
                            time_shift_depth_s=draw(st.sampled_from([6.0, 20.0, 60.0])),
                            join_phase=draw(st.floats(0.0, 0.99)),
                            delay_s=draw(st.one_of(st.none(), st.floats(1.0, 12.0))))
    return replace(p, live=settings, buffer_cap_s=draw(st.sampled_from([2.0, 10.0, 30.0])),
                   whole_segment_fits=draw(st.booleans()))


@given(st.lists(traces(), min_size=1, max_size=3), contents(), st.sampled_from(LIVE_POLICIES), live_presets())
def test_live_batch_simulator_equals_session_core(trs, content, policy, preset):
    """Differential, live: the simulator's live lockstep (n rows) and the session core driven
    by the link one request at a time agree session by session, for every catch-up law,
    whole segments and chunks, seeks and the end by duration; and the live invariants hold."""
    results = simulate([SessionSpec(t, content, policy, preset=preset) for t in trs])
    plan = SegmentPlan.from_content(content)
    for tr, res in zip(trs, results):
        core = SessionCore(plan, preset.policy(policy), preset,
                           live=simulated_rows(plan.durations_s, plan.sizes_bytes, preset.live, 1))
        drive_with_link(core, Link([tr], preset.link))
        assert core.chosen == res.chosen.tolist()
        assert np.allclose(core.rebuffer_per_segment, res.rebuffer_s, atol=1e-7)
        assert core.stall_count == res.rebuffer_count
        assert core.now == pytest.approx(res.session_s, abs=1e-7)
        assert np.allclose(core.live_latency, res.live_latency_s, atol=1e-7)
        assert np.allclose(core.rates, res.playback_rate, atol=1e-9)
        # a live session ends by its duration, and never buffers what is not produced yet
        assert res.session_s == pytest.approx(preset.live.duration_s, abs=1e-6)
        assert np.all(res.buffer_s >= -1e-9)
        assert np.all(res.buffer_s <= res.live_latency_s + 1e-6), "buffered media beyond the live edge"
        assert np.all(np.diff(res.request_s) >= -1e-12)
        s = res.summary("twitch")
        if res.chosen.size:   # stalls count with the segments that arrived (none: nothing to score)
            assert s["rebuffer_s"] == pytest.approx(core.state.stall_s[0], abs=1e-6)
        assert s["latency_max_s"] >= s["latency_mean_s"] - 1e-9 or np.isnan(s["latency_mean_s"])


@given(st.integers(1, 8), st.integers(2, 40), st.sampled_from(qoe.MODELS), st.integers(0, 10 ** 6))
def test_qoe_components_sum_to_total(rungs, segments, model, seed):
    rng = np.random.default_rng(seed)
    b = np.sort(rng.uniform(1e5, 2e7, rungs))
    b = np.unique(b)
    chosen = rng.integers(0, b.size, (3, segments))
    rebuf = rng.exponential(0.5, (3, segments)) * (rng.random((3, segments)) < 0.2)
    for skip in (False, True):
        out = qoe.score(model, chosen, rebuf, b, skip_first=skip)
        assert np.allclose(out[:, 0], out[:, 1] - out[:, 2] - out[:, 3])
        assert np.all(out[:, 2] >= 0) and np.all(out[:, 3] >= 0)


@given(st.integers(0, 5), st.integers(1, 30), st.sampled_from(qoe.MODELS))
def test_one_rung_no_stall_scores_exactly_its_utility(rung, segments, model):
    b = np.array([300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3])
    out = qoe.score(model, np.full((1, segments), rung), np.zeros((1, segments)), b)
    u, _ = qoe.rung_utilities(model, b)
    assert out[0, 0] == pytest.approx(segments * u[rung])
    assert out[0, 3] == 0 and out[0, 2] == 0
