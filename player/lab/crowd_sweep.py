"""Crowds swept over trace sets (`abrlab compare --clients N`): N players per bottleneck.

For every trace (× policy × device × preset) one bottleneck carries N players of that policy:
the trace's capacity times N (`scale_capacity`: the trace is each player's fair share), the
players arriving one after another over the first segment duration (player i at i·d/N),
each with the whole content. Bottlenecks are cut into chunks that one worker simulates in a
single vectorised call (`player.core.crowd.simulate_crowd`), run in-process, in a local
process pool or on a Dask cluster (`player.lab.executors.run_all`); the results do not
depend on where a chunk runs or how the sweep is cut.

Each finished chunk's groups are appended to `OUT/crowds.jsonl` and flushed (one JSON
object per bottleneck: its metrics, `player.core.crowd_metrics`, without the time series),
so an interrupted sweep loses nothing written and a re-run computes only what is missing.
`summarise` gives per policy the mean of each group metric with a 95 % bootstrap CI.
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from netem import content as content_mod, formats
from player.core import device as device_mod
from player.core.crowd import Bottleneck, CrowdClient, scale_capacity, simulate_crowd
from player.core.events import json_safe
from player.lab.executors import run_all
from player.lab.stats import bootstrap_ci

CHUNK_GROUPS = 64
RESULTS = "crowds.jsonl"
#: group metrics reported per policy with a confidence interval
GROUP_FIELDS = ("jain_bitrate", "unfairness", "jain_qoe", "unfairness_time_mean", "inefficiency_mean",
                "inefficiency_weighted", "instability_mean", "utilisation", "avg_bitrate_bps_mean", "qoe_mean", "rebuffer_ratio",
                "switches_mean")
KEY = ("trace", "abr", "abr_params", "device", "preset", "movie", "clients")


def params_text(params) -> str:
    """A policy's parameters as the results name them (`key=value,...`, sorted)."""
    return ",".join(f"{k}={v}" for k, v in sorted(params))


def policy_label(row: dict) -> str:
    return row["abr"] + (f"[{row['abr_params']}]" if row.get("abr_params") else "")


@dataclass(frozen=True)
class CrowdChunk:
    """Bottlenecks one worker simulates together (paths, not objects: picklable)."""

    traces: tuple[str, ...]
    movie: str
    abr: str
    abr_params: tuple[tuple[str, object], ...]
    device: str
    preset: str
    clients: int
    qoe: str
    trace_format: str | None = None      # None: detected from each file's content


@lru_cache(maxsize=4096)
def load_trace(path: str, fmt: str | None = None):
    return formats.load(path, fmt)


@lru_cache(maxsize=64)
def load_movie(path: str):
    return content_mod.load(path)


@lru_cache(maxsize=64)
def load_device(name: str):
    return None if name == "none" else device_mod.load(name)


def bottleneck(trace_path: str, chunk: CrowdChunk) -> Bottleneck:
    """N players of the chunk's policy on N × the trace, arriving over one segment duration."""
    movie = load_movie(chunk.movie)
    n = chunk.clients
    spread = float(movie.segment_duration_s) / n
    clients = [CrowdClient(movie, chunk.abr, dict(chunk.abr_params), load_device(chunk.device), chunk.preset,
                           start_s=i * spread, label={"trace": trace_path, "movie": chunk.movie})
               for i in range(n)]
    return Bottleneck(scale_capacity(load_trace(trace_path, chunk.trace_format), n), clients,
                      label={"name": trace_path})


def run_crowd_chunk(chunk: CrowdChunk) -> list[dict]:
    """Simulate one chunk's bottlenecks; one result row per bottleneck (runs in a worker)."""
    results = simulate_crowd([bottleneck(t, chunk) for t in chunk.traces])
    rows = []
    for t, r in zip(chunk.traces, results):
        m = json_safe(r.metrics(chunk.qoe))
        m.pop("series")
        rows.append({"trace": t, "abr": chunk.abr, "abr_params": params_text(chunk.abr_params),
                     "device": chunk.device, "preset": chunk.preset, "movie": chunk.movie, "clients": chunk.clients,
                     "qoe_model": chunk.qoe, **m})
    return rows


