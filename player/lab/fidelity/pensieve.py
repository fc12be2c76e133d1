"""Pensieve (github.com/hongzimao/pensieve) beside our simulator, trace by trace.

Pensieve's `test/bb.py` (its buffer-based baseline, BB) runs with its `test/fixed_env.py`
and `test/load_trace.py` as they are, in a subprocess whose working folder is laid out as
`test/` expects: `cooked_traces/` (every trace written in Pensieve's cooked format by
`netem.formats`, which Pensieve reads exactly as the trace we simulate), `video_size_0..5`
(the movie's segment sizes in bytes) and `results/`, where it writes one log per trace. Our
simulator reads the same cooked files and the same sizes under the preset `pensieve`, where
the policy `bba` is Pensieve's BB. Where those folders and files are, the ladder, the number
of chunks and the chunk length are read from the scripts' own constants (never by running
them).

Pensieve's environment plays TOTAL_VIDEO_CHUNCK chunks (48) and reads the sizes of one more
(the look-ahead after its last chunk), so both sides get the movie's first
TOTAL_VIDEO_CHUNCK + 1 segments, and the preset plays all but the last.

The scripts are Python 2. The interpreter may be a Python 2 with numpy (they run as they
are) or a Python 3 with numpy (the default: the one running abrlab), through
`pensieve_shim.py`, which compiles them with Python 2's meaning without touching the files.

A session agrees when our linear QoE, summed over chunks 2..48 as Pensieve's
test/plot_results.py sums its per-chunk rewards, is within 1% of Pensieve's; the goal is 95%
of the sessions of each trace set.
"""
from __future__ import annotations

import ast
import csv
import json
import math
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from netem import content as content_mod
from netem import formats
from netem.content import Content
from netem.errors import InputError, UnavailableError
from player.core.presets import get as get_preset
from player.core.rules import SegmentPlan, played_plan
from player.core.simulator import SessionResult, SessionSpec, simulate

POLICY = "bba"                  # ours, under the preset below, is Pensieve's test/bb.py
PRESET = "pensieve"
SCRIPT = "bb.py"
SHIM = Path(__file__).with_name("pensieve_shim.py")
QOE_REL = 0.01                  # a session agrees when |ours − Pensieve's| <= 1% of |Pensieve's|
GOAL_SHARE = 0.95               # of the sessions of a trace set
SAME_S = 1e-6                   # per-chunk times closer than this are the same
TIMEOUT_S = 60.0                # for Pensieve's run of a trace set, plus TIMEOUT_PER_TRACE_S per trace
TIMEOUT_PER_TRACE_S = 5.0

_CONSTANT = re.compile(r"^([A-Z][A-Z0-9_]*)[ \t]*=[ \t]*([^#\n]+)", re.M)


def script_constants(path: Path) -> dict[str, object]:
    """The module-level constants of one of Pensieve's scripts that are plain literals
    (`NAME = 4000.0`, `LOG_FILE = './results/log_sim_bb'`), read without running it."""
    out: dict[str, object] = {}
    for name, value in _CONSTANT.findall(path.read_text(errors="replace")):
        try:
            out[name] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            continue
    return out


