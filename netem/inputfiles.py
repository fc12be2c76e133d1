"""Reading the files a user names (traces, content descriptions): bounded, and only files.

A file must not be able to hang a command or exhaust the machine because of what it is or
what it says: a FIFO blocks `open` forever, a link to /dev/zero is read until memory runs
out, 100,000 nested `[` exhaust the JSON parser's recursion, and a 5,001-digit integer
trips Python's integer-conversion limit. Every loader reads and parses through here, so
each of those becomes one `InputError` line naming the file (exit status 2 on the command
line), and the limits are stated once:

* only regular files are read, after following symbolic links (a link to a regular file is
  fine; a link to a device, a FIFO or a socket is refused before it is opened);
* `MAX_FILE_BYTES` caps a file's size, checked from `stat` before reading;
* `MAX_JSON_DEPTH` caps how deeply JSON arrays and objects nest; TOML nesting is bounded by
  its parser's recursion, reported the same way;
* integers longer than Python's conversion limit (4,300 digits) are reported by line.

The type and size are checked with `stat` before the file is opened. That guards against
mistakes (a wrong path, a device, a pipe); a file swapped for a FIFO between the check and
the read by someone racing us could still block, which is out of scope.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from netem.errors import InputError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

#: Largest file read, in bytes: 256 MiB. The largest real trace we know (Mahimahi's
#: TMobile-LTE-driving, 505,078 lines) is 3.4 MB, the largest real movie description
#: (bbb4k.json) well under 1 MB; a file about 80 times larger is not one of ours, and
#: reading it whole stays affordable.
MAX_FILE_BYTES = 256 * 1024 * 1024
#: Deepest nesting of JSON arrays and objects accepted. Our formats need at most 3 levels
#: (a movie's object → list of segments → list of sizes); Python's parser gives up with a
#: RecursionError somewhere below 1,000.
MAX_JSON_DEPTH = 64

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_ONE_KIND = bytes.maketrans(b"[{]}", b"(())")
_LONG_INTEGER = re.compile(rb"[0-9]{4301,}")
_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_regular_file(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of `path`, which must be a regular file (after following links) of at most
    `MAX_FILE_BYTES`; `what` names the expected file in errors ("trace file")."""
    p = path if isinstance(path, Path) else Path(path)
    where = str(path)
    try:
        info = p.stat()  # follows symbolic links: what counts is the file they lead to
    except FileNotFoundError:
        raise InputError("no such file", where=where) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", where=where) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"is a directory, not a {what}", where=where)
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a regular file")
        raise InputError(f"is {kind}; only regular files are read (symbolic links are followed)", where=where)
    if info.st_size > MAX_FILE_BYTES:
        raise InputError(_too_large(info.st_size), where=where)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", where=where) from None
    if len(data) > MAX_FILE_BYTES:  # it grew while we read it
        raise InputError(_too_large(len(data)), where=where)
    return data


def _too_large(size: int) -> str:
    return (f"is {size:,} bytes, more than the limit of {MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES / 2 ** 20:g} MiB, "
            "MAX_FILE_BYTES) for an input file")


def json_depth(data: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings ignored),
    counted up to `limit` + 1. When the brackets do not balance, the levels the unmatched
    ones could open are added (so "[" × 100,000 is too deep, while "[1, 2" is left for
    the parser to report).

    C-speed `bytes` methods only, no Python loop over the text: escaped backslashes and
    quotes are dropped, everything but quotes and brackets is deleted, then string
    contents are cut out, and innermost bracket pairs are removed one level at a time.
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    s = data.translate(None, _NOT_STRUCTURE).replace(b'""', b"")  # strings without brackets vanish
    if b'"' in s:  # some string holds a bracket: cut out what lies between each pair of quotes
        s = b"".join(s.split(b'"')[::2])
    s = s.translate(_ONE_KIND)  # "[" and "{" open a level alike (the parser checks that they match)
    depth = 0
    while s and depth <= limit:
        inner = s.replace(b"()", b"")
        if len(inner) == len(s):  # unbalanced: what is left opens at most this many more levels
            return depth + s.count(b"(")
        s, depth = inner, depth + 1
    return depth


def parse_json(data: bytes | str, where: str):
    """`json.loads` with the limits above; every failure is one InputError line.

    The depth is scanned only when the text has more opening brackets than the limit,
    so a small file costs nothing beyond `json.loads` itself.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise InputError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep (MAX_JSON_DEPTH)", where=where)
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", where=where) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"line {exc.lineno}: invalid JSON ({exc.msg}, column {exc.colno})", where=where) from None
    except RecursionError:
        raise InputError("JSON nested more deeply than the parser allows", where=where) from None
    except ValueError as exc:  # Python's limit on integer digits
        raise InputError(_value_error(raw, exc), where=where) from None


def parse_toml(text: str, where: str) -> dict:
    """`tomllib.loads`, its failures (including too deep nesting) as one InputError line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", where=where) from None
    except RecursionError:
        raise InputError("TOML nested more deeply than the parser allows", where=where) from None
    except ValueError as exc:  # Python's limit on integer digits
        raise InputError(_value_error(text.encode("utf-8", "surrogatepass"), exc), where=where) from None


def _value_error(raw: bytes, exc: ValueError) -> str:
    """Name the line of an integer too long for Python to convert (only on the error path)."""
    found = _LONG_INTEGER.search(raw)
    if found is None:
        return str(exc)
    line = raw.count(b"\n", 0, found.start()) + 1
    return f"line {line}: an integer of {found.end() - found.start():,} digits (Python converts at most 4,300)"
