"""Plots for `abrlab compare` (needs the `plot` extra: matplotlib)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from player.lab.stats import policy_label


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        extra = "" if r["device"] == "none" else f" / {r['device']}"
        extra += "" if r["preset"] == "default" else f" / {r['preset']}"
        groups[policy_label(r) + extra].append(r)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rs in sorted(groups.items()):
        q = np.sort([float(r["qoe"]) for r in rs])
        ax.step(q, np.arange(1, q.size + 1) / q.size, where="post", label=name)
    ax.set_xlabel(f"QoE per session ({rows[0]['qoe_model']})")
    ax.set_ylabel("fraction of sessions")
    ax.set_title("QoE distribution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, out_dir / "qoe_cdf.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rs in sorted(groups.items()):
        br = np.mean([float(r["avg_bitrate_bps"]) for r in rs]) / 1e6
        rr = sum(float(r["rebuffer_s"]) for r in rs) / max(sum(float(r["session_s"]) for r in rs), 1e-9) * 100
        ax.scatter([rr], [br], s=50)
        ax.annotate(name, (rr, br), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xlabel("rebuffer ratio (%)")
    ax.set_ylabel("average bitrate (Mbit/s)")
    ax.set_title("Bitrate against rebuffering (up and left is better)")
    ax.grid(alpha=0.3)
    written.append(_save(fig, out_dir / "bitrate_vs_rebuffer.png"))
    return written