@dataclass(frozen=True)
class PensieveTest:
    """Pensieve's test/ folder and what its scripts say about the run's layout and movie."""

    folder: Path
    script: Path
    bitrates_bps: tuple[float, ...]   # bb.py's VIDEO_BIT_RATE (kbit/s there)
    chunks: int                       # fixed_env.py's TOTAL_VIDEO_CHUNCK
    chunk_s: float                    # fixed_env.py's VIDEO_CHUNCK_LEN (ms there)
    log_prefix: str                   # bb.py's LOG_FILE + "_": the log of trace NAME is LOG_FILE_NAME
    size_prefix: str                  # fixed_env.py's VIDEO_SIZE_FILE: the sizes of rung q are in it + q
    traces_folder: str                # load_trace.py's COOKED_TRACE_FOLDER

    @classmethod
    def find(cls, path: str | Path) -> "PensieveTest":
        """`path` is Pensieve's test/ folder, a checkout holding it, or its bb.py."""
        p = Path(path)
        if not p.exists():
            raise InputError("no such file or folder (expected Pensieve's test/ folder)", where=str(p))
        candidates = [p] if p.is_file() else [p / SCRIPT, p / "test" / SCRIPT]
        script = next((c for c in candidates if c.is_file()), None)
        if script is None:
            raise InputError(f"not Pensieve's test folder: no {SCRIPT} here or in test/", where=str(p))
        folder = script.parent
        consts = {}
        for name in (SCRIPT, "fixed_env.py", "load_trace.py"):
            if not (folder / name).is_file():
                raise InputError(f"Pensieve's test folder has no {name}", where=str(folder))
            consts[name] = script_constants(folder / name)

        def need(name: str, where: str, kind: type) -> object:
            v = consts[where].get(name)
            if not isinstance(v, kind):
                raise InputError(f"cannot read {name} (expected a literal {kind.__name__})", where=str(folder / where))
            return v

        rates = need("VIDEO_BIT_RATE", SCRIPT, list)
        return cls(folder=folder, script=script, bitrates_bps=tuple(float(r) * 1000.0 for r in rates),
                   chunks=int(need("TOTAL_VIDEO_CHUNCK", "fixed_env.py", int)),
                   chunk_s=float(need("VIDEO_CHUNCK_LEN", "fixed_env.py", float)) / 1000.0,
                   log_prefix=str(need("LOG_FILE", SCRIPT, str)) + "_",
                   size_prefix=str(need("VIDEO_SIZE_FILE", "fixed_env.py", str)),
                   traces_folder=str(need("COOKED_TRACE_FOLDER", "load_trace.py", str)))

    def movie(self, path: str | Path | None) -> Content:
        """The movie both sides play: `path` (any format `netem.content` reads), or the
        video_size_N files in the test folder; its first `chunks` + 1 segments. Refused
        unless its ladder is Pensieve's (its QoE weighs VIDEO_BIT_RATE, not the movie's)."""
        if path is None:
            if not (self.folder / (Path(self.size_prefix).name + "0")).is_file():
                raise InputError("no --movie given and no video_size_N files here (Pensieve's "
                                 "get_video_sizes.py writes them)", where=str(self.folder))
            path = self.folder
        c = content_mod.load(path)
        where = str(path)
        if c.n_rungs != len(self.bitrates_bps) or not np.allclose(c.bitrates_bps, self.bitrates_bps):
            raise InputError(f"the movie's ladder {[round(b / 1e3) for b in c.bitrates_bps]} kbit/s is not "
                             f"Pensieve's VIDEO_BIT_RATE {[round(b / 1e3) for b in self.bitrates_bps]}", where=where)
        need = self.chunks + 1
        if c.n_segments < need:
            raise InputError(f"Pensieve plays TOTAL_VIDEO_CHUNCK = {self.chunks} chunks and reads the sizes of "
                             f"{need}; the movie has {c.n_segments} segments", where=where)
        return replace(c, segment_durations_s=c.segment_durations_s[:need],
                       segment_sizes_bytes=c.segment_sizes_bytes[:need])


@dataclass
class PensievePair:
    """One trace as our simulator and Pensieve played it (QoE: linear, chunks 2..N)."""

    trace_set: str
    trace: str
    policy: str
    ours_qoe: float
    ours_bitrate_bps: float
    ours_rebuffer_s: float
    peer_qoe: float = math.nan
    peer_bitrate_bps: float = math.nan
    peer_rebuffer_s: float = math.nan
    first_divergence: int = -1    # first chunk whose rung, buffer, download or stall differ; -1: none
    error: str = ""               # Pensieve has no result for this trace (why)

    @property
    def qoe_rel_diff(self) -> float:
        """(ours − Pensieve's) / |Pensieve's| (NaN without a result)."""
        if not math.isfinite(self.peer_qoe):
            return math.nan
        return (self.ours_qoe - self.peer_qoe) / max(abs(self.peer_qoe), 1e-12)

    def agrees(self, qoe_rel: float = QOE_REL) -> bool:
        d = self.qoe_rel_diff
        return not self.error and math.isfinite(d) and abs(d) <= qoe_rel + 1e-12

    def row(self) -> dict:
        return {**asdict(self), "qoe_rel_diff": self.qoe_rel_diff, "ok": self.agrees()}


@dataclass
class Comparison:
    pairs: list[PensievePair]
    logs: dict[tuple[str, str], list[dict]] = field(default_factory=dict)  # (set, trace) -> side by side
    notes: list[str] = field(default_factory=list)                         # why sessions may differ anyway


def trace_sets(items: Sequence[str | Path]) -> list[tuple[str, list[Path]]]:
    """Each item (a folder, a file or a glob) is one set, named by its last path part."""
    out: list[tuple[str, list[Path]]] = []
    seen: set[str] = set()
    for item in items:
        p = Path(item)
        if not p.exists() and not any(ch in str(item) for ch in "*?["):
            raise InputError("no such file or folder", where=str(item))
        name = p.name if p.is_dir() else p.stem
        base, i = name, 2
        while name in seen:
            name, i = f"{base}-{i}", i + 1
        seen.add(name)
        out.append((name, formats.expand_paths([item])))
    return out


