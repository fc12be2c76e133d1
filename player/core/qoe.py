"""QoE models; every score comes with its components, never only the sum.

- linear (MPC, Pensieve): Σ R_k − 4.3·Σ rebuffer_k − 1·Σ |R_k − R_{k−1}|, R in Mbit/s.
- log (MPC paper's QoE_log): utility ln(R_k / R_min), rebuffer weight 2.66, smoothness
  on |ln R_k − ln R_{k−1}|.
- hd (Pensieve's QoE_hd): utility from a table favouring HD rungs (1, 2, 3, 12, 15, 20 for
  Pensieve's six rungs; for other ladders chosen by rung height), rebuffer weight 8,
  smoothness on |u_k − u_{k−1}|.
Rebuffer time is attributed to the segment whose download it happened during.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netem.content import default_resolution

MODELS = ("linear", "log", "hd")
_HD_BY_HEIGHT = ((240, 1.0), (360, 2.0), (480, 3.0), (720, 12.0), (1080, 15.0))


@dataclass(frozen=True)
class QoE:
    model: str
    total: float
    utility: float
    rebuffer_penalty: float
    smoothness_penalty: float
    segments: int

    def as_dict(self) -> dict:
        return {"model": self.model, "total": self.total,
                "components": {"utility": self.utility, "rebuffer_penalty": self.rebuffer_penalty,
                               "smoothness_penalty": self.smoothness_penalty},
                "segments": self.segments}


def hd_utilities(bitrates_bps: np.ndarray, heights: np.ndarray | None = None) -> np.ndarray:
    b = np.asarray(bitrates_bps, dtype=float)
    if b.size == 6 and np.allclose(b, [300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3]):
        return np.array([1.0, 2.0, 3.0, 12.0, 15.0, 20.0])
    if heights is None or np.all(np.asarray(heights) <= 0):
        heights = np.array([default_resolution(x)[1] for x in b])
    out = np.full(b.size, 20.0)
    for limit, u in reversed(_HD_BY_HEIGHT):
        out = np.where(np.asarray(heights) <= limit, u, out)
    return out


def rung_utilities(model: str, bitrates_bps: np.ndarray, heights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Per-rung utility and the rebuffer weight (utility per second of stall) of a model."""
    b = np.asarray(bitrates_bps, dtype=float)
    if model == "linear":
        return b / 1e6, 4.3
    if model == "log":
        return np.log(b / b[0]), 2.66
    if model == "hd":
        return hd_utilities(b, heights), 8.0
    raise ValueError(f"unknown QoE model {model!r}; known: {', '.join(MODELS)}")


def score(model: str, rungs: np.ndarray, rebuffer_s: np.ndarray, bitrates_bps: np.ndarray,
          heights: np.ndarray | None = None, skip_first: bool = False,
          valid: np.ndarray | None = None) -> np.ndarray:
    """Vectorised over sessions: `rungs` and `rebuffer_s` are (n, segments). Returns an
    (n, 4) array of total, utility, rebuffer penalty, smoothness penalty.

    With `skip_first`, segment 1 is left out of every term (Pensieve sums over 2..N).
    `valid` (n, segments) marks the segments each session got (default: all).
    """
    u, w = rung_utilities(model, bitrates_bps, heights)
    rungs = np.atleast_2d(rungs)
    rebuffer_s = np.atleast_2d(rebuffer_s)
    util = u[rungs]
    smooth = np.zeros_like(util)
    smooth[:, 1:] = np.abs(np.diff(util, axis=1))
    if valid is not None:
        util = util * valid
        smooth[:, 1:] *= valid[:, 1:]
        rebuffer_s = rebuffer_s * valid
    first = 1 if skip_first else 0
    U = util[:, first:].sum(axis=1)
    RB = w * rebuffer_s[:, first:].sum(axis=1)
    SM = smooth[:, first:].sum(axis=1)
    return np.column_stack([U - RB - SM, U, RB, SM])


def qoe_records(model: str, rows: np.ndarray, segments: int) -> list[QoE]:
    return [QoE(model, float(r[0]), float(r[1]), float(r[2]), float(r[3]), segments) for r in rows]
