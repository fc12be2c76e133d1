"""dash.js `SwitchHistoryRule` (src/streaming/rules/abr/SwitchHistoryRule.js) over its
`SwitchRequestHistory` (src/streaming/rules/SwitchRequestHistory.js).

The history holds the last `sample_size` (8) decisions as (current rung, was it a drop).
Going up the rungs with running totals of drops and no-drops, the first rung (with an
entry) where the totals reach the sample size and drops / no-drops exceeds the threshold
(7.5 %) caps the choice there, or one below when that rung itself had drops.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.switch_request import NO_CHANGE, SwitchRequest


class SwitchHistoryRule:
    """Per-session ring of the last decisions, and the cap it implies."""

    def __init__(self, n: int, n_rungs: int, sample_size: int, threshold: float) -> None:
        self.sample_size = int(sample_size)
        self.threshold = float(threshold)
        k = max(1, self.sample_size)
        self.current = np.full((n, k), -1, dtype=np.int64)    # -1: empty slot
        self.drop = np.zeros((n, k), dtype=bool)
        self.seen = np.zeros((n, n_rungs), dtype=bool)       # rungs with an entry (never removed)

    def push(self, sessions: np.ndarray, current: np.ndarray, new: np.ndarray) -> None:
        """SwitchRequestHistory.push(current, new) for one decision per row."""
        current = np.clip(current, 0, None)
        self.current[sessions] = np.concatenate([self.current[sessions][:, 1:], current[:, None]], axis=1)
        self.drop[sessions] = np.concatenate([self.drop[sessions][:, 1:], (new < current)[:, None]], axis=1)
        self.seen[sessions, current] = True

    def reset(self, sessions: np.ndarray) -> None:
        self.current[sessions] = -1
        self.drop[sessions] = False
        self.seen[sessions] = False

    def counts(self, sessions: np.ndarray, n_rungs: int) -> tuple[np.ndarray, np.ndarray]:
        """(drops, no-drops) per row and rung in the window."""
        cur = self.current[sessions]
        drop = self.drop[sessions]
        onehot = (cur[:, :, None] == np.arange(n_rungs)[None, None, :]) & (cur >= 0)[:, :, None]
        return (onehot & drop[:, :, None]).sum(axis=1), (onehot & ~drop[:, :, None]).sum(axis=1)

    def request(self, sessions: np.ndarray, n_rungs: int) -> SwitchRequest:
        """Reason: the running `drops` and `no_drops` at the rung that capped (NaN elsewhere)."""
        drops, nodrops = self.counts(sessions, n_rungs)
        cd = np.cumsum(drops, axis=1)
        cn = np.cumsum(nodrops, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = cd / cn  # inf when no no-drops, NaN when neither
        enough = cd + cn >= self.sample_size
        hit = self.seen[sessions] & enough & (ratio > self.threshold)
        anyhit = hit.any(axis=1)
        r = np.argmax(hit, axis=1)
        rows = np.arange(sessions.size)
        q = np.where((r > 0) & (drops[rows, r] > 0), r - 1, r)
        rung = np.where(anyhit, q, NO_CHANGE).astype(np.int64)
        return SwitchRequest(rung, {"drops": np.where(anyhit, cd[rows, r], np.nan),
                                    "no_drops": np.where(anyhit, cn[rows, r], np.nan)})
