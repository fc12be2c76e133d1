"""Trace files on disk: Mahimahi, Pensieve "cooked", Sabre JSON and CSV, read and written.

Everything is converted to the project's units on the way in and back to the format's own
units on the way out (ms, kbit/s, Mbit/s); in memory a trace is always a `Trace` in
seconds and bits per second.

Formats (`fmt` names; the loader picks one from the file's content, the extension only
breaks ties or names the parser whose error message is most useful):

* ``mahimahi`` — one integer timestamp in ms per line; each line is one 1500-byte delivery
  opportunity; the file repeats with period = the last timestamp. `packet_times_s` keeps
  the schedule exactly. The rates are 1-second bins: bin k covers (k, k+1] seconds (the
  last one ends at the period); an opportunity at 0 ms belongs to the period's end, where
  the previous repetition delivers it. With that convention the binned capacity equals
  Mahimahi's own delivered count at every whole second. Runs of empty seconds collapse
  into one zero-rate step, so a two-line file saying "0" and "10^12" cannot make us
  allocate one bin per second of silence.
* ``pensieve`` — lines ``time_s  Mbit/s``, read as Pensieve's simulators read them
  (test/fixed_env.py, sim/env.py): a line's rate is the capacity of the interval that *ends*
  at its time, since the previous line; the first line only marks time 0 (its rate is never
  used) and the last line's time ends the period. Times are never negative and are
  shifted so the first line is at 0. A file needs two lines at least. The writer is the exact inverse: a first line
  ``0`` and then, per step, the step's end time and its rate, so that Pensieve simulates
  exactly the trace we wrote and a round trip gives it back. (Reading a line's rate as
  holding *from* its time, as CSV does, would run every rate one sample early under
  Pensieve's semantics.)
* ``sabre`` — a JSON list of ``{"duration_ms", "bandwidth_kbps", "latency_ms"}``; the
  latency is per step. Entries with ``duration_ms`` 0 carry no time and are skipped. One
  `json.loads`, then the entries become arrays in C loops (`map`, `itemgetter`,
  `np.fromiter`), checked with whole-array comparisons.
* ``csv`` — ``time_s,rate_bps[,latency_s]`` with an optional header naming exactly those
  columns, and optional leading ``#`` comment lines. Times are shifted so the first sample
  is at 0; each rate holds until the next sample's time. A leading comment
  ``# duration_s=<seconds>`` gives the period, which the writer always emits so a CSV round
  trip is exact; without it the last sample lasts the median step (1 s when there is a
  single sample). The median, unlike the mean, is not stretched by one long gap.

Large files are parsed without a Python loop over lines. A Mahimahi file made only of
digits and newlines (the usual case) goes through numpy's C text parser plus a count and
range check; anything else goes through a byte-class tokeniser in numpy (token
boundaries from a lookup table, values by Horner's rule over digit columns). Tables
(cooked, CSV) use `np.loadtxt`, which is C code since numpy 1.23 and as fast as the byte
tricks. Line numbers are worked out only when there is an error to report, so the 505k-line
TMobile-LTE-driving trace loads in ~30 ms and a bad file still gets "line N: ...".
(`abrlab bench --suite trace_load` measures it.)

Nothing in a file can hang or exhaust a run: files are read through `netem.inputfiles`
(regular files only, after following links; at most MAX_FILE_BYTES; JSON nesting and
integer length bounded), and every value must lie within the physical bounds stated in
`netem.trace` (MAX_RATE_BPS, MAX_DURATION_S, MAX_LATENCY_S), checked in the file's own
units so the error names the line or entry and the value as written.
"""
from __future__ import annotations

import glob
import io
import math
import os
import warnings
from functools import cached_property
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Iterable

import numpy as np

from netem.errors import InputError
from netem.inputfiles import parse_json, read_regular_file
from netem.trace import (MAHIMAHI_PACKET_BYTES, MAX_DURATION_S, MAX_LATENCY_S, MAX_RATE_BPS, Trace, first_outside,
                         range_problem)

FORMATS: tuple[str, ...] = ("mahimahi", "pensieve", "sabre", "csv")
ALIASES = {"cooked": "pensieve", "json": "sabre", "mm": "mahimahi"}
EXTENSIONS = {
    ".down": "mahimahi", ".up": "mahimahi", ".mahi": "mahimahi", ".mahimahi": "mahimahi",
    ".json": "sabre", ".csv": "csv", ".cooked": "pensieve", ".log": "pensieve",
}
PACKET_BITS = MAHIMAHI_PACKET_BYTES * 8
#: Longest Mahimahi timestamp accepted, in digits (10^15 ms is ~31,000 years).
MAX_TIMESTAMP_DIGITS = 15
#: Most delivery opportunities the Mahimahi writer will produce for one period
#: (20 M lines ≈ 160 MB of text, 240 Gbit of capacity); beyond that the trace is refused.
MAX_OPPORTUNITIES = 20_000_000
_CHUNK = 1_000_000
_DIGITS = frozenset(b"0123456789")


