"""The `dashjs` policy (dash.js 5 default ABR) against cases worked out by hand from dash.js's
source (Settings.js, ThroughputModel.js, ThroughputController.js, AbrController.js and the
rules in src/streaming/rules/abr/), and the `dashjs` session preset. No browser needed."""
from __future__ import annotations

import math

import numpy as np
import pytest

import abr
from abr import Progress
from abr.algorithms.dashjs import js_round, optimal_rung
from abr_support import BBB, BBB_KBPS, dashjs_obs as obs


def make(**params):
    p = abr.get("dashjs", **params)
    p.reset(1, BBB)
    return p


def ewma_kbps(samples_kbps, times_s, fast=3.0, slow=8.0, per_ms=0.0015):
    """ThroughputModel._updateEwmaValues + ThroughputController.getEwma, written out."""
    f = s = w_total = 0.0
    for v, t in zip(samples_kbps, times_s):
        w = per_ms * t * 1000.0
        af, as_ = 0.5 ** (w / fast), 0.5 ** (w / slow)
        f = (1 - af) * v + af * f
        s = (1 - as_) * v + as_ * s
        w_total += w
    return math.floor(min(f / (1 - 0.5 ** (w_total / fast)), s / (1 - 0.5 ** (w_total / slow))) + 0.5)


def test_registered_and_named():
    assert "dashjs" in abr.names()
    assert abr.get("dashjs").name == "dashjs"


def test_js_round_and_optimal_rung():
    assert js_round(np.array([2.5, 3.49, -0.5]))[0] == 3.0
    assert js_round(np.array([3.49]))[0] == 3.0
    b = BBB.bitrates_bps
    # highest rung at or below; the lowest when none is, or for ≤ 0 and NaN
    assert optimal_rung(np.array([991_000.0, 990_999.0, 100.0, 0.0, np.nan, 1e9]), b).tolist() == [4, 3, 0, 0, 0, 9]


def test_first_segment_at_or_below_1000_kbps():
    assert int(make().select(obs(0.0, -1, playing=False))[0]) == 4   # 991 <= 1000 < 1427
    assert int(make(initial_bps=500_000).select(obs(0.0, -1, playing=False))[0]) == 2  # 477


def test_ewma_weight_is_0_0015_per_ms_and_estimate_is_rounded():
    p = make()
    p.select(obs(0.0, -1, playing=False))
    p.select(obs(3.0, 4, [2_000_000.0], [2.0], t=2.1))
    assert p.last_info["throughput_bps"][0] == 2_000_000.0       # one sample: bias-corrected exactly
    p.select(obs(4.0, 5, [2_000_000.0, 1_000_000.0], [2.0, 3.0], t=5.2))
    want = ewma_kbps([2000, 1000], [2.0, 3.0])
    assert want == 1215  # hand check: fast 1000/(1-0.5^2.5) = 1214.7, slow 632.8/0.4779 = 1324.2
    assert p.last_info["throughput_bps"][0] == want * 1000.0


def test_throughput_rule_uses_safety_0_9_and_ibr_waits_two_segments():
    p = make()
    p.select(obs(0.0, -1, playing=False))
    # second segment: estimate 2000, safe 1800 -> 1427 (rung 5); the insufficient-buffer rule is
    # still ignoring (segmentIgnoreCount 2), so a thin buffer does not cap it
    q = int(p.select(obs(0.5, 4, [2_000_000.0], [2.0], t=2.1))[0])
    assert q == 5
    assert p.last_info["req_ibr"][0] == -1
    # third segment: 0.7 × 2000 × 2 s / 3 s = 933 kbit/s -> 688 (rung 3) wins over 1427
    q = int(p.select(obs(2.0, 5, [2_000_000.0, 2_000_000.0], [2.0, 2.0], t=4.2))[0])
    assert q == 3
    assert p.last_info["rule"][0] == 3  # InsufficientBufferRule
    assert abs(p.last_info["ibr_bound_bps"][0] - 0.7 * 2_000_000 * 2.0 / 3.0) < 1e-6


