"""Bench suite `trace_load`: seconds to load Mahimahi traces with `netem.formats.load`.

Two workloads: the largest real trace under ../shared/traces/mahimahi-cellular (skipped
with a note when the folder is absent), and a synthetic 2-million-line file written to a
temporary folder. Each is timed best-of-N after one warm-up (so the page cache is warm
and first-call imports are excluded). For scale, two parse-only baselines of the same
file are timed once: plain Python (`[int(line) for line in f]`) and `np.loadtxt` (C code
since numpy 1.23); `load_s` includes binning and building the `Trace`.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from netem import formats
from player.lab import data

SHARED_MAHIMAHI = data.SHARED / "traces" / "mahimahi-cellular"


def run(quick: bool) -> dict:
    repeats = 2 if quick else 7
    out: dict = {"unit": "seconds (best of repeats)", "repeats": repeats}
    out["real"] = _real(repeats)
    out["synthetic"] = _synthetic(200_000 if quick else 2_000_000, repeats)
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
