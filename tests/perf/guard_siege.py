"""A well-behaved client's latency while hostile connections are held open on the edge or the proxy.

    python tests/perf/guard_siege.py --server edge --hostile 1000
    python tests/perf/guard_siege.py --server proxy --hostile 10000 -- --max-connections 20000 --max-per-client 20000

The server runs as `abrlab serve` (and `abrlab proxy` in front of it for ``--server proxy``)
in its own process, with its descriptor limit raised to the hard limit (raise that first
with ``ulimit -Hn`` for 10,000); arguments after ``--`` go to the measured server (and to
the edge behind the proxy, whose connections all come from the proxy's address). This
process opens `--hostile` connections from `--sources` loopback addresses (127.0.0.2, …),
half of them silent and half with half a request head, then times `--samples` requests
for a 5-byte file from 127.0.0.1 (connect, request, whole response, one connection each).
JSON on stdout: latency percentiles in milliseconds, failures, and how many hostile
connections the server still held. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "player.cli"]


def _max_fds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _start(cmd: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_max_fds)
    return proc, proc.stdout.readline().strip()


async def _open(port: int, source: str, partial: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    if partial:
        sock.send(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


async def _get(port: int) -> tuple[float, bool]:
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(10.0):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
        ok = data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hello")
    except (OSError, TimeoutError):
        ok = False
    return time.perf_counter() - t0, ok


def _still_open(socks: list[socket.socket]) -> int:
    p = select.poll()
    for s in socks:
        p.register(s.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return len(socks) - len(p.poll(0))


async def siege(port: int, hostile: int, sources: int, samples: int) -> dict:
    t0 = time.perf_counter()
    socks = []
    for at in range(0, hostile, 256):  # 256 connects at a time
        got = await asyncio.gather(*(_open(port, f"127.0.0.{2 + i % sources}", partial=bool(i % 2))
                                     for i in range(at, min(hostile, at + 256))), return_exceptions=True)
        socks += [s for s in got if isinstance(s, socket.socket)]
    opened_s = time.perf_counter() - t0
    lat, ok = [], 0
    for _ in range(samples):
        dt, good = await _get(port)
        lat.append(dt * 1000)
        ok += good
    held = _still_open(socks)
    for s in socks:
        s.close()
    a = np.array(lat)
    return {"hostile_opened": len(socks), "open_s": round(opened_s, 2), "hostile_still_open": held,
            "samples": samples, "served": ok, "latency_ms": {"median": round(float(np.median(a)), 2),
                                                             "p95": round(float(np.percentile(a, 95)), 2),
                                                             "max": round(float(a.max()), 2)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=["edge", "proxy"], default="edge")
    ap.add_argument("--hostile", type=int, default=1000)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--stderr", default=None, metavar="FILE", help="write the servers' stderr here")
    ap.add_argument("extra", nargs="*", help="options for the measured server (after --)")
    args = ap.parse_args()
    _max_fds()
    procs = []
    with tempfile.TemporaryDirectory() as d:
        Path(d, "manifest.mpd").write_text("<MPD/>")
        Path(d, "small.txt").write_text("hello")
        try:
            edge, url = _start(CLI + ["serve", d] + args.extra)
            procs.append(edge)
            port = int(url.split(":")[2].split("/")[0])
            if args.server == "proxy":
                proxy, addr = _start(CLI + ["proxy", "--upstream", f"127.0.0.1:{port}"] + args.extra)
                procs.append(proxy)
                port = int(addr.rsplit(":", 1)[1])
            out = asyncio.run(siege(port, args.hostile, args.sources, args.samples))
        finally:
            errs = []
            for p in procs:
                p.terminate()
                errs.append(p.communicate(timeout=30)[1])
    if args.stderr:
        Path(args.stderr).write_text("".join(errs))
    out.update({"server": args.server, "server_options": args.extra, "stderr_bytes": sum(len(e) for e in errs),
                "stderr_tracebacks": sum(e.count("Traceback") for e in errs)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
