"""Baselines: a fixed rung, the lowest, the highest, and a seeded uniform random rung.

These are the reference points every ABR evaluation carries (Pensieve, Sabre and the
MPC paper all report fixed-bitrate runs); `random` is the sanity floor.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import uniform_stream
from abr.base import Ladder, Observation, Param, Policy
from abr.registry import register


@register("fixed")
class Fixed(Policy):
    """Always the same rung (negative counts from the top, as in Python: -1 = highest)."""

    PARAMS = (Param("rung", 0, "index", "rung to fetch, 0 = lowest; negative counts from the "
                    "top (-1 = highest); clipped to the ladder, then moved down past masked rungs"),)

    def _select(self, obs: Observation) -> np.ndarray:
        r = self.ladder.n
        rung = int(self.rung)
        rung = rung + r if rung < 0 else rung
        rung = min(max(rung, 0), r - 1)
        self.last_info = {}
        return np.full(obs.n, rung, dtype=np.int64)


@register("lowest")
class Lowest(Policy):
    """Always the lowest allowed rung."""

    def _select(self, obs: Observation) -> np.ndarray:
        self.last_info = {}
        return np.zeros(obs.n, dtype=np.int64)


@register("highest")
class Highest(Policy):
    """Always the highest allowed rung."""

    def _select(self, obs: Observation) -> np.ndarray:
        self.last_info = {}
        return np.full(obs.n, self.ladder.n - 1, dtype=np.int64)


@register("random")
class Random(Policy):
    """A uniformly random allowed rung per decision, reproducible from `seed`.

    The k-th decision of every session uses the k-th draw of the stream keyed by `seed`,
    so a session's choices do not depend on its position in a batch: the simulator and a
    single real session make the same choices (use different seeds for independent runs).
    """

    PARAMS = (Param("seed", 0, "-", "random seed; every session replays the same stream "
                    "of draws, one per decision"),)

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        self.draws = np.zeros(n_sessions, dtype=np.int64)

    def _select(self, obs: Observation) -> np.ndarray:
        s = obs.sessions
        u = uniform_stream(np.full(s.shape, int(self.seed)), self.draws[s])
        self.draws[s] += 1
        mask = np.asarray(obs.mask, dtype=bool)
        allowed = mask.sum(axis=1)
        none = allowed == 0
        k = np.where(none, mask.shape[1], allowed)
        j = np.minimum((u * k).astype(np.int64), k - 1)
        eff = np.where(none[:, None], True, mask)
        cum = np.cumsum(eff, axis=1)
        choice = np.argmax(cum > j[:, None], axis=1).astype(np.int64)
        self.last_info = {"u": u}
        return choice