def test_no_request_keeps_the_current_rung():
    p = make()
    p.select(obs(0.0, -1, playing=False))
    # nothing measured (a sample of 0 s is dropped): no rule asks, the rung stays
    q = int(p.select(obs(3.0, 4, [2_000_000.0], [0.0], t=2.0))[0])
    assert q == 4 and p.last_info["rule"][0] == 0


def test_dynamic_switches_to_bola_at_12s_and_back_below_6s():
    p = make()
    p.select(obs(0.0, -1, playing=False))
    tp, dl = [3_000_000.0], [1.0]
    p.select(obs(11.9, 4, tp, dl, t=1.0))
    assert not p.last_info["bola"][0]
    p.select(obs(12.0, 4, tp * 2, dl * 2, t=2.0))         # high point reaches 12 s: BOLA
    assert p.last_info["bola"][0]
    p.select(obs(9.5, 4, tp * 3, dl * 3, t=3.0))          # low point 6.5 s: stays BOLA
    assert p.last_info["bola"][0]
    p.select(obs(8.9, 4, tp * 4, dl * 4, t=4.0))          # low point 5.9 s < 6: throughput rule
    assert not p.last_info["bola"][0]
    q = make(strategy="throughput")
    q.select(obs(0.0, -1, playing=False))
    q.select(obs(20.0, 4, tp, dl, t=1.0))
    assert not q.last_info["bola"][0]


def test_bola_parameters_as_dash_js_computes_them():
    p = make()
    u = np.log(BBB.bitrates_bps)
    u = u - u[0] + 1
    buffer_time = max(18.0, 10.0 + 2.0 * 10)          # 30 s for ten rungs
    gp = (u[-1] - 1) / (buffer_time / 10.0 - 1)
    assert p.gp == pytest.approx(gp)
    assert p.Vp == pytest.approx(10.0 / gp)
    # minimum buffer level of rung 1: Vp·(gp + (b1·u0 − b0·u1)/(b1 − b0))
    b = BBB.bitrates_bps
    lvl = (10.0 / gp) * (gp + (b[1] * u[0] - b[0] * u[1]) / (b[1] - b[0]))
    assert p.min_level[1] == pytest.approx(max(0.0, lvl))


def test_bola_first_call_picks_by_throughput_then_steady_score():
    p = make()
    p.select(obs(0.0, -1, playing=False))
    tp, dl = [3_000_000.0], [1.0]
    q = int(p.select(obs(13.0, 4, tp, dl, t=1.0))[0])      # BOLA on; startup: safe 2700 -> 2056
    assert q == 6 and p.last_info["rule"][0] in (1, 2)
    assert p.placeholder[0] == pytest.approx(max(0.0, p.min_level[6] - 13.0))
    # _handleBolaStateStartup leaves startup only once lastSegmentDurationS is known, which
    # _onMediaFragmentLoaded sets for segments loaded after the state exists: not on the first call
    assert p.bola_state[0] == 1
    # the second call: startup again, by throughput (EWMA of 3000 and 1000 kbit/s: 1453, safe
    # 1307.7 -> 991, rung 4), then steady
    est = ewma_kbps([3000, 1000], [1.0, 2.0])
    q = int(p.select(obs(14.0, 6, tp + [1_000_000.0], dl + [2.0], t=4.0))[0])
    assert q == int(optimal_rung(np.array([0.9 * est * 1000.0]), BBB.bitrates_bps)[0]) == 4
    assert p.last_info["req_bola"][0] == 4
    assert p.bola_state[0] == 2                          # buffer >= one segment: steady from now on

    # steady state, written out: no placeholder, no idle time, plenty of throughput
    p = make()
    p.select(obs(0.0, -1, playing=False))
    p.bola_state[0] = 2
    p.bola_mode[0] = True
    big = [50_000_000.0]
    q = int(p.select(obs(20.0, 5, big, [0.5], t=1.0))[0])
    u = np.log(BBB.bitrates_bps)
    u = u - u[0] + 1
    score = (p.Vp * (u - 1 + p.gp) - 20.0) / BBB.bitrates_bps
    want = int(len(score) - 1 - np.argmax(score[::-1]))  # ties to the higher rung (s >= score)
    assert q == want
    assert p.last_info["rule"][0] == 2


