"""`abrlab serve`: the emulated edge(s) — a directory or a virtual presentation over shaped HTTP."""
from __future__ import annotations

import argparse
import asyncio
import math
import sys

from netem import formats
from netem.errors import InputError
from player.cli.commands._common import add_trace_format, stop_on_signals

FAULT_HELP = (
    "inject a fault (repeatable): 5xx:p=P[,status=503][,path=GLOB][,from=T,to=T] | 404:path=GLOB | "
    "stall:after=BYTES,for=S | reset:after=BYTES | slow-first-byte:delay=S | outage:from=T,to=T | die:at=T | "
    "license:p=P[,status=500][,delay=S]; each also takes p=, path=, from=, to=, edge=N. "
    "Times are trace seconds since the edge started (see netem/faults.py; default: no faults)"
)


def add_shaping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", action="append", default=None, metavar="FILE",
                   help="bandwidth trace shaping the link (Sabre JSON, Mahimahi, Pensieve, CSV); repeat "
                        "to give each edge its own (default: unshaped)")
    add_trace_format(p, "the --trace files'")
    p.add_argument("--rate", type=float, default=None, metavar="BPS",
                   help="constant link capacity in bit/s instead of a trace (default: none, unshaped without --trace)")
    p.add_argument("--latency", type=float, default=None, metavar="S",
                   help="per-request latency in seconds before the first byte (default: the trace's own, else 0)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="K",
                   help="replay the trace K times faster (rates ×K, times ÷K; default 1)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", help=FAULT_HELP)
    p.add_argument("--seed", type=int, default=0, help="seed for fault probabilities (default 0)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a DASH presentation from emulated edge(s) over a trace-shaped link",
        description=(
            "Serve a directory (or a virtual presentation made from a content description with --movie, "
            "nothing written to disk) over HTTP on 127.0.0.1, every response body paced by a bandwidth "
            "trace in real time. Prints the MPD URL of each edge, one per line (the first line is edge 0), "
            "and serves until SIGINT/SIGTERM. Also answers ClearKey (and stub Widevine/PlayReady) license "
            "requests at /license/<system>. Units: seconds, bits per second, bytes."
        ),
    )
    p.add_argument("dir", nargs="?", default=None, help="directory to serve (or use --movie)")
    p.add_argument("--movie", default=None, metavar="M",
                   help="serve a virtual presentation of this content description (a file, or 'synthetic'; "
                        "default: serve DIR)")
    p.add_argument("--addressing", default="number", choices=["number", "timeline", "list", "base"],
                   help="segment addressing of the virtual presentation (default number)")
    p.add_argument("--audio", action="store_true", help="add an audio track to the virtual presentation")
    p.add_argument("--protect", default=None, choices=["clearkey"],
                   help="encrypt the virtual presentation (CENC, the documented default ClearKey key)")
    p.add_argument("--mpd", default=None, metavar="PATH", help="manifest path inside DIR (default: discovered)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port of edge 0 (default 0: any free port; edge i uses "
                                                        "PORT+i when PORT is given)")
    p.add_argument("--edges", type=int, default=1, metavar="N", help="number of edges, each its own link (default 1)")
    add_shaping_args(p)
    p.add_argument("--access-log", default=None, metavar="FILE", help="append JSON-lines access records here (default: no log)")
    p.add_argument("--license-policy", default=None, metavar="NAME|FILE",
                   help="license policy: open (default), studio, or a JSON file")
    p.add_argument("--license-duration", type=float, default=None, metavar="S", help="license duration in seconds (default: the policy's)")
    p.add_argument("--license-latency", type=float, default=0.0, metavar="S",
                   help="extra latency of license answers in seconds (default 0)")
    p.add_argument("--license-failure", type=float, default=0.0, metavar="P",
                   help="probability that a license request fails with 500 (default 0)")
    p.set_defaults(func=run)


def load_traces(args) -> list:
    """The trace(s) of --trace/--rate (empty list: unshaped)."""
    from netem.trace import constant

    if args.trace and args.rate is not None:
        raise InputError("give --trace or --rate, not both")
    if args.rate is not None:
        if not (math.isfinite(args.rate) and args.rate > 0):
            raise InputError(f"--rate must be a positive number of bit/s, got {args.rate!r}")
        return [constant(args.rate, 3600.0, name=f"constant-{args.rate:g}bps")]
    if not args.trace:
        return []
    return [formats.load(t, args.trace_format) for t in args.trace]


def check_common(args) -> None:
    if not (math.isfinite(args.time_scale) and args.time_scale > 0):
        raise InputError(f"--time-scale must be positive, got {args.time_scale!r}")
    if args.latency is not None and not (math.isfinite(args.latency) and 0 <= args.latency <= 3600):
        raise InputError(f"--latency must be seconds in [0, 3600], got {args.latency!r}")


def _source(args):
    if args.movie is None:
        if args.dir is None:
            raise InputError("give a directory to serve or --movie M")
        if args.protect or args.audio or args.addressing != "number":
            raise InputError("--addressing, --audio and --protect apply to --movie only")
        return args.dir
    if args.dir is not None:
        raise InputError("give a directory or --movie, not both")
    from netem import content as content_mod

    content = content_mod.synthetic() if args.movie == "synthetic" else content_mod.load(args.movie)
    from netem.package import Presentation

    protection = None
    if args.protect == "clearkey":
        from netem.cenc import Protection

        protection = Protection.default()
    return Presentation(content, addressing=args.addressing, audio=args.audio, protection=protection,
                        seed=args.seed)


def run(args: argparse.Namespace) -> int:
    from netem.accesslog import AccessLog
    from netem.edge import EdgeServer, make_source
    from netem.faults import parse_all
    from netem.license_server import load_policy

    check_common(args)
    if not 1 <= args.edges <= 64:
        raise InputError(f"--edges must be in 1..64, got {args.edges}")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {args.port}")
    faults = parse_all(args.fault)
    traces = load_traces(args)
    policy = load_policy(args.license_policy, args.license_duration)
    source = make_source(_source(args), args.mpd)
    log = AccessLog(args.access_log) if args.access_log else None
    edges = [
        EdgeServer(source, trace=traces[i % len(traces)] if traces else None, latency_s=args.latency,
                   time_scale=args.time_scale, faults=faults, seed=args.seed, index=i, host=args.host,
                   port=(args.port + i) if args.port else 0, access_log=log, license_policy=policy,
                   license_latency_s=args.license_latency, license_failure_p=args.license_failure)
        for i in range(args.edges)
    ]
    try:
        asyncio.run(_serve(edges))
    except OSError as exc:
        raise InputError(f"cannot listen: {exc.strerror or exc}", where=f"{args.host}:{args.port}") from None
    finally:
        if log is not None:
            log.close()
    return 0


async def _serve(edges) -> None:
    from netem.edge import EdgeGroup

    stop = stop_on_signals()
    async with EdgeGroup(edges) as group:
        for url in group.urls:
            print(url, flush=True)
        for e in edges:
            print(f"abrlab serve: edge {e.index} on {e.base_url}"
                  f"{' shaped by ' + e.shaper.trace.name if e.shaper else ' (unshaped)'}"
                  f"{f', time scale {e.time_scale:g}' if e.time_scale != 1 else ''}", file=sys.stderr, flush=True)
        await stop.wait()
