"""How dash.js combines its rules: `ABRRulesCollection` and the DYNAMIC strategy of
`AbrController` (src/streaming/rules/abr/ABRRulesCollection.js,
src/streaming/controllers/AbrController.js).

* `dynamic_bola_mode`: with both BOLA and the throughput rule active (the default), BOLA
  replaces the throughput rule once the buffer reaches `hybridSwitchBufferTime` (12 s) and
  hands back when it falls below half of that, checked at every buffer-level metric —
  here at the buffer's low point (just before the previous segment was appended) and its
  high point (just after).
* `min_switch_request`: the active rules each may ask for a rung and the lowest request
  wins (`getMinSwitchRequest`, all rules at DEFAULT priority); no request at all keeps
  the current rung.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from abr.algorithms.dashjs.switch_request import SwitchRequest

#: Names for the policy's `rule` info (an index into this tuple): the rule whose request was
#: applied, "none" when no rule asked, "initial" for the first segment.
RULES = ("none", "ThroughputRule", "BolaRule", "InsufficientBufferRule", "SwitchHistoryRule", "initial")
RULE_NONE, RULE_INITIAL = 0, 5


def dynamic_bola_mode(bola: np.ndarray, later: np.ndarray, buffer_low_s: np.ndarray,
                      buffer_high_s: np.ndarray, switch_on_s: float) -> np.ndarray:
    """`_updateDynamicAbrStrategy` at the previous segment's low point (which may switch BOLA
    off, below half of `switch_on_s`) and then its high point (which may switch it on)."""
    bola = np.where(later & bola & (buffer_low_s < 0.5 * switch_on_s), False, bola)
    return np.where(later & ~bola & (buffer_high_s >= switch_on_s), True, bola)


def min_switch_request(requests: Sequence[SwitchRequest], rule_ids: Sequence[int],
                       current: np.ndarray, n_rungs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rung, rule id, whether any rule asked) per row: the lowest request, from the first
    rule in `requests`' order among equal ones; the current rung where none asked."""
    reqs = np.stack([r.rung for r in requests])
    has = reqs >= 0
    any_req = has.any(axis=0)
    lowest = np.where(has, reqs, n_rungs).min(axis=0)
    winner = np.argmax(has & (reqs == lowest[None, :]), axis=0)
    rung = np.where(any_req, lowest, np.clip(current, 0, n_rungs - 1))
    rule = np.where(any_req, np.asarray(rule_ids)[winner], RULE_NONE)
    return rung, rule, any_req