def test_bola_o_never_climbs_past_current_and_throughput_rungs():
    p = make()
    p.select(obs(0.0, -1, playing=False))
    p.bola_state[0] = 2
    p.bola_mode[0] = True
    # buffer 25 s would make BOLA climb high; throughput 800 kbit/s (safe 720 -> rung 3) and the
    # current rung 2: BOLA-O keeps max(throughput rung, current) = 3
    q = int(p.select(obs(25.0, 2, [800_000.0], [3.0], t=1.0), )[0])
    assert p.last_info["req_bola"][0] == 3
    assert q <= 3


def test_switch_history_rule():
    p = make()
    s = np.array([0])
    for _ in range(7):
        p._history_push(s, np.array([5]), np.array([5]))
    assert p._history_request(s, 10)[0] == -1           # 7 samples: not enough
    p._history_push(s, np.array([5]), np.array([3]))    # one drop from rung 5 in 8: 1/7 > 0.075
    assert p._history_request(s, 10)[0] == 4            # one below the rung that dropped
    p = make()
    p._history_push(s, np.array([3]), np.array([2]))    # the drop is from rung 3
    for _ in range(7):
        p._history_push(s, np.array([5]), np.array([5]))
    assert p._history_request(s, 10)[0] == 5            # cap at the highest rung in the window


def _progress(done, elapsed, buffer_s, rung=9, total=6_000_000 * 3 / 8):
    sizes = BBB.bitrates_bps * 3 / 8
    return Progress(sessions=np.array([0]), rung=np.array([rung]), bytes_done=np.array([float(done)]),
                    bytes_total=np.array([float(total)]), elapsed_s=np.array([float(elapsed)]),
                    buffer_s=np.array([float(buffer_s)]), segment_duration_s=3.0, sizes_bytes=sizes[None, :],
                    mask=np.ones((1, 10), bool))


def offer(p, points, buffer_s=10.0, rung=9, total=6_000_000 * 3 / 8):
    """Offer one download's progress (elapsed s, bytes) in order, as the simulator and the
    player do; the first rung the rule asks for (and no more offers), else -1."""
    for e, b in points:
        out = int(p.abandon(_progress(b, e, buffer_s, rung, total))[0])
        if out >= 0:
            return out
    return -1


def ramp(t0, b0, t1, b1, step=0.1):
    """Progress offers every `step` s from (t0, b0) to (t1, b1), bytes growing linearly."""
    n = int(round((t1 - t0) / step))
    return [(t0 + i * step, b0 + (b1 - b0) * i / n) for i in range(n + 1)]


def test_abandonment_rule():
    # top rung (2.25 MB); first bytes seen at 0.1 s (10 kB), then 100 kB more by 1.1 s:
    # 800 kbit/s since the first progress -> 22.5 s projected > 1.8 × 3 s; the rung at or
    # below 800 is 688 (3), whose segment (258 kB) is smaller than the 2.14 MB left
    p = make()
    p._history_push(np.array([0]), np.array([5]), np.array([3]))
    assert offer(p, ramp(0.1, 10_000, 1.1, 110_000)) == 3
    assert (p.h_cur[0] < 0).all()                                    # the switch history was reset
    p = make()
    assert offer(p, ramp(0.1, 10_000, 1.1, 110_000), buffer_s=18.5) == -1   # buffer above 18 s
    p = make()
    assert offer(p, ramp(0.1, 10_000, 0.5, 50_000)) == -1            # only 400 ms since the first bytes
    p = make()
    assert offer(p, ramp(0.1, 10_000, 1.1, 1_500_000)) == -1         # fast enough
    # a wait for the first bytes (a dead link at the start) is not held against the rate:
    # nothing for 0.9 s, then 8 Mbit/s
    p = make()
    assert offer(p, [(0.3, 0), (0.6, 0)] + ramp(0.9, 20_000, 1.5, 620_000)) == -1
    assert offer(make(abandonment=False), ramp(0.1, 10_000, 1.1, 110_000)) == -1


