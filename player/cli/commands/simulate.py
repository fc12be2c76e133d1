"""`abrlab simulate`: one trace-driven session, summarised as a table or JSON."""
from __future__ import annotations

import argparse
import json

from abr.errors import PolicyOutputError
from netem import content, formats
from netem.errors import PlaybackError
from player.cli.commands._common import add_live_options, add_trace_format, check_policy, live_overrides, parse_params
from player.cli.commands._tables import Column, print_table
from player.core import device as devices
from player.core import presets, qoe
from player.core.simulator import SessionSpec, simulate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate", help="simulate one session on a trace (virtual time, no network)",
        description="Simulate one streaming session of MOVIE over the bandwidth TRACE with an ABR policy, "
                    "in virtual time. Units: seconds, bits per second, bytes.")
    p.add_argument("--trace", required=True, help="trace file (Mahimahi, Pensieve cooked, Sabre JSON or CSV)")
    add_trace_format(p, "the --trace file's")
    p.add_argument("--movie", required=True,
                   help="content description: Sabre movie JSON, our JSON/TOML, or a Pensieve video_size_N folder")
    p.add_argument("--abr", default="bola", help="policy name (see `abrlab abr list`) or path/to/file.py:Class (default: bola)")
    p.add_argument("--abr-param", action="append", metavar="KEY=VALUE",
                   help="policy parameter, repeatable (units as `abrlab abr list` states; default: the policy's)")
    p.add_argument("--preset", default="default", choices=presets.names(),
                   help="session semantics (default: default; sabre and pensieve reproduce those simulators; live, "
                        "live-ll and dashjs-live play the content as a live stream)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="K",
                   help="predict a session played at `abrlab play --time-scale K`: the preset's per-request "
                        "overhead (the client's and server's own work, wall-clock time) costs K times as many "
                        "session seconds (default 1)")
    p.add_argument("--device", default="none",
                   help="device profile: mobile, tablet, tv, desktop, or a TOML/JSON file (default: none, no mask; "
                        "a device's buffer target replaces the preset's cap)")
    p.add_argument("--qoe", default="linear", choices=qoe.MODELS, help="QoE model for `qoe` (default: linear; all are in qoe_all)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--segments", action="store_true", help="also print a table with one row per segment")
    p.add_argument("--log", metavar="FILE.jsonl", help="write the per-segment log as JSON lines (default: none)")
    add_live_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = parse_params(args.abr_param)
    check_policy(args.abr, params)
    tr = formats.load(args.trace, args.trace_format)
    movie = content.load(args.movie)
    dev = None if args.device == "none" else devices.load(args.device)
    preset = presets.variant(args.preset, **live_overrides(args)).at_time_scale(args.time_scale)
    spec = SessionSpec(tr, movie, args.abr, params, dev, args.preset if preset is presets.get(args.preset) else preset,
                       label={"trace": args.trace, "movie": args.movie})
    try:
        result = simulate([spec])[0]
    except PolicyOutputError as exc:
        raise PlaybackError(str(exc), where=args.trace) from None
    summary = result.summary(args.qoe)
    if args.log:
        with open(args.log, "w") as fh:
            for rec in result.segment_log():
                fh.write(json.dumps(rec) + "\n")
    if args.json:
        print(json.dumps(summary))
    else:
        if args.segments:
            print_segments(result.segment_log(), movie)
        print_summary(summary)
    return 0


def print_segments(log: list[dict], movie) -> None:
    """One row per segment, fitted to the terminal (two tables when one does not fit)."""
    from rich.console import Console

    rows = []
    for e in log:
        r = movie.rungs[e["rung"]]
        rows.append({"k": str(e["segment"]), "req": f"{e['request_s']:.2f}", "wait": f"{e['wait_s']:.2f}",
                     "rung": str(e["rung"]), "mbps": f"{e['bitrate_bps'] / 1e6:.2f}", "res": f"{r.width}x{r.height}",
                     "dl": f"{e['download_s']:.2f}", "stall": f"{e['rebuffer_s']:.2f}" if e["rebuffer_s"] > 0 else "0",
                     "buf": f"{e['buffer_s']:.1f}"})
    full = [Column("k", "#", True), Column("req", "request s", True), Column("wait", "wait s", True),
            Column("rung", "rung", True), Column("mbps", "Mbit/s", True), Column("res", "resolution", True),
            Column("dl", "download s", True), Column("stall", "stall s", True), Column("buf", "buffer s", True)]
    short = [Column(c.key, {"req": "req s", "res": "res", "dl": "dl s", "buf": "buf s"}.get(c.key, c.header), True)
             for c in full]
    print_table(Console(), "per segment: request time, wait for room, rung, bitrate, resolution, download, stall, "
                "buffer after", [[full], [short], [short[:6], short[:1] + short[6:]]], rows)


def print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{s['abr_params']} on {s['trace']}", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    segments = f"{s['segments']}"
    if s.get("complete") is False:       # ended early (q, a signal, an error): say so
        played = s.get("played_s")
        segments += " — incomplete: the session ended early; every metric is over what was played" + (
            f" ({played:.1f} s)" if isinstance(played, (int, float)) else "")
    startup = s.get("startup_s")
    rows = [
        ("segments", segments),
        ("average bitrate", f"{s['avg_bitrate_bps'] / 1e6:.3f} Mbit/s"),
        ("time-average bitrate", f"{s['time_avg_bitrate_bps'] / 1e6:.3f} Mbit/s"),
        ("rebuffering", f"{s['rebuffer_s']:.2f} s in {s['rebuffer_count']} stalls"),
        ("startup delay", "playback never started" if startup is None or startup != startup
         else f"{startup:.2f} s"),
        ("switches", f"{s['switches']} (mean |Δ| {s['switch_magnitude_bps'] / 1e6:.3f} Mbit/s)"),
        ("bytes", f"{s['bytes']:,}"),
    ]
    if s.get("latency_mean_s") is not None:
        rows += [("live latency", f"mean {_s(s['latency_mean_s'])}, max {_s(s['latency_max_s'])}, end "
                                  f"{_s(s['latency_end_s'])} (target {_s(s['target_latency_s'])})"),
                 ("playback rate", f"mean {_f(s['playback_rate_mean'], 3)}, {s['rate_changes']} changes, "
                                   f"{s['seeks']} seeks ({_s(s['skipped_s'])} skipped)")]
    q = s["qoe"]
    c = q["components"]
    live = "".join(f" − {c[k]:.2f} {k.split('_')[0]}" for k in ("latency_penalty", "speed_penalty") if k in c)
    rows.append((f"QoE ({q['model']})", f"{q['total']:.2f} = {c['utility']:.2f} utility − "
                 f"{c['rebuffer_penalty']:.2f} rebuffer − {c['smoothness_penalty']:.2f} smoothness{live}"))
    for r in rows:
        t.add_row(*r)
    Console().print(t)


def _s(x) -> str:
    return "-" if x is None or x != x else f"{x:.2f} s"


def _f(x, digits: int = 2) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"
