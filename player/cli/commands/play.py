"""`abrlab play`: stream a DASH presentation over HTTP with an ABR policy (the HTTP player).

``--headless --json`` prints one JSON object per line: every event of the session (requests,
decisions with the policy's inputs, stalls, license events, failovers, retries; the typed
events of `player.core.events`, each line ``event.as_dict()``), and last the summary object,
with the same fields and QoE as ``abrlab simulate --json``, and a ``prediction`` object: the
simulator's prediction of the same session beside what happened (`player.lab.prediction`; for
the in-process edge: the same trace from the trace time at which the session started, with the
per-request overhead measured in the session; for an MPD_URL only when ``--trace`` says what
shapes that network). Without ``--json`` it prints plain progress lines, a summary table and the
prediction. (The live dashboard attaches to the same event stream:
`player.http.player.HttpPlayer`'s ``add_listener`` / ``events()``.)

A live (type=dynamic) manifest is played live (`player.http.live`): clock synchronisation
through its UTCTiming, the live edge and delay, MPD refreshes, low-latency chunks; the
session ends after ``--duration`` seconds or on ``q`` / Ctrl-C (with its summary, exit 0).
Without MPD_URL, ``--live`` serves ``--movie`` as a live stream from an in-process origin
(`netem.live.origin.LiveEdge`) and plays it.

Exit status: 0 played to the end (live: to its duration or the user's stop); 1 playback
failed after the session started (the network gave up on a segment, license refused with no
clear fallback; one line on stderr); 2 bad input or no manifest to play (options; a manifest
that is malformed, unsupported or too large:
``invalid: ...`` / ``unsupported: ...``; a manifest that cannot be had: ``unavailable: ...``,
at once for a server that refuses the connection or a bad redirect, after the retry budget
for one that keeps failing); 130 interrupted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from urllib.parse import urlsplit

import numpy as np
from rich.console import Console
from rich.live import Live

from netem import formats
from netem.cenc import Protection
from netem.content import load as load_content
from netem.edge import EdgeGroup, EdgeServer
from netem.errors import AbrlabError, InputError, PlaybackError
from netem.live.clock import SystemClock
from netem.live.config import DEFAULT_TARGET_LATENCY_S, LiveConfig
from netem.live.origin import LiveEdge
from netem.package import SyntheticPresentation
from player.cli.commands._common import add_trace_format, check_policy, parse_params
from player.cli.commands.simulate import print_summary
from player.cli.dashboard import DashboardModel, KeyReader, render
from player.cli.prediction import Prediction
from player.core import device as devices
from player.core import presets, qoe
from player.core.events import (Abandon, ClockSync, Download, Event, Failover, LicenseFailed, LicenseFallback,
                                LicenseGranted, LiveJoin, Manifest, Mask, Missing, Note, Rate, Retry, Seek,
                                SessionStart, StallEnd, StallStart, Startup, Summary)
from player.http.config import HttpConfig
from player.http.clock import run_precise
from player.http.player import HttpPlayer
from player.lab.data import BUNDLED
from player.lab.prediction import describe as describe_prediction


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "play", help="play a DASH presentation over HTTP with an ABR policy (headless player)",
        description="Stream the MPD at MPD_URL over HTTP (our edge from `abrlab serve`, any web server, or "
                    "through `abrlab proxy`) with an ABR policy, and report what happened. Units: seconds, bits "
                    "per second, bytes.")
    p.add_argument("url", metavar="MPD_URL", nargs="?", default=None,
                   help="http(s) URL of the manifest (default: none — start an edge on 127.0.0.1 in this process "
                        "serving --movie over --trace, and play that)")
    p.add_argument("--headless", action="store_true",
                   help="no dashboard: progress lines (or JSON lines with --json) on stdout (default: the live "
                        "dashboard on a terminal, plain lines otherwise)")
    local = p.add_argument_group("the in-process edge (when no MPD_URL is given)")
    local.add_argument("--movie", default=None, metavar="M",
                       help="content description to generate the presentation from (default: the bundled "
                            "traces/content/demo-6rung-120s.json, 6 rungs, 120 s); with an MPD_URL, the content it "
                            "serves, for the prediction (default: what the manifest says)")
    local.add_argument("--trace", default=None, metavar="FILE",
                       help="bandwidth trace shaping the edge (default: the bundled traces/synthetic/markov-2.json, "
                            "mean 3.2 Mbit/s); with an MPD_URL, the trace that shapes that network, for the "
                            "prediction (default: none, no prediction)")
    add_trace_format(local, "the --trace file's")
    local.add_argument("--edges", type=int, default=1, metavar="N",
                       help="start N edges serving the same content; the player fails over between them (default 1)")
    local.add_argument("--fault", action="append", default=[], metavar="SPEC",
                       help="inject a fault at the edge, repeatable, as `abrlab serve --fault` (default: none)")
    local.add_argument("--protect", choices=("clearkey",), default=None,
                       help="encrypt the presentation and serve ClearKey licences (default: clear)")
    local.add_argument("--addressing", default="number", choices=("number", "timeline", "list", "base"),
                       help="segment addressing of the generated MPD (default: number)")
    local.add_argument("--live", action="store_true",
                       help="serve --movie as a live stream (`abrlab serve --live`: looped on the wall clock, "
                            "UTCTiming on the origin) and play it (default: VoD)")
    local.add_argument("--low-latency", action="store_true",
                       help="with --live: low-latency chunks (CMAF, chunked transfer) and a ServiceDescription")
    local.add_argument("--chunk-duration", type=float, default=None, metavar="S",
                       help="with --low-latency: chunk duration in seconds (default 0.5)")
    local.add_argument("--target-latency", type=float, default=None, metavar="S",
                       help=f"with --low-latency: the ServiceDescription's target latency (default "
                            f"{DEFAULT_TARGET_LATENCY_S:g})")
    local.add_argument("--clock-offset", type=float, default=0.0, metavar="S",
                       help="with --live: the origin's clock runs S seconds ahead of this machine's (default 0)")
    p.add_argument("--json", action="store_true",
                   help="print every event as a JSON line, and last the summary object")
    p.add_argument("--abr", default="bola", help="policy name (see `abrlab abr list`) or path/to/file.py:Class "
                                                 "(default: bola)")
    p.add_argument("--abr-param", action="append", metavar="KEY=VALUE",
                   help="policy parameter, repeatable (units as `abrlab abr list` states; default: the policy's)")
    p.add_argument("--device", default="none",
                   help="device profile: mobile, tablet, tv, desktop, or a TOML/JSON file (default: none). It masks "
                        "representations (codecs, size, frame rate), sets the buffer target and declares DRM "
                        "robustness and HDCP to the license server")
    p.add_argument("--time-scale", type=float, default=None, metavar="K",
                   help="run the session clock K times faster than the wall clock, to match an edge serving "
                        "with --time-scale K (default: the time scale the edge announces in its "
                        "X-Abrlab-Time-Scale header, as `abrlab serve` does, else 1; given and different from "
                        "the edge's, it is kept and a note says so)")
    p.add_argument("--preset", default="default", choices=presets.names(),
                   help="session semantics, as in `abrlab simulate` (default: default)")
    p.add_argument("--cmcd", choices=("query", "headers"), default=None,
                   help="send CMCD (CTA-5004) keys as a CMCD= query parameter or as CMCD-* headers (default: off)")
    p.add_argument("--log", metavar="FILE.jsonl", help="also write every event and the summary as JSON lines here (default: none)")
    p.add_argument("--qoe", default="linear", choices=qoe.MODELS, help="QoE model for `qoe` (default: linear)")
    p.add_argument("--edge", action="append", default=[], metavar="URL",
                   help="another origin serving the same paths (http://HOST:PORT), repeatable: the player fails "
                        "over to it (after the MPD's own BaseURL alternatives; default: none)")
    p.add_argument("--license-url", default=None, metavar="URL",
                   help="license server URL (default: the MPD's Laurl, else /license/<system> on its origin)")
    p.add_argument("--drm", default=None, choices=("clearkey", "widevine", "playready"),
                   help="DRM system to use for protected content (default: ClearKey when the MPD names it)")
    p.add_argument("--no-decrypt", action="store_true", help="do not decrypt protected segments")
    p.add_argument("--label", default=None, metavar="TEXT",
                   help="what to put in the summary's `trace` field (default: the --trace path for the in-process "
                        "edge, else network)")
    p.add_argument("--max-retry", type=float, default=None, metavar="S",
                   help="the retry budget: give up on one object (manifest, segment, init segment, index) this "
                        "long after its first request; retries, their backoff and their timeouts run inside it "
                        "(presentation seconds; default 60). A server that refuses the manifest's connection or "
                        "redirects it badly is not retried")
    p.add_argument("--seed", type=int, default=0, help="seed for retry jitter (default 0)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="a live session ends after S seconds (presentation seconds; default: when stopped with q or "
                        "Ctrl-C, at most a day); VoD plays to its end")
    p.set_defaults(func=run)


def build_player(args: argparse.Namespace, url: str | None = None, origins: tuple[str, ...] = ()):
    """An `HttpPlayer` from the command's options (InputError for bad ones)."""

    params = parse_params(args.abr_param)
    check_policy(args.abr, params)
    if args.time_scale is not None and not (math.isfinite(args.time_scale) and args.time_scale > 0):
        raise InputError(f"--time-scale must be positive, got {args.time_scale!r}")
    cfg = HttpConfig(seed=args.seed)
    if args.max_retry is not None:
        if not (math.isfinite(args.max_retry) and args.max_retry > 0):
            raise InputError(f"--max-retry must be positive seconds, got {args.max_retry!r}")
        cfg.max_retry_s = args.max_retry
    for e in args.edge:
        u = urlsplit(e)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise InputError(f"--edge expects http://HOST:PORT, got {e!r}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise InputError(f"--duration must be positive seconds, got {args.duration!r}")
    dev = None if args.device == "none" else devices.load(args.device)
    return HttpPlayer(url or args.url, abr=args.abr, abr_params=params, preset=args.preset, device=dev,
                      duration_s=args.duration,
                      time_scale=args.time_scale, cmcd=args.cmcd, extra_origins=tuple(args.edge) + tuple(origins),
                      config=cfg,
                      qoe_model=args.qoe, trace_label=args.label or "network", drm_system=args.drm,
                      license_url=args.license_url,
                      decrypt=not args.no_decrypt)


def run(args: argparse.Namespace) -> int:
    log = None
    if args.log:
        try:
            log = open(args.log, "w", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write the log: {exc.strerror or exc}", where=args.log) from None
    dashboard = not args.headless and not args.json and sys.stdout.isatty()
    out = sys.stdout
    state: dict = {"player": None}
    how = Prediction()

    def on_event(ev: Event) -> None:
        if isinstance(ev, Summary):
            return  # printed last, as the bare summary object
        line = json.dumps(ev.as_dict(), separators=(",", ":"))
        if log is not None:
            log.write(line + "\n")
        if args.json:
            out.write(line + "\n")
        elif not dashboard:
            text = progress_line(ev)
            if text:
                out.write(text + "\n")
                out.flush()

    async def play(url: str | None, origins: tuple[str, ...], title: dict, capacity) -> None:
        player = build_player(args, url, origins)
        state["player"] = player
        how.watch(player)
        player.add_listener(on_event)
        if dashboard:
            await _with_dashboard(player, title, capacity, how)
        else:
            await player.run()

    rc = 0
    try:
        if args.url is None:
            run_precise(_local_edge(args, play, how))
        else:
            if args.fault or args.protect or args.edges != 1 or args.live:
                raise InputError("--edges, --fault, --protect and --live configure the in-process edge; they do not "
                                 "apply when an MPD_URL is given")
            how.for_network(args)
            run_precise(play(None, (), {"content": args.url, "edge": args.url}, None))
    except PlaybackError as exc:
        rc = 1
        print(f"abrlab play: error: {exc}", file=sys.stderr)
    except AbrlabError as exc:           # the user's input (a policy's answer, a file): exit 2
        rc = 2
        print(f"abrlab play: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        rc = 130
    finally:
        player = state["player"]
        summary = player.summary if player is not None else None
        if summary is not None:
            how.attach(player)
            line = json.dumps(summary, separators=(",", ":"))
            if log is not None:
                log.write(line + "\n")
            if args.json:
                out.write(line + "\n")
            elif rc in (0, 130):
                out.flush()
                print_summary(summary)
                print_prediction(summary["prediction"])
        out.flush()
        if log is not None:
            log.close()
    return rc


async def _local_edge(args: argparse.Namespace, play, how: "Prediction") -> None:
    """Serve a generated presentation from in-process edges on 127.0.0.1 and play it."""
    movie_path = args.movie or str(BUNDLED / "content" / "demo-6rung-120s.json")
    trace_path = args.trace or str(BUNDLED / "synthetic" / "markov-2.json")
    if args.edges < 1 or args.edges > 16:
        raise InputError(f"--edges must be 1..16, got {args.edges}")
    content = load_content(movie_path)
    trace = formats.load(trace_path, args.trace_format)
    if args.label is None:
        args.label = trace_path
    protection = None
    if args.protect:
        protection = Protection.default()
    pres = SyntheticPresentation(content, addressing=args.addressing, protection=protection)
    live = _live_config(args)
    k = 1.0 if args.time_scale is None else args.time_scale   # the player follows the edge's
    if live is not None:
        clock = SystemClock(args.clock_offset, k)
        edges = [LiveEdge(pres, config=live, clock=clock, trace=trace, time_scale=k,
                          faults=list(args.fault), seed=args.seed, index=i) for i in range(args.edges)]
    else:
        edges = [EdgeServer(pres, trace=trace, time_scale=k, faults=list(args.fault), seed=args.seed,
                            index=i) for i in range(args.edges)]
    async with EdgeGroup(edges) as group:
        urls = group.urls
        origins = tuple(_origin(u) for u in urls[1:])
        title = {"content": f"{content.name} ({content.n_rungs} rungs, {content.duration_s:.0f} s)",
                 "edge": urls[0] + (f" (+{len(urls) - 1} more)" if len(urls) > 1 else ""),
                 "trace": trace.name, "duration_s": content.duration_s}
        how.for_edge(trace, content, edges, args)
        await play(urls[0], origins, title, trace.rate_at)


def print_prediction(record: dict) -> None:
    """The prediction beside what happened, after the summary table."""
    for line in describe_prediction(record):
        print(line)


def _live_config(args: argparse.Namespace) -> LiveConfig | None:
    """The in-process origin's live configuration (None: VoD); live options without --live fail."""
    if not args.live:
        if args.low_latency or args.chunk_duration is not None or args.target_latency is not None or args.clock_offset:
            raise InputError("--low-latency, --chunk-duration, --target-latency and --clock-offset need --live")
        return None
    if not args.low_latency and (args.chunk_duration is not None or args.target_latency is not None):
        raise InputError("--chunk-duration and --target-latency need --low-latency")
    if args.addressing != "number":
        raise InputError("--live plays $Number$ addressing (a live SegmentTimeline is not played yet)")
    chunk = (args.chunk_duration if args.chunk_duration is not None else 0.5) if args.low_latency else None
    return LiveConfig(chunk_s=chunk, target_latency_s=args.target_latency if args.target_latency is not None
                      else DEFAULT_TARGET_LATENCY_S).check()


def _origin(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


async def _with_dashboard(player, title: dict, capacity, how: Prediction) -> None:
    """Run the player under the live dashboard: q quits (with the summary), space pauses. The
    last frame shows the simulator's prediction of the session beside what happened."""
    console = Console()
    model = DashboardModel(title={**title, "time_scale": f"{player.clock.time_scale:g}",
                                  "device": player.device.name if player.device else "none (no mask)",
                                  "policy": player.abr_name, "cmcd": player.cmcd and player.cmcd.mode})
    offset = {"s": 0.0}
    if capacity is not None:
        model.capacity_at = lambda ts: capacity(np.asarray(ts) + offset["s"])

    def on_event(ev: Event) -> None:
        if isinstance(ev, SessionStart):
            model.title["policy"] = ev.abr_params or model.title["policy"]
            model.title["duration_s"] = ev.plan.get("duration_s", model.title.get("duration_s"))
            model.title["representations"] = dict(enumerate(ev.plan.get("ladder", [])))
            model.title["time_scale"] = f"{ev.time_scale:g}"   # the edge's, when the player adopted it
            offset["s"] = how.trace_offset_s(player)
        model.on_event(ev)

    player.add_listener(on_event)
    task = asyncio.ensure_future(player.run())

    def on_key(ch: str) -> None:
        if ch in "qQ":
            model.message = "quitting…"
            task.cancel()
        elif ch == " ":
            if player.paused:
                player.resume()
                model.paused, model.message = False, ""
            else:
                player.pause()
                model.paused, model.message = True, "paused (the network keeps filling the buffer)"
        elif ch in "+-=":   # not advertised: the edge's time scale is fixed for a run
            model.message = "no speed key: the time scale is fixed for a run (restart with --time-scale K)"

    keys = KeyReader(on_key) if sys.stdin.isatty() else None
    # the frames are drawn by rich's refresh thread from a copy of the model (drawing one takes
    # tens of milliseconds, which in the event loop would hold back the session's requests and
    # the edge's timers, K times as much session time); the loop only takes the copy, and the
    # drawing thread hands the interpreter back to it within a millisecond
    frame = {"model": model.frozen()}
    switch = sys.getswitchinterval()
    try:
        if keys is not None:
            keys.__enter__()
        sys.setswitchinterval(min(switch, RENDER_SWITCH_S))
        with Live(console=console, screen=True, auto_refresh=True, refresh_per_second=5, transient=False,
                  get_renderable=lambda: render(frame["model"], console.width, console.height)) as live:
            while not task.done():
                model.on_snapshot(player.snapshot())
                frame["model"] = model.frozen()
                await asyncio.wait({task}, timeout=0.2)
            model.prediction = how.attach(player) or model.prediction
            model.on_snapshot(player.snapshot())
            frame["model"] = model.frozen()
            live.refresh()
    finally:
        sys.setswitchinterval(switch)
        if keys is not None:
            keys.__exit__(None, None, None)
    try:
        await task
    except asyncio.CancelledError:
        pass


RENDER_SWITCH_S = 0.001   # the interpreter's thread switch interval while the dashboard draws


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def progress_line(ev: Event) -> str | None:
    """One plain line for the events worth a line (None for the others). An `Error` has
    none: the command prints it once, on stderr, as it exits."""
    t = f"[{ev.t_s:8.2f} s]"
    match ev:
        case Manifest():
            dur = None if ev.duration_s is None else round(ev.duration_s, 1)
            return f"{t} manifest {ev.url} ({ev.type}, {dur} s)"
        case SessionStart():
            ladder = ", ".join(f"{r['bitrate_bps'] / 1e6:.2f}" for r in ev.plan["ladder"])
            extra = " (restart)" if ev.restart else ""
            what = "live" if ev.plan.get("live") else f"{ev.plan['segments']} segments"
            return (f"{t} session start{extra}: {what}, ladder [{ladder}] Mbit/s, "
                    f"{ev.abr_params}, preset {ev.preset}, time scale {ev.time_scale:g}")
        case ClockSync():
            return f"{t} clock: origin {ev.offset_s:+.3f} s from ours ({ev.method})"
        case LiveJoin():
            return (f"{t} live: delay {ev.delay_s:.2f} s ({ev.delay_source}), joining {ev.delay_s:.2f} s behind the "
                    f"live edge at segment {ev.first_segment}, catch-up {ev.catchup.split('(')[0]}")
        case Rate():
            return (f"{t} playback rate {ev.playback_rate:.3f} (latency {ev.live_latency_s:.2f} s, target "
                    f"{ev.target_latency_s:.2f} s)")
        case Seek():
            return f"{t} seek: {ev.skipped_s:.2f} s towards the live edge ({ev.reason})"
        case Download():
            # the sample divides by the transfer time (first to last byte), latency apart
            return (f"{t} segment {ev.segment + 1:4d} rung {ev.rung}  {_mb(ev.bytes)} in "
                    f"{ev.latency_s:.2f} s latency + {ev.transfer_s:.2f} s transfer "
                    f"({ev.throughput_bps / 1e6:.2f} Mbit/s)  buffer "
                    f"{ev.buffer_s:.1f} s" + (f"  stalled {ev.stall_s:.2f} s" if ev.stall_s else "")
                    + ("" if ev.live_latency_s is None else f"  live latency {ev.live_latency_s:.2f} s"))
        case Startup():
            return f"{t} playback started after {ev.startup_s:.2f} s"
        case StallStart():
            return f"{t} STALL: buffer empty"
        case StallEnd():
            return f"{t} stall over (segment {ev.segment + 1} arrived)"
        case Abandon():
            return (f"{t} abandoned segment {ev.segment + 1} at rung {ev.from_rung} for rung {ev.to_rung} "
                    f"({_mb(ev.wasted_bytes)} wasted)")
        case Retry():
            return f"{t} retry {ev.what} in {ev.backoff_s:.2f} s: {ev.reason}"
        case Failover():
            return f"{t} failover {ev.what}: edge {ev.from_edge} -> {ev.to_edge} ({ev.reason})"
        case Missing():
            then = "no other rung left" if ev.to_rung is None else f"trying rung {ev.to_rung}"
            return f"{t} segment {ev.segment + 1} missing at rung {ev.rung}; {then}"
        case LicenseGranted():
            return (f"{t} license ({ev.system}{', renewal' if ev.renewal else ''}): max height {ev.max_height}, "
                    f"duration {ev.license_duration_s}")
        case Note():
            return f"{t} note: {ev.message}"
        case LicenseFailed() | LicenseFallback() | Mask():
            detail = {k: v for k, v in ev.as_dict().items() if k not in ("t_s", "event")}
            return f"{t} {ev.kind}: {json.dumps(detail)}"
    return None
