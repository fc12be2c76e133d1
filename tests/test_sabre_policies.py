"""Sabre's own policies (abr/algorithms/sabre.py) against hand-computed cases of sabre.py's
rules: its EWMA of throughput and latency, quality by throughput after latency, the
insufficient-buffer rule, BOLA-U's +1 cap and BOLA-O's delay, the finite-video buffer
target, BOLA-E's placeholder, delay and buffer rule, Dynamic's and DynamicDash's switches,
the abandonment rules, and the full-buffer wait a policy infers from the clock.

Ladder: 1, 2, 4, 8 Mbit/s, 2 s segments. Sabre's BOLA utilities are ln(b / 1 Mbit/s), so
with γp = 5 and a 25 s target, V = 23 / (ln 8 + 5) and V·(υ_m + γp) = V·(5 + m·ln 2).
BolaEnh's are ln(b / 1 Mbit/s) + 1; with its buffer max(10 + 2·4, 25) = 25 s,
γp = ln 8 / 1.5 and V = 10 / γp, so V·γp = 10 s and each rung adds V·ln 2 = 5 s:
V·(υ_m + γp) = 10 + V + 5m = 17.2135 + 5m seconds.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import abr
from abr import Ladder, Observation, Progress
from abr.algorithms.sabre_rules import BolaERule
from player.core.presets import get as get_preset

LADDER = Ladder(np.array([1e6, 2e6, 4e6, 8e6]), 2.0)
N_SEG = 199
V_BOLA = 23.0 / (math.log(8) + 5.0)
GP_E = math.log(8) / 1.5
V_E = 10.0 / GP_E


def obs(buffer_s, samples=(), k=1, t=None, cap=25.0, n_seg=N_SEG, last=0):
    """One session deciding segment k; `samples` are (rate bit/s, transfer s, latency s), oldest first."""
    H = 8
    tp, dl, lat = (np.full((1, H), np.nan) for _ in range(3))
    for j, (r, x, la) in enumerate(samples):
        col = H - len(samples) + j
        tp[0, col], dl[0, col], lat[0, col] = r, x, la
    return Observation(
        sessions=np.array([0]), buffer_s=np.array([float(buffer_s)]), last_rung=np.array([last]),
        throughput_bps=tp, download_time_s=dl,
        next_sizes_bytes=np.tile(LADDER.bitrates_bps * 2.0 / 8, (1, 5, 1)),
        segments_left=np.array([n_seg - k]), segment_index=np.array([k]), segment_duration_s=2.0,
        playing=np.array([True]), mask=np.ones((1, 4), bool),
        time_s=np.array([float(t if t is not None else 10.0 * k)]), buffer_cap_s=np.array([cap]),
        request_latency_s=lat)


def policy(name, **params):
    p = abr.get(name, **params)
    p.reset(1, LADDER)
    return p


def progress(rung, done, total, elapsed, ttfb, buffer_s):
    return Progress(sessions=np.array([0]), rung=np.array([rung]), bytes_done=np.array([float(done)]),
                    bytes_total=np.array([float(total)]), elapsed_s=np.array([float(elapsed)]),
                    buffer_s=np.array([float(buffer_s)]), segment_duration_s=2.0,
                    sizes_bytes=(LADDER.bitrates_bps * 2.0 / 8)[None, :], mask=np.ones((1, 4), bool),
                    request_latency_s=np.array([float(ttfb)]))


# -- the estimate -----------------------------------------------------------------------------
def test_first_choice_is_the_lowest_rung_before_any_sample():
    p = policy("sabre-throughput")
    assert p.select(obs(5.0, k=0))[0] == 0


def test_ewma_of_throughput_and_latency():
    """Two samples: 4 Mbit/s in 2 s with 0.1 s latency, then 1 Mbit/s in 1 s with 0.3 s.
    With the zero-start correction an EWMA is a weighted mean: weights (1 − a1)·a2 and 1 − a2,
    a = 0.5^(t / h) for throughput (t = transfer time), 0.5^(p / h) per sample for latency;
    the smaller throughput and the larger latency over h = 3 s and 8 s win."""
    p = policy("sabre-throughput")
    p.select(obs(20.0, [(4e6, 2.0, 0.1)], k=1))
    p.select(obs(20.0, [(4e6, 2.0, 0.1), (1e6, 1.0, 0.3)], k=2))

    def wmean(x1, x2, a1, a2):
        w1, w2 = (1 - a1) * a2, 1 - a2
        return (w1 * x1 + w2 * x2) / (w1 + w2)

    tput = min(wmean(4e6, 1e6, 0.5 ** (2 / h), 0.5 ** (1 / h)) for h in (3.0, 8.0))
    lat = max(wmean(0.1, 0.3, 0.5 ** (2 / h), 0.5 ** (2 / h)) for h in (3.0, 8.0))
    assert tput == pytest.approx(2.76222e6, rel=1e-5)      # the 3 s half-life is the smaller
    assert p.last_info["throughput_bps"][0] == pytest.approx(tput, rel=1e-12)
    assert p.last_info["latency_s"][0] == pytest.approx(lat, rel=1e-12)


@pytest.mark.parametrize("latency_s, expected", [
    # 0.9 × 5 Mbit/s = 4.5 Mbit/s; rung m fits when latency + 2 s × b_m / 4.5 M <= 2 s
    (0.2, 2),   # 4 Mbit/s: 0.2 + 1.778 = 1.978 <= 2
    (0.3, 1),   # 4 Mbit/s: 0.3 + 1.778 = 2.078 > 2; 2 Mbit/s: 0.3 + 0.889 fits
])
def test_throughput_rung_after_latency(latency_s, expected):
    p = policy("sabre-throughput")
    assert p.select(obs(20.0, [(5e6, 1.0, latency_s)]))[0] == expected


def test_insufficient_buffer_rule_safety_shrinks():
    """10 Mbit/s, no latency, 1.2 s of buffer: the throughput rung is 3 (0.9 × 10 M); the rule
    caps it at the highest rung whose 2 s segment fits in safety × 1.2 s × 10 Mbit/s, safety
    0.9, 0.81, 0.729, ...: 10.8 M → 4 Mbit/s (8 Mbit), 9.72 M → rung 2, 8.748 M → rung 2,
    7.87 M → rung 1 (4 Mbit/s needs 8 Mbit)."""
    p = policy("sabre-throughput")
    got = [int(p.select(obs(1.2, [(10e6, 1.0, 0.0)] * k, k=k))[0]) for k in range(1, 5)]
    assert got == [2, 2, 2, 1]
    q = policy("sabre-throughput", insufficient_buffer_rule=False).select(obs(1.2, [(10e6, 1.0, 0.0)]))
    assert q[0] == 3


# -- Sabre's BOLA --------------------------------------------------------------------------------
@pytest.mark.parametrize("k, target", [
    (1, 6.0),      # min(1, 198) / 2 = 0.5 → at least 3 segments = 6 s
    (10, 10.0),    # 5 segments
    (100, 25.0),   # min(100, 99) / 2 = 49.5 segments = 99 s → the 25 s buffer size
    (190, 9.0),    # 9 left → 4.5 segments
    (197, 6.0),    # 2 left → 3 segments
])
def test_bola_target_shrinks_near_both_ends(k, target):
    p = policy("sabre-bola")
    p.select(obs(5.0, [(100e6, 1.0, 0.0)], k=k))
    assert p.last_info["target_s"][0] == pytest.approx(target)


def test_bola_finite_target_changes_the_choice():
    """At segment 1 (6 s target, V = 4 / (ln 8 + 5)) with 5 s of buffer every score is
    negative and the top rung's is the largest; with the fixed 25 s target (basic) the
    lowest rung's score (16.24 − 5) is the largest."""
    fast = [(100e6, 1.0, 0.0)]
    assert policy("sabre-bola").select(obs(5.0, fast, k=1))[0] == 3
    assert policy("sabre-bola", basic=True).select(obs(5.0, fast, k=1))[0] == 0


