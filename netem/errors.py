"""Errors for untrusted input: one line, naming what was wrong and where.

The CLI turns these into exit status 2 and a single stderr line instead of a traceback.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad user-supplied input (a file, a field, a spec); the message is shown as is."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
