"""`abrlab serve`: the emulated edge(s) — a directory or a virtual presentation over shaped HTTP."""
from __future__ import annotations

import argparse
import asyncio
import math
import sys

from netem import content as content_mod, formats
from netem.accesslog import AccessLog
from netem.cenc import Protection
from netem.edge import EdgeGroup, EdgeServer, make_source
from netem.errors import InputError, UsageError
from netem.faults import parse_all
from netem.guard import Limits
from netem.license_server import load_policy
from netem.live.clock import SystemClock
from netem.live.config import DEFAULT_TARGET_LATENCY_S, LiveConfig, parse_instant, parse_utc_timing
from netem.live.origin import LiveEdge, load_vod
from netem.live.utc import iso_ms, iso_seconds
from netem.package import SyntheticPresentation
from netem.trace import constant
from player.cli.commands._common import add_trace_format, stop_on_signals
from player.cli.commands.traces import bps

FAULT_HELP = (
    "inject a fault (repeatable): 5xx:p=P[,status=503][,path=GLOB][,from=T,to=T] | 404:path=GLOB | "
    "stall:after=BYTES,for=S | reset:after=BYTES | slow-first-byte:delay=S | outage:from=T,to=T | die:at=T | "
    "license:p=P[,status=500][,delay=S]; each also takes p=, path=, from=, to=, edge=N. "
    "Times are trace seconds since the edge started (see netem/faults.py; default: no faults)"
)


def add_shaping_args(p: argparse.ArgumentParser, *, edges: bool = True, fault_help: str = FAULT_HELP) -> None:
    """The link options of `serve` (one trace per edge) and `proxy` (`edges=False`: one link)."""
    p.add_argument("--trace", action="append", default=None, metavar="FILE",
                   help="bandwidth trace shaping the link (Sabre JSON, Mahimahi, Pensieve, CSV); "
                        + ("repeat to give each edge its own (default: unshaped)" if edges else
                           "one file (default: unshaped)"))
    add_trace_format(p, "the --trace files'")
    p.add_argument("--rate", type=bps, default=None, metavar="BPS",
                   help="constant link capacity in bit/s instead of a trace, with an optional k/M/G suffix "
                        "(20M = 20e6; default: none, unshaped without --trace)")
    p.add_argument("--latency", type=float, default=None, metavar="S",
                   help="per-request latency in seconds before the first byte (default: the trace's own, else 0)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="K",
                   help="replay the trace K times faster (rates ×K, times ÷K; default 1)")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", help=fault_help)
    if edges:  # the proxy's faults (outage, die) draw no probabilities
        p.add_argument("--seed", type=int, default=0, help="seed for fault probabilities (default 0)")
    add_limit_args(p)


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """Connection protection (`netem.guard.Limits`), in wall seconds whatever --time-scale."""
    d = Limits()
    g = p.add_argument_group("connection limits (wall seconds; see netem/guard.py)")
    g.add_argument("--max-connections", type=int, default=None, metavar="N",
                   help=f"connections open at once per server; over it the oldest idle one is closed, or the new "
                        f"one refused (default {d.max_connections}, and never more than the descriptor limit allows)")
    g.add_argument("--max-per-client", type=int, default=None, metavar="N",
                   help=f"connections open at once from one client address (default {d.max_per_client})")
    g.add_argument("--idle-timeout", type=float, default=None, metavar="S",
                   help=f"close a connection silent this long with no request in progress (default {d.idle_timeout_s:g})")
    g.add_argument("--header-timeout", type=float, default=None, metavar="S",
                   help=f"a request head must arrive within this after its first byte, else 408 "
                        f"(default {d.header_timeout_s:g})")
    g.add_argument("--write-timeout", type=float, default=None, metavar="S",
                   help=f"reset a client that reads nothing of its response for this long "
                        f"(default {d.write_timeout_s:g})")


#: `Limits` field → its option
LIMIT_OPTIONS = {"max_connections": "--max-connections", "max_per_client": "--max-per-client",
                 "idle_timeout_s": "--idle-timeout", "header_timeout_s": "--header-timeout",
                 "write_timeout_s": "--write-timeout"}


