"""dash.js's low-latency rules as policies, `l2a` and `lolp`, against cases traced by hand
through dash.js's code (src/streaming/rules/abr/L2ARule.js and lolp/*.js, line numbers as in
dash.js 5.2 at /work/ref/dash.js). Batch == per-row and the mask are in test_abr_batch."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import abr
from abr import Ladder, Observation
from abr.algorithms.dashjs.l2a_rule import simplex_projection
from abr.algorithms.dashjs.lolp.learning_controller import kmeans_pp_last_center
from abr.algorithms.dashjs.lolp.qoe_evaluator import single_use_qoe
from abr.algorithms.dashjs.lolp.weight_selector import WEIGHT_OPTIONS, find_weight_vector
from abr_support import dashjs_obs as vod_obs

LL = Ladder(np.array([200e3, 600e3, 1000e3]), 1.0)     # 1 s low-latency segments
VL = 4 ** 0.99                                          # L2ARule.js:48, HORIZON 4
ALPHA = max(4.0, VL * math.sqrt(4))                     # L2ARule.js:358 (= 2·VL here)


def make(name, ladder=LL, **params):
    p = abr.get(name, **params)
    p.reset(1, ladder)
    return p


def obs(buffer_s, last, samples=(), times=(), rate=1.0, latency=np.nan, ladder=LL, playing=True):
    """test_dashjs_policy's one-session observation, live: latency, playback rate, target 1.5 s."""
    o = vod_obs(buffer_s, last, samples, times, playing=playing, cap=4.0, ladder=ladder)
    return dataclasses.replace(o, latency_s=np.array([latency]), playback_rate=np.array([rate]),
                               target_latency_s=np.array([1.5]))


def test_registered_with_documented_parameters():
    assert {"l2a", "lolp"} <= set(abr.names())
    for name in ("l2a", "lolp"):
        for p in abr.policy_class(name).PARAMS:
            assert p.unit and p.doc


def test_observation_live_fields_default_to_not_live():
    o = Observation(sessions=np.arange(2), buffer_s=np.zeros(2), last_rung=np.zeros(2, int),
                    throughput_bps=np.zeros((2, 1)), download_time_s=np.zeros((2, 1)),
                    next_sizes_bytes=np.zeros((2, 1, 3)), segments_left=np.ones(2, int),
                    segment_index=np.zeros(2, int), segment_duration_s=1.0, playing=np.ones(2, bool),
                    mask=np.ones((2, 3), bool), time_s=np.zeros(2), buffer_cap_s=np.zeros(2))
    assert np.isnan(o.latency_s).all() and np.isnan(o.target_latency_s).all()
    assert o.playback_rate.tolist() == [1.0, 1.0]


def test_simplex_projection_by_hand():
    # L2ARule.euclideanProjection (254-282): sorted [1.3, 0.5, 0.1]; ii=0: t=(1.3-1)/1=0.3 < 0.5;
    # ii=1: t=(1.8-1)/2=0.4 >= 0.1 -> max(y - 0.4, 0)
    assert simplex_projection(np.array([[0.1, 1.3, 0.5]])) == pytest.approx(np.array([[0.0, 0.9, 0.1]]))
    assert simplex_projection(np.array([[2.0, 0.0]])).tolist() == [[1.0, 0.0]]    # t = 1
    assert simplex_projection(np.array([[0.5, 0.5]])).tolist() == [[0.5, 0.5]]    # no loop hit: t = 0
    # no hit in the loop (ii=0: −0.4 < 0.5; ii=1: 0.05 < 0.4): t = (1.5 − 1) / 3
    assert simplex_projection(np.array([[0.6, 0.5, 0.4]])) == pytest.approx(np.array([[0.6, 0.5, 0.4]]) - 1 / 6)


