"""`abrlab fidelity PEER`: our simulator beside the peer it reproduces, session by session.

One subcommand per peer, each a `register_PEER(peers)` below backed by a module of
`player.lab.fidelity` (`sabre`, `pensieve` and `player`, our own HTTP player played in real
time), and `dashjs`, the same check as `abrlab interop agreement` (its options and runner,
`player.cli.commands.interop`), listed here so that every peer is one `abrlab fidelity` away. Sabre's judgement and report are
the shared ones (`player.lab.fidelity.agreement`: 5% average bitrate and 0.5 s rebuffering);
Pensieve's compares QoE (its module); the player's the same rung and QoE (`player.lab.prediction`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

from netem.errors import InputError, PlaybackError
from player.cli.commands import interop
from player.cli.commands._common import check_policy, parse_params, split_list
from player.core import presets
from player.lab.data import BUNDLED
from player.lab.fidelity import agreement
from player.lab.fidelity import pensieve as pensieve_peer
from player.lab.fidelity import player as player_peer
from player.lab.fidelity import sabre as sabre_peer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fidelity", help="our simulator beside what it reproduces (Sabre, Pensieve, our own HTTP player, ...)",
        description="Run a peer's own code and our simulator on the same traces and content, and report "
                    "per session whether they agree.")
    peers = p.add_subparsers(dest="peer", metavar="PEER")
    for add in PEERS:
        add(peers)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def register_sabre(peers: argparse._SubParsersAction) -> None:
    p = peers.add_parser(
        "sabre", help="UMass-LIDS/sabre, run unmodified in-process",
        description="Sabre (github.com/UMass-LIDS/sabre) run unmodified and in-process on each trace "
                    "(sabre.py -n TRACE -m MOVIE -a POLICY -v, with -noa unless --abandon), beside our "
                    "simulator under --preset sabre (or sabre-abandon with --abandon), where Sabre's "
                    "policy names mean Sabre's own policies.")
    p.add_argument("--sabre", required=True, metavar="PATH",
                   help="Sabre's sabre.py, or a Sabre checkout (its src/sabre.py)")
    p.add_argument("--traces", required=True, nargs="+", metavar="DIR",
                   help="trace sets: each folder (or file, or glob) is one set; Sabre JSON, or converted to it")
    p.add_argument("--movie", required=True, help="Sabre movie JSON (segment_duration_ms, bitrates_kbps, "
                                                  "segment_sizes_bits)")
    p.add_argument("--abr", default=",".join(sabre_peer.POLICIES),
                   help=f"Sabre policies, comma-separated (default: {','.join(sabre_peer.POLICIES)})")
    p.add_argument("--abandon", action="store_true",
                   help="Sabre's default run with abandonment (ours: --preset sabre-abandon); default: -noa")
    p.add_argument("--sabre-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for Sabre, repeatable (e.g. --sabre-arg=-ao); give ours the same "
                        "meaning with --abr-param (default: none)")
    p.add_argument("--abr-param", action="append", metavar="KEY=VALUE",
                   help="a parameter for our policies, repeatable (e.g. osc=true for Sabre's -ao; default: "
                        "Sabre's defaults)")
    add_report_options(p, "side-by-side per-segment logs (logs/SET/POLICY/TRACE.jsonl)")
    p.set_defaults(func=run_sabre)


def add_report_options(p: argparse.ArgumentParser, logs: str) -> None:
    """--out, --sessions and --json, as every peer's subcommand has them."""
    p.add_argument("--out", metavar="DIR", help=f"write sessions.csv, summary.json and {logs}; default: none, "
                                                "only the summary is printed")
    p.add_argument("--sessions", action="store_true", help="print one line per session, not only the summary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


PENSIEVE_DESCRIPTION = """\
Pensieve's buffer-based baseline (test/bb.py with test/fixed_env.py and test/load_trace.py,
unmodified) beside our simulator under --preset pensieve --abr bba, on every trace of each
set. Each trace is written in Pensieve's cooked format into a temporary folder laid out as
test/ expects; both sides read those files and the same segment sizes (the movie's first
TOTAL_VIDEO_CHUNCK + 1 = 49). A session agrees when our linear QoE (chunks 2..48, as
Pensieve's plot_results.py sums rewards) is within 1% of Pensieve's; the goal is 95% of
each set.

Pensieve's scripts are Python 2. --python may name a Python 2 that has numpy (they run as
they are) or a Python 3 that has numpy (the default: the Python running abrlab, so a
machine with python3 and numpy only is enough): then they run through a shim that leaves
the files unmodified and compiles them with Python 2's print statement, integer division,
xrange and binary-mode text files (player/lab/fidelity/pensieve_shim.py)."""


def register_pensieve(peers: argparse._SubParsersAction) -> None:
    p = peers.add_parser(
        "pensieve", help="hongzimao/pensieve test/bb.py, run unmodified in a subprocess",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=PENSIEVE_DESCRIPTION)
    p.add_argument("--pensieve", required=True, metavar="PATH",
                   help="Pensieve's test/ folder (or a Pensieve checkout, or its test/bb.py)")
    p.add_argument("--traces", required=True, nargs="+", metavar="DIR",
                   help="trace sets: each folder (or file, or glob) is one set, in any trace format")
    p.add_argument("--movie", metavar="PATH",
                   help="the movie (e.g. envivio.json; any content format abrlab reads) with Pensieve's ladder; "
                        "default: the video_size_N files in Pensieve's test/ folder")
    p.add_argument("--python", metavar="PYTHON",
                   help=f"the interpreter for Pensieve's scripts (default: {sys.executable})")
    add_report_options(p, "side-by-side per-chunk logs (logs/SET/bba/TRACE.jsonl)")
    p.set_defaults(func=run_pensieve)


PLAYER_DESCRIPTION = """\
Our own HTTP player beside our simulator. Every trace of each set is played for real with
`abrlab play --headless --json` (our edge in-process, shaping --movie over the trace at each
--time-scale, our player over loopback HTTP), and set beside two predictions of the same session:

  predicted  the session's own (its summary's `prediction`): the simulator on the same trace from
             the trace time at which the session started, with the per-request overhead the
             session measured;
  plain      `abrlab simulate --trace T --movie M --time-scale K` as it is: the trace from its
             start, the preset's own per-request overhead;
  replayed   hindsight, not a prediction: the simulator given each request's own measured delay
             before its first byte (the prediction's `replayed`), which tells the model's error
             from the machine's timing;
  again      with --repeat 2 or more, not a prediction either: each later repeat against the
             trace's first, by the same goal. The player against itself is the ceiling that
             no prediction can beat.

A session meets the goal when at least 90% of its segments are at the same rung and its linear
QoE is within 2%. Real time on a shared machine is noisy: --repeat plays each trace several
times; per trace the medians over its repeats count, and the load average is recorded.

--from RUN judges the sessions an earlier run recorded (its --out) again without playing them:
how plain would have done with another cost per request (--plain-overhead-ms, and
--plain-overhead-per-mb-ms for a cost that grows with the segment's size)."""


def register_player(peers: argparse._SubParsersAction) -> None:
    p = peers.add_parser(
        "player", help="our HTTP player (abrlab play) against the simulator, played in real time",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=PLAYER_DESCRIPTION)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--traces", nargs="+", metavar="DIR",
                     help="trace sets: each folder (or file, or glob) is one set, in any trace format "
                          "(no default: this or --from)")
    src.add_argument("--from", dest="from_run", metavar="RUN", default=None,
                     help="judge the sessions an earlier run recorded in RUN (its --out) again, playing nothing: "
                          "its movie, policy and preset, with this run's --plain-overhead options (no default: this or "
                          "--traces)")
    p.add_argument("--plain-overhead-ms", type=float, default=None, metavar="MS",
                   help="wall-clock ms per request in the plain prediction, in place of the preset's own "
                        f"(the time scale multiplies it; default: the preset's, {1e3 * presets.DEFAULT_OVERHEAD_S:g} ms for "
                        "default)")
    p.add_argument("--plain-overhead-per-mb-ms", type=float, default=0.0, metavar="MS",
                   help="wall-clock ms per MB of the segment, added to each request's cost in the plain "
                        "prediction (default 0)")
    p.add_argument("--movie", metavar="PATH", default=None,
                   help="content description (default: the bundled traces/content/demo-6rung-120s.json)")
    p.add_argument("--time-scale", type=float, nargs="+", default=[1.0], metavar="K",
                   help="time scales to play at, each a separate session (default: 1)")
    p.add_argument("--abr", default="bola", help="policy (default: bola)")
    p.add_argument("--abr-param", action="append", default=[], metavar="KEY=VALUE",
                   help="policy parameter, repeatable (default: the policy's)")
    p.add_argument("--preset", default="default", choices=presets.names(), help="session semantics (default: default)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="play each trace N times (default 1)")
    add_report_options(p, "every session's events and a side-by-side per-segment log "
                          "(logs/SET/xK/TRACE.rN.play.jsonl, .side.jsonl)")
    p.set_defaults(func=run_player)


#: One entry per peer; a new peer adds its `register_PEER` here.
def register_dashjs(peers: argparse._SubParsersAction) -> None:
    p = peers.add_parser(
        "dashjs", help="dash.js 5 in headless Chromium (after `make interop`)",
        description="dash.js 5 in headless Chromium plays each TRACE through our shaped edge, beside the "
                    "simulator under --preset dashjs (dashjs-no-fast-switch with --fast-switch off, "
                    "dashjs-live with --live): per trace the share of segments at the same rung, the "
                    "bitrate and stall differences (and latency for live), and how many meet the goals. "
                    "The same check as `abrlab interop agreement`; a missing Chromium, dash.js or driver "
                    "is one line and exit 2.")
    interop.add_agreement_args(p)
    p.set_defaults(func=interop.run_agreement)


PEERS = [register_sabre, register_pensieve, register_player, register_dashjs]


def run_sabre(args: argparse.Namespace) -> int:
    program = sabre_peer.SabreProgram(args.sabre)   # a missing Sabre: one line, exit 2
    policies = split_list(args.abr)
    goals = agreement.Goals()
    params = parse_params(args.abr_param)
    result = sabre_peer.compare(program, args.traces, args.movie, policies, abandon=args.abandon,
                                keep_logs=bool(args.out), sabre_args=args.sabre_arg, abr_params=params)
    summaries = agreement.summarise(result.pairs, goals)
    meta = {"peer": "sabre", "sabre": str(program.path), "traces": list(args.traces), "movie": args.movie,
            "policies": policies, "abandon": args.abandon, "sabre_args": args.sabre_arg, "abr_params": params,
            "preset": sabre_peer.PRESET_ABANDON if args.abandon else sabre_peer.PRESET_NO_ABANDON}
    if args.out:
        out = Path(args.out)
        agreement.write_report(out, result.pairs, summaries, goals, meta)
        for (tset, policy, label), rows in result.logs.items():
            path = out / "logs" / tset / policy / (Path(label).stem + ".jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.json:
        print(json.dumps({"goals": asdict(goals), "run": meta,
                          "summary": [s.as_dict() for s in summaries]}, indent=2))
        return 0
    if args.sessions:
        print_sessions(result.pairs, goals)
    print_summary(summaries, goals, "with abandonment" if args.abandon else "-noa")
    return 0


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:+.2f}%"


def _sec(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.2f}"


def print_sessions(pairs: list[agreement.SessionPair], goals: agreement.Goals) -> None:
    print(f"{'set':<12} {'policy':<12} {'trace':<40} {'bitrate':>8} {'rebuffer s':>10}  ok")
    for p in pairs:
        note = f"  ({p.error})" if p.error else ""
        print(f"{p.trace_set:<12} {p.policy:<12} {Path(p.trace).name:<40} {_pct(p.bitrate_diff):>8} "
              f"{_sec(p.rebuffer_diff_s):>10}  {'yes' if p.agrees(goals) else 'NO'}{note}")


def print_summary(summaries: list[agreement.Summary], goals: agreement.Goals, mode: str) -> None:
    print(f"agreement with the peer ({mode}): |bitrate diff| <= {100 * goals.bitrate_rel:.0f}% and "
          f"|rebuffer diff| <= {goals.rebuffer_s:g} s; goal {100 * goals.share:.0f}% of sessions")
    print(f"{'set':<14} {'policy':<12} {'sessions':>8} {'agree':>7} {'bitrate diff':>12} {'rebuffer diff s':>15}  goal")
    for s in summaries:
        failed = f"  ({s.failed} failed in the peer)" if s.failed else ""
        print(f"{s.trace_set:<14} {s.policy:<12} {s.sessions:>8} {100 * s.share:>6.0f}% "
              f"{_pct(s.mean_bitrate_diff):>12} {_sec(s.mean_rebuffer_diff_s):>15}  "
              f"{'met' if s.meets_goal else 'NOT met'}{failed}")


def run_pensieve(args: argparse.Namespace) -> int:
    test = pensieve_peer.PensieveTest.find(args.pensieve)   # a missing path: one line, exit 2
    result = pensieve_peer.compare(test, args.traces, args.movie, args.python)
    summaries = pensieve_peer.summarise(result.pairs)
    meta = {"peer": "pensieve", "pensieve": str(test.script), "python": args.python or sys.executable,
            "traces": list(args.traces), "movie": args.movie or str(test.folder), "preset": pensieve_peer.PRESET,
            "policy": pensieve_peer.POLICY}
    meta["notes"] = result.notes
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        pensieve_peer.write_report(Path(args.out), result, summaries, meta)
    if args.json:
        print(json.dumps({"run": meta, "summary": [s.as_dict() for s in summaries]}, indent=2))
        return 0
    if args.sessions:
        print(f"{'set':<18} {'trace':<40} {'QoE ours':>9} {'Pensieve':>9} {'diff':>8} {'diverge':>7}  ok")
        for q in result.pairs:
            note = f"  ({q.error})" if q.error else ""
            div = "-" if q.first_divergence < 0 else str(q.first_divergence)
            print(f"{q.trace_set:<18} {q.trace:<40} {q.ours_qoe:>9.2f} {q.peer_qoe:>9.2f} "
                  f"{_pct(q.qoe_rel_diff):>8} {div:>7}  {'yes' if q.agrees() else 'NO'}{note}")
    print(f"agreement with Pensieve's {pensieve_peer.SCRIPT}: |QoE diff| <= {100 * pensieve_peer.QOE_REL:g}%; "
          f"goal {100 * pensieve_peer.GOAL_SHARE:g}% of each set")
    print(f"{'set':<18} {'sessions':>8} {'agree':>7} {'identical':>9} {'mean |diff|':>11}  goal")
    for s in summaries:
        failed = f"  ({s.failed} failed in Pensieve)" if s.failed else ""
        print(f"{s.trace_set:<18} {s.sessions:>8} {100 * s.share:>6.1f}% {s.identical:>9} "
              f"{_pct(s.mean_abs_qoe_rel_diff):>11}  {'met' if s.meets_goal else 'NOT met'}{failed}")
    return 0


def plain_cost(args: argparse.Namespace) -> player_peer.PlainCost:
    """The plain prediction's cost per request from the options (InputError naming the option)."""
    for flag, v in (("--plain-overhead-ms", args.plain_overhead_ms),
                    ("--plain-overhead-per-mb-ms", args.plain_overhead_per_mb_ms)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise InputError(f"{flag} must be a non-negative number of milliseconds, got {v!r}")
    return player_peer.PlainCost(None if args.plain_overhead_ms is None else args.plain_overhead_ms / 1e3,
                                 args.plain_overhead_per_mb_ms / 1e9)


def run_player(args: argparse.Namespace) -> int:
    cost = plain_cost(args)
    if args.from_run:
        return rejudge_player(args, cost)
    movie = args.movie or str(BUNDLED / "content" / "demo-6rung-120s.json")
    duration_s = player_peer.check_inputs(movie, args.time_scale, args.repeat)
    sets = player_peer.sets_of(args.traces)
    params = parse_params(args.abr_param)
    check_policy(args.abr, params)
    sessions, failed = [], []
    if args.sessions:
        print(SESSION_HEADER)
    for name, paths in sets:
        for path in paths:
            for k in args.time_scale:
                for rep in range(args.repeat):
                    try:
                        s = player_peer.play_one(name, path, movie, k, rep, abr=args.abr,
                                                 abr_params=args.abr_param, preset=args.preset, duration_s=duration_s)
                    except PlaybackError as exc:      # noted, and the run goes on
                        failed.append(f"{name}/{path.name} x{k:g} r{rep}: {exc}")
                        print(f"note: {failed[-1]}", file=sys.stderr)
                        continue
                    player_peer.judge(s, movie, args.abr, params, args.preset, cost)
                    player_peer.judge_again(s, sessions)
                    sessions.append(s)
                    if args.out:
                        player_peer.write_session(Path(args.out), s, player_peer.side_by_side(
                            s, movie, args.abr, params, args.preset))
                    if args.sessions:
                        print(_session_line(s), flush=True)
    meta = {"peer": "player", "traces": list(args.traces), "movie": movie, "time_scales": list(args.time_scale),
            "abr": args.abr, "abr_params": params, "preset": args.preset, "repeat": args.repeat, "failed": failed,
            "plain_cost": cost.as_dict()}
    return report_player(args, sessions, meta)


def rejudge_player(args: argparse.Namespace, cost: player_peer.PlainCost) -> int:
    """`--from RUN`: the recorded sessions judged again (nothing played), with RUN's set-up."""
    run_dir = Path(args.from_run)
    if args.out and Path(args.out).resolve() == run_dir.resolve():
        raise InputError("--out must not be the run given to --from: its report would be overwritten",
                         where=args.out)
    try:
        run = json.loads((run_dir / "summary.json").read_text())["run"]
    except (OSError, ValueError, KeyError):
        run = {}       # a run that stopped before its report: the options say what it played
    movie = run.get("movie") or args.movie or str(BUNDLED / "content" / "demo-6rung-120s.json")
    abr, params, preset = run.get("abr", args.abr), run.get("abr_params", parse_params(args.abr_param)), \
        run.get("preset", args.preset)
    check_policy(abr, params)
    sessions = player_peer.recorded_sessions(run_dir)
    if args.sessions:
        print(SESSION_HEADER)
    for s in sessions:
        player_peer.judge(s, movie, abr, params, preset, cost)
        player_peer.judge_again(s, sessions)      # its first repeat, never itself
        if args.sessions:
            print(_session_line(s), flush=True)
    repeat = 1 + max(s.repeat for s in sessions)
    meta = {"peer": "player", "from": str(run_dir), "traces": run.get("traces", []), "movie": movie,
            "time_scales": sorted({s.time_scale for s in sessions}), "abr": abr, "abr_params": params,
            "preset": preset, "repeat": repeat, "failed": run.get("failed", []), "plain_cost": cost.as_dict()}
    return report_player(args, sessions, meta)


SESSION_HEADER = (f"{'set':<12} {'trace':<36} {'K':>3} {'rep':>3} {'load':>5} {'same':>5} {'QoE diff':>9} "
                  f"{'plain':>5} {'QoE diff':>9} {'replay':>6} {'QoE diff':>9} {'again':>6} {'QoE diff':>9}  ok")


def report_player(args: argparse.Namespace, sessions: list, meta: dict) -> int:
    """The report of a run (played or judged again): files, JSON or the table."""
    failed, repeat = meta["failed"], meta["repeat"]
    summaries = player_peer.summarise(sessions)
    if args.out:
        player_peer.write_report(Path(args.out), sessions, summaries, meta)
    if args.json:
        print(json.dumps({"run": meta, "summary": [s.as_dict() for s in summaries]}, indent=2))
        return 0
    print(f"agreement of abrlab play with the simulator: same rung >= 90% and |QoE diff| <= 2% per trace "
          f"(medians over {repeat} repeat{'s' if repeat > 1 else ''})")
    shown = player_peer.WHICH if repeat > 1 else player_peer.WHICH[:3]
    print(f"{'set':<14} {'K':>4} {'traces':>6} {'load':>5}" + "".join(
        f"   {name + ': ok':>13} {'same':>6} {'|QoE|':>7} {'|stall|':>8}" for name in shown))
    for s in summaries:
        print(f"{s.trace_set:<14} {s.time_scale:>4g} {s.traces:>6} {s.load:>5.1f}" + "".join(
            f"   {getattr(s, w + '_ok'):>6}/{s.again_traces if w == 'again' else s.traces:<6} "
            f"{100 * getattr(s, w + '_same_rung'):>5.1f}% "
            f"{100 * getattr(s, w + '_abs_qoe_rel'):>6.2f}% {getattr(s, w + '_abs_stall_s'):>7.2f}s"
            for w in shown))
    if repeat > 1:
        print("again: each later repeat against the trace's first one, by the same goal (the player against "
              "itself: the ceiling for any prediction)")
    if failed:
        print(f"{len(failed)} session(s) failed to play (not counted above): see the notes")
    return 0


def _session_line(s) -> str:
    def part(a) -> str:
        f = player_peer.figures(a)
        if f is None:
            return f"{'—':>5} {'—':>9}"
        rel = a.qoe_rel_diff if not isinstance(a, dict) else (a["qoe_rel_diff"] if a["qoe_rel_diff"] is not None
                                                               else math.nan)
        return f"{100 * f[0]:>4.0f}% {_pct(rel):>9}"
    ok = s.predicted is not None and s.predicted.meets_goal()
    return (f"{s.trace_set:<12} {s.trace[:36]:<36} {s.time_scale:>3g} {s.repeat:>3} {s.load_before:>5.1f} "
            f"{part(s.predicted)} {part(s.plain)} {part(s.replayed):>16} {part(s.again):>16}  {'yes' if ok else 'NO'}")
