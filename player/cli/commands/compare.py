"""`abrlab compare`: ABR policies × trace sets × devices × presets, with honest statistics.

Everything is checked (traces, movie, policies and their parameters, presets, devices, the
executor) before anything is created; the output directory is then locked for the run.
SIGINT and SIGTERM stop the run at once, saving every finished chunk, and say how many
sessions are saved (exit 130 / 143); re-running the same command resumes.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from netem.errors import InputError, UsageError
from netem.formats import expand_paths
from player.cli.commands._common import add_live_options, add_trace_format, live_overrides, parse_params, split_list
from player.cli.commands._tables import Column, print_table
from player.cli.crowd_report import compare_crowds
from player.core import presets, qoe
from player.lab import plots
from player.lab.executors import Stopped, check_executor
from player.lab.lock import locked
from player.lab.results import write_text_safely
from player.lab.stats import summarise
from player.lab.sweep import Sweep, SweepStatus, is_file_policy, prepare, run_sweep


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare ABR policies on trace sets (simulated; tables, CSV/JSON, plots)",
        description=(
            "Simulate every policy on every trace (× device × preset), then report per policy the mean "
            "QoE with a 95% bootstrap confidence interval, median, p10, average bitrate, rebuffer ratio, "
            "switches per minute and startup delay, and paired Wilcoxon signed-rank tests between policies "
            "on the same traces (Holm-corrected; * marks p < 0.05). Rows are appended to OUT/sessions.csv "
            "as sessions finish; re-running the same command resumes and computes only what is missing. "
            "One run at a time per OUT (a second one is refused)."))
    p.add_argument("--traces", nargs="+", required=True, metavar="DIR_OR_GLOB",
                   help="trace files, directories or globs (every trace format abrlab reads)")
    add_trace_format(p, "the trace files'")
    p.add_argument("--movie", required=True, help="content description (Sabre movie JSON, our JSON/TOML, Pensieve folder)")
    p.add_argument("--abr", default="bba,bola,throughput,robustmpc",
                   help="comma-separated policies (names or file.py:Class; default: bba,bola,throughput,robustmpc)")
    p.add_argument("--abr-param", action="append", metavar="POLICY.KEY=VALUE",
                   help="a policy parameter, repeatable; POLICY is a name from --abr or a file policy's class "
                        "name; plain KEY=VALUE when there is one policy (default: each policy's own defaults)")
    p.add_argument("--device", default="none", help="comma-separated device profiles (default: none)")
    p.add_argument("--preset", default="default", help=f"comma-separated presets: {', '.join(presets.names())} (default: default)")
    p.add_argument("--qoe", default="linear", choices=qoe.MODELS, help="QoE model for the table (default: linear)")
    p.add_argument("--repeat-to", type=int, default=None, metavar="N",
                   help="repeat the trace list to N sessions per policy (default: each trace once)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (sessions.csv, summary.json, plots)")
    p.add_argument("--executor", default="process",
                   help="where sessions run: inprocess, process (local pool) or dask://HOST:PORT (default: process)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes for the local pool (default: all cores)")
    p.add_argument("--chunk-size", type=int, default=None, metavar="N",
                   help="sessions per simulator batch (default: chosen from the sessions, the workers and the "
                        "memory, at most 8192; rows are written and resumed 512 at a time)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (default: plots when matplotlib is installed)")
    p.add_argument("--json", action="store_true", help="print summary.json instead of tables")
    p.add_argument("--clients", type=int, default=None, metavar="N",
                   help="crowds instead of single sessions: N players of each policy share each trace × N (fairness, "
                        "stability, efficiency with CIs; player/lab/crowd_sweep.py; default: single sessions)")
    add_live_options(p)
    p.set_defaults(func=run)


def build_sweep(args: argparse.Namespace) -> Sweep:
    """The sweep the options describe (options checked; files are checked by `prepare`)."""
    for name, value in (("--jobs", args.jobs), ("--repeat-to", args.repeat_to), ("--chunk-size", args.chunk_size)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    check_executor(args.executor)
    traces = [str(p) for p in expand_paths(args.traces)]
    if not traces:
        raise InputError(f"no trace files found in {' '.join(args.traces)}")
    abrs = split_list(args.abr)
    if not abrs:
        raise UsageError("--abr names no policy")
    pres = split_list(args.preset)
    for pr in pres:
        presets.get(pr)
    live = {k: v for k, v in live_overrides(args).items() if v is not None}
    if live and not any(presets.get(pr).live is not None for pr in pres):
        raise UsageError("the live options need a live preset (live, live-ll, dashjs-live) in --preset")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    scoped = parse_params(args.abr_param, policies=abrs)
    return Sweep(traces, args.movie, abrs, scoped, split_list(args.device) or ["none"], pres, args.qoe, args.repeat_to,
                 args.trace_format, live)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    sweep = build_sweep(args)
    groups = prepare(sweep)           # every input loaded and checked: nothing exists yet
    if args.clients is not None:
        return compare_crowds(args, sweep)
    out = Path(args.out)
    err = Console(stderr=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    with locked(out):
        progress = ProgressReport(err, transient=args.json)
        try:
            with progress:
                rows = run_sweep(sweep, out, args.executor, args.jobs, on_progress=progress.update,
                                 chunk_size=args.chunk_size,
                                 warn=lambda m: err.print(m, markup=False, highlight=False, soft_wrap=True),
                                 lock=False, groups=groups)
        except Stopped as stop:
            s = progress.status
            saved = f"{s.saved:,} of {s.total:,} sessions are saved" if s else "nothing new was saved"
            err.print(f"stopped by {stop.args[0]}: {saved} in {out / 'sessions.csv'}; "
                      "run the same command again to resume", markup=False, highlight=False, soft_wrap=True)
            return stop.exit_status
        summary = summarise(rows)
        summary["sweep"] = {"traces": len(sweep.traces), "sessions": len(rows), "movie": args.movie, "qoe": args.qoe}
        write_text_safely(out / "summary.json", json.dumps(summary, indent=1) + "\n")
        written = []
        if not args.no_plots and plots.available():
            written = plots.write(rows, out)
    if args.json:
        print(json.dumps(summary))
    else:
        console = Console()
        print_tables(summary, console)
        console.print(f"wrote {out / 'sessions.csv'}, {out / 'summary.json'}" + "".join(f", {p}" for p in written),
                      markup=False, highlight=False)
    return 0


class ProgressReport:
    """The progress line: what is reused, what is computed, and an ETA from the throughput
    measured in this run (not from the reused sessions)."""

    def __init__(self, console, transient: bool, clock=time.monotonic) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console
        self.clock = clock
        self.status: SweepStatus | None = None
        self.started = clock()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                            TextColumn("{task.fields[eta]}"), console=console, transient=transient)
        self.task = None

    def __enter__(self) -> "ProgressReport":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)
        s = self.status
        if s is not None and exc[0] is None and s.to_compute:
            dt = self.clock() - self.started
            self.console.print(f"simulated {s.computed:,} sessions in {dt:.2f} s ({s.computed / max(dt, 1e-9):,.0f}/s)"
                               + (f"; reused {s.reused:,} from sessions.csv" if s.reused else ""),
                               markup=False, highlight=False, soft_wrap=True)

    def update(self, s: SweepStatus) -> None:
        if self.status is None:
            self.started = self.clock()
            what = f"reused {s.reused:,}, computing {s.to_compute:,}" if s.reused else f"computing {s.to_compute:,}"
            self.task = self.bar.add_task(what, total=max(s.to_compute, 1), completed=0 if s.to_compute else 1,
                                          eta="")
        self.status = s
        eta = eta_text(s.computed, s.to_compute, self.clock() - self.started)
        self.bar.update(self.task, completed=s.computed if s.to_compute else 1, eta=eta)


def eta_text(computed: int, to_compute: int, elapsed_s: float) -> str:
    """The time left at the rate measured in this run (sessions computed over the seconds
    spent computing them); nothing to measure before the first batch is saved."""
    left = to_compute - computed
    if not left:
        return f"{elapsed_s:.1f} s"
    if not computed or elapsed_s <= 0:
        return "ETA after the first batch"
    rate = computed / elapsed_s
    return f"ETA {format_duration(left / rate)} ({rate:,.0f}/s)"


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def live_cells(r: dict) -> dict:
    """The live columns of a policy's row ("-" for VoD sessions)."""
    def num(x, digits=2):
        return "-" if x is None else f"{x:.{digits}f}"
    return {"lat": num(r.get("latency_mean_s")), "latmax": num(r.get("latency_max_s")),
            "rate": num(r.get("playback_rate_mean"), 3)}


