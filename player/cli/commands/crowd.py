"""`abrlab crowd`: many players on one bottleneck — emulated for real, simulated, or both.

``--mode emulate`` (default): N headless HTTP players (`player.http.player.HttpPlayer`) in this
process against one shaped edge (`netem.edge.EdgeServer` on 127.0.0.1, port 0) replaying
--trace, or against an edge elsewhere (``--url``, e.g. `abrlab serve` in its own process);
policies are assigned round-robin from --abr; clients arrive (--arrivals) and leave
(--watch, --duration); --bulk adds clients downloading a large object while on. On a
terminal a live dashboard shows every client's bitrate on one chart and the link's
utilisation; otherwise plain progress lines. ``--mode simulate``: the same crowd in the
crowd simulator (`player.core.crowd`), in virtual time (and with --tcp, the TCP-like model).
``--mode both``: emulate, then simulate the crowd with the arrival and departure times the
emulation had and the measured cost of a real request added to each request's latency
(`EmulatedCrowd.request_overhead_s`), and report how far they agree (the share of segments
at the same rung, Jain's index of each).

Reports per client (policy, arrival, segments, average bitrate, rebuffering, switches, QoE)
and the group's metrics (`player.core.crowd_metrics`: Jain's index on bitrates and QoE,
FESTIVE's unfairness, inefficiency and instability, link utilisation); ``--json`` prints
them as one JSON object, ``--out DIR`` writes crowd.json with the time series too.

Exit status: 0 done; 1 a player failed (the others went on; its error is in the report);
2 bad input (one line); 130 interrupted.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from pathlib import Path

from netem import formats
from netem.content import load as load_content
from netem.errors import InputError
from player.cli import crowd_dashboard as board
from player.cli.crowd_report import print_report
from player.cli.commands._common import check_policy, parse_params, split_list, stop_on_signals
from player.cli.crowd_emulation import EmulatedCrowd, emulate
from player.core import device as devices, presets, qoe
from player.core.crowd import Bottleneck, CrowdClient, scale_capacity, simulate_crowd
from player.core.crowd.schedule import parse_arrivals, parse_bulk, parse_tcp, parse_watch
from player.core.crowd_metrics import group_metrics, rung_agreement
from player.core.json_values import json_safe
from player.lab.data import BUNDLED

MODES = ("emulate", "simulate", "both")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "crowd", help="many players on one bottleneck: fairness, stability, rebuffering (emulated or simulated)",
        description=__doc__.split("\n\n")[1] + " Units: seconds, bits per second, bytes.")
    p.add_argument("--clients", type=int, default=4, metavar="N", help="number of players (default 4)")
    p.add_argument("--abr", default="bola", help="comma-separated policies, assigned round-robin (default: bola)")
    p.add_argument("--abr-param", action="append", metavar="POLICY.KEY=VALUE",
                   help="a policy parameter, repeatable (default: each policy's own)")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help="the bottleneck's capacity, any trace format (default: the bundled "
                        "traces/synthetic/markov-2.json, mean 3.2 Mbit/s)")
    p.add_argument("--scale-capacity", action="store_true",
                   help="multiply the trace's capacity by N: the trace is each player's fair share (default: the "
                        "trace is the whole bottleneck)")
    p.add_argument("--movie", default=None, metavar="M",
                   help="content description (default: the bundled traces/content/demo-6rung-120s.json)")
    p.add_argument("--mode", default="emulate", choices=MODES,
                   help="emulate (real HTTP players, default), simulate (the crowd simulator) or both (and their "
                        "agreement)")
    p.add_argument("--bulk", default=None, metavar="START:STOP[,...]",
                   help="bulk downloads competing while on, bottleneck seconds; START: runs until the players are "
                        "done (default: none)")
    p.add_argument("--arrivals", default=None, metavar="SPEC",
                   help="poisson:rate=R (clients per second) or fixed:interval=S; the first client at 0 (default: "
                        "all at 0)")
    p.add_argument("--watch", default=None, metavar="S|exp:mean=S",
                   help="viewing time: each client leaves this many session seconds after it started, if still "
                        "downloading (default: to the end of the content)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="end the crowd at this bottleneck time: clients still there leave (default: when all are "
                        "done)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="K",
                   help="emulation: run K times faster than the wall clock (default 1)")
    p.add_argument("--url", default=None, metavar="MPD_URL",
                   help="emulation: play this MPD from an edge elsewhere (e.g. `abrlab serve` in another process; "
                        "--trace then only describes it for the metrics; default: an in-process edge)")
    p.add_argument("--tcp", default=None, metavar="on|rtt=S,iw=B,rto=S,queue=B",
                   help="simulation: share the bottleneck by the TCP-like model (slow start, restart after idle) "
                        "instead of processor sharing (default: off)")
    p.add_argument("--preset", default="default", choices=presets.names(),
                   help="session semantics (default: default)")
    p.add_argument("--device", default="none", help="device profile for every client (default: none)")
    p.add_argument("--qoe", default="linear", choices=qoe.MODELS, help="QoE model (default: linear)")
    p.add_argument("--seed", type=int, default=0, help="seed for arrivals, viewing times and retry jitter (default 0)")
    p.add_argument("--headless", action="store_true", help="no dashboard: progress lines (default on a terminal: "
                                                          "the dashboard)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write crowd.json (report and time series) here (default: none)")
    p.set_defaults(func=run)


def build_group(args: argparse.Namespace) -> tuple[Bottleneck, dict]:
    """The crowd the options describe (InputError for bad ones), and what to call its parts."""
    n = args.clients
    if n is None or n < 1:
        raise InputError(f"--clients must be at least 1 (a group with no clients cannot run), got {n}")
    if n > 10_000:
        raise InputError(f"--clients must be at most 10000 on one bottleneck, got {n}")
    abrs = split_list(args.abr)
    if not abrs:
        raise InputError("--abr names no policy")
    scoped = parse_params(args.abr_param, policies=abrs)
    for name in abrs:
        check_policy(name, scoped.get(name, {}))
    if not (math.isfinite(args.time_scale) and args.time_scale > 0):
        raise InputError(f"--time-scale must be positive, got {args.time_scale!r}")
    movie_path = args.movie or str(BUNDLED / "content" / "demo-6rung-120s.json")
    trace_path = args.trace or str(BUNDLED / "synthetic" / "markov-2.json")
    movie = load_content(movie_path)
    trace = formats.load(trace_path)
    if args.scale_capacity:
        trace = scale_capacity(trace, n)
    device = None if args.device == "none" else devices.load(args.device)
    starts = parse_arrivals(args.arrivals).times(n, args.seed)
    viewing = parse_watch(args.watch)
    watch = viewing.times(n, args.seed) if viewing is not None else [None] * n
    bulk = parse_bulk(args.bulk)
    tcp = parse_tcp(args.tcp)
    if tcp is not None and args.mode != "simulate":
        raise InputError("--tcp is a model of the simulator: use it with --mode simulate")
    if args.url is not None and bulk:
        raise InputError("--bulk needs the in-process edge (it serves the bulk object); drop --url")
    if args.duration is not None:
        d = args.duration
        if not (math.isfinite(d) and d > 0):
            raise InputError(f"--duration must be positive seconds, got {d!r}")
        late = [i for i, s in enumerate(starts) if s >= d]
        if late:
            raise InputError(f"client {late[0] + 1} arrives at {starts[late[0]]:g} s, at or after --duration {d:g} s")
        watch = [d - s if w is None else min(w, d - s) for s, w in zip(starts, watch)]
        bulk = [type(b)(b.start_s, min(b.stop_s, d)) for b in bulk if b.start_s < d]
    clients = [CrowdClient(movie, abrs[i % len(abrs)], dict(scoped.get(abrs[i % len(abrs)], {})), device,
                           args.preset, start_s=float(starts[i]), watch_s=None if watch[i] is None else float(watch[i]),
                           label={"client": i + 1, "trace": trace_path, "movie": movie_path})
               for i in range(n)]
    group = Bottleneck(trace, clients, bulk, tcp, label={"name": trace_path})
    group.validate()
    names = {"trace": trace_path, "movie": movie_path, "policies": abrs, "capacity_bps": trace.mean_rate_bps}
    return group, names


def run(args: argparse.Namespace) -> int:
    group, names = build_group(args)
    report: dict = {"mode": args.mode, "trace": names["trace"], "movie": names["movie"], "clients": args.clients,
                    "policies": names["policies"], "mean_capacity_bps": names["capacity_bps"],
                    "bulk": [[b.start_s, b.stop_s] for b in group.bulk], "tcp": None if group.tcp is None else
                    vars(group.tcp)}
    rc = 0
    crowd = None
    if args.mode in ("emulate", "both"):
        try:
            crowd = asyncio.run(_emulate(group, args, names))
        except KeyboardInterrupt:
            return 130
        report["emulated"] = emulated_report(crowd, args.qoe)
        if any(c.error for c in crowd.clients):
            rc = 1
    overhead = 0.0
    if args.mode in ("simulate", "both"):
        if crowd is not None:      # the emulated crowd's own arrivals, and the cost of its real requests
            overhead = crowd.request_overhead_s()
        sim_group = crowd.as_simulated(overhead) if crowd is not None else group
        result = simulate_crowd([sim_group])[0]
        metrics = result.metrics(args.qoe)
        report["simulated"] = {"group": metrics, "clients": [c.summary(args.qoe) for c in result.clients]}
    if args.mode == "both":
        report["agreement"] = agreement(report["emulated"], report["simulated"])
        report["agreement"]["request_overhead_s"] = overhead
    report = json_safe(report)
    full = json.loads(json.dumps(report))
    for side in ("emulated", "simulated"):
        if side in report:
            report[side]["group"] = {k: v for k, v in report[side]["group"].items() if k != "series"}
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "crowd.json").write_text(json.dumps(full, indent=1) + "\n")
        except OSError as exc:
            raise InputError(f"cannot write the report: {exc.strerror or exc}", where=str(out)) from None
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return rc


def emulated_report(crowd: EmulatedCrowd, qoe_model: str) -> dict:
    outcome = crowd.outcome(qoe_model)
    metrics = group_metrics(outcome, qoe_model)
    clients = []
    for c in crowd.clients:
        s = dict(c.summary or {})
        s.update({"client": c.index + 1, "abr": c.abr, "start_s": c.start_s, "end_s": c.end_s, "left": c.left,
                  "error": c.error})
        clients.append(s)
    return {"group": metrics, "clients": clients, "wall_s": crowd.wall_s, "time_scale": crowd.time_scale,
            "url": crowd.url}


def agreement(emulated: dict, simulated: dict) -> dict:
    """How far the two worlds agree: segments at the same rung, and each group's Jain index."""
    a = [c.get("chosen") or [] for c in emulated["clients"] if c.get("start_s") is not None]
    b = [c.get("chosen") or [] for c in simulated["clients"]]
    same, per_client = rung_agreement(a, b)
    je, js = emulated["group"]["jain_bitrate"], simulated["group"]["jain_bitrate"]
    return {"same_rung": same, "same_rung_per_client": per_client, "jain_bitrate_emulated": je,
            "jain_bitrate_simulated": js, "jain_bitrate_diff": abs(je - js),
            "rebuffer_ratio_emulated": emulated["group"]["rebuffer_ratio"],
            "rebuffer_ratio_simulated": simulated["group"]["rebuffer_ratio"]}


async def _emulate(group: Bottleneck, args: argparse.Namespace, names: dict) -> EmulatedCrowd:
    stop = stop_on_signals()
    dashboard = not args.headless and not args.json and sys.stdout.isatty()
    if dashboard:
        return await board.with_dashboard(group, names, lambda on_event, on_start: emulate(
            group, time_scale=args.time_scale, url=args.url, on_event=on_event, seed=args.seed, stop=stop,
            on_start=on_start), stop)
    if args.json:
        return await emulate(group, time_scale=args.time_scale, url=args.url, seed=args.seed, stop=stop)
    return await board.with_progress_lines(group, lambda on_event, on_start: emulate(
        group, time_scale=args.time_scale, url=args.url, on_event=on_event, seed=args.seed, stop=stop,
        on_start=on_start))

