"""`abrlab proxy`: a TCP proxy that shapes any origin's downstream traffic by a trace."""
from __future__ import annotations

import argparse
import asyncio
import sys

from netem.errors import InputError
from netem.faults import parse_all
from netem.proxy import ShapingProxy, parse_hostport
from player.cli.commands._common import stop_on_signals
from player.cli.commands.serve import add_shaping_args, check_common, limits_from, load_traces

FAULT_HELP = ("inject a link fault (repeatable): outage:from=T,(to=T|for=S) (capacity 0 in the window) | "
              "die:at=T (stop listening and cut every connection); times in trace seconds since the proxy "
              "started. HTTP faults (5xx, 404, stall, reset, slow-first-byte, license) need `abrlab serve` "
              "(default: no faults)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "proxy",
        help="TCP shaping proxy in front of any origin (trace-driven bottleneck, latency, outages)",
        description=(
            "Listen on HOST:PORT and forward every connection to the upstream origin; bytes coming back "
            "from the origin go through one trace-driven bottleneck shared fairly by all connections, "
            "requests reach the origin after the latency. Prints the listen address (HOST:PORT) as the "
            "first line and runs until SIGINT/SIGTERM. A request the origin cannot take or answer gets "
            "502 Bad Gateway. Faults: outage and die."
        ),
    )
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:0, any free port)")
    p.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the origin to forward to")
    add_shaping_args(p, edges=False, fault_help=FAULT_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_common(args)
    listen = parse_hostport(args.listen, "--listen")
    upstream = parse_hostport(args.upstream, "--upstream")
    faults = parse_all(args.fault)
    if args.trace and len(args.trace) > 1:
        raise InputError("the proxy has one link: give one --trace")
    traces = load_traces(args)
    proxy = ShapingProxy(upstream, listen=listen, trace=traces[0] if traces else None, latency_s=args.latency,
                         time_scale=args.time_scale, faults=faults, limits=limits_from(args))
    try:
        asyncio.run(_run(proxy))
    except OSError as exc:
        raise InputError(f"cannot listen: {exc.strerror or exc}", where=args.listen) from None
    return 0


async def _run(proxy) -> None:
    stop = stop_on_signals()
    await proxy.start()
    try:
        host, port = proxy.address
        print(f"{host}:{port}", flush=True)
        shaped = f"shaped by {proxy.shaper.trace.name}" if proxy.shaper else "unshaped"
        print(f"abrlab proxy: {host}:{port} -> {proxy.upstream[0]}:{proxy.upstream[1]}, {shaped}",
              file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await proxy.stop()
