"""DYNAMIC, dash.js's default ABR strategy: the throughput rule while the buffer is low,
BOLA-E once it is high, with hysteresis.

dash.js `AbrController.js` (`_updateDynamicAbrStrategy`, github.com/Dash-Industry-Forum/
dash.js, src/streaming/controllers/): switch to BOLA when the buffer exceeds
stableBufferTime, back to the throughput rule when it falls to half of it or below,
re-evaluated at every decision; `ABRRulesCollection.js` adds the
InsufficientBufferRule (and AbandonRequestsRule) in both modes. Spiteri et al., MMSys
2018, §5. Sabre's `DynamicDash` switches at 10 s (down at 5 s): `threshold_s=10`.

The BOLA-E state (placeholder buffer) is kept up to date from every download, as dash.js
does from its events, but BOLA decides only while it is in charge.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.bolae import DASH_PARAMS, DashRules
from abr.base import Ladder, Observation, Param
from abr.registry import register


@register("dynamic")
class Dynamic(DashRules):
    """Throughput rule below a buffer threshold, BOLA-E above it, with hysteresis."""

    PARAMS = (
        Param("threshold_s", None, "s", "switch to BOLA above this buffer level (None: the "
              "buffer target, dash.js stableBufferTime; Sabre's DynamicDash: 10)"),
        Param("off_ratio", 0.5, "ratio", "switch back to the throughput rule at or below "
              "this fraction of the threshold (dash.js: 0.5)"),
    ) + DASH_PARAMS

    def _reset(self, n_sessions: int, ladder: Ladder) -> None:
        super()._reset(n_sessions, ladder)
        self.bola_mode = np.zeros(n_sessions, dtype=bool)

    def _use_bola(self, obs: Observation) -> np.ndarray:
        s = obs.sessions
        if self.threshold_s is not None:
            on = np.full(obs.n, float(self.threshold_s))
        elif self.buffer_target_s is not None:
            on = np.full(obs.n, float(self.buffer_target_s))
        else:
            on = np.asarray(obs.buffer_cap_s, dtype=np.float64)
        off = float(self.off_ratio) * on
        cur = self.bola_mode[s]
        new = obs.buffer_s > np.where(cur, off, on)
        self.bola_mode[s] = new
        return new