def test_bola_u_caps_a_step_up_at_throughput_rung_plus_one_then_holds():
    """Target 25 s (k = 100), buffer 20 s: scores (V·(5 + m ln 2) − 20) / b_m are −3.76, −0.75,
    0.187, 0.375 → rung 3. Throughput 2.5 Mbit/s → rung 1. From rung 0: BOLA-U takes 1 + 1 = 2.
    Next time, from rung 2 (above the throughput rung), BOLA holds rung 2."""
    p = policy("sabre-bola")
    s = [(2.5e6, 1.0, 0.0)]
    assert p.select(obs(20.0, s, k=100))[0] == 2
    assert p.select(obs(20.0, s * 2, k=101))[0] == 2
    assert p.last_delay_s[0] == 0.0
    assert policy("sabre-bola", basic=True).select(obs(20.0, s, k=100))[0] == 2


def test_bola_o_stops_at_the_throughput_rung_with_a_delay():
    """BOLA-O: rung 1, and the delay brings 20 s down to rung 1's level V·(5 + ln 2)."""
    p = policy("sabre-bola", osc=True)
    assert p.select(obs(20.0, [(2.5e6, 1.0, 0.0)], k=100))[0] == 1
    assert p.last_delay_s[0] == pytest.approx(20.0 - V_BOLA * (5 + math.log(2)))


