"""Sabre (github.com/UMass-LIDS/sabre) beside our simulator, session by session.

Sabre is run unmodified and in-process: its `sabre.py` is compiled once and executed as
`__main__` with the command line of each session (`-n TRACE -m MOVIE -a POLICY -v`, and
`-noa` unless abandonment is on), its standard output captured and parsed: the summary
("total played bitrate", "total rebuffer", ...) and, from the verbose lines, every
download attempt. Our simulator runs the same trace and movie under the preset `sabre`
(`-noa`) or `sabre-abandon` (Sabre's default run), where Sabre's policy names mean
Sabre's own policies.

Traces in another format than Sabre's JSON are converted to it first (into a temporary
folder) and both simulators read the converted file. The movie must be a Sabre movie JSON.
"""
from __future__ import annotations

import contextlib
import io
import math
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from netem import content as content_mod
from netem import formats
from netem.errors import InputError, UnavailableError
from player.core.simulator import SessionResult, SessionSpec, simulate
from player.lab.fidelity.agreement import SessionPair

#: The policies Sabre has by name (its `abr_list`, less the unfinished `bba`).
POLICIES = ("bola", "bolae", "throughput", "dynamic", "dynamicdash")
#: Our presets for Sabre's two usual runs.
PRESET_NO_ABANDON = "sabre"
PRESET_ABANDON = "sabre-abandon"

_ATTEMPT = re.compile(r"^\[(-?\d+)-(-?\d+)\]\s+(\d+): q=(\d+) s=(\d+)/(\d+) t=(-?\d+)=(-?\d+)\+(-?\d+)")
_LEVELS = re.compile(r"bl=(-?\d+)->(-?\d+)->(-?\d+)")
_WAIT = re.compile(r"^(full buffer|abr) delay (-?\d+) bl=")


@dataclass
class SabreRun:
    """What Sabre printed for one session: the summary and every download attempt (ms, bits
    as Sabre prints them, converted to seconds and bytes here)."""

    summary: dict[str, float]
    attempts: list[dict] = field(default_factory=list)
    error: str = ""

    def avg_bitrate_bps(self, n_segments: int) -> float:
        total = self.summary.get("total played bitrate")
        return math.nan if total is None or n_segments <= 0 else total * 1000.0 / n_segments

    @property
    def rebuffer_s(self) -> float:
        return self.summary.get("total rebuffer", math.nan)

    def final_attempts(self) -> dict[int, dict]:
        """The attempt that completed, per segment index."""
        return {a["segment"]: a for a in self.attempts if not a["abandoned"]}


def parse_output(text: str) -> SabreRun:
    """Sabre's standard output → its summary and (with -v) its download attempts."""
    summary: dict[str, float] = {}
    attempts: list[dict] = []
    pending = {"full buffer": 0.0, "abr": 0.0}
    for line in text.splitlines():
        m = _ATTEMPT.match(line)
        if m:
            t0, t1, k, q, got, size, t, ttfb, ttdl = (int(x) for x in m.groups())
            lv = _LEVELS.search(line)
            attempts.append({
                "segment": k, "rung": q, "start_s": t0 / 1000.0, "end_s": t1 / 1000.0,
                "bytes": got / 8.0, "size_bytes": size / 8.0, "time_s": t / 1000.0, "latency_s": ttfb / 1000.0,
                "abandoned": "ABANDONED" in line,
                "buffer_request_s": int(lv.group(1)) / 1000.0 if lv else math.nan,
                "buffer_s": int(lv.group(3)) / 1000.0 if lv else math.nan,
                "wait_s": pending["full buffer"], "delay_s": pending["abr"]})
            pending = {"full buffer": 0.0, "abr": 0.0}
            continue
        w = _WAIT.match(line)
        if w:
            pending[w.group(1)] += int(w.group(2)) / 1000.0
            continue
        key, sep, value = line.partition(": ")
        if sep and not line.startswith("["):
            try:
                summary[key.strip()] = float(value)
            except ValueError:
                pass
    return SabreRun(summary, attempts)


class SabreProgram:
    """Sabre's `sabre.py`, compiled once, run in-process as `__main__` per session."""

    def __init__(self, path: str | Path) -> None:
        self.path = self.locate(path)
        try:
            source = self.path.read_text()
            self._code = compile(source, str(self.path), "exec")
        except (OSError, SyntaxError, ValueError) as exc:
            raise UnavailableError(f"cannot load Sabre ({type(exc).__name__}: {exc})", where=str(self.path)) from None

    @staticmethod
    def locate(path: str | Path) -> Path:
        """`path` is sabre.py itself, or a Sabre checkout (its src/sabre.py)."""
        p = Path(path)
        for cand in (p, p / "src" / "sabre.py", p / "sabre.py"):
            if cand.is_file():
                return cand
        raise UnavailableError("Sabre not found: expected sabre.py, or a checkout with src/sabre.py", where=str(path))

    def run(self, argv: Sequence[str]) -> SabreRun:
        """One session; a failure inside Sabre becomes `error` (its last line), not an exception."""
        out, err = io.StringIO(), io.StringIO()
        old_argv = sys.argv
        sys.argv = [str(self.path), *argv]
        error = ""
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(self._code, {"__name__": "__main__", "__file__": str(self.path)})
        except SystemExit as exc:
            if exc.code not in (0, None):
                lines = err.getvalue().strip().splitlines()
                error = f"Sabre exited with status {exc.code}" + (f": {lines[-1]}" if lines else "")
        except Exception as exc:  # Sabre's own failure on this session: report it, go on
            error = f"Sabre failed: {type(exc).__name__}: {exc}"
        finally:
            sys.argv = old_argv
        run = parse_output(out.getvalue())
        run.error = error
        return run


