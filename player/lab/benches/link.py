"""Link-model throughput: transfers per second, batched over 1,000 sessions and at n = 1.

Sessions are on distinct real traces (../shared/traces, all formats, repeated to 1,000) when
present, else on 1,000 distinct synthetic Markov traces. Times one `Link.transfer` call per
step, as the simulator makes it.
"""
from __future__ import annotations

import time

import numpy as np

from netem import formats, synth
from netem.link import Link, preset
from player.lab import data

SHARED = data.SHARED / "traces"


def _traces():
    if SHARED.is_dir():
        base = [formats.load(p) for p in formats.expand_paths([SHARED])]
        return base, f"{len(base)} real traces from ../shared/traces (86 HSDPA, 40 LTE, 7 Mahimahi)"
    return [synth.markov(seed=i, duration_s=300.0) for i in range(133)], "133 synthetic markov traces (../shared absent)"


def _rate(link, n: int, steps: int, rng) -> float:
    idx = np.arange(n) % len(link.traces)
    start = rng.uniform(0, 500, n)
    size = rng.integers(50_000, 3_000_000, n).astype(float)
    link.transfer(idx, start, size)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        r = link.transfer(idx, start, size)
        start = start + r.total_s
    return n * steps / (time.perf_counter() - t0)


def run(quick: bool = False) -> dict:
    n = 1000
    base, src = _traces()
    rng = np.random.default_rng(0)
    steps, steps1 = (50, 500) if quick else (400, 5000)
    rate_only = [t for t in base if t.packet_times_s is None]
    # 1,000 distinct curves: every session on its own copy, the worst case for cache and memory
    copies = [base[i % len(base)].scaled(1.0) for i in range(n)]
    out = {"what": "Link.transfer completions per second (exact integration, wrap-around), "
                   "1,000 sessions per call, sessions spread round-robin over the traces",
           "traces": src, "goal_batch_per_s": 2_000_000}
    for name in ("ideal", "sabre"):
        link = Link(base, preset(name))
        out[f"{name}_batch_1000_all_traces_per_s"] = round(_rate(link, n, steps, rng))
        out[f"{name}_knots_all_traces"] = int(link._cap.t.size)
        out[f"{name}_batch_1000_rate_traces_only_per_s"] = round(_rate(Link(rate_only, preset(name)), n, steps, rng))
        out[f"{name}_batch_1000_distinct_copies_per_s"] = round(_rate(Link(copies, preset(name)), n, steps, rng))
        out[f"{name}_n1_per_s"] = round(_rate(Link(base[:1], preset(name)), 1, steps1, rng))
    return out
