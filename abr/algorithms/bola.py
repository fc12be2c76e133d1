"""BOLA-BASIC: Spiteri, Urgaonkar and Sitaraman, "BOLA: Near-Optimal Bitrate Adaptation
for Online Videos", INFOCOM 2016 (arXiv:1601.06748), §IV, Algorithm 1.

For each segment choose the rung m maximising

    (V · (υ_m + γp) − Q) / S_m,        υ_m = ln(S_m / S_1)

with Q the buffer level, S_m the segment size (here: the rung's bitrate, as Sabre and
dash.js use; `use_segment_sizes=true` uses the next segment's actual sizes). The paper's
V and γp follow from the buffer target: with Q counted in seconds (Sabre's `Bola`,
github.com/UMass-LIDS/sabre, `abr_basic`),

    V = (Q_max − p) / (υ_M + γp),      p = segment duration,

so the top rung is preferred up to one segment below the target. Sabre's default
γp is 5 (`gp` here). Ties go to the lower rung (Sabre compares with `>`).
When every score is negative the paper would wait; a rung must be chosen here, and
`last_info["delay_s"]` reports the pause BOLA would have taken.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms._common import masked_argmax
from abr.base import Ladder, Observation, Param, Policy
from abr.registry import register


@register("bola")
class Bola(Policy):
    """BOLA-BASIC with V and γp from the buffer target (Sabre's parameterisation)."""

    PARAMS = (
        Param("gp", 5.0, "-", "γp, the utility offset trading rebuffering risk against "
              "bitrate (Sabre default 5)"),
        Param("buffer_target_s", None, "s", "Q_max, the buffer BOLA fills to (None: the "
              "observation's buffer_cap_s)"),
        Param("use_segment_sizes", False, "bool", "divide by the next segment's real sizes "
              "instead of bitrate × duration"),
    )

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        b = ladder.bitrates_bps
        self.utilities = np.log(b / b[0])

    def _select(self, obs: Observation) -> np.ndarray:
        b = self.ladder.bitrates_bps
        u = self.utilities
        gp = float(self.gp)
        L = float(obs.segment_duration_s)
        qmax = (np.asarray(obs.buffer_cap_s, dtype=np.float64) if self.buffer_target_s is None
                else np.full(obs.n, float(self.buffer_target_s)))
        V = (qmax - L) / (u[-1] + gp)
        Q = np.asarray(obs.buffer_s, dtype=np.float64)
        if self.use_segment_sizes and obs.next_sizes_bytes.shape[1] > 0:
            S = obs.next_sizes_bytes[:, 0, :].astype(np.float64) * 8.0
        else:
            S = b[None, :] * L
        score = (V[:, None] * (u + gp)[None, :] - Q[:, None]) / S
        q = masked_argmax(score, np.asarray(obs.mask, dtype=bool))
        rows = np.arange(obs.n)
        self.last_info = {"score": score[rows, q], "V": V,
                          "delay_s": np.maximum(0.0, Q - V * (u[q] + gp))}
        return q