# -- public API ---------------------------------------------------------------------------

def normalize_format(fmt: str, where: str | None = None) -> str:
    """The canonical format name for `fmt` (accepting aliases such as "cooked", "json")."""
    name = ALIASES.get(fmt.strip().lower(), fmt.strip().lower())
    if name not in FORMATS:
        raise InputError(f"unknown trace format {fmt!r}; known: {', '.join(FORMATS)}", where=where)
    return name


def format_from_extension(path: str | os.PathLike) -> str | None:
    """The format an extension suggests (".down" → mahimahi, ".json" → sabre, ...), or None."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def detect_format(data: bytes, path: str | os.PathLike | None = None) -> str | None:
    """Guess the format from the first non-blank line of `data`, else from the extension.

    Content wins over the extension because files are often renamed carelessly; the
    extension only decides when the content says nothing conclusive (then the loader for
    that format produces a precise error instead of "unknown format").
    """
    head = data[:4096]
    stripped = head.lstrip()
    if stripped[:1] in (b"[", b"{"):
        return "sabre"
    line = _first_line(stripped)
    if line.startswith(b"#") or b"," in line:
        return "csv"
    tokens = line.split()
    if len(tokens) == 1 and set(tokens[0]) <= _DIGITS:
        return "mahimahi"
    if len(tokens) == 2 and all(_is_float(t) for t in tokens):
        return "pensieve"
    return format_from_extension(path) if path is not None else None


def load(path: str | os.PathLike, fmt: str | None = None) -> Trace:
    """Read one trace file; `fmt` forces a format, otherwise it is detected.

    Raises `InputError` (one line naming the file and the line or field) for anything a
    user could get wrong: a missing or unreadable path, a directory or anything else that
    is not a regular file, a file over `netem.inputfiles.MAX_FILE_BYTES`, an empty file, an
    unknown format, times going backwards or negative, values outside the physical bounds
    of `netem.trace` (rates, durations, latencies), zero capacity.
    """
    p = path if isinstance(path, Path) else Path(path)
    data = read_regular_file(p, "trace file")
    return loads(data, fmt, name=p.stem or p.name, source=str(path), path=p)


def loads(data: bytes | str, fmt: str | None = None, *, name: str = "trace",
          source: str = "<memory>", path: str | os.PathLike | None = None) -> Trace:
    """Parse a trace from bytes already in memory (what `load` does after reading the file)."""
    if isinstance(data, str):
        data = data.encode()
    if not data or data.isspace():
        raise InputError("empty file: no trace samples", where=source)
    if fmt is None:
        fmt = detect_format(data, path)
        if fmt is None:
            raise InputError("unknown trace format (expected Mahimahi, Pensieve cooked, Sabre JSON "
                             f"or CSV; if it is one of these, name it with --from FMT, {', '.join(FORMATS)})",
                             where=source)
    fmt = normalize_format(fmt, where=source)
    return _LOADERS[fmt](data, name=name, source=source)


def expand_paths(items: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by paths, directories (recursively, hidden files skipped) and globs.

    Each directory's and each glob's files come sorted; the items keep the order given.
    """
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not files:
                raise InputError("directory holds no trace files", where=str(p))
            out.extend(files)
        elif p.exists() or not glob.has_magic(str(item)):
            out.append(p)  # a missing plain path fails later with "no such file"
        else:
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError("no files match this pattern", where=str(item))
            out.extend(matches)
    return out


def load_many(items: str | os.PathLike | Iterable[str | os.PathLike], fmt: str | None = None) -> list[Trace]:
    """Load every trace named by paths, directories and globs (see `expand_paths`)."""
    return [load(p, fmt) for p in expand_paths(items)]


def dumps(trace: Trace, fmt: str) -> str:
    """The text of `trace` in format `fmt` (see the module docstring for what each keeps)."""
    return _WRITERS[normalize_format(fmt)](trace)


