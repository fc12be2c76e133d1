"""ABR policy throughput: session-decisions per second for every policy, one session at a
time (n = 1, a real player's case; also per-decision latency) and batched (n = 1000, the
simulator's case), on Pensieve's 6-rung ladder (300–4300 kbit/s, 4 s segments) with
realistic random observations (lognormal throughput history of up to 20 samples,
NaN-padded; buffer 0–30 s; next 5 segments' sizes ±20 % around nominal; 10 % of sessions
with the top two rungs masked).

Goals: RobustMPC (horizon 5) ≥ 20,000 decisions/s at n = 1000 and < 1 ms per decision at
n = 1; BOLA, BBA and the throughput rule ≥ 1,000,000 decisions/s at n = 1000.
Figures are medians over repeated calls (the best call is reported too).
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

import abr
from abr import Ladder, Observation
from abr.algorithms import fastmpc

LADDER_BPS = (300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3)
SEGMENT_S = 4.0
GOALS = {
    "robustmpc": {"n1000_decisions_per_s": 20_000, "n1_latency_us": 1000.0},
    "bola": {"n1000_decisions_per_s": 1_000_000},
    "bba": {"n1000_decisions_per_s": 1_000_000},
    "throughput": {"n1000_decisions_per_s": 1_000_000},
}


def make_observations(n: int, count: int, seed: int = 0, history: int = 20, horizon: int = 5):
    """`count` random observations for n sessions (rows are sessions 0..n-1)."""

    ladder = Ladder(np.array(LADDER_BPS), SEGMENT_S)
    rng = np.random.default_rng(seed)
    R, L, H = ladder.n, SEGMENT_S, history
    out = []
    for _ in range(count):
        k = rng.integers(1, H + 1, n)  # samples so far
        tput = rng.lognormal(np.log(2.0e6), 0.8, (n, H))
        tput[np.arange(H)[None, :] < (H - k)[:, None]] = np.nan
        sizes_hist = ladder.bitrates_bps[rng.integers(0, R, (n, H))] * L / 8.0
        dl = sizes_hist * 8.0 / tput
        sizes = (ladder.bitrates_bps[None, None, :] * L / 8.0
                 * rng.uniform(0.8, 1.2, (n, horizon, R))).round()
        mask = np.ones((n, R), dtype=bool)
        mask[rng.random(n) < 0.1, -2:] = False
        out.append(Observation(
            sessions=np.arange(n), buffer_s=rng.uniform(0.0, 30.0, n),
            last_rung=rng.integers(0, R, n), throughput_bps=tput, download_time_s=dl,
            next_sizes_bytes=sizes, segments_left=rng.integers(1, 60, n),
            segment_index=rng.integers(0, 100, n), segment_duration_s=L,
            playing=rng.random(n) < 0.95, mask=mask, time_s=rng.uniform(0.0, 400.0, n),
            buffer_cap_s=np.full(n, 30.0)))
    return ladder, out


def _time_policy(name: str, n: int, observations, ladder, budget_s: float, min_calls: int):
    policy = abr.get(name)
    policy.reset(n, ladder)
    policy.select(observations[0])  # warm-up (tables, workspaces)
    times = []
    t_end = time.perf_counter() + budget_s
    i = 0
    while i < min_calls or time.perf_counter() < t_end:
        obs = observations[i % len(observations)]
        t0 = time.perf_counter_ns()
        policy.select(obs)
        times.append(time.perf_counter_ns() - t0)
        i += 1
        if i >= 200_000:
            break
    t = np.array(times, dtype=np.float64) / 1e9
    med, best = float(np.median(t)), float(t.min())
    out = {"calls": int(t.size), "decisions_per_s": round(n / med),
           "best_decisions_per_s": round(n / best)}
    if n == 1:
        out["latency_us"] = {"median": round(med * 1e6, 1), "mean": round(float(t.mean()) * 1e6, 1),
                             "p99": round(float(np.percentile(t, 99)) * 1e6, 1)}
    return out


def run(quick: bool) -> dict:
    names = list(abr.registered())
    budget = 0.15 if quick else 1.0
    ladder, obs1 = make_observations(1, 64, seed=1)
    _, obs1000 = make_observations(1000, 4, seed=2)
    report: dict = {
        "what": "session-decisions per second per policy (median call; best call too); "
                "per-decision latency at n=1",
        "workload": {"ladder_bps": list(LADDER_BPS), "segment_s": SEGMENT_S,
                     "history_samples": 20, "horizon_sizes": 5, "masked_sessions": 0.1,
                     "batch_sizes": [1, 1000]},
        "policies": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = tmp  # measure the FastMPC table build, not a cached one
        try:
            fastmpc.clear_memory()
            t0 = time.perf_counter()
            abr.get("fastmpc").reset(1, ladder)
            report["fastmpc_table_build_s"] = round(time.perf_counter() - t0, 3)
            for name in names:
                r1 = _time_policy(name, 1, obs1, ladder, budget, 20)
                r1000 = _time_policy(name, 1000, obs1000, ladder, budget, 3)
                report["policies"][name] = {"n1": r1, "n1000": r1000}
        finally:
            if old is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = old
    goals = {}
    for name, g in GOALS.items():
        p = report["policies"].get(name)
        if p is None:
            continue
        res = {}
        if "n1000_decisions_per_s" in g:
            res["n1000_decisions_per_s"] = {"goal": g["n1000_decisions_per_s"],
                                            "measured": p["n1000"]["decisions_per_s"],
                                            "met": p["n1000"]["decisions_per_s"] >= g["n1000_decisions_per_s"]}
        if "n1_latency_us" in g:
            lat = p["n1"]["latency_us"]["median"]
            res["n1_latency_us"] = {"goal": g["n1_latency_us"], "measured": lat,
                                    "met": lat < g["n1_latency_us"]}
        goals[name] = res
    report["goals"] = goals
    return report
