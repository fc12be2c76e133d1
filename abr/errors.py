"""Errors a policy can cause (abr imports nothing of ours: the player turns these into its own)."""
from __future__ import annotations


class PolicyOutputError(ValueError):
    """A policy's `select` returned something that is not a rung per row: out of range, not
    integers (floats are refused, not truncated), the wrong length, NaN. `session` is the row
    (the index given to `reset`) it concerns, or None when the whole answer is malformed."""

    def __init__(self, message: str, *, policy: str, session: int | None = None, value: object = None) -> None:
        super().__init__(message)
        self.policy = policy
        self.session = session
        self.value = value
