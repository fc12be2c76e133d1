"""Access log of the emulated edge: JSON lines, with the CMCD keys the client sent.

One record per request: ``time`` (Unix seconds), ``t_s`` (trace seconds since the edge
started), ``edge``, ``method``, ``path``, ``range`` (the Range header or null), ``status``,
``bytes`` (body bytes written), ``duration_s`` (wall seconds from request to last byte),
``cmcd`` (a dict, empty when none), plus ``faults`` (the specs that applied),
``aborted`` (the connection went away mid-body) and, for a live low-latency segment sent
while being produced, ``chunks`` (per CMAF chunk: ``end`` byte offset, ``release_s`` when
it was complete and ``at_s`` when it began to leave, on the origin's clock in seconds since
the epoch) when set.

CMCD (CTA-5004) arrives as a query parameter ``CMCD=`` (URL-encoded) or in the headers
``CMCD-Request``, ``CMCD-Object``, ``CMCD-Status``, ``CMCD-Session``. Each is a comma
separated list of ``key=value`` or a bare ``key`` (a true boolean); values are integers,
decimals, quoted strings (``"..."`` with ``\\"`` and ``\\\\`` escapes), tokens, or ``?0``/``?1``.
Malformed members are skipped, never an error: a bad CMCD must not fail a request.
"""
from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path
from typing import Mapping

from netem.errors import InputError

CMCD_HEADERS = ("CMCD-Request", "CMCD-Object", "CMCD-Status", "CMCD-Session")
MAX_CMCD_CHARS = 4096
_KEY = re.compile(r"[a-zA-Z0-9_.\-]{1,64}\Z")
_INT = re.compile(r"-?\d{1,15}\Z")
_DEC = re.compile(r"-?\d{1,15}\.\d{1,6}\Z")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*\Z")


def _split_members(text: str) -> list[str]:
    """Split on commas outside quoted strings."""
    out, cur, quoted, esc = [], [], False, False
    for ch in text:
        if quoted:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            cur.append(ch)
        elif ch == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _value(raw: str):
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise ValueError("unterminated string")
        body, out, esc = raw[1:-1], [], False
        for ch in body:
            if esc:
                if ch not in '"\\':
                    raise ValueError("bad escape")
                out.append(ch)
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                raise ValueError("stray quote")
            else:
                out.append(ch)
        if esc:
            raise ValueError("dangling escape")
        return "".join(out)
    if raw in ("?1", "?0"):
        return raw == "?1"
    if _INT.match(raw):
        return int(raw)
    if _DEC.match(raw):
        return float(raw)
    if _TOKEN.match(raw):
        return raw
    raise ValueError(f"bad value {raw!r}")


def parse_cmcd(text: str) -> dict:
    """Parse one CMCD key=value list into a dict (malformed members skipped)."""
    out: dict = {}
    if not text:
        return out
    for member in _split_members(text[:MAX_CMCD_CHARS]):
        member = member.strip()
        if not member:
            continue
        key, eq, raw = member.partition("=")
        key = key.strip()
        if not _KEY.match(key):
            continue
        if not eq:
            out[key] = True
            continue
        try:
            out[key] = _value(raw.strip())
        except ValueError:
            continue
    return out


def cmcd_from_request(query_value: str | None, headers: Mapping[str, str]) -> dict:
    """All CMCD keys of a request: the ``CMCD`` query parameter (already URL-decoded) and
    the four CMCD headers; on a clash the query wins (it is what the client built last)."""
    out: dict = {}
    for name in CMCD_HEADERS:
        v = headers.get(name)
        if v:
            out.update(parse_cmcd(v))
    if query_value:
        out.update(parse_cmcd(query_value))
    return out


class AccessLog:
    """Writes records as JSON lines to a path (appending) or an open text stream."""

    def __init__(self, target: str | Path | io.TextIOBase) -> None:
        if isinstance(target, (str, Path)):
            try:
                self._fh = open(target, "a", buffering=1, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot open access log: {exc.strerror or exc}", where=str(target)) from None
            self._own = True
        else:
            self._fh = target
            self._own = False
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._own:
            self._fh.close()


def read(path: str | Path) -> list[dict]:
    """Read an access log back (for tests and reports)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
