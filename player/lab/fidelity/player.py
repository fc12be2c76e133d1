"""Our own HTTP player beside our simulator: `abrlab play` against `abrlab simulate`, trace by trace.

Each session is a real `abrlab play --headless --json` (a subprocess: our edge in-process,
shaping the content over the trace at ``--time-scale K``, and our player over loopback HTTP).
Its summary carries the simulator's prediction of the same session (`player.lab.prediction`:
the trace from where the edge's trace clock stood when the session started, the per-request
overhead measured in the session). Beside it, the plain prediction: what ``abrlab simulate``
says with nothing measured (the trace from its start, the preset's own per-request overhead
scaled to the time scale, `SessionPreset.at_time_scale`).

A session agrees when at least `GOAL_SAME_RUNG` of its segments are at the same rung and its
linear QoE is within `GOAL_QOE_REL` of the prediction's. Real time on a shared machine is
noisy (the load average is recorded with every session): ``repeat`` plays each trace several
times, and each trace's figures are the medians over its repeats.

With repeats, each later session is also judged against the trace's first one by the same
goal (`again`): how well the player agrees with itself on the same trace and time scale. No
prediction, however exact its rules, can agree with a session better than another run of
that session does, so this is the ceiling the predictions are read against.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from netem import content as content_mod
from netem import formats
from netem.errors import InputError, PlaybackError
from player.core.events import Download, Event, from_dict
from player.core.presets import get as get_preset
from player.lab.fidelity.agreement import write_rows
from player.lab.fidelity.pensieve import trace_sets
from player.lab.prediction import GOAL_QOE_REL, GOAL_SAME_RUNG, Agreement, agreement, predict, with_overhead

CODE_ROOT = Path(__file__).resolve().parents[3]   # the folder holding the `player` package
TIMEOUT_FACTOR = 4.0       # a session may last this many times its content's duration / K (wall)
TIMEOUT_MIN_S = 60.0


@dataclass
class PlayedSession:
    """One `abrlab play` run: its events, its summary (with its `prediction`), the load."""

    trace_set: str
    trace: str
    path: str
    time_scale: float
    repeat: int
    summary: dict[str, Any]
    events: list[Event] = field(repr=False, default_factory=list)
    load_before: float = math.nan
    load_after: float = math.nan
    predicted: Agreement | None = None        # the session's own prediction (offset, measured overhead)
    plain: Agreement | None = None            # plain `abrlab simulate` (offset 0, the preset's overhead)
    replayed: dict[str, Any] | None = None    # the prediction's `replayed`: each request's own delay (hindsight)
    again: Agreement | None = None            # against the first repeat of the same trace and time scale

    def row(self) -> dict[str, Any]:
        """One CSV row: what played, both predictions, the set-up of the measured one."""
        pred = self.summary.get("prediction") or {}
        out: dict[str, Any] = {"set": self.trace_set, "trace": self.trace, "time_scale": self.time_scale,
                               "repeat": self.repeat, "load_before": self.load_before, "load_after": self.load_after,
                               "segments": self.summary.get("segments"), "qoe": self.summary["qoe"]["total"],
                               "rebuffer_s": self.summary.get("rebuffer_s"),
                               "trace_offset_s": pred.get("trace_offset_s"), "overhead_s": pred.get("overhead_s")}
        for name, a in (("predicted", self.predicted), ("plain", self.plain), ("again", self.again)):
            if a is None:
                continue
            out.update({f"{name}_same_rung": a.same_rung, f"{name}_first_divergence": a.first_divergence,
                        f"{name}_qoe": a.qoe_predicted, f"{name}_qoe_rel_diff": a.qoe_rel_diff,
                        f"{name}_stall_diff_s": a.stall_diff_s, f"{name}_ok": a.meets_goal()})
        if self.replayed:
            out.update({f"replayed_{k}": v for k, v in self.replayed.items()})
        return out


def play_argv(trace: Path, movie: str, time_scale: float, abr: str, abr_params: Sequence[str], preset: str,
              command: Sequence[str] | None = None) -> list[str]:
    """The `abrlab play` command line for one session (`command`: how to run abrlab; default
    this Python's ``-m player.cli``)."""
    argv = list(command or [sys.executable, "-m", "player.cli"])
    argv += ["play", "--headless", "--json", "--trace", str(trace), "--movie", movie, "--time-scale", f"{time_scale:g}",
             "--abr", abr, "--preset", preset]
    for p in abr_params:
        argv += ["--abr-param", p]
    return argv


def read_play_output(text: str) -> tuple[list[Event], dict[str, Any]]:
    """`abrlab play --json` output: every event line, and the summary (the last line)."""
    lines = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    if not lines or "event" in lines[-1]:
        raise PlaybackError("abrlab play printed no summary")
    return [from_dict(d) for d in lines[:-1]], lines[-1]


def play_one(trace_set: str, path: Path, movie: str, time_scale: float, repeat: int, *, abr: str,
             abr_params: Sequence[str], preset: str, duration_s: float,
             command: Sequence[str] | None = None) -> PlayedSession:
    """Play one session with `abrlab play` (PlaybackError when it fails)."""
    argv = play_argv(path, movie, time_scale, abr, abr_params, preset, command)
    timeout = max(TIMEOUT_MIN_S, TIMEOUT_FACTOR * duration_s / time_scale)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    env = dict(os.environ)
    if command is None:     # this code, wherever the subprocess starts
        env["PYTHONPATH"] = os.pathsep.join([str(CODE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise PlaybackError(f"abrlab play on {path} did not end within {timeout:.0f} s") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise PlaybackError(f"abrlab play on {path} exited with {r.returncode}: {last}")
    events, summary = read_play_output(r.stdout)
    return PlayedSession(trace_set, path.name, str(path), time_scale, repeat, summary, events, load,
                         os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan)


@dataclass(frozen=True)
class PlainCost:
    """What a request costs in `plain` beyond the link model, in wall-clock seconds (the time
    scale multiplies it): the preset's own constant unless `per_request_s` is given, and
    `per_byte_s` per byte of the segment in place of the preset's (none of which has one).
    `LinkParams` refuses a negative or non-finite cost."""

    per_request_s: float | None = None
    per_byte_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"per_request_s": self.per_request_s, "per_byte_s": self.per_byte_s}


def plain_summary(trace_path: str, movie: str, abr: str, abr_params: dict[str, Any], preset: str,
                  time_scale: float, cost: PlainCost = PlainCost()) -> dict[str, Any]:
    """Plain `abrlab simulate --time-scale K` of a session (the trace from its start), with
    `cost` per request."""
    p = with_overhead(preset, cost.per_request_s, cost.per_byte_s).at_time_scale(time_scale)
    return predict(formats.load(trace_path), content_mod.load(movie), abr, abr_params, preset=p).summary()


def judge(s: PlayedSession, movie: str, abr: str, abr_params: dict[str, Any], preset: str,
          cost: PlainCost = PlainCost()) -> PlayedSession:
    """Set the session's two agreements: with its own prediction, and with plain `abrlab simulate`."""
    pred = s.summary.get("prediction") or {}
    if pred.get("available"):
        s.predicted = agreement(s.summary, {"chosen": pred["predicted"]["chosen"], "qoe": pred["predicted"]["qoe"],
                                            "rebuffer_s": pred["predicted"]["rebuffer_s"]})
    s.replayed = pred.get("replayed")
    s.plain = agreement(s.summary, plain_summary(s.path, movie, abr, abr_params, preset, s.time_scale, cost))
    return s


def judge_again(s: PlayedSession, earlier: Sequence[PlayedSession]) -> PlayedSession:
    """Set the session's agreement with the first played repeat of its trace and time scale
    among `earlier` (none for that first repeat itself)."""
    first = next((e for e in earlier if e is not s and e.repeat == 0 and e.path == s.path
                  and e.trace_set == s.trace_set and e.time_scale == s.time_scale), None)
    s.again = None if first is None else agreement(s.summary, first.summary)
    return s


@dataclass(frozen=True)
class SetSummary:
    """One trace set at one time scale: each trace's medians over its repeats, then the set."""

    trace_set: str
    time_scale: float
    traces: int
    sessions: int
    predicted_ok: int            # traces whose median agreement meets the goal (the session's own prediction)
    plain_ok: int                # ... with plain `abrlab simulate`
    replayed_ok: int             # ... with each request's own delay replayed (hindsight)
    again_traces: int            # traces played more than once
    again_ok: int                # ... whose later repeats agree with the first (median), by the same goal
    predicted_same_rung: float   # median over traces of the per-trace median
    plain_same_rung: float
    replayed_same_rung: float
    predicted_abs_qoe_rel: float
    plain_abs_qoe_rel: float
    replayed_abs_qoe_rel: float
    predicted_abs_stall_s: float
    plain_abs_stall_s: float
    replayed_abs_stall_s: float
    again_same_rung: float       # over the traces played more than once (nan when none)
    again_abs_qoe_rel: float
    again_abs_stall_s: float
    load: float                  # median load average (1 min) over the sessions

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in asdict(self).items()}


def figures(a: Agreement | dict[str, Any] | None) -> tuple[float, float, float] | None:
    """(same rung, |QoE rel diff|, |stall diff|) of an agreement or a `replayed` object."""
    if a is None:
        return None
    if isinstance(a, Agreement):
        return a.same_rung, abs(a.qoe_rel_diff), abs(a.stall_diff_s)
    rel = a["qoe_rel_diff"]
    return a["same_rung"], math.inf if rel is None else abs(rel), abs(a["stall_diff_s"])


def per_trace(sessions: Sequence[PlayedSession], which: str) -> dict[str, tuple[float, float, float]]:
    """Per trace: the median same-rung share, |QoE rel diff| and |stall diff| over its repeats."""
    groups: dict[str, list[tuple[float, float, float]]] = {}
    for s in sessions:
        f = figures(getattr(s, which))
        if f is not None:
            groups.setdefault(s.trace, []).append(f)
    return {t: tuple(float(np.median([f[i] for f in fs])) for i in range(3)) for t, fs in groups.items()}


def median_load(sessions: Sequence[PlayedSession]) -> float:
    """The median load average before the sessions (nan when none was read)."""
    loads = [s.load_before for s in sessions if math.isfinite(s.load_before)]
    return float(np.median(loads)) if loads else math.nan


WHICH = ("predicted", "plain", "replayed", "again")  # a session's agreements, in the report's order


def summarise(sessions: Sequence[PlayedSession]) -> list[SetSummary]:
    """Per (trace set, time scale), in the order first seen."""
    groups: dict[tuple[str, float], list[PlayedSession]] = {}
    for s in sessions:
        groups.setdefault((s.trace_set, s.time_scale), []).append(s)
    out = []
    for (name, k), ss in groups.items():
        d = {w: per_trace(ss, w) for w in WHICH}

        def ok(w: str) -> int:
            return sum(v[0] >= GOAL_SAME_RUNG and v[1] <= GOAL_QOE_REL for v in d[w].values())

        def med(w: str, i: int) -> float:
            return float(np.median([v[i] for v in d[w].values()])) if d[w] else math.nan

        out.append(SetSummary(name, k, len({s.trace for s in ss}), len(ss), ok("predicted"), ok("plain"),
                              ok("replayed"), len(d["again"]), ok("again"), med("predicted", 0), med("plain", 0),
                              med("replayed", 0), med("predicted", 1), med("plain", 1), med("replayed", 1),
                              med("predicted", 2), med("plain", 2), med("replayed", 2), med("again", 0),
                              med("again", 1), med("again", 2), median_load(ss)))
    return out


def side_by_side(s: PlayedSession, movie: str, abr: str, abr_params: dict[str, Any], preset: str) -> list[dict]:
    """Per segment: what played (rung, download time, buffer, stall) beside the session's own
    prediction (the simulator re-run with the prediction's set-up)."""
    pred = s.summary.get("prediction") or {}
    played = {int(e.segment): e for e in s.events if isinstance(e, Download)}
    sim = []
    if pred.get("available"):
        over = pred.get("overhead") or {}
        sim = predict(formats.load(s.path), content_mod.load(movie), abr, abr_params, preset=preset,
                      trace_offset_s=pred["trace_offset_s"], overhead_s=over.get("base_s", pred["overhead_s"]),
                      overhead_s_per_byte=over.get("per_byte_s")).segment_log()
    rows = []
    for k in range(max(len(sim), max(played, default=-1) + 1)):
        row: dict[str, Any] = {"segment": k}
        e = played.get(k)
        if e is not None:
            row.update({"played_request_s": round(float(e.session_t_s) - e.latency_s - e.transfer_s, 6),
                        "played_rung": e.rung, "played_download_s": round(e.latency_s + e.transfer_s, 6),
                        "played_buffer_s": round(e.buffer_s, 6), "played_stall_s": round(e.stall_s, 6)})
        if k < len(sim):
            p = sim[k]
            row.update({"predicted_request_s": round(p["request_s"], 6), "predicted_rung": p["rung"],
                        "predicted_download_s": round(p["download_s"], 6), "predicted_buffer_s": round(p["buffer_s"], 6),
                        "predicted_stall_s": round(p["rebuffer_s"], 6)})
        rows.append(row)
    return rows


def write_session(out_dir: Path, s: PlayedSession, side: Sequence[dict]) -> list[Path]:
    """One session's played events with its summary (`logs/SET/xK/TRACE.rN.play.jsonl`) and
    its side-by-side per-segment log (`....side.jsonl`), written as soon as it ends."""
    base = out_dir / "logs" / s.trace_set / f"x{s.time_scale:g}" / f"{s.trace}.r{s.repeat}"
    base.parent.mkdir(parents=True, exist_ok=True)
    play = base.with_name(base.name + ".play.jsonl")
    play.write_text("".join(json.dumps(e.as_dict()) + "\n" for e in s.events) + json.dumps(s.summary) + "\n")
    side_path = base.with_name(base.name + ".side.jsonl")
    side_path.write_text("".join(json.dumps(r) + "\n" for r in side))
    return [play, side_path]


def write_report(out_dir: Path, sessions: Sequence[PlayedSession], summaries: Sequence[SetSummary],
                 meta: dict) -> list[Path]:
    """`sessions.csv` (one row per session) and `summary.json` (the goal, the run, per set)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    rows = [s.row() for s in sessions]
    if rows:
        written.append(write_rows(out_dir / "sessions.csv", rows))
    path = out_dir / "summary.json"
    path.write_text(json.dumps({"goal": {"same_rung": GOAL_SAME_RUNG, "qoe_rel_diff": GOAL_QOE_REL}, "run": meta,
                                "summary": [s.as_dict() for s in summaries]}, indent=2) + "\n")
    written.append(path)
    return written


def recorded_sessions(run_dir: Path) -> list[PlayedSession]:
    """The sessions an earlier run wrote (`logs/SET/xK/TRACE.rN.play.jsonl`), in the order they
    were played (that of its `sessions.csv`, whose load averages they take back), to be judged
    again without playing them. InputError when there are none, or a trace has gone."""
    files = sorted((run_dir / "logs").glob("*/x*/*.play.jsonl"))
    if not files:
        raise InputError("no recorded sessions (logs/SET/xK/TRACE.rN.play.jsonl): was it written by "
                         "`abrlab fidelity player --out`?", where=str(run_dir))
    order: dict[tuple[str, str, float, int], tuple[int, float, float]] = {}
    csv_path = run_dir / "sessions.csv"
    if csv_path.exists():
        with open(csv_path, newline="") as fh:
            for i, r in enumerate(csv.DictReader(fh)):
                order[(r["set"], r["trace"], float(r["time_scale"]), int(r["repeat"]))] = (
                    i, _float(r.get("load_before")), _float(r.get("load_after")))
    out = []
    for f in files:
        stem = f.name[:-len(".play.jsonl")]
        trace, _, rep = stem.rpartition(".r")
        try:
            key = (f.parent.parent.name, trace, float(f.parent.name[1:]), int(rep))
            events, summary = read_play_output(f.read_text())
        except (ValueError, PlaybackError) as exc:
            raise InputError(f"not a recorded session: {exc}", where=str(f)) from None
        path = str(summary.get("trace") or "")
        if not Path(path).is_file():
            raise InputError(f"the trace this session played is not there any more: {path!r}", where=str(f))
        i, before, after = order.get(key, (len(order) + len(out), math.nan, math.nan))
        out.append((i, PlayedSession(key[0], trace, path, key[2], key[3], summary, events, before, after)))
    return [s for _, s in sorted(out, key=lambda x: x[0])]


def _float(x: str | None) -> float:
    try:
        return float(x) if x not in (None, "") else math.nan
    except ValueError:
        return math.nan


def check_inputs(movie: str, time_scales: Sequence[float], repeat: int) -> float:
    """The movie's duration (InputError for a bad movie, time scale or repeat count)."""
    for k in time_scales:
        if not (math.isfinite(k) and k > 0):
            raise InputError(f"--time-scale must be positive, got {k!r}")
    if repeat < 1:
        raise InputError(f"--repeat must be at least 1, got {repeat}")
    return content_mod.load(movie).duration_s


def sets_of(items: Sequence[str]) -> list[tuple[str, list[Path]]]:
    """The trace sets (each folder, file or glob one set), every set non-empty."""
    sets = trace_sets(items)
    for name, paths in sets:
        if not paths:
            raise InputError("no trace files", where=name)
    return sets