@dataclass
class CrowdSweep:
    traces: Sequence[str]
    movie: str
    abrs: Sequence[str]
    clients: int
    abr_params: dict[str, dict] | None = None
    devices: Sequence[str] = ("none",)
    presets: Sequence[str] = ("default",)
    qoe: str = "linear"
    repeat_to: int | None = None
    trace_format: str | None = None

    def trace_list(self) -> list[str]:
        ts = list(self.traces)
        if self.repeat_to and ts:
            ts = [ts[i % len(ts)] for i in range(self.repeat_to)]
        return ts

    def total(self) -> int:
        return len(self.trace_list()) * len(self.abrs) * len(self.devices) * len(self.presets)

    def chunks(self, done: list[dict], size: int = CHUNK_GROUPS) -> list[CrowdChunk]:
        """Chunks for every bottleneck not yet in `done`."""
        have = Counter(tuple(str(r[k]) for k in KEY) for r in done)
        out = []
        for name in self.abrs:
            params = tuple(sorted((self.abr_params or {}).get(name, {}).items()))
            for device in self.devices:
                for preset in self.presets:
                    seen: Counter = Counter()
                    todo = []
                    for t in self.trace_list():
                        key = (t, name, params_text(params), device, preset, self.movie, str(self.clients))
                        seen[key] += 1
                        if seen[key] > have.get(key, 0):
                            todo.append(t)
                    for i in range(0, len(todo), size):
                        out.append(CrowdChunk(tuple(todo[i:i + size]), self.movie, name, params, device, preset,
                                              self.clients, self.qoe, self.trace_format))
        return out


def load_rows(path: Path) -> list[dict]:
    """The groups written so far; a torn last line (an interrupted write) is dropped."""
    if not path.exists():
        return []
    raw = path.read_text()
    good = raw.rfind("\n") + 1
    if good != len(raw):
        with open(path, "r+") as fh:
            fh.truncate(good)
    return [json.loads(line) for line in raw[:good].splitlines() if line.strip()]


def append_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as fh:
        fh.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


def run_crowd_sweep(sweep: CrowdSweep, out_dir: Path, executor: str = "process", jobs: int | None = None,
                    on_progress: Callable[[int, int], None] | None = None, chunk_size: int = CHUNK_GROUPS
                    ) -> list[dict]:
    """Run what is missing from `out_dir/crowds.jsonl`; return every group of the sweep."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS
    rows = load_rows(path)
    chunks = sweep.chunks(rows, max(1, chunk_size))
    total = sweep.total()
    done = total - sum(len(c.traces) for c in chunks)
    if on_progress:
        on_progress(done, total)
    def save(chunk: CrowdChunk, new: list[dict]) -> None:
        nonlocal done
        append_rows(path, new)
        rows.extend(new)
        done += len(new)
        if on_progress:
            on_progress(done, total)

    run_all(run_crowd_chunk, chunks, save, executor, jobs)
    wanted = {(a, params_text(sorted((sweep.abr_params or {}).get(a, {}).items())), d, p)
              for a in sweep.abrs for d in sweep.devices for p in sweep.presets}
    return [r for r in rows if (r["abr"], r["abr_params"], r["device"], r["preset"]) in wanted
            and r["movie"] == sweep.movie and int(r["clients"]) == sweep.clients]


def summarise(rows: list[dict]) -> dict:
    """Per policy (× device × preset): the mean of each group metric with a 95 % bootstrap CI."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(policy_label(r), r["device"], r["preset"])].append(r)
    table = []
    for (pol, dev, pre), rs in sorted(groups.items()):
        entry = {"abr": pol, "device": dev, "preset": pre, "groups": len(rs), "clients": int(rs[0]["clients"])}
        for f in GROUP_FIELDS:
            v = np.array([r[f] for r in rs if r.get(f) is not None], dtype=np.float64)
            v = v[np.isfinite(v)]
            lo, hi = bootstrap_ci(v) if v.size else (float("nan"), float("nan"))
            entry[f] = {"mean": float(v.mean()) if v.size else None, "ci95": [lo, hi]}
        table.append(entry)
    return {"policies": table}