def save(trace: Trace, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write `trace` to `path` in `fmt` (default: from the extension) and return the path.

    The text is built in full before the file is opened, so converting a file onto
    itself is safe.
    """
    path = Path(path)
    if fmt is None:
        fmt = format_from_extension(path)
        if fmt is None:
            raise InputError(f"cannot tell the format from the extension; choose one of {', '.join(FORMATS)}",
                             where=str(path))
    text = dumps(trace, fmt)
    if path.is_dir():
        raise InputError("is a directory", where=str(path))
    try:
        with open(path, "w", encoding="ascii", newline="\n") as fh:
            fh.write(text)
    except OSError as exc:
        raise InputError(f"cannot write ({exc.strerror or exc})", where=str(path)) from None
    return path


def delivery_opportunities_ms(trace: Trace) -> np.ndarray:
    """Mahimahi timestamps (int ms, sorted, last = period) for one period of `trace`.

    A trace with `packet_times_s` gives its own schedule back. Otherwise opportunity k is
    at the first whole millisecond at which the cumulative capacity reaches k × 1500 bytes
    (ceil, not round: rounding to the nearest ms would deliver up to half a ms of capacity
    early, several packets at LTE rates). So at every whole millisecond the delivered bytes
    are the capacity rounded down to whole packets: never ahead, less than one packet
    behind. Mahimahi's period is its last line, so when the last crossing falls before
    the period's end one extra opportunity is placed at the end (at most one packet more
    than the capacity, at that instant only).
    """
    period_ms = int(round(trace.duration_s * 1000.0))
    if period_ms <= 0:
        raise InputError(f"duration {trace.duration_s!r} s is under 1 ms, too short for Mahimahi",
                         where=trace.source or trace.name)
    if trace.packet_times_s is not None:
        ms = np.rint(trace.packet_times_s * 1000.0).astype(np.int64)
    else:
        ms = _crossings_ms(trace)
    ms = np.clip(ms, 0, period_ms)
    if ms.size == 0 or ms[-1] < period_ms:
        ms = np.append(ms, np.int64(period_ms))
    return ms


# -- reading ------------------------------------------------------------------------------

def _first_line(data: bytes) -> bytes:
    end = data.find(b"\n")
    return (data if end < 0 else data[:end]).strip()


def _is_float(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _line_of(data: bytes, pos: int) -> int:
    """1-based line number of byte offset `pos` (only used on the error path)."""
    return data.count(b"\n", 0, pos) + 1


def _line_text(data: bytes, line: int, limit: int = 40) -> str:
    """The text of 1-based `line`, shortened for an error message."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    start = 0 if line == 1 else int(newlines[line - 2]) + 1
    end = int(newlines[line - 1]) if line - 1 < newlines.size else len(data)
    text = data[start:min(end, start + 4 * limit)].strip().decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "..."


# Byte classes for the vectorised scanners.
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\r\n\x0b\x0c")] = True
_WHITESPACE_OR_COMMA = _WHITESPACE.copy()
_WHITESPACE_OR_COMMA[ord(",")] = True
_DIGIT_OR_SPACE = _WHITESPACE.copy()
_DIGIT_OR_SPACE[list(b"0123456789")] = True


class _Tokens:
    """Token boundaries in a byte buffer: token i is buf[starts[i]:ends[i]].

    Line numbers cost a binary search per token, so they are computed only when asked
    for (an error message, or the row structure of a table).
    """

    def __init__(self, buf: np.ndarray, separators: np.ndarray) -> None:
        self.buf = buf
        edge = np.diff(separators.take(buf).view(np.int8), prepend=np.int8(1), append=np.int8(1))
        self.starts = np.flatnonzero(edge == -1)  # separator -> token
        self.ends = np.flatnonzero(edge == 1)     # token -> separator

    @property
    def size(self) -> int:
        return int(self.starts.size)

    @cached_property
    def lines(self) -> np.ndarray:
        """1-based line number of every token."""
        return np.searchsorted(np.flatnonzero(self.buf == 10), self.starts) + 1

    def line_of(self, i: int) -> int:
        """1-based line number of token i, without computing all of them."""
        return int(np.count_nonzero(self.buf[:self.starts[i]] == 10)) + 1

    def one_per_line(self) -> int | None:
        """Index of the first token sharing its line with the previous one, or None.

        Two tokens are on different lines when a newline separates them; in a normal
        file the gap between tokens starts or ends with one, which is checked for all
        gaps at once; only the unusual gaps get a closer look.
        """
        gap_first, gap_last = self.ends[:-1], self.starts[1:] - 1
        odd = np.flatnonzero((self.buf[gap_first] != 10) & (self.buf[gap_last] != 10))
        if not odd.size:
            return None
        newlines = np.flatnonzero(self.buf == 10)
        nxt = np.searchsorted(newlines, gap_first[odd])
        crossing = (nxt < newlines.size) & (newlines[np.minimum(nxt, newlines.size - 1)] <= gap_last[odd])
        bad = odd[~crossing]
        return int(bad[0]) + 1 if bad.size else None

    def ints(self) -> np.ndarray:
        """Digit-only tokens as int64: Horner's rule over right-aligned digit columns, one
        vector pass per digit position instead of a Python loop per line."""
        width = int((self.ends - self.starts).max(initial=0))
        values = np.zeros(self.size, dtype=np.int64)
        for k in range(width):
            pos = self.ends - width + k
            digit = self.buf.take(np.maximum(pos, 0)) - np.uint8(48)
            values *= 10
            values += np.where(pos >= self.starts, digit, np.uint8(0))
        return values