def _steady_l2a(**params):
    """Segments 0-2 of the trace: initial rung 2, startup (600 kbit/s), steady from the third."""
    p = make("l2a", **params)
    assert int(p.select(obs(0.0, -1, playing=False))[0]) == 2          # 1000 kbit/s initial
    # first rule call (L2ARule._handleStartupState, 291-325): the state is new, so no segment has
    # loaded since it exists (lastSegmentDurationS NaN): rung by the safe estimate 0.9 × 800 = 720
    assert int(p.select(obs(1.0, 2, [800e3], [1.0]))[0]) == 1
    assert p.rule.state[0] == 1
    # second call: a segment loaded since (_onMediaFragmentLoaded, 171-192) and buffer 2 >= B_target
    # 1.5: steady, Q = VL, prev_w all on the rung chosen (312-323)
    assert int(p.select(obs(2.0, 1, [800e3] * 2, [1.0] * 2))[0]) == 1
    assert p.rule.state[0] == 2
    assert p.rule.Q[0] == pytest.approx(VL)
    assert p.rule.prev_w[0].tolist() == [0.0, 1.0, 0.0]
    return p


def test_l2a_steady_steps_by_hand_in_dashjs_units():
    p = _steady_l2a()
    # steady (327-410), newest sample c = 1000 kbit/s, V = 1 s, rate 1: no rung has r·kbit > c,
    # so sign +1; w = prev_w + V/(2α)·(Q+VL)·kbit/c = e1 + (2VL/(4VL))·[0.2, 0.6, 1] = [0.1, 1.3, 0.5]
    # -> projection [0, 0.9, 0.1]; Σb·w = 640 000 bit/s is nearest to rung 1 (600 000)
    assert int(p.select(obs(2.5, 1, [800e3] * 2 + [1e6], [1.0] * 3))[0]) == 1
    assert p.rule.prev_w[0] == pytest.approx([0.0, 0.9, 0.1])
    # Q (383): bitrates in bit/s over c in kbit/s: VL − 1 + (640 000 + (−60 000 + 100 000)) / 1000
    assert p.rule.Q[0] == pytest.approx(VL - 1 + 680.0)
    # next step: (Q+VL)/(2α) = (2VL + 679)/(4VL) ≈ 43.5, so w piles on the top rung: [0, 0, 1];
    # the step-up cut compares 1 000 000 (bit/s) with c = 1000 (kbit/s) and never applies (397)
    assert int(p.select(obs(3.0, 1, [800e3] * 2 + [1e6] * 2, [1.0] * 4))[0]) == 2
    assert p.rule.prev_w[0] == pytest.approx([0.0, 0.0, 1.0])
    # Q: VL + 679 − 1 + (1 000 000 + (−540 000 + 900 000)) / 1000 = VL + 2038; the chosen 1000 kbit/s
    # reaches c, so Q = REACT · max(VL, Q) (403-405)
    assert p.rule.Q[0] == pytest.approx(2 * (VL + 2038.0))


def test_l2a_paper_units_stay_on_the_middle_rung():
    p = _steady_l2a(dashjs_units=False)
    p.select(obs(2.5, 1, [800e3] * 2 + [1e6], [1.0] * 3))
    assert p.rule.Q[0] == pytest.approx(VL - 1 + 0.68)           # (640 + 40) / 1000 in kbit/s
    q = int(p.select(obs(3.0, 1, [800e3] * 2 + [1e6] * 2, [1.0] * 4))[0])
    f = (VL - 1 + 0.68 + VL) / (2 * ALPHA)
    y = np.array([0.2 * f, 0.9 + 0.6 * f, 0.1 + f])              # [0.096, 1.188, 0.580]
    t = (y[1] + y[2] - 1) / 2                                     # ii = 1 hits: t >= 0.096
    assert p.rule.prev_w[0] == pytest.approx(np.maximum(y - t, 0))
    assert q == 1                                                 # Σb·w ≈ 678 kbit/s: nearest 600


def test_l2a_playback_rate_turns_the_gradient():
    p = _steady_l2a()
    # rate 1.5: 1.5 × 1000 > c = 1000 from rung 2 on, sign −1 there (363-365):
    # w = e1 + 0.5·1.5·[0.2, 0.6, −1] = [0.15, 1.45, −0.75] -> projection (t = 0.45) [0, 1, 0]
    assert int(p.select(obs(2.5, 1, [800e3] * 2 + [1e6], [1.0] * 3, rate=1.5))[0]) == 1
    assert p.rule.prev_w[0] == pytest.approx([0.0, 1.0, 0.0])
    assert p.rule.Q[0] == pytest.approx(VL - 1 + 1.5 * 600.0)     # V·rate·(600 000 + 0)/1000