def short_name(spec: str) -> str:
    """A file policy by its class name (the legend gives the file)."""
    return spec.rsplit(":", 1)[1] if is_file_policy(spec) else spec


def print_tables(summary: dict, console) -> None:
    """The per-policy table and the paired tests, fitted to the console's width: one wide
    table when it fits, else QoE and streaming metrics apart, else one block per policy.
    Numbers are never cut; long policy names appear by class name with a legend."""
    pol = summary["policies"]
    varying = [c for c in ("device", "preset") if len({r[c] for r in pol}) > 1]
    setting = [Column(c, c) for c in varying]
    rows = []
    legend = {}
    for r in sorted(pol, key=lambda r: -r["qoe_mean"]):
        lo, hi = r["qoe_ci95"]
        name = short_name(r["abr"])
        if name != r["abr"]:
            legend[name] = r["abr"]
        rows.append({"policy": name, **{c: r[c] for c in varying}, "n": f"{r['sessions']:,}",
                     "mean": f"{r['qoe_mean']:.1f}", "ci": f"[{lo:.1f}, {hi:.1f}]", "median": f"{r['qoe_median']:.1f}",
                     "p10": f"{r['qoe_p10']:.1f}", "mbps": f"{r['avg_bitrate_bps'] / 1e6:.2f}",
                     "rebuf": f"{100 * r['rebuffer_ratio']:.2f}", "sw": f"{r['switches_per_min']:.2f}",
                     "start": f"{r['startup_s_mean']:.2f}", **live_cells(r)})
    qoe_cols = [Column("policy", "policy"), *setting, Column("n", "n", True), Column("mean", "mean QoE", True),
                Column("ci", "95% CI", True), Column("median", "median", True), Column("p10", "p10", True)]
    metric_cols = [Column("mbps", "Mbit/s", True), Column("rebuf", "rebuf %", True),
                   Column("sw", "switch /min", True), Column("start", "startup s", True)]
    if any(r.get("latency_mean_s") is not None for r in pol):   # live sessions: their latency and rate
        metric_cols += [Column("lat", "latency s", True), Column("latmax", "max latency s", True),
                        Column("rate", "rate", True)]
    model = pol[0]["qoe_model"] if pol else ""
    print_table(console, f"QoE ({model}) per policy",
                [[qoe_cols + metric_cols], [qoe_cols, [Column("policy", "policy"), *setting, *metric_cols]]], rows)
    if summary["paired"]:
        prow = [{"a": short_name(c["a"]), "b": short_name(c["b"]), **{v: c[v] for v in varying},
                 "n": f"{c['sessions']:,}", "diff": f"{c['mean_diff']:+.2f}", "better": f"{100 * c['a_better_frac']:.0f}%",
                 "p": f"{c['p_holm']:.2g}", "sig": "*" if c["significant"] else ""} for c in summary["paired"]]
        cols = [Column("a", "a"), Column("b", "b"), *setting, Column("n", "n", True), Column("diff", "mean QoE a−b", True),
                Column("better", "a better", True), Column("p", "p (Holm)", True), Column("sig", "")]
        print_table(console, "Paired comparisons (Wilcoxon signed-rank on the same traces, Holm-corrected)",
                    [[cols]], prow)
    for name, spec in legend.items():
        console.print(f"{name} = {spec}", markup=False, highlight=False)