def sabre_argv(trace_path: str, movie_path: str, policy: str, abandon: bool, extra: Sequence[str] = ()) -> list[str]:
    argv = ["-n", trace_path, "-m", movie_path, "-a", policy, "-v", *extra]
    return argv if abandon else argv + ["-noa"]


@dataclass
class Session:
    """One trace of one set, as both simulators read it."""

    trace_set: str
    label: str            # the path given (or found in a given folder)
    sabre_path: str       # the file Sabre reads (the same, or its Sabre JSON conversion)
    trace: object


def gather_traces(items: Sequence[str | Path], workdir: Path) -> list[Session]:
    """Each item (a folder, a file or a glob) is one trace set, named by its last path part."""
    out = []
    for item in items:
        name = Path(item).name or str(item)
        for path in formats.expand_paths([item]):
            tr = formats.load(path)
            sabre_path = str(path)
            if tr.format != "sabre":
                conv = workdir / name / (path.name + ".json")
                conv.parent.mkdir(parents=True, exist_ok=True)
                formats.save(tr, conv, "sabre")
                sabre_path = str(conv)
                tr = formats.load(conv)
            out.append(Session(name, str(path), sabre_path, tr))
    return out


def side_by_side(ours: SessionResult, theirs: SabreRun) -> list[dict]:
    """Per segment: our request, rung, download and buffer beside Sabre's."""
    final = theirs.final_attempts()
    aborted: dict[int, list[int]] = {}
    waited: dict[int, list[float]] = {}     # full-buffer wait and policy delay, over all attempts
    for a in theirs.attempts:
        if a["abandoned"]:
            aborted.setdefault(a["segment"], []).append(a["rung"])
        w = waited.setdefault(a["segment"], [0.0, 0.0])
        w[0] += a["wait_s"]
        w[1] += a["delay_s"]
    rows = []
    for rec in ours.segment_log():
        k = rec["segment"]
        a = final.get(k, {})
        rows.append({
            "segment": k, "ours_rung": rec["rung"], "sabre_rung": a.get("rung"),
            "ours_request_s": rec["request_s"], "sabre_request_s": a.get("start_s"),
            "ours_wait_s": rec["wait_s"], "sabre_wait_s": waited.get(k, [None, None])[0],
            "sabre_delay_s": waited.get(k, [None, None])[1],
            "ours_download_s": rec["download_s"], "sabre_download_s": a.get("time_s"),
            "ours_rebuffer_s": rec["rebuffer_s"],
            "ours_buffer_s": rec["buffer_s"], "sabre_buffer_s": a.get("buffer_s"),
            "sabre_abandoned_rungs": aborted.get(k, []),
        })
    return rows


@dataclass
class Comparison:
    pairs: list[SessionPair]
    logs: dict[tuple[str, str, str], list[dict]]   # (set, policy, trace label) -> side-by-side rows


def compare(program: SabreProgram, trace_items: Sequence[str | Path], movie_path: str | Path,
            policies: Sequence[str] = POLICIES, abandon: bool = False, keep_logs: bool = False,
            progress: Callable[[str, int, int], None] | None = None, sabre_args: Sequence[str] = (),
            abr_params: dict | None = None) -> Comparison:
    """Run every policy on every trace in both simulators; per-session pairs (and logs).
    `sabre_args` go to Sabre as they are (e.g. -ao), `abr_params` to our policies (e.g.
    osc=True): keeping the two saying the same is the caller's part."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise InputError(f"Sabre has no policy {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    movie = content_mod.load(movie_path)
    if movie.format != "sabre-json":
        raise InputError("Sabre needs its own movie JSON (segment_duration_ms, bitrates_kbps, "
                         "segment_sizes_bits)", where=str(movie_path))
    preset = PRESET_ABANDON if abandon else PRESET_NO_ABANDON
    pairs: list[SessionPair] = []
    logs: dict[tuple[str, str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="abrlab-sabre-") as tmp:
        sessions = gather_traces(trace_items, Path(tmp))
        for policy in policies:
            specs = [SessionSpec(s.trace, movie, policy, dict(abr_params or {}), preset=preset,
                                 label={"trace": s.label}) for s in sessions]
            ours = simulate(specs)
            for i, (s, res) in enumerate(zip(sessions, ours)):
                theirs = program.run(sabre_argv(s.sabre_path, str(movie_path), policy, abandon, sabre_args))
                summary = res.summary()
                pairs.append(SessionPair(
                    trace_set=s.trace_set, trace=s.label, policy=policy,
                    ours_bitrate_bps=summary["avg_bitrate_bps"], ours_rebuffer_s=summary["rebuffer_s"],
                    peer_bitrate_bps=theirs.avg_bitrate_bps(movie.n_segments), peer_rebuffer_s=theirs.rebuffer_s,
                    error=theirs.error,
                    extra={"ours_abandons": summary["abandons"],
                           "peer_abandons": sum(a["abandoned"] for a in theirs.attempts),
                           "first_divergence": _first_divergence(res, theirs)}))
                if keep_logs:
                    logs[(s.trace_set, policy, s.label)] = side_by_side(res, theirs)
                if progress:
                    progress(policy, i + 1, len(sessions))
    return Comparison(pairs, logs)


def _first_divergence(ours: SessionResult, theirs: SabreRun) -> int:
    """The first segment whose rung differs (-1: none, or Sabre printed no attempts)."""
    final = theirs.final_attempts()
    if not final:
        return -1
    sabre = np.array([final.get(k, {}).get("rung", -1) for k in range(ours.chosen.size)])
    diff = np.flatnonzero(sabre != ours.chosen)
    return int(diff[0]) if diff.size else -1