def test_l2a_stepwise_ascent_only_in_paper_units():
    ladder = Ladder(np.array([200e3, 700e3, 1000e3]), 1.0)
    for units, want in ((False, 1), (True, 2)):
        p = make("l2a", ladder=ladder, dashjs_units=units)
        p.select(obs(0.0, -1, playing=False, ladder=ladder))
        p.select(obs(2.0, 0, [4e6], [1.0], ladder=ladder))
        p.rule.state[0], p.rule.Q[0], p.rule.prev_w[0] = 2, 1000.0, [1.0, 0.0, 0.0]
        # (Q+VL)/(2α) ≈ 63.6: w = [1 + 3.18, 11.1, 15.9] -> [0, 0, 1], rung 2 above the current 0;
        # the next rung (700) fits c = 4000 kbit/s in kbit/s, not as 700 000 bit/s (396-400)
        assert int(p.select(obs(2.0, 0, [4e6] * 2, [1.0] * 2, ladder=ladder))[0]) == want
        assert p.rule.prev_w[0] == pytest.approx([0.0, 0.0, 1.0])


def test_l2a_without_an_estimate_keeps_the_rung():
    p = make("l2a")
    p.select(obs(0.0, -1, playing=False))
    assert int(p.select(obs(1.0, 2, [800e3], [0.0]))[0]) == 2   # a 0 s transfer is no sample
    assert p.last_info["requested"][0] == -1 and p.rule.state[0] == 1


# -- LoL+ ------------------------------------------------------------------------------------
NORM = math.sqrt(200e3 ** 2 + 600e3 ** 2 + 1000e3 ** 2)       # _getMagnitude of the bitrates


def test_lolp_qoe_evaluator_by_hand():
    # LoLpQoEEvaluator._createQoeInfo (68-121) and _logMetricsInQoeInfo (124-157), no last bitrate:
    # L·bitrate − max·rebuffer − latency penalty − min·|1 − rate|
    q = single_use_qoe(np.array([1000.0, 1000.0, 1000.0]), 0.5, np.array([1.0, 2.0, 2e8]), 1.1, 2.0, 200.0, 3000.0)
    assert q.tolist() == pytest.approx([2000 - 1500 - 200 * 0.05 * 1.0 - 20,      # latency <= 1.1
                                        2000 - 1500 - 3000 * 0.1 * 2.0 - 20,      # <= 1e8
                                        2000 - 1500 - 0.0 - 20])                  # beyond: none


def test_lolp_weight_options_in_dashjs_order():
    # _getPermutations: first weight slowest, 5^4 vectors
    assert WEIGHT_OPTIONS.shape == (625, 4)
    assert WEIGHT_OPTIONS[0].tolist() == [0.2] * 4 and WEIGHT_OPTIONS[1].tolist() == [0.2, 0.2, 0.2, 0.4]
    assert WEIGHT_OPTIONS[5].tolist() == [0.2, 0.2, 0.4, 0.2] and WEIGHT_OPTIONS[-1].tolist() == [1.0] * 4


def test_lolp_weight_selector_constraints():
    b = LL.bitrates_bps
    # every rung's download leaves less than 0.3 s (buffer 0.1, throughput 100 kbit/s): no weights
    _, found = find_weight_vector(np.zeros((1, 3)), b, b, np.array([2.0]), np.array([0.1]),
                                  np.array([100e3]), np.ones(1), 1.0, np.array([1.5]), 0.3)
    assert not found[0]
    # the latency constraint (latency > target + |latency − 0|, 150-160) cannot fail
    _, found = find_weight_vector(np.zeros((1, 3)), b, b, np.array([50.0]), np.array([3.0]),
                                  np.array([900e3]), np.ones(1), 1.0, np.array([1.5]), 0.3)
    assert found[0]