def test_abandonment_waits_for_six_progress_events():
    # minThroughputSamplesThreshold: the same slow download, offered 5 times over 1 s (5
    # progress events), then a sixth time
    p = make()
    five = [(0.1, 10_000), (0.35, 35_000), (0.6, 60_000), (0.85, 85_000), (1.1, 110_000)]
    assert offer(p, five) == -1
    assert offer(p, [(1.2, 120_000)]) == 3
    # offers without a new packet (1500 bytes) are no progress events
    p = make()
    crawl = [(0.1 + 0.1 * i, 9_000 + 100 * i) for i in range(12)]    # 100 B per 0.1 s, 9.0-10.1 kB
    assert offer(p, crawl) == -1
    assert p.traces[0] == 1


def test_a_slow_start_is_left_out_of_the_rate():
    # the link at 8 kbit/s for its first second, then 922 kbit/s (hsdpa-3g 2010-11-23_1606):
    # dash.js's first progress event comes when the link picks up, so the rate it measures is
    # 922 kbit/s, the projection 3.4 s < 5.4 s, and the segment at 991 kbit/s is kept
    size = 991_000 * 3 / 8
    points = [(0.05 * i, max(0.0, 1_000 * (0.05 * i - 0.1))) for i in range(1, 21)]       # to 1.0 s
    points += [(1.0 + 0.05 * i, 900 + 115_250 * 0.05 * i) for i in range(1, 15)]        # to 1.7 s
    assert offer(make(), points, buffer_s=0.0, rung=4, total=size) == -1


def test_a_segment_is_abandoned_at_most_once():
    # AbandonRequestsRule.shouldAbandon returns at once for an index in abandonDict: the refetch
    # of an abandoned segment runs to the end, however slow; the next segment may be abandoned
    size = 991_000 * 3 / 8
    p = make()
    p.select(obs(0.0, -1, playing=False, t=0.0))
    # 50 kB in 0.8 s after the first event: 500 kbit/s, 5.9 s projected >= 5.4 s; rung 2 (477)
    # is 179 kB < 321 kB left
    assert offer(p, ramp(0.2, 2_000, 1.0, 52_000), buffer_s=0.0, rung=4, total=size) == 2
    small = 477_000 * 3 / 8
    # the refetch at rung 2 (its clock restarts): 100 kbit/s would abandon to rung 0, but not twice
    slow = ramp(0.2, 2_000, 1.2, 14_500)
    assert offer(p, slow, buffer_s=0.0, rung=2, total=small) == -1
    p.select(obs(0.0, 2, [100_000.0], [10.0], t=12.0))                 # the next segment
    assert offer(p, slow, buffer_s=0.0, rung=2, total=small) == 0


def test_an_abandoned_request_is_a_throughput_sample():
    # dash.js adds an HTTP request metric for the aborted request too, and ThroughputModel
    # takes it as a media-segment sample: 37.5 kB over the 0.6 s since the first progress
    # event = 500 kbit/s. With no sample before, the bias-corrected EWMA is that sample.
    size = 991_000 * 3 / 8
    p = make()
    p.select(obs(0.0, -1, playing=False, t=0.0))
    assert np.isnan(p.estimate_bps(np.array([0]))[0])
    assert offer(p, ramp(0.2, 2_000, 1.0, 52_000), buffer_s=0.0, rung=4, total=size) == 2
    assert p.estimate_bps(np.array([0]))[0] == 500_000.0


