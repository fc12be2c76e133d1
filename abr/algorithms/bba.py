"""BBA-0, the buffer-based algorithm of Huang, Johari, McKeown, Trunnell and Watson,
"A Buffer-Based Approach to Rate Adaptation: Evidence from a Large Video Streaming
Service", SIGCOMM 2014, §4 (Algorithm 1).

The rate map f(B) rises linearly from R_min at the end of the reservoir r to R_max at the
end of the cushion r + cu. With R_prev the previous rate, R+ the next rate above it and
R- the next below:

    B <= r            -> R_min
    B >= r + cu       -> R_max
    f(B) >= R+        -> max{R_i : R_i < f(B)}
    f(B) <= R-        -> min{R_i : R_i > f(B)}
    otherwise         -> R_prev            (the hysteresis that limits switching)

Defaults follow Pensieve's BB baseline (test/bb.py: RESERVOIR = 5 s, CUSHION = 10 s);
the paper used 90 s / 126 s with a 240 s buffer. `variant="pensieve"` reproduces
Pensieve's simpler map on rung indices instead: rung = floor((rungs − 1)(B − r)/cu), the
lowest below r and the highest from r + cu on, computed in bb.py's order of operations. The
session preset `pensieve` makes it the default there, so `--preset pensieve --abr bba` is
Pensieve's test/bb.py (`abrlab fidelity pensieve` holds the two to the same sessions).
"""
from __future__ import annotations

import numpy as np

from abr.base import Observation, Param, Policy
from abr.registry import register


@register("bba")
class BBA(Policy):
    """Buffer-based: reservoir, cushion and a linear rate map with BBA-0's hysteresis."""

    PARAMS = (
        Param("reservoir_s", 5.0, "s", "below this buffer level fetch the lowest rung "
              "(Pensieve: 5 s; paper: 90 s)"),
        Param("cushion_s", 10.0, "s", "the rate map rises to the top rung over this much "
              "buffer above the reservoir (Pensieve: 10 s; paper: 126 s)"),
        Param("variant", "bba0", "-", "bba0 (the paper's rate map with hysteresis) or "
              "pensieve (linear map on rung indices, no hysteresis)"),
    )

    def _select(self, obs: Observation) -> np.ndarray:
        b = self.ladder.bitrates_bps
        top = b.size - 1
        r = float(self.reservoir_s)
        cu = float(self.cushion_s)
        if cu <= 0:
            raise ValueError("bba: cushion_s must be positive")
        B = np.asarray(obs.buffer_s, dtype=np.float64)
        variant = str(self.variant).lower()
        if variant == "pensieve":
            mid = np.floor(top * (B - r) / cu).astype(np.int64)
            q = np.where(B < r, 0, np.where(B >= r + cu, top, np.clip(mid, 0, top)))
            self.last_info = {"buffer_s": B}
            return q
        if variant != "bba0":
            raise ValueError(f"bba: unknown variant {self.variant!r}; known: bba0, pensieve")
        f = b[0] + (b[-1] - b[0]) * (B - r) / cu
        prev = np.clip(np.asarray(obs.last_rung, dtype=np.int64), 0, top)
        r_plus = b[np.minimum(prev + 1, top)]
        r_minus = b[np.maximum(prev - 1, 0)]
        below_f = np.searchsorted(b, f, side="left") - 1   # max{i : R_i < f}
        above_f = np.searchsorted(b, f, side="right")      # min{i : R_i > f}
        q = np.where(f >= r_plus, below_f, np.where(f <= r_minus, above_f, prev))
        q = np.where(B <= r, 0, np.where(B >= r + cu, top, q))
        q = np.clip(q, 0, top)
        self.last_info = {"buffer_s": B, "rate_map_bps": f}
        return q
