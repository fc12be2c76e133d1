"""An example user policy. Name it `examples/my_policy.py:MyPolicy` wherever a policy name
is accepted, e.g. `abr.get("examples/my_policy.py:MyPolicy", margin=0.7)`.

A buffer-aware rate rule: the lowest rung while the buffer is below `panic_s`, else the
highest rung at or below `margin` × the newest throughput sample. Batch-first: every
array has one row per session (a real player is n = 1). Units: s, bit/s, bytes.
"""
import numpy as np

from abr import Observation, Param, Policy, highest_below


class MyPolicy(Policy):
    """Lowest rung while the buffer is below `panic_s`, else the highest rung at or below
    `margin` × the newest throughput sample. One row per session; units s, bit/s, bytes."""

    PARAMS = (Param("margin", 0.8, "ratio", "fraction of the last throughput to spend"),
              Param("panic_s", 4.0, "s", "below this buffer level fetch the lowest rung"))

    def _select(self, obs: Observation) -> np.ndarray:
        last_bps = np.nan_to_num(obs.last_throughput_bps, nan=0.0)  # NaN before any download
        rung = highest_below(self.margin * last_bps, self.ladder.bitrates_bps)
        self.last_info = {"target_bps": self.margin * last_bps}
        return np.where(obs.buffer_s < self.panic_s, 0, rung)
