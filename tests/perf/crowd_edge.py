"""50 real players on one edge in its own process, at time scale 1: the edge's CPU and its shaping.

    python tests/perf/crowd_edge.py TRACE [--clients 50] [--movie M]

Starts `abrlab serve DIR --trace TRACE --access-log LOG` (the content written once to a
temporary directory), runs `abrlab crowd --url MPD --clients N` in another process, and reads
the edge process's CPU time from /proc before and after. Shaping, from the access log:
each response's bytes spread evenly over its duration, per 1-s bin against the trace's
capacity, over the seconds some response was being sent throughout ("saturated"); the
aggregate over those seconds is the figure that matters (the even spreading blurs a single
second when the trace's rate changes within a response). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from netem import formats
from netem.content import load
from netem.link import Link
from netem.package import SyntheticPresentation

REPO = Path(__file__).resolve().parents[2]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shaping(log: Path, trace) -> dict:
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    recs = [r for r in recs if r["bytes"] > 0 and r["status"] in (200, 206)]
    t0 = np.array([r["t_s"] for r in recs])
    t1 = t0 + np.array([r["duration_s"] for r in recs])
    bits = 8.0 * np.array([r["bytes"] for r in recs])
    edges = np.arange(np.floor(t0.min()), np.ceil(t1.max()) + 1.0)
    sent = np.zeros(edges.size - 1)
    for a, z, b in zip(t0, t1, bits):
        sent += b * np.clip(np.minimum(edges[1:], z) - np.maximum(edges[:-1], a), 0, None) / max(z - a, 1e-9)
    busy = np.zeros(edges.size - 1, dtype=bool)
    spans: list[list[float]] = []
    for a, z in sorted(zip(t0, t1)):
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], z)
        else:
            spans.append([a, z])
    for a, z in spans:
        busy |= (edges[:-1] >= a) & (edges[1:] <= z)
    cap = Link([trace]).delivered_bits(np.zeros(edges.size - 1, dtype=np.int64), edges[:-1], edges[1:])
    r = sent[busy] / cap[busy]
    return {"responses": len(recs), "saturated_seconds": int(busy.sum()),
            "sent_over_capacity_saturated": round(float(sent[busy].sum() / cap[busy].sum()), 4),
            "per_second_median_abs_error": round(float(np.median(np.abs(r - 1.0))), 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--movie", default=str(REPO / "traces" / "content" / "demo-6rung-120s.json"))
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with tempfile.TemporaryDirectory(prefix="abrlab-crowd-edge-") as tmp:
        root = Path(tmp) / "content"
        SyntheticPresentation(load(args.movie)).write(root)
        log = Path(tmp) / "access.jsonl"
        serve = subprocess.Popen([sys.executable, "-m", "player.cli", "serve", str(root), "--trace", args.trace,
                                  "--access-log", str(log)], stdout=subprocess.PIPE, text=True, env=env)
        try:
            url = serve.stdout.readline().strip()
            c0, w0 = cpu_s(serve.pid), time.monotonic()
            crowd = subprocess.run([sys.executable, "-m", "player.cli", "crowd", "--url", url, "--clients",
                                    str(args.clients), "--abr", "bola,throughput,bba,festive", "--trace", args.trace,
                                    "--movie", args.movie, "--headless", "--json"],
                                   capture_output=True, text=True, env=env)
            c1, w1 = cpu_s(serve.pid), time.monotonic()
        finally:
            serve.terminate()
            serve.wait(timeout=30)
        report = json.loads(crowd.stdout) if crowd.returncode in (0, 1) else {}
        group = report.get("emulated", {}).get("group", {})
        print(json.dumps({"clients": args.clients, "trace": args.trace, "crowd_rc": crowd.returncode,
                          "wall_s": round(w1 - w0, 1), "edge_cpu_s": round(c1 - c0, 2),
                          "edge_cores": round((c1 - c0) / (w1 - w0), 3),
                          "complete": group.get("complete"), "jain_bitrate": group.get("jain_bitrate"),
                          **shaping(log, formats.load(args.trace))}))


if __name__ == "__main__":
    main()