def read_log(path: Path) -> list[dict]:
    """One trace's log from bb.py (tab-separated: time_stamp_s, bitrate_kbps, buffer_s,
    rebuffer_s, chunk_size_bytes, download_ms, reward; a blank line ends the video)."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            break
        f = line.split("\t")
        if len(f) != 7:
            raise InputError(f"unexpected log line {line[:60]!r}", where=str(path))
        rows.append({"bitrate_bps": float(f[1]) * 1000.0, "buffer_s": float(f[2]), "rebuffer_s": float(f[3]),
                     "size_bytes": int(float(f[4])), "download_s": float(f[5]) / 1000.0, "reward": float(f[6])})
    return rows


def write_inputs(test: PensieveTest, folder: Path, paths: Sequence[Path], movie: Content) -> dict[str, Path]:
    """Lay out `folder` as Pensieve's test/ expects; returns each trace's cooked file by name."""
    cooked_dir = folder / test.traces_folder
    cooked_dir.mkdir(parents=True, exist_ok=True)
    (folder / test.log_prefix).parent.mkdir(parents=True, exist_ok=True)
    sizes = movie.segment_sizes_bytes.astype(np.int64)
    for q in range(movie.n_rungs):
        (folder / f"{test.size_prefix}{q}").write_text("".join(f"{int(s)}\n" for s in sizes[:, q]))
    out: dict[str, Path] = {}
    for p in paths:
        name, i = p.name, 2
        while name in out:
            name, i = f"{p.name}-{i}", i + 1
        out[name] = formats.save(formats.load(p), cooked_dir / name, "pensieve")
    return out


def run_peer(test: PensieveTest, folder: Path, python: str, n_traces: int) -> str:
    """Run bb.py in `folder`; returns "" or, when it failed, its last line of stderr."""
    try:
        done = subprocess.run([python, str(SHIM), str(test.script)], cwd=folder, capture_output=True, text=True,
                              timeout=TIMEOUT_S + TIMEOUT_PER_TRACE_S * n_traces)
    except FileNotFoundError:
        raise InputError(f"cannot run {python!r}: no such program (--python)") from None
    except subprocess.TimeoutExpired as exc:
        return f"Pensieve did not finish within {exc.timeout:g} s"
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else f"Pensieve exited with status {done.returncode}"
    return ""


def compare(test: PensieveTest, trace_items: Sequence[str | Path], movie: str | Path | None = None,
            python: str | None = None) -> Comparison:
    """Pensieve's BB and ours on every trace of every set (see the module docstring)."""
    content = test.movie(movie)
    python = python or sys.executable
    result = Comparison(pairs=[], notes=chunk_notes(test, content))
    sets = trace_sets(trace_items)
    with tempfile.TemporaryDirectory(prefix="abrlab-pensieve-") as tmp:
        for set_name, paths in sets:
            folder = Path(tmp) / set_name
            cooked = write_inputs(test, folder, paths, content)
            error = run_peer(test, folder, python, len(cooked))
            specs = [SessionSpec(formats.load(path, "pensieve"), content, POLICY, preset=PRESET,
                                 label={"trace": name}) for name, path in cooked.items()]
            for name, ours in zip(cooked, simulate(specs)):
                log = folder / f"{test.log_prefix}{name}"
                peer = read_log(log) if log.is_file() and not error else None
                pair, rows = judge(set_name, name, ours, peer, error or "Pensieve wrote no log for this trace")
                result.pairs.append(pair)
                result.logs[(set_name, name)] = rows
    if result.pairs and all(p.error for p in result.pairs):
        raise UnavailableError(f"Pensieve's {SCRIPT} failed on every trace with {python}: {result.pairs[0].error}")
    return result


def chunk_notes(test: PensieveTest, movie: Content) -> list[str]:
    """A note when the preset does not credit the movie's chunks with Pensieve's VIDEO_CHUNCK_LEN
    (a movie other than EnvivioDash3: Pensieve's environment assumes its constant anyway)."""
    played = played_plan(SegmentPlan.from_content(movie), get_preset(PRESET)).durations_s
    if np.allclose(played, test.chunk_s):
        return []
    return [f"Pensieve credits every chunk with VIDEO_CHUNCK_LEN = {test.chunk_s:g} s; the preset {PRESET} "
            f"credits this movie's with {sorted(set(np.round(played, 6).tolist()))} s, so sessions will differ"]


