"""Shaping proxy fidelity: bytes delivered through `netem.proxy.ShapingProxy` vs the trace's capacity.

    python tests/perf/proxy_fidelity.py [--rate 50e6] [--time-scale 10] [--flows 1,20] [--wall 5]

The origin is an unshaped `abrlab serve` in its own process serving a sparse 1 GiB file; the
proxy (shaped by a constant rate) and the clients (raw asyncio protocols timestamping every
arrival, downloads always backlogged) run in this process. Per run: total bytes over the
measured span (from everyone's first byte) vs the capacity over it, and the median absolute
relative error per window of one trace second. JSON on stdout. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from netem.proxy import ShapingProxy  # noqa: E402
from netem.trace import constant  # noqa: E402

SIZE = 2**30


class Recv(asyncio.Protocol):
    """Timestamps every arrival (the response head's ~150 bytes are counted as body: noise)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: list[int] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        self.times.append(time.monotonic())
        self.sizes.append(len(data))


async def measure(origin_port: int, rate_bps: float, k: float, flows: int, wall_s: float) -> dict:
    cpu0 = time.process_time()
    async with ShapingProxy(("127.0.0.1", origin_port), trace=constant(rate_bps, 3600.0), time_scale=k) as px:
        loop = asyncio.get_running_loop()
        protos = []
        for _ in range(flows):
            _, p = await loop.create_connection(Recv, *px.address)
            protos.append(p)
        await asyncio.sleep(wall_s)
        for p in protos:
            p.transport.abort()
    cpu_s = time.process_time() - cpu0
    first = max(p.times[0] for p in protos)
    last = min(p.times[-1] for p in protos)
    win = 1.0 / k
    edges = first + np.arange(0, int((last - first) / win) + 1) * win
    got = sum(np.histogram(p.times, bins=edges, weights=p.sizes)[0] for p in protos)
    cap = rate_bps * k / 8 * win
    rel = np.abs(got / cap - 1.0)
    return {"rate_bps": rate_bps, "time_scale": k, "flows": flows, "windows": int(rel.size),
            "window_median_abs_rel_error": round(float(np.median(rel)), 5),
            "total_rel_error": round(float(got.sum() / (cap * rel.size) - 1.0), 5),
            "proxy_and_client_cpu_s_per_wall_s": round(cpu_s / wall_s, 3),
            "per_flow_min_max_ratio": round(min(sum(p.sizes) for p in protos) / max(sum(p.sizes) for p in protos), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=50e6)
    ap.add_argument("--time-scale", type=float, default=10.0)
    ap.add_argument("--flows", default="1,20")
    ap.add_argument("--wall", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "big.bin"), "wb") as f:
            f.truncate(SIZE)
        Path(d, "manifest.mpd").write_text("<MPD/>")
        proc = subprocess.Popen([sys.executable, "-m", "player.cli", "serve", d], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            port = int(proc.stdout.readline().rsplit(":", 1)[1].split("/")[0])
            out = [asyncio.run(measure(port, args.rate, args.time_scale, int(n), args.wall))
                   for n in args.flows.split(",")]
        finally:
            proc.kill()
            proc.wait()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
