"""What every dash.js rule answers: a `SwitchRequest` per row, and the representation lookup
the rules share (`AbrController.getOptimalRepresentationForBitrate`).

dash.js (github.com/Dash-Industry-Forum/dash.js) `src/streaming/rules/SwitchRequest.js`:
a rule returns a representation, or NO_CHANGE, and a `reason` object saying why. Here the
representation is a rung index per row (NO_CHANGE = -1) and the reason a dict of arrays
over the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from abr.estimators import js_round

__all__ = ["NO_CHANGE", "SwitchRequest", "js_round", "no_change", "optimal_rung"]

#: The rung a rule gives where it asks for nothing (dash.js SwitchRequest.NO_CHANGE).
NO_CHANGE = -1


@dataclass
class SwitchRequest:
    """A rule's answer for each row: the rung it asks for (NO_CHANGE where it asks nothing)
    and its reason (dash.js `SwitchRequest.reason`), every value an array over the rows."""

    rung: np.ndarray
    reason: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def asks(self) -> np.ndarray:
        return self.rung >= 0


def no_change(n: int) -> np.ndarray:
    return np.full(n, NO_CHANGE, dtype=np.int64)


def optimal_rung(rate_bps: np.ndarray, bitrates_bps: np.ndarray) -> np.ndarray:
    """`AbrController.getOptimalRepresentationForBitrate`: the highest rung whose bitrate is at
    or below the rate; the lowest rung when none is, or when the rate is ≤ 0 or NaN."""
    r = np.asarray(rate_bps, dtype=np.float64)
    ok = np.isfinite(r) & (r > 0)
    idx = np.searchsorted(bitrates_bps, np.where(ok, r, 0.0), side="right") - 1
    return np.where(ok, np.clip(idx, 0, bitrates_bps.size - 1), 0).astype(np.int64)
