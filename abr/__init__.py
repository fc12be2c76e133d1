"""ABR algorithms behind one batch interface (numpy only; imports nothing else of ours)."""
from abr.base import Ladder, Observation, Param, Policy, Progress, apply_mask, highest_below
from abr.registry import get, names, policy_class, register, registered
from abr import algorithms  # noqa: F401,E402  (registers the built-in policies; after the registry)

__all__ = [
    "Ladder", "Observation", "Param", "Policy", "Progress", "apply_mask", "highest_below",
    "get", "names", "policy_class", "register", "registered",
]
