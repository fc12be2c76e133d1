"""Sweeps: ABR policies × traces × devices × presets, run where the user says, resumable.

A sweep is cut into chunks of sessions that share policy, device and preset, so each chunk
is one vectorised simulator batch. Chunks run in-process, in a local process pool, or on
a Dask cluster; each finished chunk's rows are appended to `sessions.csv` and flushed to
disk at once, so an interrupted sweep loses nothing written and a re-run computes only
the sessions that are missing.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

from netem import content as content_mod, formats
from player.core import device as device_mod
from player.core import presets as presets_mod
from player.core.simulator import SessionSpec, simulate
from player.lab.executors import run_all
from player.lab.results import CSV_FIELDS, LIVE_FIELDS, ResultsFile

CHUNK_SESSIONS = 128


@dataclass(frozen=True)
class Chunk:
    """Sessions one worker simulates in a single batch (all picklable, paths not objects)."""

    traces: tuple[str, ...]
    movie: str
    abr: str
    abr_params: tuple[tuple[str, object], ...]
    device: str
    preset: str
    qoe: str
    trace_format: str | None = None  # None: detected from each file's content
    live: tuple[tuple[str, object], ...] = ()  # live settings replacing the preset's (`presets.variant`)


def params_text(params: Iterable[tuple[str, object]]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(params))


def job_key(trace: str, abr: str, params: str, device: str, preset: str, movie: str) -> tuple:
    return (trace, abr, params, device, preset, movie)


@lru_cache(maxsize=4096)
def _trace(path: str, fmt: str | None = None):
    return formats.load(path, fmt)


@lru_cache(maxsize=64)
def _movie(path: str):
    return content_mod.load(path)


@lru_cache(maxsize=64)
def _device(name: str):
    return None if name == "none" else device_mod.load(name)


def run_chunk(chunk: Chunk) -> list[dict]:
    """Simulate one chunk and return its CSV rows (runs in a worker)."""
    movie = _movie(chunk.movie)
    device = _device(chunk.device)
    preset = presets_mod.variant(chunk.preset, **dict(chunk.live)) if chunk.live else chunk.preset
    specs = [SessionSpec(_trace(t, chunk.trace_format), movie, chunk.abr, dict(chunk.abr_params), device, preset,
                         label={"trace": t, "movie": chunk.movie}) for t in chunk.traces]
    rows = []
    for r in simulate(specs):
        s = r.summary(chunk.qoe)
        q = s["qoe"]
        rows.append({
            **{k: s[k] for k in CSV_FIELDS if k in s and k not in ("qoe", "chosen", "abr_params")},
            "abr": chunk.abr, "abr_params": params_text(chunk.abr_params), "device": chunk.device,
            "qoe": q["total"], "qoe_model": chunk.qoe,
            "qoe_utility": q["components"]["utility"],
            "qoe_rebuffer_penalty": q["components"]["rebuffer_penalty"],
            "qoe_smoothness_penalty": q["components"]["smoothness_penalty"],
            "qoe_linear": s["qoe_all"]["linear"]["total"], "qoe_log": s["qoe_all"]["log"]["total"],
            "qoe_hd": s["qoe_all"]["hd"]["total"], "qoe_twitch": s["qoe_all"]["twitch"]["total"],
            **{k: s.get(k, "") for k in LIVE_FIELDS},
            "chosen": " ".join(map(str, s["chosen"])),
        })
    return rows


@dataclass
class Sweep:
    traces: Sequence[str]
    movie: str
    abrs: Sequence[str]
    abr_params: dict[str, dict] = field(default_factory=dict)
    devices: Sequence[str] = ("none",)
    presets: Sequence[str] = ("default",)
    qoe: str = "linear"
    repeat_to: int | None = None   # repeat the trace list to this many sessions per policy
    trace_format: str | None = None  # the traces' format (`--from`); None: detected per file
    live: dict = field(default_factory=dict)   # live settings replacing the live presets' (`presets.variant`)

    def trace_list(self) -> list[str]:
        ts = list(self.traces)
        if self.repeat_to and ts:
            ts = [ts[i % len(ts)] for i in range(self.repeat_to)]
        return ts

    def total(self) -> int:
        return len(self.trace_list()) * len(self.abrs) * len(self.devices) * len(self.presets)


def missing_chunks(sweep: Sweep, rows: list[dict], size: int = CHUNK_SESSIONS) -> list[Chunk]:
    """Chunks for every (trace occurrence × policy × device × preset) not yet in `rows`."""
    have = Counter(job_key(r["trace"], r["abr"], r["abr_params"], r["device"], r["preset"], r["movie"]) for r in rows)
    out = []
    for abr_name in sweep.abrs:
        params = tuple(sorted(sweep.abr_params.get(abr_name, {}).items()))
        ptxt = params_text(params)
        for device in sweep.devices:
            for preset in sweep.presets:
                seen: Counter = Counter()
                todo = []
                for t in sweep.trace_list():
                    key = job_key(t, abr_name, ptxt, device, preset, sweep.movie)
                    seen[key] += 1
                    if seen[key] > have.get(key, 0):
                        todo.append(t)
                live = tuple(sorted((k, v) for k, v in sweep.live.items() if v is not None)) \
                    if presets_mod.get(preset).live is not None else ()
                for i in range(0, len(todo), size):
                    out.append(Chunk(tuple(todo[i:i + size]), sweep.movie, abr_name, params, device, preset, sweep.qoe,
                                     sweep.trace_format, live))
    return out


def run_sweep(sweep: Sweep, out_dir: Path, executor: str = "process", jobs: int | None = None,
              on_progress: Callable[[int, int], None] | None = None, chunk_size: int = CHUNK_SESSIONS) -> list[dict]:
    """Run what is missing from `out_dir/sessions.csv` and return every row of the sweep."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = ResultsFile(out_dir / "sessions.csv")
    rows = results.load()
    (out_dir / "sweep.json").write_text(json.dumps(asdict(sweep), indent=1, default=list) + "\n")
    chunks = missing_chunks(sweep, rows, chunk_size)
    total = sweep.total()
    done = total - sum(len(c.traces) for c in chunks)
    if on_progress:
        on_progress(done, total)
    for new in run_all(run_chunk, chunks, executor, jobs):
        results.append(new)
        rows.extend(new)
        done += len(new)
        if on_progress:
            on_progress(done, total)
    wanted = {(a, params_text(sorted(sweep.abr_params.get(a, {}).items())), d, p)
              for a in sweep.abrs for d in sweep.devices for p in sweep.presets}
    return [r for r in rows if (r["abr"], r["abr_params"], r["device"], r["preset"]) in wanted
            and r["movie"] == sweep.movie]
