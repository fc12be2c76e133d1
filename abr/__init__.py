"""ABR algorithms behind one batch interface (numpy only; imports nothing else of ours)."""
from abr.base import Ladder, Observation, Param, Policy, Progress, apply_mask, highest_below
from abr.registry import get, names, policy_class, register

__all__ = [
    "Ladder", "Observation", "Param", "Policy", "Progress", "apply_mask", "highest_below",
    "get", "names", "policy_class", "register",
]
