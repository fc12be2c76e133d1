"""`abrlab traces`: inspect, convert and synthesise bandwidth traces.

    abrlab traces info FILE... [--json] [--from FMT]
    abrlab traces convert IN OUT [--to FMT] [--from FMT]
    abrlab traces synth KIND OUT [per-kind options] [--to FMT]

Rates are bits per second everywhere on the command line (k/M/G suffixes allowed: "3M" is
3,000,000 bit/s), times are seconds; tables show Mbit/s and ms only for reading comfort,
JSON keeps the project's units.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from netem import formats, synth
from netem.errors import InputError
from netem.trace import Trace
from player.cli.commands._common import FORMAT_HELP, add_trace_format

_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def bps(text: str) -> float:
    """A rate in bits per second, with an optional SI suffix: "250k", "3M", "1.5G"."""
    raw = text.strip()
    for unit in ("bps", "bit/s", "b/s"):
        if raw.endswith(unit):
            raw = raw[: -len(unit)]
    scale = _SUFFIX.get(raw[-1:], 1.0)
    if raw[-1:] in _SUFFIX:
        raw = raw[:-1]
    try:
        value = float(raw) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate in bits per second (e.g. 3000000 or 3M)") from None
    return value


def bps_list(text: str) -> list[float]:
    """Comma-separated rates in bits per second: "4M,1M,4M"."""
    return [bps(part) for part in text.split(",") if part.strip()]


def seconds_list(text: str) -> list[float] | float:
    """One number of seconds, or comma-separated ones (one per step): "30" or "0.25,5,0.1"."""
    parts = [p for p in text.split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, or comma-separated seconds, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "traces",
        help="inspect, convert and synthesise bandwidth traces (Mahimahi, Pensieve, Sabre, CSV)",
        description=(
            "Bandwidth traces: summary statistics, conversion between Mahimahi, Pensieve cooked, "
            "Sabre JSON and CSV, and seeded synthetic traces. Rates are bits per second (k/M/G "
            "suffixes allowed), times seconds."
        ),
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _register_info(actions)
    _register_convert(actions)
    _register_synth(actions)


def _register_info(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("info", help="summary of trace files: duration, mean and percentile rates",
                           description="Summarise trace files (directories and globs expand to their files).")
    p.add_argument("files", nargs="+", metavar="FILE", help="trace files, directories or globs")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list (seconds, bits per second) instead of a table (default: table)")
    add_trace_format(p)
    p.set_defaults(func=run_info)


def _register_convert(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("convert", help="convert a trace between formats",
                           description="Convert a trace file between Mahimahi, Pensieve cooked, Sabre JSON and CSV.")
    p.add_argument("input", metavar="IN", help="trace file to read")
    p.add_argument("output", metavar="OUT", help="file to write (replaced if it exists)")
    p.add_argument("--to", default=None, metavar="FMT",
                   help=f"output format, {FORMAT_HELP} (default: from OUT's extension: "
                        ".down → mahimahi, .json → sabre, .csv → csv, .cooked/.log → pensieve)")
    add_trace_format(p)
    p.set_defaults(func=run_convert)


def _register_synth(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("synth", help="write a synthetic trace (constant, steps, outages, markov)",
                           description="Generate a seeded synthetic trace and write it in any trace format.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    k = _synth_kind(kinds, "constant", "one rate for the whole trace")
    k.add_argument("--rate", type=bps, default="3M", help="rate, bits per second (default: %(default)s)")
    _duration(k, 60.0)

    k = _synth_kind(kinds, "steps", "a staircase of rates, each held for --step seconds")
    k.add_argument("--rates", type=bps_list, default="4M,1M,4M",
                   help="comma-separated rates, bits per second (default: %(default)s)")
    k.add_argument("--step", type=seconds_list, default=20.0,
                   help="seconds each rate holds: one value, or one per rate, comma-separated (default: %(default)s)")

    k = _synth_kind(kinds, "outages", "a base rate with periodic outages")
    k.add_argument("--rate", type=bps, default="4M", help="base rate, bits per second (default: %(default)s)")
    k.add_argument("--period", type=float, default=30.0,
                   help="seconds from one outage to the next (default: %(default)s)")
    k.add_argument("--outage", type=float, default=5.0,
                   help="seconds each outage lasts, less than --period (default: %(default)s)")
    k.add_argument("--outage-rate", type=bps, default="0",
                   help="rate during an outage, bits per second (default: %(default)s)")
    _duration(k, 300.0)

    k = _synth_kind(kinds, "markov", "a Markov chain over bandwidth states with noise (Pensieve-style)")
    k.add_argument("--min-rate", type=bps, default="0.2M", help="lowest state, bits per second (default: %(default)s)")
    k.add_argument("--max-rate", type=bps, default="4.3M", help="highest state, bits per second (default: %(default)s)")
    k.add_argument("--states", type=int, default=10,
                   help="number of states, spread log-uniformly between the two (default: %(default)s)")
    k.add_argument("--switch-prob", type=float, default=0.1,
                   help="probability of leaving the current state at each step, 0..1 (default: %(default)s)")
    k.add_argument("--step", type=float, default=1.0, help="step length, seconds (default: %(default)s)")
    k.add_argument("--noise", type=float, default=0.1,
                   help="per-step gaussian noise, standard deviation as a fraction of the state's rate "
                        "(default: %(default)s)")
    k.add_argument("--floor", type=bps, default="50k",
                   help="noisy rates are clipped at this floor, bits per second (default: %(default)s)")
    k.add_argument("--seed", type=int, default=0, help="random seed, an integer (default: %(default)s)")
    _duration(k, 300.0)


def _synth_kind(kinds: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    k = kinds.add_parser(name, help=text, description=f"Synthetic trace: {text}.")
    k.add_argument("output", metavar="OUT", help="file to write")
    k.add_argument("--to", default=None, metavar="FMT",
                   help=f"output format, {FORMAT_HELP} (default: from OUT's extension)")
    k.add_argument("--latency", type=float, default=None,
                   help="per-request latency, seconds, on every step (default: none)")
    k.set_defaults(func=run_synth)
    return k


def _duration(k: argparse.ArgumentParser, default: float) -> None:
    k.add_argument("--duration", type=float, default=default,
                   help="trace length (one period), seconds (default: %(default)s)")


# -- actions ------------------------------------------------------------------------------

def run_info(args: argparse.Namespace) -> int:
    paths = formats.expand_paths(args.files)
    rows = [{"path": str(p), **formats.load(p, args.trace_format).summary()} for p in paths]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


def _print_table(rows: list[dict]) -> None:
    """A rich table; paths are shown relative to their common folder, named in the title."""
    from rich.console import Console
    from rich.table import Table

    folder = _common_folder([r["path"] for r in rows])
    title = f"{len(rows)} trace(s)" + (f" in {folder}" if folder else "")
    table = Table(title=title, title_justify="left")
    table.add_column("path", overflow="fold")
    table.add_column("format")
    for label in ("duration s", "mean", "p10", "p50", "p90", "peak 1 s"):
        table.add_column(label, justify="right")
    table.add_column("latency ms", justify="right")
    for r in rows:
        mbps = [f"{r[key] / 1e6:.2f}" for key in ("mean_rate_bps", "p10_rate_bps", "p50_rate_bps", "p90_rate_bps",
                                                   "peak_rate_1s_bps")]
        latency = "—" if r["mean_latency_s"] is None else f"{r['mean_latency_s'] * 1000:.0f}"
        shown = os.path.relpath(r["path"], folder) if folder else r["path"]
        table.add_row(shown, r["format"], f"{r['duration_s']:.1f}", *mbps, latency)
    console = Console(width=None if sys.stdout.isatty() else 160)  # don't fold paths in a pipe
    console.print(table)
    console.print("rates in Mbit/s (time-weighted percentiles; peak over whole 1-second windows)")


def _common_folder(paths: list[str]) -> str:
    """The folder all paths share ("" when none, or when absolute and relative paths mix)."""
    try:
        folder = os.path.commonpath([os.path.dirname(p) or "." for p in paths])
    except ValueError:
        return ""
    return "" if folder in ("", ".") else folder


def run_convert(args: argparse.Namespace) -> int:
    trace = formats.load(args.input, args.trace_format)
    _save(trace, args.output, args.to)
    return 0


def run_synth(args: argparse.Namespace) -> int:
    common = {"latency_s": args.latency}
    if args.kind == "constant":
        trace = synth.constant(args.rate, args.duration, **common)
    elif args.kind == "steps":
        trace = synth.steps(args.rates, args.step, **common)
    elif args.kind == "outages":
        trace = synth.outages(args.rate, args.period, args.outage, args.duration, args.outage_rate, **common)
    else:
        trace = synth.markov(min_rate_bps=args.min_rate, max_rate_bps=args.max_rate, n_states=args.states,
                             switch_prob=args.switch_prob, step_s=args.step, duration_s=args.duration,
                             noise=args.noise, floor_bps=args.floor, seed=args.seed, **common)
    _save(trace, args.output, args.to)
    return 0


def _save(trace: Trace, output: str, to: str | None) -> None:
    fmt = to or formats.format_from_extension(output)
    if fmt is None:
        raise InputError(f"cannot tell the output format from the extension; pass --to ({FORMAT_HELP})",
                         where=output)
    path = formats.save(trace, output, fmt)
    s = trace.summary()
    print(f"wrote {path} ({formats.normalize_format(fmt)}): {s['duration_s']:.1f} s, "
          f"mean {s['mean_rate_bps'] / 1e6:.3f} Mbit/s")
