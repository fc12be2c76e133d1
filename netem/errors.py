"""abrlab's one error hierarchy: every error a user can cause or meet is an `AbrlabError`.

It lives here, in the lowest package the player imports, so every layer (the network and
origin in `netem`, the session core, the DASH client, the HTTP driver, the lab and the
command line) raises the same family. `str()` of each is one line naming what was wrong
and where; the command line prints it and exits with status 2, never a traceback.

    AbrlabError
    ├── InputError         bad input: a file, a field, an option value (also a ValueError)
    │   ├── BoxError       malformed ISO-BMFF (a box that runs past its parent, a missing box)
    │   └── UsageError     a command called the wrong way (options that do not go together)
    ├── PlaybackError      the session cannot go on (the network gave up, nothing playable)
    │   ├── LicenseError   licence acquisition or use failed (`final`: retrying cannot help)
    │   └── DecryptError   a segment could not be decrypted or is malformed after decryption
    └── UnavailableError   an optional part is missing (a package, Chromium, a peer checkout)

`abr` raises plain `ValueError`/`TypeError` for bad policy parameters (it imports nothing of
ours); the player turns those into `InputError` where it builds a policy.
"""
from __future__ import annotations


def one_line(message: object) -> str:
    """Collapse whitespace so a message is one line on a terminal."""
    return " ".join(str(message).split())


class AbrlabError(Exception):
    """The root: a one-line message, optionally prefixed by where it happened."""

    def __init__(self, message: object = "", *, where: str | None = None) -> None:
        self.where = where
        text = one_line(message)
        super().__init__(f"{where}: {text}" if where else text)


class InputError(AbrlabError, ValueError):
    """Bad user-supplied input (a file, a field, a spec); the message is shown as is."""


class BoxError(InputError):
    """Malformed ISO-BMFF data: a box whose size runs past its parent, a missing box."""


class UsageError(InputError):
    """A mistake in how a command was called (options that contradict each other)."""


class PlaybackError(AbrlabError):
    """The session cannot go on (the network gave up, a licence refused with no fallback)."""


class LicenseError(PlaybackError):
    """Licence acquisition or use failed. `final` is False when a retry could have helped
    (it ran out of attempts); `status` is the licence server's HTTP status, if any."""

    def __init__(self, message: object = "", *, final: bool = True, status: int | None = None,
                 where: str | None = None) -> None:
        super().__init__(message, where=where)
        self.final = final
        self.status = status


class DecryptError(PlaybackError):
    """A segment could not be decrypted or is not well formed after decryption."""


class UnavailableError(AbrlabError):
    """An optional part is missing: a package, a browser, a reference checkout."""