def limits_from(args) -> Limits:
    """The `Limits` of the connection-limit options (InputError naming a bad one)."""
    given = {field: getattr(args, opt[2:].replace("-", "_")) for field, opt in LIMIT_OPTIONS.items()}
    return Limits().with_(LIMIT_OPTIONS, **given)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a DASH presentation from emulated edge(s) over a trace-shaped link",
        description=(
            "Serve a directory (or a virtual presentation made from a content description with --movie, "
            "nothing written to disk) over HTTP on 127.0.0.1, every response body paced by a bandwidth "
            "trace in real time. Prints the MPD URL of each edge, one per line (the first line is edge 0), "
            "and serves until SIGINT/SIGTERM. Also answers ClearKey (and stub Widevine/PlayReady) license "
            "requests at /license/<system>. Units: seconds, bits per second, bytes. With --live, the same "
            "content is served as a live stream (type=dynamic MPD) looped on the wall clock, with optional "
            "low-latency chunked delivery, several Periods and UTCTiming endpoints on the origin itself. "
            "No client can exhaust the server: connections are capped and timed out (connection limits "
            "below), a bad request gets its 4xx and one rate-limited line on stderr."
        ),
    )
    p.add_argument("dir", nargs="?", default=None, help="directory to serve (or use --movie)")
    p.add_argument("--movie", default=None, metavar="M",
                   help="serve a virtual presentation of this content description (a file, or 'synthetic'; "
                        "default: serve DIR)")
    p.add_argument("--addressing", default="number", choices=["number", "timeline", "list", "base"],
                   help="segment addressing of the virtual presentation (default number); with --live, of "
                        "the live MPD: number ($Number$, @duration) or timeline ($Time$, SegmentTimeline)")
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
    add_live_args(p)
    p.set_defaults(func=run)


#: Live options and their defaults (given without --live they are a usage error).
LIVE_DEFAULTS = {"availability_start": None, "time_shift_depth": 60.0, "low_latency": False,
                 "chunk_duration": None, "target_latency": None, "clock_offset": 0.0, "period_duration": None,
                 "too_early_status": 425, "utc_timing": None}
DEFAULT_CHUNK_S = 0.5


def add_live_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("live (with --live)")
    g.add_argument("--live", action="store_true",
                   help="serve the content as a live stream: a type=dynamic MPD whose segments become "
                        "available as the wall clock passes their end, the content looped forever from the "
                        "availability start time (default: VoD)")
    g.add_argument("--availability-start", default=None, metavar="T",
                   help="availabilityStartTime: seconds since the epoch or an ISO UTC time such as "
                        "2024-01-01T00:00:00Z (default 1970-01-01T00:00:00Z, as livesim2)")
    g.add_argument("--time-shift-depth", type=float, default=60.0, metavar="S",
                   help="timeShiftBufferDepth in seconds: segments older than this answer 410 Gone (default 60)")
    g.add_argument("--low-latency", action="store_true",
                   help="low-latency DASH: CMAF chunks sent with chunked transfer encoding as they are "
                        "produced, availabilityTimeOffset = segment - chunk duration, "
                        "availabilityTimeComplete=false, a ServiceDescription (default: whole segments)")
    g.add_argument("--chunk-duration", type=float, default=None, metavar="S",
                   help=f"with --low-latency: CMAF chunk duration in seconds, shorter than a segment "
                        f"(default {DEFAULT_CHUNK_S})")
    g.add_argument("--target-latency", type=float, default=None, metavar="S",
                   help="with --low-latency: the ServiceDescription's target latency in seconds; min is 3/4 "
                        "and max 2x of it, playback rate 0.96-1.04 (default 3.5)")
    g.add_argument("--clock-offset", type=float, default=0.0, metavar="S",
                   help="the origin's clock runs S seconds ahead of the machine's (negative: behind); "
                        "availability and the UTCTiming answers both use it (default 0)")
    g.add_argument("--period-duration", type=float, default=None, metavar="S",
                   help="start a new Period every S seconds (a whole number of segments with "
                        "--addressing number); media time runs on across Periods (default: one Period)")
    g.add_argument("--too-early-status", type=int, default=425, choices=[425, 404],
                   help="status of a request for a segment not yet available: 425 Too Early or 404 (default 425)")
    g.add_argument("--utc-timing", default=None, metavar="LIST",
                   help="UTCTiming elements in the MPD, in order, from http-iso, http-xsdate, http-head, direct; "
                        "the HTTP ones are answered by the origin at /utc/iso, /utc/xsdate, /utc/head "
                        "(default http-iso,http-xsdate,http-head,direct)")


def live_config(args):
    """The LiveConfig of `--live` options; a usage error for live options without --live."""
    if not args.live:
        given = [k for k, v in LIVE_DEFAULTS.items() if getattr(args, k) != v]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} needs --live")
        return None
    if not args.low_latency and (args.chunk_duration is not None or args.target_latency is not None):
        raise UsageError("--chunk-duration and --target-latency need --low-latency")
    if args.addressing not in ("number", "timeline"):
        raise UsageError(f"--addressing {args.addressing} is VoD only; a live MPD uses number or timeline")
    kw = {}
    if args.utc_timing is not None:
        kw["utc_timing"] = parse_utc_timing(args.utc_timing)
    return LiveConfig(
        addressing=args.addressing,
        availability_start_s=parse_instant(args.availability_start) if args.availability_start else 0.0,
        time_shift_depth_s=args.time_shift_depth,
        chunk_s=(args.chunk_duration if args.chunk_duration is not None else DEFAULT_CHUNK_S)
        if args.low_latency else None,
        target_latency_s=args.target_latency if args.target_latency is not None else DEFAULT_TARGET_LATENCY_S,
        period_s=args.period_duration, too_early_status=args.too_early_status, **kw).check()


