"""Simulator throughput: sessions per second for each policy, on one core and on both.

The workload of the issue: the 86 hsdpa-3g traces repeated to 1,000 sessions on bbb.json
(199 segments, 10 rungs), preset `sabre` for Sabre's own policies and `pensieve` for
RobustMPC on envivio (Pensieve's video), where the published anchors are measured. Falls
back to bundled synthetic data when ../shared is absent. Peak memory is the maximum RSS
of this process (and of the pool's workers for the two-core figure).
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import abr
from netem import formats
from player.lab import data
from player.lab.data import bundled_paths
from player.lab.sweep import Sweep, run_sweep

SHARED = data.SHARED
SABRE_POLICIES = ("bola", "throughput", "dynamic")


def _workload():
    hsdpa = SHARED / "traces" / "hsdpa-3g"
    if hsdpa.is_dir():
        return ([str(p) for p in formats.expand_paths([hsdpa])], str(SHARED / "movies" / "bbb.json"),
                str(SHARED / "movies" / "envivio.json"), "86 hsdpa-3g traces, bbb.json / envivio.json")

    traces, movie = bundled_paths()
    return traces, movie, movie, "bundled synthetic traces and content (../shared absent)"


def _sweep(traces, movie, abr_name, preset, n, jobs):
    import tempfile

    sweep = Sweep(traces, movie, [abr_name], presets=[preset], repeat_to=n)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        executor = "inprocess" if jobs == 1 else "process"
        rows = run_sweep(sweep, Path(tmp), executor, jobs=jobs, chunk_size=1000 if jobs == 1 else n // (2 * jobs))
        dt = time.perf_counter() - t0
    assert len(rows) == n
    return n / dt


def run(quick: bool = False) -> dict:
    traces, bbb, envivio, src = _workload()
    n = 200 if quick else 1000
    out = {"what": "simulated sessions per second (wall clock, includes loading and writing sessions.csv)",
           "workload": f"{src}, repeated to {n} sessions per policy", "one_core": {}, "two_cores": {}}
    for name in abr.names():
        movie = envivio if name in ("robustmpc", "mpc", "fastmpc") else bbb
        preset = "pensieve" if name in ("robustmpc", "mpc", "bba") else "sabre" if name in SABRE_POLICIES else "default"
        label = f"{name} ({preset}, {Path(movie).stem})"
        out["one_core"][label] = round(_sweep(traces, movie, name, preset, n, 1), 1)
        if not quick:
            out["two_cores"][label] = round(_sweep(traces, movie, name, preset, n, 2), 1)
    # scaling: a sweep big enough that process start-up does not dominate
    big = 2000 if quick else 10000
    out["scaling_sessions"] = big
    out["scaling"] = {}
    for name, movie, preset in (("bola", bbb, "sabre"), ("dynamic", bbb, "sabre"), ("robustmpc", envivio, "pensieve")):
        out["scaling"][f"{name} ({preset})"] = {
            "one_core": round(_sweep(traces, movie, name, preset, big, 1), 1),
            "two_cores": round(_sweep(traces, movie, name, preset, big, 2), 1)}
    out["peak_rss_mib_self"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["peak_rss_mib_children"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    out["anchors"] = {"sabre_s_per_session": "0.04-0.06 (pure Python, in-process)",
                      "pensieve_robustmpc_s_per_session": "about 1 (48 segments)",
                      "goal": ">= 100x Sabre for its policies (>= ~2,000 sessions/s); RobustMPC >= 200x Pensieve (>= 200 sessions/s)"}
    return out
