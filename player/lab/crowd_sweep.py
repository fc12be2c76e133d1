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
from pathlib import Path
from typing import Callable

import numpy as np

from netem import content as content_mod, formats
from player.core import device as device_mod
from player.core.crowd import Bottleneck, CrowdClient, scale_capacity, simulate_crowd
from player.core.json_values import json_safe
from player.lab.executors import run_all
from player.lab.stats import bootstrap_ci
from player.lab.sweep import Chunk, Sweep

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
    """Bottlenecks one worker simulates together: a sweep's chunk (`player.lab.sweep.Chunk`:
    trace paths, movie, policy, parameters, device, preset, QoE model, trace format), one
    bottleneck per trace, with `clients` players each (picklable)."""

    chunk: Chunk
    clients: int

    @property
    def traces(self) -> tuple[str, ...]:
        return self.chunk.traces


def bottlenecks(crowd: CrowdChunk) -> list[Bottleneck]:
    """The chunk's bottlenecks: on each, N players of the chunk's policy on N × the trace,
    arriving over one segment duration (each input read once per chunk)."""
    c, n = crowd.chunk, crowd.clients
    movie = content_mod.load(c.movie)
    device = None if c.device == "none" else device_mod.load(c.device)
    links = {t: scale_capacity(formats.load(t, c.trace_format), n) for t in dict.fromkeys(c.traces)}
    spread = float(movie.segment_duration_s) / n
    return [Bottleneck(links[t], [CrowdClient(movie, c.abr, dict(c.abr_params), device, c.preset,
                                              start_s=i * spread, label={"trace": t, "movie": c.movie})
                                  for i in range(n)], label={"name": t})
            for t in c.traces]


def run_crowd_chunk(crowd: CrowdChunk) -> list[dict]:
    """Simulate one chunk's bottlenecks; one result row per bottleneck (runs in a worker)."""
    c = crowd.chunk
    results = simulate_crowd(bottlenecks(crowd))
    rows = []
    for t, r in zip(c.traces, results):
        m = json_safe(r.metrics(c.qoe))
        m.pop("series")
        rows.append({"trace": t, "abr": c.abr, "abr_params": params_text(c.abr_params), "device": c.device,
                     "preset": c.preset, "movie": c.movie, "clients": crowd.clients, "qoe_model": c.qoe, **m})
    return rows


@dataclass
class CrowdSweep:
    """A sweep (`player.lab.sweep.Sweep`: traces, movie, policies and their parameters,
    devices, presets, QoE model, repetition, trace format) run as crowds of `clients`
    players per bottleneck; one bottleneck per trace occurrence × policy × device × preset."""

    sweep: Sweep
    clients: int

    def total(self) -> int:
        """Bottlenecks in the sweep."""
        return self.sweep.total()

    def chunks(self, done: list[dict], size: int = CHUNK_GROUPS) -> list[CrowdChunk]:
        """Chunks for every bottleneck not yet in `done`."""
        sw = self.sweep
        have = Counter(tuple(str(r[k]) for k in KEY) for r in done)
        out = []
        for name in sw.abrs:
            params = tuple(sorted(sw.abr_params.get(name, {}).items()))
            for device in sw.devices:
                for preset in sw.presets:
                    seen: Counter = Counter()
                    todo = []
                    for t in sw.trace_list():
                        key = (t, name, params_text(params), device, preset, sw.movie, str(self.clients))
                        seen[key] += 1
                        if seen[key] > have.get(key, 0):
                            todo.append(t)
                    for i in range(0, len(todo), size):
                        out.append(CrowdChunk(Chunk(tuple(todo[i:i + size]), sw.movie, name, params, device,
                                                    preset, sw.qoe, trace_format=sw.trace_format), self.clients))
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
    sw = sweep.sweep
    wanted = {(a, params_text(sorted(sw.abr_params.get(a, {}).items())), d, p)
              for a in sw.abrs for d in sw.devices for p in sw.presets}
    return [r for r in rows if (r["abr"], r["abr_params"], r["device"], r["preset"]) in wanted
            and r["movie"] == sw.movie and int(r["clients"]) == sweep.clients]


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
