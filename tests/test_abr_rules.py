"""BBA, BOLA, BOLA-E, the throughput rule, RB, FESTIVE and abandonment against hand-computed
cases from the papers' and players' definitions (the arithmetic is written out here,
independently of the code under test)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import abr
from abr import Ladder, Observation, Progress
from abr_support import PENSIEVE, Sessions, abr_cache  # noqa: F401

KBPS = [300, 750, 1200, 1850, 2850, 4300]  # Pensieve's ladder, 4 s segments


def obs1(buffer_s=10.0, last=-1, samples=(), times=None, cap=30.0, mask=None, t=0.0,
         playing=True, ladder=PENSIEVE, left=40):
    H = 20
    tp = np.full((1, H), np.nan)
    dl = np.full((1, H), np.nan)
    if samples:
        tp[0, -len(samples):] = samples
        dl[0, -len(samples):] = times if times is not None else [1.0] * len(samples)
    R = ladder.n
    return Observation(
        sessions=np.array([0]), buffer_s=np.array([float(buffer_s)]), last_rung=np.array([last]),
        throughput_bps=tp, download_time_s=dl,
        next_sizes_bytes=np.tile(ladder.bitrates_bps * ladder.segment_duration_s / 8, (1, 5, 1)),
        segments_left=np.array([left]), segment_index=np.array([0]),
        segment_duration_s=ladder.segment_duration_s, playing=np.array([playing]),
        mask=np.ones((1, R), bool) if mask is None else np.array([mask]),
        time_s=np.array([float(t)]), buffer_cap_s=np.array([float(cap)]))


def pick(name, o, **params):
    p = abr.get(name, **params)
    p.reset(1, PENSIEVE)
    return int(p.select(o)[0])


# -- BBA-0 (Huang et al. 2014, Algorithm 1; reservoir 5 s, cushion 10 s) -------------------
@pytest.mark.parametrize("buffer_s, prev, expected", [
    (3.0, 4, 0),    # B <= reservoir: R_min
    (5.0, 4, 0),    # B = r exactly: still R_min
    (15.0, 0, 5),   # B >= r + cu: R_max
    # f(10) = 300 + (4300 − 300)(10 − 5)/10 = 2300 kbit/s; prev 1200: R+ = 1850 <= 2300,
    # so max{R_i < 2300} = 1850 (rung 3)
    (10.0, 2, 3),
    # prev 1850: R+ = 2850 > 2300 > R- = 1200: stay at 1850
    (10.0, 3, 3),
    # f(6) = 300 + 4000·0.1 = 700; prev 1850: R- = 1200 >= 700, so min{R_i > 700} = 750
    (6.0, 3, 1),
    # f(12.5) = 300 + 4000·0.75 = 3300; prev 4300: R- = 2850 < 3300: stay
    (12.5, 5, 5),
    # f(8) = 1500; prev 300: R+ = 750 <= 1500, max{R_i < 1500} = 1200
    (8.0, 0, 2),
])
def test_bba0_hand_cases(buffer_s, prev, expected):
    assert pick("bba", obs1(buffer_s=buffer_s, last=prev)) == expected


@pytest.mark.parametrize("buffer_s, expected", [
    (4.9, 0),   # < reservoir
    (15.0, 5),  # >= reservoir + cushion
    (10.0, 2),  # int((6 − 1)(10 − 5)/10) = int(2.5) = 2
    (13.0, 4),  # int(5·0.8) = 4
])
def test_bba_pensieve_variant(buffer_s, expected):
    assert pick("bba", obs1(buffer_s=buffer_s, last=0), variant="pensieve") == expected


# -- BOLA-BASIC (Spiteri et al. 2016; V = (Q_max − p)/(υ_M + γp), Sabre gp = 5) ------------
def bola_expected(Q, qmax=25.0, p=4.0, gp=5.0):
    u = [math.log(k / KBPS[0]) for k in KBPS]
    V = (qmax - p) / (u[-1] + gp)                       # = 21 / 7.66259 = 2.74059
    scores = [(V * (u[m] + gp) - Q) / KBPS[m] for m in range(6)]
    return max(range(6), key=lambda m: (scores[m], -m))  # ties to the lower rung


@pytest.mark.parametrize("Q, expected", [
    (0.0, 0), (10.0, 0), (13.0, 1), (14.5, 2), (16.0, 3), (17.0, 4), (18.0, 5), (21.0, 5),
])
def test_bola_hand_cases(Q, expected):
    # switching points Q*(m−1 → m) = V(γp + (S_m υ_{m−1} − S_{m−1} υ_m)/(S_m − S_{m−1})):
    # 12.03, 14.07, 15.31, 16.50, 17.66 s
    assert bola_expected(Q) == expected
    assert pick("bola", obs1(buffer_s=Q), buffer_target_s=25.0, gp=5.0) == expected


def test_bola_switching_points():
    u = [math.log(k / KBPS[0]) for k in KBPS]
    V = 21.0 / (u[-1] + 5.0)
    for m in range(1, 6):
        q_star = V * (5.0 + (KBPS[m] * u[m - 1] - KBPS[m - 1] * u[m]) / (KBPS[m] - KBPS[m - 1]))
        below = pick("bola", obs1(buffer_s=q_star - 0.01), buffer_target_s=25.0)
        above = pick("bola", obs1(buffer_s=q_star + 0.01), buffer_target_s=25.0)
        assert below == m - 1 and above == m, (m, q_star, below, above)


def test_bola_buffer_target_from_observation():
    # with buffer_target_s unset, Q_max is the observation's buffer_cap_s
    assert pick("bola", obs1(buffer_s=18.0, cap=25.0)) == 5
    assert pick("bola", obs1(buffer_s=18.0, cap=60.0)) < 5


# -- BOLA-E (dash.js BolaRule) -------------------------------------------------------------
def test_bolae_parameters_follow_dashjs():
    from abr.algorithms.bolae import BolaECore

    core = BolaECore(1, PENSIEVE.bitrates_bps, 10.0, 2.0, 0.99)
    u = [1 + math.log(k / KBPS[0]) for k in KBPS]       # utilities normalised to u_0 = 1
    buffer_time = max(12.0, 10.0 + 2.0 * 6)             # = 22 s
    gp = (u[-1] - 1) / (buffer_time / 10.0 - 1)         # = 2.66259 / 1.2 = 2.21883
    Vp = 10.0 / gp                                      # = 4.50688
    v, g = core.params(np.array([12.0]))
    assert v[0] == pytest.approx(Vp) and g[0] == pytest.approx(gp)
    # the lowest rung is preferred up to 10 s, the top one from the buffer time on
    assert Vp * (u[0] + gp - 1) == pytest.approx(10.0)
    assert Vp * (u[-1] + gp - 1) == pytest.approx(22.0)
    # minBufferLevelForQuality(1) = Vp (gp + (S_1 u_0 − S_0 u_1)/(S_1 − S_0)) = 11.754 s
    lvl = Vp * (gp + (KBPS[1] * u[0] - KBPS[0] * u[1]) / (KBPS[1] - KBPS[0]))
    assert core.min_level(np.array([1]), v, g)[0] == pytest.approx(lvl)
    assert core.max_level(np.array([3]), v, g)[0] == pytest.approx(Vp * (u[3] + gp))


def test_bolae_startup_then_placeholder_lifts_a_capped_buffer():
    """With a 12 s buffer cap (below BOLA-E's 22 s buffer time) plain buffer levels would
    keep BOLA low; the placeholder buffer, grown by the waits for room, lets it reach the
    top rung on a fast link (MMSys 2018 §4)."""
    rng = np.random.default_rng(0)
    s = Sessions(rng, PENSIEVE, 1, segments=40, masks=False)
    s.mean_bw[:] = 40e6
    s.cap[:] = 12.0
    p = abr.get("bolae")
    p.reset(1, PENSIEVE)
    got = []
    for _ in range(40):
        rows = np.array([0])
        q = p.select(s.observe(rows))
        got.append(int(q[0]))
        s.download(rows, q)
    assert got[0] == 1                      # nothing measured: the 1 Mbit/s rung
    assert got[1] == 5                      # start-up: throughput rule, 0.9 × 40 Mbit/s
    assert got[-10:] == [5] * 10            # steady: the placeholder keeps it on top
    assert np.nanmax(p.last_info["placeholder_s"]) > 0


# -- throughput rule (dash.js: EWMA 3 s / 8 s, safety 0.9) ---------------------------------
def test_throughput_rule_dual_ewma_hand_case():
    # samples: 2 Mbit/s over 2 s, then 1 Mbit/s over 1 s
    a_f1, a_f2 = 0.5 ** (2 / 3), 0.5 ** (1 / 3)
    a_s1, a_s2 = 0.5 ** (2 / 8), 0.5 ** (1 / 8)
    fast = (1 - a_f2) * 1e6 + a_f2 * ((1 - a_f1) * 2e6)
    slow = (1 - a_s2) * 1e6 + a_s2 * ((1 - a_s1) * 2e6)
    fast /= 1 - 0.5 ** (3 / 3)          # zero-start correction, total weight 3 s
    slow /= 1 - 0.5 ** (3 / 8)
    est = min(fast, slow)               # = 1,587,401 bit/s (fast is the smaller)
    assert est == pytest.approx(1_587_401, rel=1e-6)
    p = abr.get("throughput")
    p.reset(1, PENSIEVE)
    assert p.select(obs1())[0] == 1                         # no estimate: 1 Mbit/s → 750k
    p.select(obs1(samples=[2e6], times=[2.0]))
    q = p.select(obs1(samples=[2e6, 1e6], times=[2.0, 1.0]))
    assert p.last_info["throughput_bps"][0] == pytest.approx(est, rel=1e-9)
    assert q[0] == 2                                        # 0.9 × 1.587 M = 1.43 M → 1200k


def test_throughput_rule_shaka_preset():
    p = abr.get("throughput", preset="shaka")
    p.reset(1, PENSIEVE)
    p.select(obs1())
    # a 10 kB sample (80 kbit over 0.04 s) is below Shaka's 16 kB minimum: ignored
    p.select(obs1(samples=[2e6], times=[0.04]))
    assert np.isnan(p.last_info["throughput_bps"][0])
    # 3 Mbit/s over 1 s = 375 kB ≥ 128 kB: an estimate, half-lives 2 s / 5 s; a single
    # sample's corrected EWMA is the sample itself; safety 0.95 → 2.85 Mbit/s → rung 4
    q = p.select(obs1(samples=[2e6, 3e6], times=[0.04, 1.0]))
    assert p.last_info["throughput_bps"][0] == pytest.approx(3e6)
    assert q[0] == 4
    assert abr.get("throughput", preset="shaka").params["preset"] == "shaka"
    with pytest.raises(ValueError):
        abr.get("throughput", preset="nope").reset(1, PENSIEVE)


def test_throughput_sabre_low_buffer_rule():
    p = abr.get("throughput", low_buffer_rule=True)
    p.reset(1, PENSIEVE)
    p.select(obs1(buffer_s=0.0))          # first decision: safety 0.9, then 0.81
    # 10 Mbit/s measured, buffer 1 s, 4 s segments: bound = 0.81 × 10 M × 1 / 4 = 2.025 M
    q = p.select(obs1(buffer_s=1.0, samples=[10e6], times=[1.0]))
    assert q[0] == 3                      # 1850k <= 2.025 M < 2850k
    assert p.last_info["low_buffer_bound_bps"][0] == pytest.approx(0.81 * 10e6 / 4)
    # without the rule: 0.9 × 10 M → top rung
    assert pick("throughput", obs1(buffer_s=1.0, samples=[10e6], times=[1.0])) == 5


# -- RB (MPC paper / Pensieve baseline) -----------------------------------------------------
def test_rb_harmonic_mean_of_last_five():
    # last five of seven samples: 1, 2, 4, 4, 2 Mbit/s → 5 / (1 + .5 + .25 + .25 + .5) µs
    samples = [9e6, 9e6, 1e6, 2e6, 4e6, 4e6, 2e6]
    hm = 5 / (1 / 1e6 + 1 / 2e6 + 1 / 4e6 + 1 / 4e6 + 1 / 2e6)   # = 2.0 Mbit/s
    p = abr.get("rb")
    p.reset(1, PENSIEVE)
    assert p.select(obs1(samples=samples))[0] == 3               # 1850k <= 2.0 M
    assert p.last_info["predicted_bps"][0] == pytest.approx(hm)


# -- FESTIVE (Jiang et al. 2012) -------------------------------------------------------------
def test_festive_gradual_switching():
    """On a fast, steady link FESTIVE climbs one rung at a time, leaving rung k only after
    k + 1 segments at it, and reaches the top."""
    p = abr.get("festive")
    p.reset(1, PENSIEVE)
    last, samples, seq, t = -1, [], [], 0.0
    for _ in range(40):
        q = int(p.select(obs1(buffer_s=20.0, last=last, samples=samples[-20:], t=t))[0])
        seq.append(q)
        last = q
        samples.append(20e6)
        t += 4.0
    assert seq[0] == 1  # nothing measured: the 1 Mbit/s rung
    run = 0
    for a, b in zip(seq, seq[1:]):
        assert b - a in (0, 1)
        run = run + 1 if b == a else 0
    for k in range(1, 5):  # every step up from k came after at least k + 1 segments at k
        first_at_k = seq.index(k)
        first_above = seq.index(k + 1)
        assert first_above - first_at_k >= k + 1
    assert seq[-1] == 5


def test_festive_steps_down_when_estimate_drops():
    p = abr.get("festive")
    p.reset(1, PENSIEVE)
    # at rung 4 (2850k), estimate 0.85 × 1 Mbit/s = 850k: the reference is rung 3;
    # efficiency: staying |2850/850 − 1| = 2.35, moving |1850/850 − 1| = 1.18;
    # scores with no recent switch: 1 + 12·2.35 = 29.2 vs 2 + 12·1.18 = 16.1 → move down
    q = p.select(obs1(last=4, samples=[1e6] * 5, t=100.0))
    assert q[0] == 3


# -- abandonment (dash.js AbandonRequestsRule / Sabre) --------------------------------------
def progress(rung=5, done=300e3, elapsed=3.0, buffer_s=6.0, mask=None):
    sizes = PENSIEVE.bitrates_bps * 4.0 / 8.0          # 150 kB … 2.15 MB
    return Progress(sessions=np.array([0]), rung=np.array([rung]),
                    bytes_done=np.array([done]), bytes_total=np.array([sizes[rung]]),
                    elapsed_s=np.array([elapsed]), buffer_s=np.array([buffer_s]),
                    segment_duration_s=4.0, sizes_bytes=sizes[None, :],
                    mask=np.ones((1, 6), bool) if mask is None else np.array([mask]))


@pytest.mark.parametrize("name", ["throughput", "bolae", "dynamic"])
def test_abandonment_hand_case(name):
    p = abr.get(name)
    p.reset(1, PENSIEVE)
    p.select(obs1(buffer_s=6.0, samples=[3e6], times=[1.0], t=1.0))
    # 300 kB of 2.15 MB in 3 s: 800 kbit/s; projected 3 + 1.85 MB·8 / 800k = 21.5 s
    # > 1.8 × 4 s; 0.9 × 800k = 720k → rung 0, whose 150 kB < 1.85 MB left
    assert p.abandon(progress())[0] == 0
    assert p.abandon(progress(elapsed=0.4, done=40e3))[0] == -1     # within the grace time
    assert p.abandon(progress(done=2.0e6))[0] == -1                  # 21.3 Mbit/s: on time
    assert p.abandon(progress(rung=0, done=10e3))[0] == -1           # already lowest
    # rung 0 forbidden: 1 is above the 720k target, nothing allowed below it → carry on
    assert p.abandon(progress(mask=[False, True, True, True, True, True]))[0] == -1
    off = abr.get(name, abandonment=False)
    off.reset(1, PENSIEVE)
    assert off.abandon(progress())[0] == -1


def test_bolae_abandonment_deflates_placeholder():
    p = abr.get("bolae")
    p.reset(1, PENSIEVE)
    p.core.placeholder[:] = 30.0
    p.select(obs1(buffer_s=6.0, samples=[3e6], times=[1.0], t=1.0))
    assert p.abandon(progress(buffer_s=6.0))[0] == 0
    # abandoning to rung 0 deflates to MINIMUM_BUFFER_S: placeholder <= 10 − 6 = 4 s
    assert p.core.placeholder[0] <= 4.0 + 1e-9


def test_policies_without_abandonment_carry_on():
    for name in ("rb", "bba", "bola", "mpc", "robustmpc", "festive", "fixed"):
        p = abr.get(name)
        p.reset(1, PENSIEVE)
        assert p.abandon(progress())[0] == -1


# -- dynamic (dash.js DYNAMIC) --------------------------------------------------------------
def test_dynamic_hysteresis():
    p = abr.get("dynamic", threshold_s=10.0)   # Sabre's DynamicDash: on above 10, off at 5
    p.reset(1, PENSIEVE)
    modes = []
    for buf in (0.0, 8.0, 11.0, 7.0, 5.5, 5.0, 9.0, 10.5):
        p.select(obs1(buffer_s=buf, samples=[3e6], times=[1.0]))
        modes.append(bool(p.last_info["bola"][0]))
    assert modes == [False, False, True, True, True, False, False, True]


def test_param_coercion_and_errors():
    p = abr.get("bba", reservoir_s="3", variant="pensieve")
    assert p.reservoir_s == 3.0
    assert abr.get("throughput", abandonment="false").abandonment is False
    assert abr.get("dynamic", threshold_s="10").threshold_s == 10
    assert abr.get("dynamic", threshold_s="none").threshold_s is None
    with pytest.raises(ValueError):
        abr.get("bba", resevoir_s=3)
    with pytest.raises(ValueError):
        abr.get("throughput", abandonment="maybe")


def test_single_rung_ladder():
    ladder = Ladder(np.array([500e3]), 2.0)
    for name in abr.names():
        if name not in ("fixed", "lowest", "highest", "random", "rb", "throughput", "festive",
                        "bba", "bola", "bolae", "dynamic", "mpc", "robustmpc", "fastmpc"):
            continue
        p = abr.get(name)
        p.reset(1, ladder)
        o = obs1(buffer_s=3.0, samples=[1e6], ladder=ladder)
        assert p.select(o).tolist() == [0]