def test_bola_abandonment_picks_the_best_lower_rung():
    """Rung 3's 2 MB segment, 100 kB in, 3 s of buffer: its score (V·(5 + ln 8) − 3) / 1.9 MB =
    20 / 1.9 MB; a whole segment at rung 0 (250 kB) scores (V·5 − 3) / 250 kB, the best."""
    p = policy("sabre-bola")
    p.select(obs(20.0, [(100e6, 1.0, 0.0)], k=100))
    assert p.abandon(progress(3, 100_000, 2_000_000, 0.5, 0.0, 3.0))[0] == 0
    scores = [(V_BOLA * (5 + m * math.log(2)) - 3.0) / (2e6 * 2 ** m / 8) for m in range(3)]
    assert max(scores) == scores[0] and scores[0] > 20.0 / 1.9e6
    # with 25 s of buffer the current download's score is negative: carry on
    p.select(obs(20.0, [(100e6, 1.0, 0.0)] * 2, k=101))
    assert p.abandon(progress(3, 100_000, 2_000_000, 0.5, 0.0, 25.0))[0] == -1


# -- the throughput rule's abandonment ------------------------------------------------------------
def test_throughput_abandonment():
    """Rung 3 (2 MB), 200 kB after 1 s with 0.1 s to first byte: 1.78 Mbit/s, 8.1 s still to go,
    9.1 s > 1.8 × 2 s. 0.9 × 1.78 = 1.6 Mbit/s after the 0.1 s latency estimate fits only rung
    0, whose 250 kB are less than the 1.8 MB left: abandon to 0."""
    p = policy("sabre-throughput")
    p.select(obs(20.0, [(10e6, 1.0, 0.1)]))
    assert p.abandon(progress(3, 200_000, 2_000_000, 1.0, 0.1, 10.0))[0] == 0
    assert p.abandon(progress(3, 200_000, 2_000_000, 0.45, 0.1, 10.0))[0] == -1   # before 0.5 s
    # 1.9 MB in after 3.5 s: 4.47 Mbit/s, 3.68 s projected > 3.6 s, rung 1 fits, but its
    # 500 kB are more than the 100 kB left: carry on
    assert p.abandon(progress(3, 1_900_000, 2_000_000, 3.5, 0.1, 10.0))[0] == -1