def judge(set_name: str, trace: str, ours: SessionResult, peer: list[dict] | None,
          error: str) -> tuple[PensievePair, list[dict]]:
    """The pair for one trace and the side-by-side per-chunk rows. Our buffer is the level when
    the next request goes out (after any full-buffer wait), as Pensieve logs it."""
    s = ours.summary()
    pair = PensievePair(set_name, trace, POLICY, ours_qoe=float(s["qoe"]["total"]),
                        ours_bitrate_bps=float(ours.bitrate_bps.mean()), ours_rebuffer_s=float(ours.rebuffer_s.sum()))
    K = ours.chosen.size
    seen_buffer = ours.buffer_s - np.append(ours.wait_s[1:], 0.0)
    rows = [{"chunk": k, "ours_bitrate_bps": float(ours.bitrate_bps[k]), "ours_buffer_s": float(seen_buffer[k]),
             "ours_download_s": float(ours.download_s[k]), "ours_rebuffer_s": float(ours.rebuffer_s[k]),
             "ours_wait_s": float(ours.wait_s[k])} for k in range(K)]
    if peer is None:
        pair.error = error
        return pair, rows
    if len(peer) != K:
        pair.error = f"Pensieve played {len(peer)} chunks, we played {K}"
    pair.peer_qoe = float(sum(r["reward"] for r in peer[1:]))
    pair.peer_bitrate_bps = float(np.mean([r["bitrate_bps"] for r in peer]))
    pair.peer_rebuffer_s = float(sum(r["rebuffer_s"] for r in peer))
    for k in range(max(K, len(peer))):
        if k >= K:
            rows.append({"chunk": k})
        if k < len(peer):
            rows[k].update({f"peer_{key}": v for key, v in peer[k].items()})
        if pair.first_divergence < 0 and k < min(K, len(peer)) and _differ(rows[k], last=k == K - 1):
            pair.first_divergence = k
    if pair.first_divergence < 0 and len(peer) != K:
        pair.first_divergence = min(K, len(peer))
    return pair, rows


def _differ(row: dict, last: bool) -> bool:
    if row["ours_bitrate_bps"] != row["peer_bitrate_bps"]:
        return True
    keys = ("download_s", "rebuffer_s") if last else ("buffer_s", "download_s", "rebuffer_s")
    return any(abs(row[f"ours_{k}"] - row[f"peer_{k}"]) > SAME_S for k in keys)


@dataclass(frozen=True)
class SetSummary:
    trace_set: str
    sessions: int
    agreeing: int               # QoE within 1%
    identical: int              # every chunk the same (rung, buffer, download, stall)
    failed: int
    mean_abs_qoe_rel_diff: float
    max_abs_qoe_rel_diff: float

    @property
    def share(self) -> float:
        return self.agreeing / self.sessions if self.sessions else 0.0

    @property
    def meets_goal(self) -> bool:
        return self.sessions > 0 and self.share >= GOAL_SHARE - 1e-12

    def as_dict(self) -> dict:
        return {**asdict(self), "share": self.share, "goal_share": GOAL_SHARE, "meets_goal": self.meets_goal}


def summarise(pairs: Sequence[PensievePair]) -> list[SetSummary]:
    """Per trace set, in the order first seen."""
    groups: dict[str, list[PensievePair]] = {}
    for p in pairs:
        groups.setdefault(p.trace_set, []).append(p)
    out = []
    for name, ps in groups.items():
        d = [abs(p.qoe_rel_diff) for p in ps if math.isfinite(p.qoe_rel_diff)]
        out.append(SetSummary(name, len(ps), sum(p.agrees() for p in ps),
                              sum(not p.error and p.first_divergence < 0 for p in ps), sum(bool(p.error) for p in ps),
                              float(np.mean(d)) if d else math.nan, float(np.max(d)) if d else math.nan))
    return out


def write_report(out_dir: Path, result: Comparison, summaries: Sequence[SetSummary], meta: dict) -> list[Path]:
    """`sessions.csv` (one row per trace), `summary.json` and the side-by-side per-chunk logs
    `logs/SET/bba/TRACE.jsonl` (ours_* and peer_* per chunk)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    rows = [p.row() for p in result.pairs]
    if rows:
        path = out_dir / "sessions.csv"
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        written.append(path)
    path = out_dir / "summary.json"
    path.write_text(json.dumps({"goal": {"qoe_rel": QOE_REL, "share": GOAL_SHARE}, "run": meta,
                                "summary": [s.as_dict() for s in summaries]}, indent=2) + "\n")
    written.append(path)
    for (set_name, trace), chunks in result.logs.items():
        path = out_dir / "logs" / set_name / POLICY / f"{trace}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in chunks))
    return written