def _load_mahimahi(data: bytes, *, name: str, source: str) -> Trace:
    buf = np.frombuffer(data, dtype=np.uint8)
    ms = _plain_timestamps(data, buf)
    tokens = None
    if ms is None:  # unusual layout or bad input: the general scanner names the line
        tokens = _Tokens(buf, _WHITESPACE)
        ms = _checked_timestamps(data, buf, tokens, source)
    back = np.flatnonzero(ms[1:] < ms[:-1])
    if back.size:
        i = int(back[0]) + 1
        line = (tokens or _Tokens(buf, _WHITESPACE)).line_of(i)
        raise InputError(f"line {line}: timestamp {ms[i]} ms goes backwards (previous {ms[i - 1]} ms)",
                         where=source)
    period_ms = int(ms[-1])
    if period_ms == 0:
        raise InputError("the last timestamp is 0 ms, so the trace has no duration "
                         "(Mahimahi repeats a file with period = its last timestamp)", where=source)
    if period_ms > MAX_DURATION_S * 1000:
        line = (tokens or _Tokens(buf, _WHITESPACE)).line_of(ms.size - 1)
        raise InputError(f"line {line}: timestamp {period_ms} ms makes the period {period_ms / 1000!r} s, "
                         f"above the limit of {MAX_DURATION_S:g} s (MAX_DURATION_S)", where=source)
    times, rates = _bin_opportunities(ms, period_ms)
    fast = np.flatnonzero(rates > MAX_RATE_BPS)
    if fast.size:  # so many packets in one (short, last) bin that its rate is beyond any link
        k = int(fast[0])
        end_s = float(times[k + 1]) if k + 1 < times.size else period_ms / 1000.0
        packets = round(rates[k] * (end_s - times[k]) / PACKET_BITS)
        line = (tokens or _Tokens(buf, _WHITESPACE)).line_of(int(np.searchsorted(ms, end_s * 1000, side="right")) - 1)
        raise InputError(f"line {line}: {packets} delivery opportunities in ({times[k]:g}, {end_s:g}] s are "
                         f"{rates[k]:g} bit/s, above the limit of {MAX_RATE_BPS:g} bit/s (MAX_RATE_BPS)", where=source)
    return Trace(times, rates, period_ms / 1000.0, name=name, source=source, format="mahimahi",
                 packet_times_s=ms / 1000.0)


