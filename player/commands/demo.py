"""`abrlab demo` (what `make demo` runs): the richest thing abrlab can show on a fresh machine.

Plays a generated presentation through the emulated edge with the live dashboard when the
player is available; until then (and with `--simulate`), compares the main policy families
on the bundled synthetic traces and shows one session segment by segment.
"""
from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

BUNDLED = Path(__file__).resolve().parents[2] / "traces"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the demonstration `make demo` runs (no arguments needed)",
                       description="Run abrlab's demonstration on the bundled synthetic traces and content.")
    p.add_argument("--abr", default="bba,bola,throughput,dynamic,robustmpc",
                   help="policies to compare (default: bba,bola,throughput,dynamic,robustmpc)")
    p.add_argument("--out", default=None, help="where compare writes its files (default: a temporary directory)")
    p.set_defaults(func=run)


def bundled_paths() -> tuple[list[str], str]:
    """The shipped traces and content; regenerated in a temp dir if this is not a checkout."""
    traces = sorted(str(p) for p in (BUNDLED / "synthetic").glob("*.json"))
    movie = BUNDLED / "content" / "demo-6rung-120s.json"
    if traces and movie.exists():
        return traces, str(movie)
    from netem import formats, synth
    from netem.content import save, synthetic

    tmp = Path(tempfile.mkdtemp(prefix="abrlab-demo-"))
    traces = []
    for seed in range(1, 7):
        path = tmp / f"markov-{seed}.json"
        formats.save(synth.markov(seed=seed, duration_s=300.0, min_rate_bps=0.3e6, max_rate_bps=6e6), path, "sabre")
        traces.append(str(path))
    save(synthetic(duration_s=120, seed=1), tmp / "movie.json")
    return traces, str(tmp / "movie.json")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from player.cli import main

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
