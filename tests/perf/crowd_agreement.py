"""Emulated crowds against simulated ones: 2, 4 and 8 players on a constant link and on a real
trace (not part of `make test`: each case streams the whole content in real time at K = 1).

    python tests/perf/crowd_agreement.py [--time-scale K] [--movie M] [--trace T] [--clients 2,4,8]

Per case: N real HTTP players (policies bola, throughput, bba, festive round-robin, arriving
0.5 s apart) on one in-process shaped edge; then the crowd simulator on the same crowd (each
client from its measured session start, with the measured per-request overhead of real
HTTP). Prints one JSON line per case: the share of segments at the same rung, both groups'
Jain index and its difference, both rebuffer ratios, the wall time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from netem import formats, synth
from netem.content import load
from player.cli.crowd_emulation import emulate
from player.core.crowd import Bottleneck, CrowdClient, simulate_crowd
from player.core.crowd_metrics import group_metrics, rung_agreement

REPO = Path(__file__).resolve().parents[2]
POLICIES = ("bola", "throughput", "bba", "festive")


def case(trace, label: str, movie, n: int, k: float) -> dict:
    group = Bottleneck(trace, [CrowdClient(movie, POLICIES[i % len(POLICIES)], start_s=0.5 * i) for i in range(n)])
    t0 = time.monotonic()
    crowd = asyncio.run(emulate(group, time_scale=k))
    overhead = crowd.request_overhead_s()
    sim = simulate_crowd([crowd.as_simulated(overhead)])[0]
    same, _ = rung_agreement([c.summary["chosen"] for c in crowd.clients], [c.summary()["chosen"] for c in sim.clients])
    ge, gs = group_metrics(crowd.outcome()), sim.metrics()
    return {"trace": label, "clients": n, "time_scale": k, "same_rung": round(same, 4),
            "jain_emulated": round(ge["jain_bitrate"], 4), "jain_simulated": round(gs["jain_bitrate"], 4),
            "jain_diff": round(abs(ge["jain_bitrate"] - gs["jain_bitrate"]), 4),
            "rebuffer_ratio_emulated": round(ge["rebuffer_ratio"], 4),
            "rebuffer_ratio_simulated": round(gs["rebuffer_ratio"], 4),
            "overhead_ms": round(1000 * overhead, 1), "wall_s": round(time.monotonic() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--movie", default=str(REPO / "traces" / "content" / "demo-6rung-120s.json"))
    ap.add_argument("--trace", default=str(REPO.parent / "shared" / "traces" / "lte-4g" / "report_bus_0003.json"))
    ap.add_argument("--clients", default="2,4,8")
    ap.add_argument("--only", choices=("constant", "real"), default=None, help="one kind of link (default: both)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each case (default 1)")
    args = ap.parse_args()
    movie = load(args.movie)
    real = formats.load(args.trace)
    for n in (int(x) for x in args.clients.split(",")):
        links = [(synth.constant(2.5e6 * n, 3600.0), f"constant {2.5 * n:g} Mbit/s", "constant"),
                 (real, Path(args.trace).name, "real")]
        for trace, label, kind in links:
            if args.only in (None, kind):
                for _ in range(args.repeat):
                    print(json.dumps(case(trace, label, movie, n, args.time_scale)), flush=True)


if __name__ == "__main__":
    main()
