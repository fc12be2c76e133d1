"""Where the lab finds its data: the traces and content the project ships, and the
research data beside a checkout (`../shared`, absent on a user's fresh clone)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from netem import formats, synth
from netem.content import save, synthetic

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "traces"
#: ../shared beside the checkout, or where ABRLAB_SHARED says (a git worktree elsewhere)
SHARED = Path(os.environ.get("ABRLAB_SHARED") or REPO.parent / "shared")


def bundled_paths() -> tuple[list[str], str]:
    """The shipped traces and content; regenerated in a temp dir if this is not a checkout."""
    traces = sorted(str(p) for p in (BUNDLED / "synthetic").glob("*.json"))
    movie = BUNDLED / "content" / "demo-6rung-120s.json"
    if traces and movie.exists():
        return traces, str(movie)
    tmp = Path(tempfile.mkdtemp(prefix="abrlab-demo-"))
    traces = []
    for seed in range(1, 7):
        path = tmp / f"markov-{seed}.json"
        formats.save(synth.markov(seed=seed, duration_s=300.0, min_rate_bps=0.3e6, max_rate_bps=6e6), path, "sabre")
        traces.append(str(path))
    save(synthetic(duration_s=120, seed=1), tmp / "movie.json")
    return traces, str(tmp / "movie.json")