def test_lolp_low_buffer_down_shifts_without_learning():
    p = make("lolp")
    p.select(obs(0.0, -1, playing=False))
    before = p.rule.controller.neurons.copy()
    # getNextQuality (248-251): safe 900 kbit/s; the current rung (1000) takes 1.11 s > 0.5 − 0.3:
    # _getDownShiftNeuron (194-213): highest rung below it under 900 kbit/s: 600 (rung 1)
    assert int(p.select(obs(0.5, 2, [1e6], [1.0], latency=2.0))[0]) == 1
    assert not p.last_info["reason_learned"][0]
    assert (p.rule.controller.neurons == before).all()
    # nothing below the current rung fits under the throughput (135 kbit/s): stay
    p = make("lolp")
    p.select(obs(0.0, -1, playing=False))
    assert int(p.select(obs(0.5, 1, [150e3], [1.0]))[0]) == 1


def test_lolp_learning_step_by_hand():
    p = make("lolp")
    p.select(obs(0.0, -1, playing=False))
    c = 900e3                                                  # safe throughput: 0.9 × 1000 kbit/s
    t = np.array([200e3, 600e3, 1000e3]) / NORM                # neuron throughput states
    thr_n = c / NORM
    q = int(p.select(obs(3.0, 1, [1e6], [1.0], latency=2.0))[0])
    # weights (findWeightVector, 82-135): downloads [0.22, 0.67, 1.11] s, next buffers [3.78, 3.33,
    # 2.0], rebuffer 1e-5 for all, latency states 0: QoE = bitrate − 1000·1e-5/w_buffer, highest for
    # rung 2 with w_buffer 1; latency weight ties -> the first, 0.2; throughput, switch 0.2
    assert p.rule.controller.weights[0].tolist() == [0.2, 0.2, 1.0, 0.2]
    # the winner (270-303): rung 2 (1000 > 900 − 10 kbit/s) gets throughput weight 100; distances
    # √(0.2·(t0 − c/N)²) = 0.265, √(0.2·(t1 − c/N)²) = 0.113, √(100·(t2 − c/N)²) = 0.845 -> rung 1
    assert q == 1 and p.last_info["reason_learned"][0]
    # the map (160-191): current = winner = rung 1; its own neighbourhood is 1, so it moves 1 % of
    # the way to (c/N, 2/100, 0, 0), then 1 % of the way to (c/N, 0, 0, 0)
    t1 = t[1] + (thr_n - t[1]) * 0.01
    l1 = 0.0 + (0.02 - 0.0) * 0.01
    t1 = t1 + (thr_n - t1) * 0.01
    l1 = l1 + (0.0 - l1) * 0.01
    got = p.rule.controller.neurons[0, 1]
    assert got[0] == pytest.approx(t1, rel=1e-12) and got[1] == pytest.approx(l1, rel=1e-12)
    assert got[2] == 0.0 and got[3] == 0.0
    # rung 0 comes first in each update, so it sees rung 1 as it was before that update:
    # neighbourhood exp(−d²/(2·0.1²)), d its distance to rung 1's state then
    t1a, l1a = t[1] + (thr_n - t[1]) * 0.01, 0.02 * 0.01           # rung 1 after the first update
    h = math.exp(-((t[0] - t[1]) ** 2) / (2 * 0.1 ** 2))
    t0, l0 = t[0] + (thr_n - t[0]) * 0.01 * h, 0.02 * 0.01 * h
    h = math.exp(-((t0 - t1a) ** 2 + (l0 - l1a) ** 2) / (2 * 0.1 ** 2))
    t0, l0 = t0 + (thr_n - t0) * 0.01 * h, l0 - l0 * 0.01 * h
    assert p.rule.controller.neurons[0, 0, :2] == pytest.approx([t0, l0], rel=1e-9)
    # the next decision: the latency states are no longer 0, so the latency weight 1 scores best
    p.select(obs(3.0, 1, [1e6] * 2, [1.0] * 2, latency=2.0))
    assert p.rule.controller.weights[0].tolist() == [0.2, 1.0, 1.0, 0.2]


def test_lolp_initial_weights_are_seeded_kmeans_centres():
    a = kmeans_pp_last_center(3, 0.8, seed=1)
    assert a.tolist() == kmeans_pp_last_center(3, 0.8, seed=1).tolist()
    assert a.tolist() != kmeans_pp_last_center(3, 0.8, seed=2).tolist()
    assert 0 <= a[0] <= 0.8 and ((0 <= a[1:]) & (a[1:] < 1)).all()
