"""Link-model throughput: transfers per second, batched over 1,000 sessions and at n = 1.

Sessions are on distinct real traces (../shared/traces, all formats, repeated to 1,000) when
present, else on 1,000 distinct synthetic Markov traces. Times one `Link.transfer` call per
step, as the simulator makes it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "traces"


def _traces(n: int):
    from netem import formats, synth

    if SHARED.is_dir():
        files = formats.expand_paths([SHARED])
        base = [formats.load(p) for p in files]
        src = f"{len(base)} real traces from ../shared/traces"
        # distinct objects so the link holds 1,000 curves, as 1,000 sessions on their own traces would
        traces = [base[i % len(base)].scaled(1.0) for i in range(n)]
    else:
        traces = [synth.markov(seed=i, duration_s=300.0) for i in range(n)]
        src = "synthetic markov traces (../shared absent)"
    return traces, src


def _rate(link, n: int, steps: int, rng) -> float:
    idx = np.arange(n)
    start = rng.uniform(0, 500, n)
    size = rng.integers(50_000, 3_000_000, n).astype(float)
    link.transfer(idx, start, size)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        r = link.transfer(idx, start, size)
        start = start + r.total_s
    return n * steps / (time.perf_counter() - t0)


def run(quick: bool = False) -> dict:
    from netem.link import Link, preset

    n = 1000
    traces, src = _traces(n)
    rng = np.random.default_rng(0)
    out = {"what": "Link.transfer completions per second (exact integration, wrap-around)", "traces": src}
    for name in ("ideal", "sabre"):
        link = Link(traces, preset(name))
        out[f"{name}_batch_1000_per_s"] = round(_rate(link, n, 50 if quick else 400, rng))
        one = Link(traces[:1], preset(name))
        out[f"{name}_n1_per_s"] = round(_rate(one, 1, 500 if quick else 5000, rng))
    out["goal_batch_per_s"] = 2_000_000
    return out