def load_traces(args) -> list:
    """The trace(s) of --trace/--rate (empty list: unshaped)."""
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


def check_manifest(source, args) -> None:
    """A served directory must hold the MPD the first printed line names."""
    mpd = getattr(source, "mpd_path", None)
    if args.dir is None or args.live:
        return
    if mpd is None:
        raise InputError("no MPD to serve: no manifest.mpd or other *.mpd up to two directories down "
                         "(give --mpd PATH inside the directory)", where=args.dir)
    try:
        source.lookup("/" + mpd, "/" + mpd)
    except Exception:  # NotFound, Forbidden: the --mpd given is not a file the edge would serve
        raise InputError(f"--mpd {mpd!r} is not a file the edge serves from this directory", where=args.dir) from None


def _source(args):
    if args.movie is None:
        if args.dir is None:
            raise InputError("give a directory to serve or --movie M")
        if args.protect or args.audio or (args.addressing != "number" and not args.live):
            raise InputError("--addressing, --audio and --protect apply to --movie only")
        return args.dir
    if args.dir is not None:
        raise InputError("give a directory or --movie, not both")
    content = content_mod.synthetic() if args.movie == "synthetic" else content_mod.load(args.movie)
    protection = None
    if args.protect == "clearkey":
        protection = Protection.default()
    addressing = "number" if args.live else args.addressing  # live: --addressing is the live MPD's
    return SyntheticPresentation(content, addressing=addressing, audio=args.audio, protection=protection,
                                 seed=args.seed)


def run(args: argparse.Namespace) -> int:
    check_common(args)
    if not 1 <= args.edges <= 64:
        raise InputError(f"--edges must be in 1..64, got {args.edges}")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {args.port}")
    live = live_config(args)
    faults = parse_all(args.fault)
    traces = load_traces(args)
    limits = limits_from(args)
    policy = load_policy(args.license_policy, args.license_duration)
    log = AccessLog(args.access_log) if args.access_log else None
    common = dict(latency_s=args.latency, time_scale=args.time_scale, faults=faults, seed=args.seed, host=args.host,
                  access_log=log, license_policy=policy, license_latency_s=args.license_latency,
                  license_failure_p=args.license_failure, limits=limits)
    if live is not None:
        packaged = load_vod(_source(args), args.mpd)
        clock = SystemClock(args.clock_offset, args.time_scale)
        edges = [LiveEdge(packaged, config=live, clock=clock, trace=traces[i % len(traces)] if traces else None,
                          index=i, port=(args.port + i) if args.port else 0, **common) for i in range(args.edges)]
    else:
        source = make_source(_source(args), args.mpd)
        check_manifest(source, args)
        edges = [EdgeServer(source, trace=traces[i % len(traces)] if traces else None, index=i,
                            port=(args.port + i) if args.port else 0, **common) for i in range(args.edges)]
    try:
        asyncio.run(_serve(edges))
    except OSError as exc:
        raise InputError(f"cannot listen: {exc.strerror or exc}", where=f"{args.host}:{args.port}") from None
    finally:
        if log is not None:
            log.close()
    return 0


async def _serve(edges) -> None:
    stop = stop_on_signals()
    async with EdgeGroup(edges) as group:
        for url in group.urls:
            print(url, flush=True)
        for e in edges:
            print(f"abrlab serve: edge {e.index} on {e.base_url}"
                  f"{' shaped by ' + e.shaper.trace.name if e.shaper else ' (unshaped)'}"
                  f"{f', time scale {e.time_scale:g}' if e.time_scale != 1 else ''}", file=sys.stderr, flush=True)
        live = getattr(edges[0], "live", None)
        if live is not None:
            print(f"abrlab serve: {live_summary(live, edges[0].clock)}", file=sys.stderr, flush=True)
        await stop.wait()


def live_summary(live, clock) -> str:
    """One line describing a live origin (stderr of `abrlab serve --live`)."""
    cfg = live.config
    mode = (f"low latency, {cfg.chunk_s:g} s chunks, target latency {cfg.target_latency_s:g} s"
            if cfg.low_latency else "whole segments")
    periods = f", a Period every {cfg.period_s:g} s" if cfg.period_s else ""
    loop_s = live.ref.loop_ticks / live.ref.timescale
    return (f"live ({cfg.addressing} addressing, {mode}{periods}): {live.n_vod} segments of "
            f"{live.nominal_s:g} s looped every {loop_s:g} s from {iso_seconds(cfg.availability_start_s)}; "
            f"time-shift buffer {cfg.time_shift_depth_s:g} s; origin clock {iso_ms(clock.now())}")
