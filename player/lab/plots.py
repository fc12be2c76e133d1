"""Plots for `abrlab compare` (needs the `plot` extra: matplotlib).

The QoE CDF shows the body of the distribution: outage traces reach −9,000 (−270,000 on
hsdpa-3g) while most sessions lie between −500 and +200, so the x-axis spans the central
mass (Tukey's fences: the quartiles ± 1.5 interquartile ranges) and the sessions beyond it
are counted in the title and marked at the edges, rather than squeezing the body into a
sliver.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from player.lab.results import ResultsWriteError
from player.lab.table import SweepRows

FENCE_IQR = 1.5         # the QoE axis spans the quartiles ± this many interquartile ranges


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise ResultsWriteError(f"could not write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path


def qoe_axis(values: np.ndarray, fence: float = FENCE_IQR) -> tuple[float, float]:
    """The x-range of the QoE plot: the data within Tukey's fences (quartiles ± `fence` ×
    the interquartile range), with a 3% margin; the sessions beyond are left off the axis
    (the CDF's height at the left edge shows how many)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return -1.0, 1.0
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    lo, hi = float(v.min()), float(v.max())
    if iqr > 0:
        lo, hi = max(lo, q1 - fence * iqr), min(hi, q3 + fence * iqr)
    margin = 0.03 * max(hi - lo, 1e-9)
    return lo - margin, hi + margin


def labels(rows: SweepRows) -> list[str]:
    """A legend entry per group: the policy, and the device and preset when they vary."""
    devs = {g.device for g in rows.groups}
    pres = {g.preset for g in rows.groups}
    out = []
    for g in rows.groups:
        extra = f" / {g.device}" if len(devs) > 1 else ""
        extra += f" / {g.preset}" if len(pres) > 1 else ""
        out.append(g.abr.rsplit(":", 1)[-1] + extra)
    return out


def write(rows: SweepRows, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = labels(rows)
    qoe = rows.values["qoe"]
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lo, hi = qoe_axis(qoe)
    for g in sorted(range(len(rows.groups)), key=lambda g: names[g]):
        q = np.sort(qoe[rows.group == g])
        if q.size:
            ax.step(q, np.arange(1, q.size + 1) / q.size, where="post", label=names[g])
    ax.set_xlim(lo, hi)
    below, above = int(np.count_nonzero(qoe < lo)), int(np.count_nonzero(qoe > hi))
    note = []
    if below:
        note.append(f"{below} session(s) ({100 * below / qoe.size:.0f}%) below {lo:,.0f} (min {qoe.min():,.0f})")
        ax.annotate("◀ more", (0.0, 0.02), xycoords="axes fraction", fontsize=7, color="gray")
    if above:
        note.append(f"{above} session(s) ({100 * above / qoe.size:.0f}%) above {hi:,.0f} (max {qoe.max():,.0f})")
        ax.annotate("more ▶", (1.0, 0.02), xycoords="axes fraction", fontsize=7, color="gray", ha="right")
    title = "QoE distribution"
    if note:
        title += "\naxis clipped to the central mass (quartiles ± 1.5 IQR); off the axis:\n" + "; ".join(note)
    ax.set_xlabel(f"QoE per session ({rows.qoe_model})")
    ax.set_ylabel("fraction of sessions")
    ax.set_title(title, fontsize=8 if note else None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, out_dir / "qoe_cdf.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g, name in enumerate(names):
        sel = rows.group == g
        if not sel.any():
            continue
        br = float(rows.values["avg_bitrate_bps"][sel].mean()) / 1e6
        session = float(rows.values["session_s"][sel].sum())
        rr = float(rows.values["rebuffer_s"][sel].sum()) / max(session, 1e-9) * 100
        ax.scatter([rr], [br], s=50)
        ax.annotate(name, (rr, br), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xlabel("rebuffer ratio (%)")
    ax.set_ylabel("average bitrate (Mbit/s)")
    ax.set_title("Bitrate against rebuffering (up and left is better)")
    ax.grid(alpha=0.3)
    written.append(_save(fig, out_dir / "bitrate_vs_rebuffer.png"))
    return written