def test_no_switch_up_for_10s_after_an_abandonment():
    size = 991_000 * 3 / 8
    p = make()
    p.select(obs(0.0, -1, playing=False, t=0.0))                 # rung 4, requested at t = 0
    # 200 kbit/s: below the lowest rung (230); the rule acts at 0.8 s (0.6 s after the first event)
    assert offer(p, ramp(0.2, 2_000, 1.0, 22_000), buffer_s=0.0, rung=4, total=size) == 0
    fast = [5_000_000.0]
    # 5 s later the link is fast again, but ABANDON_LOAD (until t = 0.8 + 10 s) keeps the rung
    assert int(p.select(obs(3.0, 0, fast, [0.5], t=5.0))[0]) == 0
    assert int(p.select(obs(6.0, 0, fast * 2, [0.5] * 2, t=8.0))[0]) == 0
    # from t = 11 s on, the throughput rule speaks again (safe 4500 -> 2962, capped by the
    # insufficient-buffer rule at 0.7 × 5000 × 9 / 3 = 10500: no cap)
    assert int(p.select(obs(9.0, 0, fast * 3, [0.5] * 3, t=11.5))[0]) == 7


def test_batch_equals_one_by_one():
    from netem.content import synthetic
    from netem.trace import Trace
    from player.core.simulator import SessionSpec, simulate

    content = synthetic([230e3, 477e3, 991e3, 2056e3, 5027e3], duration_s=60.0, segment_duration_s=3.0, seed=3)
    rng = np.random.default_rng(7)
    traces = []
    for i in range(5):
        rates = rng.uniform(2e5, 6e6, size=80)
        traces.append(Trace(np.arange(80.0), rates, 80.0, latency_s=np.full(80, 0.05), name=f"t{i}"))
    specs = [SessionSpec(t, content, "dashjs", preset="dashjs") for t in traces]
    together = simulate(specs)
    alone = [simulate([s])[0] for s in specs]
    for a, b in zip(together, alone):
        assert a.chosen.tolist() == b.chosen.tolist()
        assert a.rebuffer_s.sum() == pytest.approx(b.rebuffer_s.sum())


def test_dashjs_preset():
    from player.core.presets import get

    p = get("dashjs")
    assert p.buffer_cap_s == 18.0 and p.whole_segment_fits and p.wait_quantum_s == 0.5
    assert not p.throughput_includes_latency and p.first_rung is None
    assert p.link.latency == "trace" and p.link.overhead_s == 0.018
    # an init segment before every switch (a 304 for one fetched before); the first before t = 0
    assert p.init_bytes == 710 and p.init_revalidated and not p.init_at_start
    # bufferTimeAtTopQuality 30 s, 60 s for content of 600 s or more
    assert p.top_cap_s(60.0) == 30.0 and p.top_cap_s(600.0) == 60.0


def test_init_requests_are_not_throughput_samples():
    # ThroughputController._onMetricAdded feeds only MEDIA_SEGMENT_TYPE (and MPD) requests to the
    # model: the policy sees one sample per media segment, its bytes over its transfer time
    from dataclasses import replace

    from netem.content import synthetic
    from netem.trace import Trace
    from player.core.presets import get
    from player.core.simulator import SessionSpec, simulate

    content = synthetic([230e3, 477e3, 991e3, 2056e3, 5027e3], duration_s=30.0, segment_duration_s=3.0, seed=1)
    tr = Trace(np.array([0.0, 5.0, 9.0]), np.array([3e6, 0.6e6, 4e6]), 60.0, latency_s=np.array([0.3, 0.3, 0.3]))
    cls = type(abr.get("dashjs"))
    original, seen = cls._select, []

    def spy(self, o):
        seen.append((int(o.segment_index[0]), o.throughput_bps[0].copy()))
        return original(self, o)

    cls._select = spy
    try:
        # without fast switching: its re-fetches are media samples too, of segments already counted
        r = simulate([SessionSpec(tr, content, "dashjs",
                                  preset=replace(get("dashjs-no-fast-switch"), init_bytes=50_000))])[0]
    finally:
        cls._select = original
    assert np.count_nonzero(r.init_s) >= 2                   # the switches' init requests happened
    media = content.segment_sizes_bytes[np.arange(content.n_segments), r.chosen] * 8 / (r.download_s - r.latency_s)
    for k, hist in seen:
        got = hist[np.isfinite(hist)]
        assert got.size == min(k, hist.size)                 # one sample per media segment, none per init
        assert got == pytest.approx(media[max(0, k - hist.size):k])


