"""`abrlab demo` (what `make demo` runs): the richest thing abrlab can show on a fresh machine.

Plays the bundled 120 s presentation from an in-process edge shaped by a bundled trace, at
time scale 2, with the live dashboard (about a minute; plain progress lines when stdout is
not a terminal), and exits by itself with the summary. `--simulate` instead compares the
main policy families on the bundled traces and shows one session segment by segment.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console

from player.cli.main import main
from player.lab.data import bundled_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the demonstration `make demo` runs (no arguments needed)",
                       description="Play the bundled presentation through the emulated edge with the live "
                                   "dashboard for about a minute (or, with --simulate, compare policies on the "
                                   "bundled traces).")
    p.add_argument("--simulate", action="store_true", help="compare policies in the simulator instead of playing")
    p.add_argument("--time-scale", type=float, default=2.0, metavar="K",
                   help="replay speed of the played session (default 2: 120 s of content in about a minute)")
    p.add_argument("--abr", default=None,
                   help="policy to play (default: bola), or with --simulate the policies to compare "
                        "(default: bba,bola,throughput,dynamic,robustmpc)")
    p.add_argument("--out", default=None, help="where compare writes its files (default: a temporary directory)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.simulate:
        abr_name = args.abr or "bola"
        Console(stderr=True).print(
            f"[bold]abrlab demo[/]: the headless DASH player plays the bundled 120 s presentation (6 rungs, "
            f"0.3–4.3 Mbit/s) from an edge on this machine whose link follows a bundled bandwidth trace, with "
            f"the {abr_name} policy, {args.time_scale:g}× real time. Watch the chosen bitrate follow the capacity "
            "and the buffer; q quits, space pauses. At the end: the session's summary. "
            "(`abrlab demo --simulate` compares policies in the simulator instead.)")
        return main(["play", "--time-scale", f"{args.time_scale:g}", "--abr", abr_name])
    args.abr = args.abr or "bba,bola,throughput,dynamic,robustmpc"
    console = Console()
    traces, movie = bundled_paths()
    out = args.out or tempfile.mkdtemp(prefix="abrlab-compare-")
    console.rule("[bold]abrlab demo")
    console.print(f"Comparing [bold]{args.abr}[/] on {len(traces)} bundled synthetic traces, "
                  f"content {Path(movie).name} (6 rungs, 0.3–4.3 Mbit/s, 4 s segments).\n"
                  "Same command by hand: abrlab compare --traces traces/synthetic "
                  f"--movie {movie} --abr {args.abr} --out DIR\n")
    rc = main(["compare", "--traces", *traces, "--movie", movie, "--abr", args.abr, "--out", out,
               "--executor", "inprocess"])
    if rc:
        return rc
    console.rule("[bold]one session, segment by segment")
    return main(["simulate", "--trace", traces[0], "--movie", movie, "--abr", args.abr.split(",")[-1], "--segments"])