def _plain_timestamps(data: bytes, buf: np.ndarray) -> np.ndarray | None:
    """Fast path for the usual file (only digits and "\n"): numpy's C text parser, and
    each number is necessarily on its own line. None when the file is anything else."""
    if buf.size == 0 or np.any((buf - np.uint8(48) > 9) & (buf != 10)):
        return None
    count = int(np.count_nonzero((buf[:-1] != 10) & (buf[1:] == 10))) + int(buf[-1] != 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ms = np.fromstring(data, dtype=np.int64, sep=" ")
        except ValueError:
            return None
    if count == 0 or ms.size != count or ms.min() < 0 or ms.max() >= 10 ** MAX_TIMESTAMP_DIGITS:
        return None
    return ms


def _checked_timestamps(data: bytes, buf: np.ndarray, tok: _Tokens, source: str) -> np.ndarray:
    """The general path: any whitespace layout, with an error naming the line for bad input."""
    bad = np.flatnonzero(~_DIGIT_OR_SPACE.take(buf))
    if bad.size:
        line = _line_of(data, int(bad[0]))
        raise InputError(f"line {line}: expected one integer timestamp in ms, found {_line_text(data, line)!r}",
                         where=source)
    if tok.size == 0:
        raise InputError("empty file: no delivery opportunities", where=source)
    shared = tok.one_per_line()
    if shared is not None:
        line = tok.line_of(shared)
        raise InputError(f"line {line}: expected one integer timestamp in ms, found {_line_text(data, line)!r}",
                         where=source)
    long = np.flatnonzero(tok.ends - tok.starts > MAX_TIMESTAMP_DIGITS)
    if long.size:
        raise InputError(f"line {tok.line_of(int(long[0]))}: timestamp too large", where=source)
    return tok.ints()


def _bin_opportunities(ms: np.ndarray, period_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """1-second bins (k, k+1] of sorted opportunity times (see the module docstring).

    Only non-empty bins and the first second of each empty run become steps, so the
    step count is bounded by twice the number of lines, whatever the period.
    """
    n_bins = -(-period_ms // 1000)
    zeros = int(np.searchsorted(ms, 0, side="right"))  # 0 ms belongs to the period's end
    k = (ms[zeros:] - 1) // 1000  # sorted, because ms is
    first = np.flatnonzero(np.diff(k, prepend=-1))
    bins = k[first]
    counts = np.diff(np.append(first, k.size))
    counts[-1] += zeros  # the last line is period_ms > 0, so bin n_bins - 1 is always present
    bin_len_s = np.minimum(bins + 1, period_ms / 1000.0) - bins
    # zero-rate steps: at 0 if the first bin is later, and after each bin followed by a gap
    gap_starts = (bins + 1)[np.append(bins[1:], n_bins) > bins + 1]
    if bins[0] > 0:
        gap_starts = np.append(0, gap_starts)
    times = np.concatenate([bins, gap_starts]).astype(np.float64)
    rates = np.concatenate([counts * PACKET_BITS / bin_len_s, np.zeros(gap_starts.size)])
    order = np.argsort(times, kind="stable")
    return times[order], rates[order]


def _one_token_per_line(data: bytes, tok: _Tokens, ncols: int, what: str, source: str) -> None:
    """Every non-blank line holds exactly `ncols` tokens; otherwise name the first bad line."""
    lines = tok.lines
    if tok.size % ncols == 0:
        rows = lines.reshape(-1, ncols)
        if np.all(rows == rows[:, :1]) and np.all(np.diff(rows[:, 0]) > 0):
            return
    line_ids, first = np.unique(lines, return_index=True)  # lines are sorted: token order
    counts = np.diff(np.append(first, lines.size))
    i = int(np.flatnonzero(counts != ncols)[0])
    raise InputError(f"line {line_ids[i]}: expected {what}, found {counts[i]} value(s): "
                     f"{_line_text(data, int(line_ids[i]))!r}", where=source)


class _RowLines:
    """1-based file line of each table row, computed only when an error needs one."""

    def __init__(self, data: bytes, separators: np.ndarray, ncols: int) -> None:
        self._data, self._separators, self._ncols = data, separators, ncols

    @cached_property
    def _lines(self) -> np.ndarray:
        return _Tokens(np.frombuffer(self._data, dtype=np.uint8), self._separators).lines[::self._ncols]

    def __getitem__(self, row: int) -> int:
        return int(self._lines[row])


def _numeric_table(data: bytes, *, ncols: int | tuple[int, ...], what: str, source: str,
                   commas: bool = False) -> tuple[np.ndarray, _RowLines]:
    """Rows of numbers: (values[rows, ncols], the file line of each row).

    numpy's C `loadtxt` (numpy >= 1.23) parses and validates as fast as any trick on
    bytes; when it refuses the file, `_careful_table` finds the line to name.
    `ncols` may be a tuple of allowed widths; the file's first row picks one.
    """
    widths = (ncols,) if isinstance(ncols, int) else ncols
    separators = _WHITESPACE_OR_COMMA if commas else _WHITESPACE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data": handled below
        try:
            values = np.loadtxt(io.BytesIO(data), dtype=np.float64, comments=None, ndmin=2,
                                delimiter="," if commas else None)
        except ValueError:
            values = None
    if values is None or values.size == 0 or values.shape[1] not in widths:
        values = _careful_table(data, separators, widths, what, source, commas)
    return values, _RowLines(data, separators, values.shape[1])


def _careful_table(data: bytes, separators: np.ndarray, widths: tuple[int, ...], what: str, source: str,
                   commas: bool) -> np.ndarray:
    """The slow path when `loadtxt` refuses a table: raise an InputError naming the first
    bad line, or, when the refusal was only a layout quirk (a whitespace-only line in a
    CSV), parse token by token."""
    tok = _Tokens(np.frombuffer(data, dtype=np.uint8), separators)
    if tok.size == 0:
        raise InputError("empty file: no trace samples", where=source)
    first_count = int(np.count_nonzero(tok.lines == tok.lines[0]))
    ncols = first_count if first_count in widths else widths[0]
    _one_token_per_line(data, tok, ncols, what, source)
    if commas:
        _check_commas(data, tok, ncols, what, source)
    values = []
    for i in range(tok.size):
        token = data[tok.starts[i]:tok.ends[i]]
        try:
            values.append(float(token))
        except ValueError:
            raise InputError(f"line {tok.lines[i]}: {token.decode('utf-8', 'replace')[:40]!r} is not a number",
                             where=source) from None
    return np.array(values, dtype=np.float64).reshape(-1, ncols)


def _check_commas(data: bytes, tok: _Tokens, ncols: int, what: str, source: str) -> None:
    """Exactly ncols-1 commas on each data line (so "1,,2" or a trailing comma is an error)."""
    buf = tok.buf
    newlines = np.flatnonzero(buf == 10)
    comma_lines = np.searchsorted(newlines, np.flatnonzero(buf == ord(","))) + 1
    rows = tok.lines[::ncols]
    if np.array_equal(comma_lines, np.repeat(rows, ncols - 1)):
        return
    found_at, found = np.unique(comma_lines, return_counts=True)
    lines = np.union1d(found_at, rows)
    have = np.zeros(lines.size, dtype=np.int64)
    have[np.searchsorted(lines, found_at)] = found
    want = np.zeros(lines.size, dtype=np.int64)
    want[np.searchsorted(lines, rows)] = ncols - 1
    bad = int(lines[np.flatnonzero(have != want)[0]])
    raise InputError(f"line {bad}: expected {what}, found {_line_text(data, bad)!r}", where=source)


def _samples_to_trace(times: np.ndarray, rates: np.ndarray, lines: _RowLines, *, rate_unit: str,
                      bps_per_unit: float, duration_s: float | None, latency: np.ndarray | None, fmt: str,
                      name: str, source: str, rate_until_time: bool = False) -> Trace:
    """Sampled (time, rate) rows to a Trace: shift to 0, check order and values, close the last step.

    Times count seconds from the start of a recording, so they are never negative; a
    first time above 0 is an offset, shifted away.
    `rates` are in the file's unit (named in errors as the user wrote them) and converted here.
    A rate holds from its row's time to the next row's; with `rate_until_time` (Pensieve), it
    covers the interval from the previous row's time to its own, and the last time ends the period.
    """
    bad_t = np.flatnonzero(~np.isfinite(times))
    if bad_t.size:
        raise InputError(f"line {lines[bad_t[0]]}: time {float(times[bad_t[0]])!r} is not finite", where=source)
    if times[0] < 0:
        raise InputError(f"line {lines[0]}: time {float(times[0])!r} s is negative (times are seconds since "
                         "the recording started)", where=source)
    step = np.diff(times)
    back = np.flatnonzero(step <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(f"line {lines[i]}: time {float(times[i])!r} s is not after the previous sample's "
                         f"{float(times[i - 1])!r} s", where=source)
    t = times - times[0]
    if t[-1] >= MAX_DURATION_S:
        i = int(np.argmax(t >= MAX_DURATION_S))
        raise InputError(f"line {lines[i]}: time {float(times[i])!r} s is {float(t[i]):g} s after the first sample, "
                         f"above the limit of {MAX_DURATION_S:g} s for a trace (MAX_DURATION_S)", where=source)
    _check_range(rates, lines, f"rate {{}} {rate_unit}", MAX_RATE_BPS / bps_per_unit,
                 f"{rate_unit} (MAX_RATE_BPS, 10 Tbit/s)", source)
    if latency is not None:
        _check_range(latency, lines, "latency {} s", MAX_LATENCY_S, "s (MAX_LATENCY_S)", source)
    if rate_until_time:
        t, duration_s, rates = t[:-1], float(t[-1]), rates[1:]
    if not np.any(rates > 0):
        raise InputError("total capacity is zero: every rate is 0", where=source)
    if duration_s is None:
        duration_s = float(t[-1] + (np.median(step) if step.size else 1.0))
        if duration_s > MAX_DURATION_S:
            raise InputError(f"line {lines[t.size - 1]}: the last sample, lasting the median step, would end at "
                             f"{duration_s:g} s, above the limit of {MAX_DURATION_S:g} s (MAX_DURATION_S)",
                             where=source)
    elif not duration_s > t[-1]:
        raise InputError(f"duration_s={duration_s!r} must exceed the last sample's time {float(t[-1])!r} s",
                         where=source)
    return Trace(t, rates * bps_per_unit, duration_s, latency_s=latency, name=name, source=source, format=fmt)


def _check_range(values: np.ndarray, lines: _RowLines, what: str, high: float, unit: str, source: str) -> None:
    """Every value in [0, high]; else name the first bad one's line. `what` has a {} where
    the offending value goes; `high` and `unit` are in the file's unit."""
    i = first_outside(values, 0.0, high)
    if i >= 0:
        value = float(values[i])
        raise InputError(f"line {lines[i]}: {what.format(repr(value))} {range_problem(value, 0.0, high, unit)}",
                         where=source)


def _load_pensieve(data: bytes, *, name: str, source: str) -> Trace:
    values, lines = _numeric_table(data, ncols=2, what="2 columns: time_s Mbit/s", source=source)
    if values.shape[0] < 2:
        raise InputError("a Pensieve cooked trace needs 2 lines at least: each line's rate covers the time "
                         "since the previous line", where=source)
    return _samples_to_trace(values[:, 0], values[:, 1], lines, rate_unit="Mbit/s", bps_per_unit=1e6,
                             duration_s=None, latency=None, fmt="pensieve", name=name, source=source,
                             rate_until_time=True)


CSV_COLUMNS = ("time_s", "rate_bps", "latency_s")


def _load_csv(data: bytes, *, name: str, source: str) -> Trace:
    offset, duration_s, header = _csv_preamble(data, source)
    if not data[offset:].strip():
        raise InputError("no data rows after the header", where=source)
    # Drop the preamble but keep its newlines, so line numbers stay those of the file.
    blanked = b"\n" * data.count(b"\n", 0, offset) + data[offset:]
    values, lines = _numeric_table(blanked, ncols=(2, 3), what="time_s,rate_bps[,latency_s]", source=source,
                                   commas=True)
    if header is not None and len(header) != values.shape[1]:
        raise InputError(f"header names {len(header)} columns but rows have {values.shape[1]}", where=source)
    latency = values[:, 2] if values.shape[1] == 3 else None
    return _samples_to_trace(values[:, 0], values[:, 1], lines, rate_unit="bit/s", bps_per_unit=1.0,
                             duration_s=duration_s, latency=latency, fmt="csv", name=name, source=source)


def _csv_preamble(data: bytes, source: str) -> tuple[int, float | None, list[str] | None]:
    """Leading comments (`# duration_s=...`) and the optional header.

    Returns (byte offset of the first data row, duration_s or None, header or None).
    """
    offset, line_no, duration_s = 0, 1, None
    while True:
        end = data.find(b"\n", offset)
        raw = data[offset:] if end < 0 else data[offset:end]
        text = raw.decode("utf-8", "replace").strip()
        if text.startswith("#"):
            duration_s = _duration_comment(text, line_no, source, duration_s)
        elif text:
            break
        if end < 0:
            return len(data), duration_s, None
        offset, line_no = end + 1, line_no + 1
    first_field = text.split(",")[0].strip()
    if _is_float(first_field.encode()):
        return offset, duration_s, None
    header = [c.strip().strip('"').strip().lower() for c in text.split(",")]
    if tuple(header) not in (CSV_COLUMNS[:2], CSV_COLUMNS):
        raise InputError(f"line {line_no}: header must be time_s,rate_bps[,latency_s] "
                         f"(seconds, bits per second, seconds), found {text[:60]!r}", where=source)
    return (len(data) if end < 0 else end + 1), duration_s, header


def _duration_comment(text: str, line_no: int, source: str, current: float | None) -> float | None:
    body = text.lstrip("#").strip()
    if not body.startswith("duration_s"):
        return current
    key, _, value = body.partition("=")
    try:
        duration = float(value)
    except ValueError:
        duration = math.nan
    if key.strip() != "duration_s" or not math.isfinite(duration) or duration <= 0:
        raise InputError(f"line {line_no}: expected '# duration_s=<positive seconds>', found {text[:60]!r}",
                         where=source)
    if duration > MAX_DURATION_S:
        raise InputError(f"line {line_no}: duration_s={duration:g} is above the limit of {MAX_DURATION_S:g} s "
                         "(MAX_DURATION_S)", where=source)
    return duration


SABRE_FIELDS = ("duration_ms", "bandwidth_kbps", "latency_ms")
#: Each Sabre field's upper bound in the file's units (ms, kbit/s, ms), from `netem.trace`.
SABRE_LIMITS = ((MAX_DURATION_S * 1000, "ms (MAX_DURATION_S)"), (MAX_RATE_BPS / 1000, "kbit/s (MAX_RATE_BPS)"),
                (MAX_LATENCY_S * 1000, "ms (MAX_LATENCY_S)"))
_SABRE_HIGHS = np.array([high for high, _ in SABRE_LIMITS])
_NUMBER_TYPES = frozenset((int, float))


def _load_sabre(data: bytes, *, name: str, source: str) -> Trace:
    """One `json.loads`, then the entries become one (entries × fields) array in C loops
    (`map`, `itemgetter`, `np.array`) and are checked with whole-array comparisons; the
    per-entry Python loop runs only to name a bad entry."""
    doc = parse_json(data, source)
    if not isinstance(doc, list) or not doc:
        raise InputError("Sabre JSON must be a non-empty list of {duration_ms, bandwidth_kbps, latency_ms}",
                         where=source)
    has_latency = isinstance(doc[0], dict) and "latency_ms" in doc[0]
    fields = SABRE_FIELDS if has_latency else SABRE_FIELDS[:2]
    table = _sabre_table(doc, fields, source)
    dur_ms = table[:, 0]
    keep = dur_ms > 0
    if not keep.all():
        if not keep.any():
            raise InputError("total duration is zero: every duration_ms is 0", where=source)
        table, dur_ms = table[keep], dur_ms[keep]
    rates = table[:, 1] * 1000.0
    if not rates.any():  # checked >= 0 above
        raise InputError("total capacity is zero: every bandwidth_kbps is 0", where=source)
    starts = np.empty(dur_ms.size)
    starts[0] = 0.0
    np.cumsum(dur_ms[:-1], out=starts[1:])
    total_ms = float(np.sum(dur_ms))
    if total_ms > MAX_DURATION_S * 1000:
        i = int(np.flatnonzero(keep)[np.argmax(starts + dur_ms > MAX_DURATION_S * 1000)])
        raise InputError(f"entry {i}: the trace reaches {(starts + dur_ms).max() / 1000:g} s by its end, above "
                         f"the limit of {MAX_DURATION_S:g} s (MAX_DURATION_S)", where=source)
    latency = table[:, 2] / 1000.0 if has_latency else None
    return Trace(starts / 1000.0, rates, total_ms / 1000.0, latency_s=latency, name=name, source=source,
                 format="sabre")


def _sabre_table(doc: list, fields: tuple[str, ...], source: str) -> np.ndarray:
    """Values of `fields` for every entry as a float (entries × fields) array, each within
    [0, its SABRE_LIMITS bound]; otherwise an InputError naming the entry, field and value."""
    try:
        columns = [list(map(itemgetter(f), doc)) for f in fields]
        if set(map(type, chain.from_iterable(columns))) <= _NUMBER_TYPES:
            table = np.empty((len(doc), len(fields)))
            for j, column in enumerate(columns):
                table[:, j] = np.fromiter(column, dtype=np.float64, count=len(doc))
            if ((table >= 0) & (table <= _SABRE_HIGHS[:len(fields)])).all():
                return table
    except (KeyError, TypeError, OverflowError):  # a missing field, an entry that is no object, a huge integer
        pass
    for i, entry in enumerate(doc):  # the error path: find and name the first bad value
        if not isinstance(entry, dict):
            raise InputError(f"entry {i}: expected an object with {', '.join(SABRE_FIELDS)}", where=source)
        for field, (high, unit) in zip(fields, SABRE_LIMITS):
            if field not in entry:
                raise InputError(f"entry {i}: missing field {field!r}", where=source)
            value = entry[field]
            if type(value) not in _NUMBER_TYPES:
                raise InputError(f"entry {i}: {field} must be a number, got {value!r}", where=source)
            shown = repr(value) if len(repr(value)) <= 40 else f"an integer of {len(str(abs(value))):,} digits"
            if value != value or value < 0 or value == math.inf:  # NaN, infinite, negative (any size)
                raise InputError(f"entry {i}: {field} must be a finite number >= 0, got {shown}", where=source)
            if value > high:  # also inf and integers too large for a float
                raise InputError(f"entry {i}: {field} must be at most {high:g} {unit}, got {shown}", where=source)
    raise AssertionError("unreachable")  # pragma: no cover


_LOADERS = {"mahimahi": _load_mahimahi, "pensieve": _load_pensieve, "sabre": _load_sabre, "csv": _load_csv}


# -- writing ------------------------------------------------------------------------------

def _crossings_ms(trace: Trace) -> np.ndarray:
    """First whole ms at which cumulative capacity reaches k packets, k = 1..floor(total)."""
    rates, times = trace.rates_bps, trace.times_s
    cum = np.concatenate([[0.0], np.cumsum(rates * trace.step_durations_s)])
    total = int(math.floor(cum[-1] / PACKET_BITS + 1e-9))
    if total > MAX_OPPORTUNITIES:
        raise InputError(f"would need {total} Mahimahi delivery opportunities per period "
                         f"(limit {MAX_OPPORTUNITIES}); shorten or slow the trace", where=trace.source or trace.name)
    out = np.empty(total, dtype=np.int64)
    for lo in range(0, total, _CHUNK):
        targets = PACKET_BITS * np.arange(lo + 1, min(lo + _CHUNK, total) + 1, dtype=np.float64)
        j = np.clip(np.searchsorted(cum, targets, side="left") - 1, 0, rates.size - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(rates[j] > 0, times[j] + (targets - cum[j]) / rates[j], trace.duration_s)
        out[lo:lo + targets.size] = np.ceil(t * 1000.0 - 1e-6).astype(np.int64)
    return out


def _write_mahimahi(trace: Trace) -> str:
    ms = delivery_opportunities_ms(trace)
    return "\n".join(map(str, ms.tolist())) + "\n"


def _json_numbers(values: np.ndarray, snap: float = 0.0) -> list[str]:
    """JSON text of each value: an int when it is one (as Sabre's own files write them),
    else the exact float (repr round-trips).

    `snap` (absolute) absorbs the float noise of seconds→ms conversion, so 0.71 s is
    written as 710 ms rather than 709.9999999999999; it never snaps a value to 0.
    """
    rounded = np.rint(values)
    as_int = (np.abs(values - rounded) <= snap) & ((rounded != 0) | (values == 0))
    ints = rounded.astype(np.int64).tolist()
    return [str(i) if exact else repr(v) for i, v, exact in zip(ints, values.tolist(), as_int.tolist())]


def _write_sabre(trace: Trace) -> str:
    """Sabre JSON, one entry per step; latency 0 when the trace has none (Sabre needs the field)."""
    dur_ms = _json_numbers(trace.step_durations_s * 1000.0, snap=1e-6)
    kbps = _json_numbers(trace.rates_bps / 1000.0)
    lat_ms = trace.latency_s * 1000.0 if trace.latency_s is not None else np.zeros(trace.times_s.size)
    latency = _json_numbers(lat_ms, snap=1e-9)
    rows = [f'{{"duration_ms": {d}, "bandwidth_kbps": {b}, "latency_ms": {la}}}'
            for d, b, la in zip(dur_ms, kbps, latency)]
    return "[\n    " + ",\n    ".join(rows) + "\n]\n"


def _write_csv(trace: Trace) -> str:
    cols = [trace.times_s.tolist(), trace.rates_bps.tolist()]
    if trace.latency_s is not None:
        cols.append(trace.latency_s.tolist())
    header = ",".join(CSV_COLUMNS[:len(cols)])
    rows = [",".join(map(repr, row)) for row in zip(*cols)]
    return f"# duration_s={trace.duration_s!r}\n{header}\n" + "\n".join(rows) + "\n"


def _write_pensieve(trace: Trace) -> str:
    """Line 0 marks time 0 (Pensieve never uses its rate: we repeat the first step's), then each
    step as (its end time, its rate), the last ending at the period (see the module docstring)."""
    mbps = (trace.rates_bps / 1e6).tolist()
    ends = np.append(trace.times_s[1:], trace.duration_s).tolist()
    return "\n".join(f"{t!r}\t{r!r}" for t, r in zip([0.0] + ends, mbps[:1] + mbps)) + "\n"


_WRITERS = {"mahimahi": _write_mahimahi, "pensieve": _write_pensieve, "sabre": _write_sabre, "csv": _write_csv}
