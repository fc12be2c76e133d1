"""The crowd's reports on a terminal: `abrlab crowd`'s (a row per client and the group's
metrics, per world, and their agreement) and `abrlab compare --clients N`'s (the crowd sweep:
per policy, each group metric's mean with its 95 % CI). Kept apart from the live dashboard so
that a sweep imports no event loop."""
from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console

from netem.errors import InputError
from player.cli.commands._tables import Column, print_table
from player.lab.crowd_sweep import CHUNK_GROUPS, CrowdSweep, run_crowd_sweep, summarise
from player.lab.lock import locked
from player.lab.results import write_text_safely
from player.lab.sweep import Sweep


def print_report(report: dict, console: Console | None = None) -> None:
    """`abrlab crowd`'s report: a row per client and the group's metrics, per world."""
    console = console or Console()
    for side in ("emulated", "simulated"):
        if side not in report:
            continue
        part = report[side]
        rows = []
        for j, c in enumerate(part["clients"]):
            if not c.get("segments"):
                rows.append({"i": str(j + 1), "policy": str(c.get("abr")), "segments": "0",
                             "qoe": c.get("error") or "—"})
                continue
            rows.append({"i": str(j + 1), "policy": str(c["abr"]), "start": _f(c.get("start_s"), 1),
                         "end": _f(c.get("end_s"), 1),
                         "segments": f"{c['segments']}{'' if c.get('complete', True) else ' (left)'}",
                         "mbps": _f(c["avg_bitrate_bps"] / 1e6, 2), "rebuf": _f(c["rebuffer_s"], 1),
                         "sw": str(c["switches"]), "qoe": _f(c["qoe"]["total"], 1)})
        who = [Column("i", "#", True), Column("policy", "policy")]
        when = [Column("start", "start s", True), Column("end", "end s", True), Column("segments", "segments", True)]
        how = [Column("mbps", "Mbit/s", True), Column("rebuf", "rebuffer s", True), Column("sw", "switches", True),
               Column("qoe", "QoE", True)]
        print_table(console, f"{side} crowd on {report['trace']} ({len(part['clients'])} clients)",
                    [[who + when + how], [who + when, who + how]], rows)
        console.print(group_line(part["group"]))
    if "agreement" in report:
        a = report["agreement"]
        console.print(f"agreement: same rung for {100 * a['same_rung']:.1f} % of segments; Jain's index "
                      f"{a['jain_bitrate_emulated']:.4f} emulated vs {a['jain_bitrate_simulated']:.4f} simulated "
                      f"(difference {a['jain_bitrate_diff']:.4f})")


def group_line(g: dict) -> str:
    return (f"group: Jain (bitrate) {_f(g['jain_bitrate'], 4)}, unfairness {_f(g['unfairness'], 3)}, "
            f"Jain (QoE) {_f(g['jain_qoe'], 4)}, inefficiency {_f(g['inefficiency_mean'], 3)} "
            f"(weighted {_f(g['inefficiency_weighted'], 3)}), "
            f"instability {_f(g['instability_mean'], 4)}, link use {_pct(g['utilisation'])} "
            f"(players {_pct(g['player_share'])}), rebuffer ratio {_pct(g['rebuffer_ratio'], 2)}, "
            f"stalls per viewer-hour {_f(g['stalls_per_viewer_hour'], 1)}, startup {_f(g['startup_s_mean'], 2)} s, "
            f"mean bitrate {_f(g['avg_bitrate_bps_mean'] / 1e6, 2)} Mbit/s, mean QoE {_f(g['qoe_mean'], 1)}")


def print_sweep(summary: dict, console: Console | None = None) -> None:
    """`abrlab compare --clients N`: per policy, each group metric's mean with its 95 % CI."""
    console = console or Console()
    pol = summary["policies"]
    cols = (("jain_bitrate", "Jain", 3), ("unfairness", "unfairness", 3), ("inefficiency_mean", "inefficiency", 3),
            ("inefficiency_weighted", "ineff. (weighted)", 3),
            ("instability_mean", "instability", 4), ("utilisation", "link use", 3), ("qoe_mean", "QoE", 1),
            ("rebuffer_ratio", "rebuffer", 4))
    n = pol[0]["clients"] if pol else 0
    varying = [c for c in ("device", "preset") if len({r[c] for r in pol}) > 1]
    rows = []
    for r in pol:
        row = {"policy": r["abr"], **{c: r[c] for c in varying}, "groups": str(r["groups"])}
        for key, _, digits in cols:
            m = r[key]
            lo, hi = m["ci95"]
            row[key] = "—" if m["mean"] is None else f"{m['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
        rows.append(row)
    first = [Column("policy", "policy"), *(Column(c, c) for c in varying), Column("groups", "groups", True)]
    metrics = [Column(key, label, True) for key, label, _ in cols]
    print_table(console, f"{n} players per bottleneck: mean [95% CI] over bottlenecks",
                [[first + metrics[i:i + w] for i in range(0, len(metrics), w)] for w in (8, 4, 3, 2)], rows)


def _f(v, digits: int) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _pct(v, digits: int = 1) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.{digits}f} %"


def compare_crowds(args, sweep: Sweep) -> int:
    """`abrlab compare --clients N`: the sweep's traces, policies, devices and presets as a
    crowd sweep (`player.lab.crowd_sweep`), its progress on stderr, OUT/crowds.jsonl and
    OUT/crowd_summary.json (the output directory locked for the run), and the table or the JSON."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if args.clients < 1:
        raise InputError(f"--clients must be at least 1 (a group with no clients cannot run), got {args.clients}")
    crowds = CrowdSweep(sweep, args.clients)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    console = Console(stderr=True)
    chunk = max(1, (args.chunk_size or CHUNK_GROUPS * args.clients) // args.clients)
    with locked(out):
        with Progress(TextColumn("[bold]simulating crowds"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("bottlenecks"), TimeRemainingColumn(), console=console, transient=args.json) as bar:
            task = bar.add_task("bottlenecks", total=crowds.total())
            rows = run_crowd_sweep(crowds, out, args.executor, args.jobs, chunk_size=chunk,
                                   on_progress=lambda done, total: bar.update(task, completed=done, total=total))
        summary = summarise(rows)
        summary["sweep"] = {"traces": len(sweep.traces), "bottlenecks": len(rows),
                            "clients_per_bottleneck": args.clients, "players": len(rows) * args.clients,
                            "movie": sweep.movie, "qoe": sweep.qoe}
        write_text_safely(out / "crowd_summary.json", json.dumps(summary, indent=1) + "\n")
    if args.json:
        print(json.dumps(summary))
    else:
        print_sweep(summary, Console())
        Console().print(f"wrote {out / 'crowds.jsonl'}, {out / 'crowd_summary.json'}", markup=False, highlight=False)
    return 0
