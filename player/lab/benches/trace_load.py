"""Bench suite `trace_load`: seconds to load trace files with `netem.formats.load`.

Mahimahi (large files): the largest real trace under ../shared/traces/mahimahi-cellular
(skipped with a note when the folder is absent), and a synthetic 2-million-line file
written to a temporary folder. For scale, two parse-only baselines of the same file are
timed once: plain Python (`[int(line) for line in f]`) and `np.loadtxt` (C code since
numpy 1.23); `load_s` includes binning and building the `Trace`.

Sabre JSON (many small files): 1,000 synthetic traces of 36 periods each, written as Sabre
writes them, and the 126 real Sabre traces under ../shared/traces (hsdpa-3g, lte-4g). Here
the cost per file (open, read, parse, check, build) matters, as when a sweep loads a
trace set; `json_loads_s` times `json.loads` of the same bytes alone, the floor for any
loader that uses the json module.

Each workload is timed best-of-N after one warm-up (so the page cache is warm and
first-call imports are excluded).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from netem import formats
from player.lab import data

SHARED_TRACES = data.SHARED / "traces"
SHARED_MAHIMAHI = SHARED_TRACES / "mahimahi-cellular"
SHARED_SABRE = (SHARED_TRACES / "hsdpa-3g", SHARED_TRACES / "lte-4g")
SABRE_FILES = 1_000
SABRE_PERIODS = 36


def run(quick: bool) -> dict:
    repeats = 2 if quick else 7
    out: dict = {"unit": "seconds (best of repeats)", "repeats": repeats}
    out["real"] = _real(repeats)
    out["synthetic"] = _synthetic(200_000 if quick else 2_000_000, repeats)
    out["sabre_small"] = _sabre_small(100 if quick else SABRE_FILES, repeats)
    out["sabre_real"] = _sabre_real(repeats)
    return out


def _real(repeats: int) -> dict:
    files = sorted(SHARED_MAHIMAHI.glob("*")) if SHARED_MAHIMAHI.is_dir() else []
    files = [f for f in files if f.is_file()]
    if not files:
        return {"skipped": f"{SHARED_MAHIMAHI} is absent"}
    largest = max(files, key=lambda f: f.stat().st_size)
    return {"file": largest.name, **_measure(largest, repeats)}


def _synthetic(lines: int, repeats: int) -> dict:
    """A Mahimahi file of `lines` opportunities at ~100 Mbit/s with bursty ms gaps."""
    rng = np.random.default_rng(0)
    gaps = rng.choice([0, 0, 0, 0, 0, 0, 0, 1, 1, 2], size=lines)
    ms = np.cumsum(gaps)
    ms[-1] = max(int(ms[-1]), 1)
    with tempfile.TemporaryDirectory(prefix="abrlab-bench-") as tmp:
        path = Path(tmp) / "synthetic.down"
        path.write_text("\n".join(map(str, ms.tolist())) + "\n")
        return {"file": f"synthetic ({lines} lines)", **_measure(path, repeats)}


def _measure(path: Path, repeats: int) -> dict:
    trace = formats.load(path)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        formats.load(path)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    with open(path) as fh:
        baseline = [int(line) for line in fh]
    python_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    np.loadtxt(path, dtype=np.int64)
    loadtxt_s = time.perf_counter() - t0
    n = int(trace.packet_times_s.size)
    assert len(baseline) == n
    return {
        "lines": n,
        "bytes": path.stat().st_size,
        "load_s": round(best, 4),
        "lines_per_s": round(n / best),
        "megabytes_per_s": round(path.stat().st_size / best / 1e6, 1),
        "baseline_python_int_per_line_s": round(python_s, 4),
        "baseline_numpy_loadtxt_s": round(loadtxt_s, 4),
        "trace_duration_s": trace.duration_s,
        "steps": int(trace.times_s.size),
    }


def _sabre_small(count: int, repeats: int) -> dict:
    """`count` Sabre JSON files of 36 periods each (~1 s, 0.2–8 Mbit/s, 20–120 ms latency)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="abrlab-bench-") as tmp:
        paths = []
        for i in range(count):
            rows = [f'{{"duration_ms": {int(d)}, "bandwidth_kbps": {int(b)}, "latency_ms": {int(la)}}}'
                    for d, b, la in zip(rng.integers(990, 1020, SABRE_PERIODS),
                                        rng.integers(200, 8000, SABRE_PERIODS),
                                        rng.integers(20, 120, SABRE_PERIODS))]
            path = Path(tmp) / f"trace{i:04d}.json"
            path.write_text("[\n    " + ",\n    ".join(rows) + "\n]\n")
            paths.append(path)
        return {"files": f"synthetic ({count} files, {SABRE_PERIODS} periods each)",
                **_measure_many(paths, repeats)}


def _sabre_real(repeats: int) -> dict:
    paths = sorted(f for d in SHARED_SABRE if d.is_dir() for f in d.iterdir() if f.is_file())
    if not paths:
        return {"skipped": f"{' and '.join(map(str, SHARED_SABRE))} are absent"}
    return {"files": f"{len(paths)} real Sabre traces ({', '.join(d.name for d in SHARED_SABRE)})",
            **_measure_many(paths, repeats)}


def _measure_many(paths: list[Path], repeats: int) -> dict:
    traces = [formats.load(p) for p in paths]  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p in paths:
            formats.load(p)
        best = min(best, time.perf_counter() - t0)
    data = [p.read_bytes() for p in paths]
    t0 = time.perf_counter()
    for d in data:
        json.loads(d)
    json_s = time.perf_counter() - t0
    return {
        "count": len(paths),
        "periods": int(sum(t.times_s.size for t in traces)),
        "bytes": sum(len(d) for d in data),
        "load_s": round(best, 4),
        "per_file_ms": round(1000 * best / len(paths), 4),
        "json_loads_s": round(json_s, 4),
    }
