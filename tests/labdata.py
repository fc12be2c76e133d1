"""Small synthetic workloads and CLI runners shared by the lab's tests (no ../shared needed)."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from netem import formats, synth
from netem.content import save as save_content, synthetic

REPO = Path(__file__).resolve().parent.parent


def make_workload(root: Path, n_traces: int = 6, movie_s: int = 60) -> tuple[list[str], str]:
    """`n_traces` Markov traces (Sabre JSON) and a synthetic movie under `root`."""
    tdir = root / "traces"
    tdir.mkdir(parents=True, exist_ok=True)
    for seed in range(n_traces):
        formats.save(synth.markov(seed=seed, duration_s=120.0), tdir / f"m{seed}.json", "sabre")
    movie = root / "movie.json"
    save_content(synthetic(duration_s=movie_s, seed=1), movie)
    return sorted(str(p) for p in tdir.iterdir()), str(movie)


def compare_cmd(traces: list[str], movie: str, out: Path, *extra: str, abr: str = "bba,rb") -> list[str]:
    return [sys.executable, "-m", "player.cli", "compare", "--traces", *traces, "--movie", movie, "--abr", abr,
            "--out", str(out), "--no-plots", *extra]


def run_cli(cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw)


def csv_lines(path: Path) -> list[list[str]]:
    """Every line of a CSV file as fields (the header first), read by the csv module."""
    with open(path, newline="") as fh:
        return list(csv.reader(fh))