def test_time_on_an_abandoned_attempt_is_no_full_buffer_wait():
    """Decide at t = 10 s; the download is abandoned after 1 s (as above), the refetch takes
    0.2 s + 1 s, the next decision comes at t = 12.9 s: of the 2.9 s, 0.7 s were a wait for
    room (Sabre's loop counts the abandoned second as download time, not as a wait)."""
    p = policy("sabre-throughput")
    p.select(obs(20.0, [(10e6, 1.0, 0.1)], k=1, t=10.0))
    assert p.abandon(progress(3, 200_000, 2_000_000, 1.0, 0.1, 10.0))[0] == 0
    p.select(obs(20.0, [(10e6, 1.0, 0.1), (5e6, 1.0, 0.2)], k=2, t=12.9))
    assert p.last_info["wait_s"][0] == pytest.approx(0.7)


# -- BOLA-E -------------------------------------------------------------------------------------------
def test_bolae_starts_by_throughput_with_a_placeholder():
    """5 Mbit/s → rung 2; BOLA-E's minimum level for rung 2 is V·(γp + 1) = 10 + V (its
    crossing with rung 1 is (4 (ln 2 + 1) − 2 (ln 4 + 1)) / 2 = 1), so with 2 s of buffer the
    placeholder is 10 + V − 2."""
    p = policy("sabre-bolae")
    assert p.select(obs(2.0, [(5e6, 1.0, 0.0)]))[0] == 2
    assert p.last_info["placeholder_s"][0] == pytest.approx(10 + V_E - 2.0)


def _rule():
    """BOLA-E's rule in Sabre's units: kbit/s, ms."""
    r = BolaERule(1, LADDER.bitrates_bps / 1000, 2000.0, 5.0, osc=False, ibr=True)
    r.set_params(np.array([0]), np.array([25000.0]))
    return r


def _steady(level, ph, last, tput):
    """A steady-state BOLA-E decision, in seconds and bits per second."""
    r = _rule()
    r.steady[0], r.placeholder[0], r.last[0] = True, ph * 1000, last
    q, d = r.decide(np.array([0]), np.array([level * 1000]), np.array([tput / 1000]), np.array([0.0]),
                    np.ones((1, 4), bool))
    return int(q[0]), float(d[0]) / 1000, float(r.placeholder[0]) / 1000


def test_bolae_parameters():
    r = _rule()
    assert r.gpv[0] == pytest.approx(GP_E) and r.Vp[0] == pytest.approx(1000 * V_E)
    assert r.max_level(np.array([0]), np.array([2]))[0] == pytest.approx(1000 * (10 + V_E + 10))
    assert r.min_level(np.array([0]), np.array([1]))[0] == pytest.approx(1000 * (10 + V_E * (1 - math.log(2))))
    assert r.min_level(np.array([0]), np.array([0]))[0] == 0.0


@pytest.mark.parametrize("level, ph, last, tput, expected", [
    # level + placeholder 15 s: scores (17.21 + 5m − 15) / b_m = 2.21, 3.61, 3.05, 2.15 → rung 1
    (12.0, 3.0, 1, 10e6, (1, 0.0, 3.0)),
    # 30 s: rung 3 wanted; throughput rung 1, last 1: BOLA-U takes 2; 30 − rung 2's level
    # 27.21 = 2.79 s is taken from the 4 s placeholder, no delay
    (26.0, 4.0, 1, 2.5e6, (2, 0.0, 4.0 - (30 - 27.2135))),
    # the same with a 1 s placeholder: it is used up and 1.79 s remain as the delay
    (29.0, 1.0, 1, 2.5e6, (2, 30 - 27.2135 - 1.0, 0.0)),
])
def test_bolae_steady_choice_and_delay(level, ph, last, tput, expected):
    q, d, p = _steady(level, ph, last, tput)
    assert q == expected[0]
    assert d == pytest.approx(expected[1], abs=1e-3)
    assert p == pytest.approx(expected[2], abs=1e-3)


def test_bolae_insufficient_buffer_rule():
    """0.5 s of buffer + 20.5 s placeholder → rung 2 by buffer (scores at 21 s: −3.79, 0.61,
    1.55, 1.40), 10 Mbit/s allows it; but 0.9 × 0.5 s × 10 Mbit/s = 4.5 Mbit fits only rung 1's
    4 Mbit segment: rung 1, and the placeholder drops to rung 1's minimum level − buffer."""
    q, d, p = _steady(0.5, 20.5, 2, 10e6)
    assert (q, d) == (1, 0.0)
    assert p == pytest.approx(10 + V_E * (1 - math.log(2)) - 0.5)


