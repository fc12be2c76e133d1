"""The errors a manifest can cause: one family, each a one-line message with a prefix.

`ManifestError` is an `InputError` (the CLI prints it and exits 2). The prefix says which
kind: ``unsupported: `` (well-formed but beyond this player: xlink, list MPDs, limits),
``invalid: `` (malformed) or ``unavailable: `` (the manifest could not be read or fetched).
Every module of the DASH layer raises these, so they sit below all of them.
"""
from __future__ import annotations

from netem.errors import InputError

__all__ = ["ManifestError", "UnsupportedManifest", "InvalidManifest", "ManifestUnavailable"]


class ManifestError(InputError):
    """A manifest this player cannot use; `str(exc)` is one line starting with `prefix`."""

    prefix = "invalid: "

    def __init__(self, reason: str, *, where: str | None = None) -> None:
        reason = " ".join(str(reason).split())
        if where:
            reason = f"{reason} (at {' '.join(where.split())})"
        self.reason = reason
        super().__init__(self.prefix + reason)
        self.where = where


class UnsupportedManifest(ManifestError):
    """Well-formed, but beyond this player (live playback, xlink, list MPDs, limits...)."""

    prefix = "unsupported: "


class InvalidManifest(ManifestError):
    """Malformed: not XML, refused XML (entities), or not a usable MPD."""

    prefix = "invalid: "


class ManifestUnavailable(ManifestError):
    """The manifest could not be read or fetched (missing file, HTTP error, timeout)."""

    prefix = "unavailable: "
