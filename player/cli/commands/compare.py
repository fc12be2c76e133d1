"""`abrlab compare`: ABR policies × trace sets × devices × presets, with honest statistics."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from netem.content import load as load_movie
from netem.errors import InputError
from netem.formats import expand_paths
from player.cli.commands._common import add_trace_format, check_policy, parse_params, split_list
from player.core import presets, qoe
from player.core.device import load as load_device
from player.lab import plots
from player.lab.stats import summarise
from player.lab.sweep import Sweep, run_sweep


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare ABR policies on trace sets (simulated; tables, CSV/JSON, plots)",
        description=(
            "Simulate every policy on every trace (× device × preset), then report per policy the mean "
            "QoE with a 95% bootstrap confidence interval, median, p10, average bitrate, rebuffer ratio, "
            "switches per minute and startup delay, and paired Wilcoxon signed-rank tests between policies "
            "on the same traces (Holm-corrected; * marks p < 0.05). Rows are appended to OUT/sessions.csv "
            "as sessions finish; re-running the same command resumes and computes only what is missing."))
    p.add_argument("--traces", nargs="+", required=True, metavar="DIR_OR_GLOB",
                   help="trace files, directories or globs (every trace format abrlab reads)")
    add_trace_format(p, "the trace files'")
    p.add_argument("--movie", required=True, help="content description (Sabre movie JSON, our JSON/TOML, Pensieve folder)")
    p.add_argument("--abr", default="bba,bola,throughput,robustmpc",
                   help="comma-separated policies (names or file.py:Class; default: bba,bola,throughput,robustmpc)")
    p.add_argument("--abr-param", action="append", metavar="POLICY.KEY=VALUE",
                   help="a policy parameter, repeatable (default: each policy's own defaults)")
    p.add_argument("--device", default="none", help="comma-separated device profiles (default: none)")
    p.add_argument("--preset", default="default", help=f"comma-separated presets: {', '.join(presets.names())} (default: default)")
    p.add_argument("--qoe", default="linear", choices=qoe.MODELS, help="QoE model for the table (default: linear)")
    p.add_argument("--repeat-to", type=int, default=None, metavar="N",
                   help="repeat the trace list to N sessions per policy (default: each trace once)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (sessions.csv, summary.json, plots)")
    p.add_argument("--executor", default="process",
                   help="where sessions run: inprocess, process (local pool) or dask://HOST:PORT (default: process)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes for the local pool (default: all cores)")
    p.add_argument("--chunk-size", type=int, default=128, metavar="N",
                   help="sessions per batch handed to a worker; smaller = finer progress and resume (default: 128)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (default: plots when matplotlib is installed)")
    p.add_argument("--json", action="store_true", help="print summary.json instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    traces = [str(p) for p in expand_paths(args.traces)]
    if not traces:
        raise InputError(f"no trace files found in {' '.join(args.traces)}")
    load_movie(args.movie)  # fail early on a bad movie, in this process
    abrs = split_list(args.abr)
    scoped = parse_params(args.abr_param, scoped=True)
    for name in abrs:
        check_policy(name, scoped.get(name, {}))
    for name in set(scoped) - set(abrs):
        raise InputError(f"--abr-param names policy {name!r}, which is not in --abr")
    pres = split_list(args.preset)
    for pr in pres:
        presets.get(pr)
    devices = split_list(args.device)
    for d in devices:
        if d != "none":
            load_device(d)
    sweep = Sweep(traces, args.movie, abrs, scoped, devices, pres, args.qoe, args.repeat_to, args.trace_format)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("sessions"),
                  TimeRemainingColumn(), console=console, transient=args.json) as bar:
        task = bar.add_task("sessions", total=sweep.total())
        rows = run_sweep(sweep, Path(args.out), args.executor, args.jobs, chunk_size=max(1, args.chunk_size),
                         on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    summary = summarise(rows)
    summary["sweep"] = {"traces": len(traces), "sessions": len(rows), "movie": args.movie, "qoe": args.qoe}
    out = Path(args.out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    written = []
    if not args.no_plots and plots.available():
        written = plots.write(rows, out)
    if args.json:
        print(json.dumps(summary))
    else:
        print_tables(summary, Console())
        Console().print(f"wrote {out / 'sessions.csv'}, {out / 'summary.json'}"
                        + "".join(f", {p}" for p in written))
    return 0


def print_tables(summary: dict, console) -> None:
    from rich.table import Table

    pol = summary["policies"]
    # device and preset columns only when they vary
    varying = [c for c in ("device", "preset") if len({r[c] for r in pol}) > 1]
    t = Table(title=f"QoE ({pol[0]['qoe_model'] if pol else ''}) per policy")
    for col in ("policy", *varying, "n", "mean QoE [95% CI]", "median", "p10", "avg Mbit/s",
                "rebuffer %", "switches/min", "startup s"):
        t.add_column(col, justify="left" if col in ("policy", "device", "preset") else "right")
    for r in sorted(pol, key=lambda r: -r["qoe_mean"]):
        lo, hi = r["qoe_ci95"]
        t.add_row(r["abr"], *[r[c] for c in varying], str(r["sessions"]),
                  f"{r['qoe_mean']:.1f} [{lo:.1f}, {hi:.1f}]", f"{r['qoe_median']:.1f}", f"{r['qoe_p10']:.1f}",
                  f"{r['avg_bitrate_bps'] / 1e6:.2f}", f"{100 * r['rebuffer_ratio']:.2f}",
                  f"{r['switches_per_min']:.2f}", f"{r['startup_s_mean']:.2f}")
    console.print(t)
    if summary["paired"]:
        p = Table(title="Paired comparisons (Wilcoxon signed-rank on the same traces, Holm-corrected)")
        for col in ("a", "b", *varying, "n", "mean QoE a−b", "a better", "p (Holm)", ""):
            p.add_column(col)
        for c in summary["paired"]:
            p.add_row(c["a"], c["b"], *[c[v] for v in varying], str(c["sessions"]), f"{c['mean_diff']:+.2f}",
                      f"{100 * c['a_better_frac']:.0f}%", f"{c['p_holm']:.2g}", "*" if c["significant"] else "")
        console.print(p)