def test_full_buffer_wait_is_inferred_and_grows_the_placeholder():
    """Decide at t = 10 s, no delay; the download takes 0.2 s + 1 s; the next decision comes at
    t = 11.9 s: the session waited 0.7 s for room, which BOLA-E adds to its placeholder."""
    p = policy("sabre-bolae")
    p.select(obs(20.0, [(5e6, 1.0, 0.2)], k=1, t=10.0))
    p.select(obs(20.0, [(5e6, 1.0, 0.2)] * 2, k=2, t=11.9, last=2))
    assert p.last_info["wait_s"][0] == pytest.approx(0.7)
    q = policy("sabre-bolae")
    q.select(obs(20.0, [(5e6, 1.0, 0.2)], k=1, t=10.0))
    q.select(obs(20.0, [(5e6, 1.0, 0.2)] * 2, k=2, t=11.2, last=2))
    assert q.last_info["wait_s"][0] == 0.0


# -- the hybrids ------------------------------------------------------------------------------------
def test_dynamic_switches_with_hysteresis():
    """3 Mbit/s: the throughput rule says rung 1 (0.9 × 3 = 2.7 M). BOLA (25 s target) at 18 s
    says 2 (BOLA-U: 1 + 1) >= 1 with more than 10 s: BOLA. At 11 s BOLA says 0 but stays in
    charge (not below 10 s); at 9 s it says 0 < 1 below 10 s: back to the throughput rule."""
    p = policy("sabre-dynamic")
    s = [(3e6, 1.0, 0.0)]
    assert p.select(obs(11.0, s, k=100))[0] == 1          # starts with the throughput rule
    assert p.select(obs(18.0, s * 2, k=101))[0] == 2
    assert bool(p.last_info["bola"][0])
    assert p.select(obs(11.0, s * 3, k=102))[0] == 0
    assert p.select(obs(9.0, s * 4, k=103))[0] == 1
    assert not bool(p.last_info["bola"][0])


def test_dynamicdash_thresholds():
    p = policy("sabre-dynamicdash")
    s = [(3e6, 1.0, 0.0)]
    levels = [8.0, 10.5, 6.0, 4.9, 9.0]
    modes = []
    for i, level in enumerate(levels):
        p.select(obs(level, s * (i + 1), k=10 + i))
        modes.append(bool(p.last_info["bola"][0]))
    assert modes == [False, True, True, False, False]


# -- presets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bola", "bolae", "throughput", "dynamic", "dynamicdash"])
def test_sabre_preset_means_sabre_policies(name):
    for preset in ("sabre", "sabre-abandon"):
        assert get_preset(preset).policy(name).name == f"sabre-{name}"
    if name != "dynamicdash":
        assert get_preset("default").policy(name).name == name


def test_sabre_preset_defaults_are_sabre_defaults():
    p = get_preset("sabre").policy("bola")
    assert p.params["gp"] == 5.0 and p.params["basic"] is False and p.params["osc"] is False
    assert get_preset("sabre").policy("bola", {"osc": True}).params["osc"] is True


def test_abr_list_says_what_sabres_names_mean(capsys):
    from player.cli.main import main

    assert main(["abr", "list", "--json"]) == 0
    aliases = json.loads(capsys.readouterr().out)["aliases"]
    sabre = {a["name"]: a for a in aliases if a["preset"] == "sabre"}
    assert set(sabre) == {"bola", "bolae", "throughput", "dynamic", "dynamicdash"}
    assert sabre["bola"]["policy"] == "sabre-bola" and sabre["bola"]["defaults"]["gp"] == 5.0
    assert main(["abr", "list", "dynamic"]) == 0
    out = capsys.readouterr().out
    assert "--preset sabre: dynamic means sabre-dynamic" in " ".join(out.split())