def test_simulated_session_is_sane():
    from netem.content import synthetic
    from netem.trace import constant
    from player.core.simulator import SessionSpec, simulate

    content = synthetic([230e3, 477e3, 991e3, 2056e3, 5027e3], duration_s=60.0, segment_duration_s=3.0, seed=1)
    # (without fast switching: with it, a switch up at segment 1 re-fetches segment 0, too late to play)
    r = simulate([SessionSpec(constant(3e6, 120.0, latency_s=0.05), content, "dashjs",
                              preset="dashjs-no-fast-switch")])[0]
    assert r.chosen[0] == 2                    # 991 kbit/s at start
    assert set(r.chosen[3:].tolist()) == {3}   # settles at 2056 (safe 2700 < 5027)
    assert r.rebuffer_s.sum() == 0.0
    # the buffer never exceeds bufferTimeDefault (18 s) when requests start
    assert float(r.buffer_s.max()) <= 18.0 + 1e-9
    # at the top rung, bufferTimeAtTopQuality (30 s): requests while buffer + segment < 30 s
    top = simulate([SessionSpec(constant(30e6, 120.0, latency_s=0.05), content, "dashjs", preset="dashjs")])[0]
    assert top.chosen[-1] == 4
    assert 18.0 + 3.0 < float(top.buffer_s.max()) <= 30.0 + 1e-9


def _live(o, chunked: bool):
    """`o` on a live stream (a 3 s latency target); `chunked`: its download came as three CMAF
    chunks of 250,000 bytes, one a second (2 Mbit/s each, as the plain sample says)."""
    import dataclasses

    extra = {"target_latency_s": np.array([3.0]), "latency_s": np.array([3.0])}
    if chunked:
        extra.update(chunk_bytes=np.full((1, 3), 250_000.0), chunk_start_s=np.array([[0.0, 1.0, 2.0]]),
                     chunk_end_s=np.array([[1.0, 2.0, 3.0]]), chunk_buffer_s=np.full((1, 3), 1.0))
    return dataclasses.replace(o, **extra)


def test_no_insufficient_buffer_rule_in_low_latency_mode():
    """dash.js 5 InsufficientBufferRule._shouldExecuteRule: not in low-latency mode. The VoD
    sequence above capped the third segment at rung 3; chunked, the throughput rule's rung 5 stands."""
    p = make()
    p.select(_live(obs(0.0, -1, playing=False), chunked=False))
    assert int(p.select(_live(obs(0.5, 4, [2_000_000.0], [2.0], t=2.1), chunked=True))[0]) == 5
    q = int(p.select(_live(obs(2.0, 5, [2_000_000.0, 2_000_000.0], [2.0, 2.0], t=4.2), chunked=True))[0])
    assert q == 5
    assert p.last_info["req_ibr"][0] == -1 and math.isnan(p.last_info["ibr_bound_bps"][0])


def test_throughput_rule_acts_on_an_empty_buffer_when_live():
    """dash.js ThroughputRule: BUFFER_LOADED or a dynamic stream. With 0.2 s buffered (≤ the 0.3 s
    stall threshold) a VoD session keeps its rung; a live one takes the estimate's (2000 × 0.9 → rung 5)."""
    vod = make(insufficient_buffer_rule=False)
    vod.select(obs(0.0, -1, playing=False))
    assert vod.last_info is not None
    vod.select(obs(0.2, 4, [2_000_000.0], [2.0], t=2.1))
    assert vod.last_info["req_throughput"][0] == -1
    live = make(insufficient_buffer_rule=False)
    live.select(_live(obs(0.0, -1, playing=False), chunked=False))
    q = int(live.select(_live(obs(0.2, 4, [2_000_000.0], [2.0], t=2.1), chunked=False))[0])
    assert live.last_info["req_throughput"][0] == 5 and q == 5
