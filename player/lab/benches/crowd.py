"""Crowd simulator throughput: 10,000 clients over 1,000 bottlenecks in one vectorised call.

The workload: 1,000 bottlenecks of 10 players each (policies bola, throughput, bba, festive
round-robin, arriving over the first segment), each bottleneck a trace of the 86 hsdpa-3g
traces with 10 × its capacity (`scale_capacity`: the trace is each player's fair share), the
bundled 120 s content (30 segments of 4 s). Falls back to the bundled synthetic traces when
../shared is absent. Wall time and CPU time of this process are both reported: the machine
is shared, and the CPU time is what the simulation costs.
"""
from __future__ import annotations

import time

from netem import content as content_mod, formats
from player.core.crowd import Bottleneck, CrowdClient, scale_capacity, simulate_crowd
from player.lab import data
from player.lab.data import bundled_paths

POLICIES = ("bola", "throughput", "bba", "festive")
CLIENTS = 10


def _workload() -> tuple[list[str], str, str]:
    hsdpa = data.SHARED / "traces" / "hsdpa-3g"
    _, movie = bundled_paths()
    if hsdpa.is_dir():
        return [str(p) for p in formats.expand_paths([hsdpa])], movie, "86 hsdpa-3g traces × 10"
    traces, movie = bundled_paths()
    return traces, movie, "bundled synthetic traces × 10 (../shared absent)"


def groups(traces: list[str], movie_path: str, n_groups: int) -> list[Bottleneck]:
    movie = content_mod.load(movie_path)
    loaded = [scale_capacity(formats.load(t), CLIENTS) for t in traces]
    spread = float(movie.segment_duration_s) / CLIENTS
    return [Bottleneck(loaded[g % len(loaded)], [CrowdClient(movie, POLICIES[(g + i) % len(POLICIES)],
                                                             start_s=i * spread) for i in range(CLIENTS)])
            for g in range(n_groups)]


def run(quick: bool = False) -> dict:
    traces, movie, src = _workload()
    n = 100 if quick else 1000
    work = groups(traces, movie, n)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    results = simulate_crowd(work)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    segments = sum(c.segments for r in results for c in r.clients)
    return {"what": "crowd simulation in one call, in-process (the lockstep-free event engine)",
            "workload": f"{n} bottlenecks × {CLIENTS} players ({', '.join(POLICIES)}), {src}, {movie}",
            "clients": n * CLIENTS, "segments": segments, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "clients_per_cpu_s": round(n * CLIENTS / cpu, 1), "goal": "10,000 clients over 1,000 bottlenecks < 60 s"}
