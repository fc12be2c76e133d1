"""Emulator fidelity: does the real-time edge deliver what the trace says, over loopback?

`abrlab bench --suite emulator` (or `--emulator`). The edge runs in its own process (so its
CPU time is its own); the client is a raw asyncio protocol in this process that timestamps
every arrival, downloading one endless resource (a virtual file served from memory) so the
link is always backlogged. Figures:

* per 1-second window of *trace* time (0.1 s of wall time at time scale 10): delivered
  goodput vs the trace's capacity in that window — median absolute relative error (goal
  ≤ 3 %), windows with zero capacity left out;
* total bytes over the measured span vs the capacity over it (goal within 1 %);
* 20 concurrent downloads on one 50 Mbit/s bottleneck: aggregate vs capacity (goal within
  3 %) and Jain's fairness index of per-flow bytes (goal ≥ 0.95);
* server CPU: `time.process_time()` of the edge process / wall time, at 50 Mbit/s.

Traces come from ../shared/traces (skipped with a note when absent), rates clipped to
50 Mbit/s before scaling (the goal's range); time scales 1 and 10.
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from array import array

import numpy as np

from netem import formats
from netem.edge import EdgeServer
from netem.shaper import Capacity
from netem.trace import Trace, constant
from player.lab import data

SHARED = data.SHARED / "traces"
MAX_RATE_BPS = 50e6
BIG = 10**12  # bytes of the endless resource
TRACES = [  # (label, path under ../shared/traces)
    ("lte", "lte-4g/report_foot_0004.json"),
    ("hsdpa", "hsdpa-3g/report.2010-09-13_1003CEST.json"),
    ("mahimahi", "mahimahi-cellular/Verizon-LTE-short.down"),
]


# -- the server process ---------------------------------------------------------------------------
class _Endless:
    """A virtual resource of BIG bytes served from one in-memory block."""

    def __init__(self) -> None:
        self._block = bytes(1 << 20)

    def files(self) -> dict[str, int]:
        return {"big.bin": BIG}

    def read(self, path: str, start: int = 0, end: int | None = None) -> bytes:
        n = (BIG if end is None else end) - start
        return self._block[:n] if n <= len(self._block) else bytes(n)


def _worker(conn) -> None:
    """Edge process: ("start", trace, time_scale) → ("started", port, t0); ("stop",) → cpu figures."""

    async def serve(trace, k):
        edge = EdgeServer(_Endless(), trace=trace, time_scale=k, latency_s=0.0, chunk_bytes=1 << 20)
        await edge.start()
        cpu0, wall0 = time.process_time(), time.monotonic()
        conn.send(("started", edge.port, edge.t0))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # wait for "stop"
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        await edge.stop()
        return {"cpu_s": cpu, "wall_s": wall, "released_bytes": edge.shaper.released_bytes if edge.shaper else None}

    while True:
        msg = conn.recv()
        if msg[0] == "quit":
            return
        out = asyncio.run(serve(msg[1], msg[2]))
        conn.send(("stopped", out))


# -- the client -----------------------------------------------------------------------------------
class _Recv(asyncio.Protocol):
    def __init__(self, port: int) -> None:
        self.req = f"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        self.times = array("d")
        self.sizes = array("q")
        self.head = b""
        self.in_body = False
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.req)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.in_body:
            self.head += data
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                return
            self.in_body = True
            n = len(self.head) - i - 4
            self.head = b""
        else:
            n = len(data)
        if n:
            self.times.append(now)
            self.sizes.append(n)


async def _download(port: int, flows: int, wall_s: float) -> list[_Recv]:
    loop = asyncio.get_running_loop()
    protos = []
    for _ in range(flows):
        _, p = await loop.create_connection(lambda: _Recv(port), "127.0.0.1", port)
        protos.append(p)
    await asyncio.sleep(wall_s)  # the measurement itself (a benchmark, not a test)
    for p in protos:
        p.transport.abort()
    return protos


def _measure(conn, trace, k: float, wall_s: float, flows: int = 1) -> dict:
    conn.send(("start", trace, k))
    _, port, t0 = conn.recv()
    protos = asyncio.run(_download(port, flows, wall_s))
    conn.send(("stop",))
    _, server = conn.recv()
    cap = Capacity(trace.scaled(k))
    win = 1.0 / k  # one trace second of wall time
    first = max(p.times[0] for p in protos if p.times) - t0
    last = min(p.times[-1] for p in protos if p.times) - t0
    k0 = int(np.floor(first / win)) + 1  # first full window after everyone's first byte
    k1 = int(np.floor(last / win))  # windows [k0, k1)
    edges = np.arange(k0, k1 + 1) * win
    per_flow = np.array([np.histogram(np.asarray(p.times) - t0, bins=edges, weights=np.asarray(p.sizes))[0]
                         for p in protos])
    got = per_flow.sum(axis=0)
    # capacity in [a, b): a Mahimahi opportunity exactly at b is released at b, so it arrives in the next window
    eps = 1e-9
    capw = np.array([cap.bytes_at(b - eps) - cap.bytes_at(a - eps) for a, b in zip(edges[:-1], edges[1:])])
    ok = capw > 0
    rel = np.abs(got[ok] / capw[ok] - 1.0)
    total_rel = float(got.sum() / capw.sum() - 1.0)
    return {
        "time_scale": k, "wall_s": round(wall_s, 2), "windows": int(ok.sum()), "zero_capacity_windows": int((~ok).sum()),
        "window_median_abs_rel_error": round(float(np.median(rel)), 5) if rel.size else None,
        "window_p90_abs_rel_error": round(float(np.percentile(rel, 90)), 5) if rel.size else None,
        "total_bytes": int(got.sum()), "capacity_bytes": int(round(capw.sum())),
        "total_rel_error": round(total_rel, 5),
        "mean_capacity_bps": round(float(capw.sum() * 8 / (edges[-1] - edges[0])), 1) if edges.size > 1 else None,
        "server_cpu_fraction": round(server["cpu_s"] / server["wall_s"], 4),
        "_per_flow_bytes": per_flow.sum(axis=1),
    }


def _clip(trace):
    if trace.packet_times_s is not None or trace.rates_bps.max() <= MAX_RATE_BPS:
        return trace
    return Trace(trace.times_s, np.minimum(trace.rates_bps, MAX_RATE_BPS), trace.duration_s,
                 latency_s=trace.latency_s, name=trace.name + "-clipped50M", source=trace.source, format=trace.format)


def _jain(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(x.sum() ** 2 / (x.size * (x ** 2).sum())) if x.size and x.any() else 0.0


def run(quick: bool = False) -> dict:
    report: dict = {
        "what": "real-time edge over loopback vs trace capacity (goodput per 1 s trace window, totals, "
                "20-flow fairness, server CPU)",
        "goals": {"window_median_abs_rel_error": 0.03, "total_rel_error": 0.01, "aggregate_rel_error_20_flows": 0.03,
                  "jain_20_flows": 0.95},
        "notes": [],
    }
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker, args=(child,), daemon=True)
    proc.start()
    try:
        runs = []
        plan = [("lte", 1, 6 if quick else 30), ("lte", 10, 3 if quick else 10)]
        if not quick:
            plan += [("hsdpa", 1, 20), ("hsdpa", 10, 10), ("mahimahi", 1, 15), ("mahimahi", 10, 10)]
        cache: dict = {}
        for label, k, wall in plan:
            rel = dict(TRACES)[label]
            path = SHARED / rel
            if not path.exists():
                if label not in cache:
                    report["notes"].append(f"{rel} absent (../shared/traces): {label} runs skipped")
                    cache[label] = None
                continue
            if label not in cache:
                try:
                    cache[label] = _clip(formats.load(str(path)))
                except Exception as exc:  # a loader we depend on may be missing or failing
                    report["notes"].append(f"{rel}: cannot load ({exc}); skipped")
                    cache[label] = None
            if cache[label] is None:
                continue
            m = _measure(parent, cache[label], k, wall)
            m.pop("_per_flow_bytes")
            runs.append({"trace": label, "file": rel, **m})
        report["traces"] = runs

        # 20 flows on one 50 Mbit/s bottleneck
        wall = 4 if quick else 10
        m = _measure(parent, constant(50e6, 3600.0), 1.0, wall, flows=20)
        per = m.pop("_per_flow_bytes")
        report["fairness_20_flows"] = {
            "rate_bps": 50e6, "flows": 20, "wall_s": wall, "aggregate_bytes": m["total_bytes"],
            "capacity_bytes": m["capacity_bytes"], "aggregate_rel_error": m["total_rel_error"],
            "jain": round(_jain(per), 5), "min_max_flow_ratio": round(float(per.min() / per.max()), 4),
            "server_cpu_fraction": m["server_cpu_fraction"],
        }
        # server CPU for one flow at 50 Mbit/s
        wall = 3 if quick else 10
        m = _measure(parent, constant(50e6, 3600.0), 1.0, wall)
        m.pop("_per_flow_bytes")
        report["cpu_50mbps"] = {"rate_bps": 50e6, "wall_s": wall, "server_cpu_fraction_of_one_core":
                                m["server_cpu_fraction"], "total_rel_error": m["total_rel_error"],
                                "window_median_abs_rel_error": m["window_median_abs_rel_error"]}
    finally:
        parent.send(("quit",))
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    worst = [r for r in report.get("traces", []) if r["window_median_abs_rel_error"] is not None]
    report["summary"] = {
        "max_window_median_abs_rel_error": max((r["window_median_abs_rel_error"] for r in worst), default=None),
        "max_abs_total_rel_error": max((abs(r["total_rel_error"]) for r in worst), default=None),
        "aggregate_rel_error_20_flows": report["fairness_20_flows"]["aggregate_rel_error"],
        "jain_20_flows": report["fairness_20_flows"]["jain"],
        "server_cpu_fraction_at_50mbps": report["cpu_50mbps"]["server_cpu_fraction_of_one_core"],
    }
    return report
