"""`sessions.csv`: a sweep's results, appended in small units, each fsynced; never corrupted.

Rows are written as soon as a batch is simulated, in write units of a few hundred rows, each
appended and fsynced, so an interrupted sweep loses nothing it wrote and a re-run computes
only what is missing. What can go wrong, and what this module does about it:

- a kill (or a full disk) during an append leaves a partial last line: `load` cuts the file
  at its last newline, counted in BYTES (the rows end in CRLF), and a failed append puts the
  file back to its size before the append, so the next append never glues onto a fragment;
- a damaged line anywhere (garbage, a line from another program, a field too long): `load`
  keeps every row that parses and moves the others, byte for byte, to
  `sessions.rejected.csv` beside it, with a one-line warning; the missing sessions are then
  simply computed again;
- a write that fails (no space, file too large, read-only): `ResultsWriteError` names the
  file and the reason; every row already fsynced stays, and a re-run resumes.

Rows are formatted without per-session dicts: `format_rows` joins columns of text that the
caller formats a column at a time (`float_texts`, `int_texts`), byte for byte what the `csv`
module writes (CRLF line ends, minimal quoting, `repr` of floats).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from netem.errors import AbrlabError, InputError

CSV_FIELDS = [
    "trace", "abr", "abr_params", "device", "preset", "movie", "segments",
    "avg_bitrate_bps", "time_avg_bitrate_bps", "utility", "rebuffer_s", "rebuffer_count",
    "rebuffer_ratio", "startup_s", "switches", "switch_magnitude_bps", "bytes", "session_s",
    "qoe", "qoe_model", "qoe_utility", "qoe_rebuffer_penalty", "qoe_smoothness_penalty",
    "qoe_linear", "qoe_log", "qoe_hd", "qoe_twitch", "latency_mean_s", "latency_max_s", "latency_end_s",
    "target_latency_s", "playback_rate_mean", "seeks", "chosen",
]
#: the live sessions' columns (`player.core.summary.LIVE_METRICS`; nan for a VoD session)
LIVE_FIELDS = ("latency_mean_s", "latency_max_s", "latency_end_s", "target_latency_s", "playback_rate_mean", "seeks")
#: what identifies a session's row (with its occurrence, for a trace repeated in a sweep)
KEY_FIELDS = ("trace", "abr", "abr_params", "device", "preset", "movie")
TEXT_FIELDS = frozenset(KEY_FIELDS) | {"qoe_model", "chosen"}
NUMERIC_FIELDS = tuple(f for f in CSV_FIELDS if f not in TEXT_FIELDS)
_NUMERIC_AT = tuple(CSV_FIELDS.index(f) for f in NUMERIC_FIELDS)
assert CSV_FIELDS[:len(KEY_FIELDS)] == list(KEY_FIELDS)   # a row's identity is its first fields
LINE_END = "\r\n"   # what the csv module writes
HEADER = (",".join(CSV_FIELDS) + LINE_END).encode()
REJECTED_SUFFIX = ".rejected.csv"


class ResultsWriteError(AbrlabError):
    """A results file could not be written (disk full, file too large, read-only...)."""


def csv_text(value: str) -> str:
    """One field as the csv module writes it (quoted only when it must be)."""
    if not any(c in value for c in ',"\r\n'):
        return value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([value, ""])
    return buf.getvalue()[:-1]


def float_texts(values: np.ndarray) -> list[str]:
    """A column of floats as the csv module writes Python floats (`repr`: shortest round trip)."""
    return list(map(repr, np.asarray(values, dtype=np.float64).tolist()))


def int_texts(values: np.ndarray) -> list[str]:
    return list(map(str, np.asarray(values).astype(np.int64, copy=False).tolist()))


def format_rows(columns: Sequence[Sequence[str]]) -> bytes:
    """CSV lines (CRLF-terminated) from columns of already formatted, already quoted texts,
    in `CSV_FIELDS` order; a column of length 1 is repeated on every row."""
    n = max(len(c) for c in columns)
    cols = [c if len(c) == n else [c[0]] * n for c in columns]
    if n == 0:
        return b""
    return (LINE_END.join(map(",".join, zip(*cols))) + LINE_END).encode()


def split_fields(text: str) -> list[str] | None:
    """The fields of one line (without its line end), as the csv module reads them.

    Fast path for what this module writes: quoted fields (a parameter list with commas)
    hold no quote themselves, so the line splits on quotes, each quoted field stands in as
    one mark, and the rest splits on commas. Anything else goes through csv.reader; None
    for a line that is not one CSV record."""
    if '"' not in text:
        return text.split(",")
    seg = text.split('"')
    if '""' in text or "\x00" in text or len(seg) % 2 == 0:
        try:
            records = list(csv.reader([text], strict=True))
        except csv.Error:
            return None
        return records[0] if len(records) == 1 else None
    quoted = iter(seg[1::2])
    fields = "".join(part if i % 2 == 0 else "\x00" for i, part in enumerate(seg)).split(",")
    for j, f in enumerate(fields):
        if "\x00" in f:
            if f != "\x00":
                return None          # a quote inside a field: not something we write
            fields[j] = next(quoted)
    return fields


def parse_line(line: bytes) -> list[str] | None:
    """The fields of one line of sessions.csv, or None when it is not a well-formed row:
    bad bytes, not one CSV record, the wrong number of fields, an empty trace or policy, a
    number that does not parse."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = split_fields(text.rstrip("\r\n"))
    if fields is None or len(fields) != len(CSV_FIELDS) or not (fields[0] and fields[1]):
        return None
    try:
        for i in _NUMERIC_AT:
            float(fields[i])
    except ValueError:
        return None
    return fields


class LoadReport:
    """What `ResultsFile.load` found: rows kept, lines set aside, bytes of a torn tail cut."""

    def __init__(self) -> None:
        self.rows = 0
        self.rejected = 0
        self.torn_bytes = 0


class ResultsFile:
    """`sessions.csv`: appended in units, each fsynced; repaired and validated on load."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rejected_path = self.path.with_name(self.path.stem + REJECTED_SUFFIX)

    # -- reading -----------------------------------------------------------------------------
    def load(self, keep: Callable[[list[str]], None] | None = None,
             warn: Callable[[str], None] | None = None) -> LoadReport:
        """Call `keep(fields)` for every good row, in file order, after cutting a torn last
        line (by bytes) and setting damaged lines aside in `sessions.rejected.csv`. Reads the
        file as a stream: memory does not grow with its length."""
        report = LoadReport()
        if not self.path.exists():
            return report
        report.torn_bytes = self._cut_torn_tail()
        bad: list[int] = []
        with open(self.path, "rb") as fh:
            header = fh.readline()
            if not header:
                return report
            if header.rstrip(b"\r\n") != HEADER.rstrip(b"\r\n"):
                raise InputError(f"{self.path} was not written by this version of abrlab (its columns differ); "
                                 "use a new --out")
            for number, line in enumerate(fh, start=1):
                fields = parse_line(line)
                if fields is None:
                    bad.append(number)
                    continue
                report.rows += 1
                if keep is not None:
                    keep(fields)
        if bad:
            report.rejected = len(bad)
            self._set_aside(set(bad))
            if warn is not None:
                warn(f"warning: {self.path}: {len(bad)} line(s) that are not well-formed rows were moved to "
                     f"{self.rejected_path}; those sessions will be computed again")
        return report

    def rows(self) -> list[dict]:
        """Every good row as a dict (for tests and small files; a sweep loads columns)."""
        out: list[dict] = []
        self.load(lambda f: out.append(dict(zip(CSV_FIELDS, f))))
        return out

    def _cut_torn_tail(self) -> int:
        """Truncate the file after its last newline (a BYTE offset); returns the bytes cut."""
        with open(self.path, "r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            end = size
            block = 1 << 16
            while end > 0:
                start = max(0, end - block)
                fh.seek(start)
                chunk = fh.read(end - start)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    good = start + i + 1
                    break
                end = start
            else:
                good = 0
            if good != size:
                fh.truncate(good)
                fh.flush()
                os.fsync(fh.fileno())
            return size - good

    def _set_aside(self, bad_lines: set[int]) -> None:
        """Move the lines numbered `bad_lines` (1 = the first row) to the rejected file and
        rewrite sessions.csv without them (a new file, fsynced, then renamed over)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(self.path, "rb") as src, open(tmp, "wb") as good, open(self.rejected_path, "ab") as rej:
                good.write(src.readline())
                for number, line in enumerate(src, start=1):
                    if number in bad_lines:
                        rej.write(line if line.endswith(b"\n") else line + b"\n")
                    else:
                        good.write(line)
                for fh in (good, rej):
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ResultsWriteError(f"could not set damaged rows aside ({exc.strerror or exc}): "
                                    f"{exc.filename or self.path}") from None

    # -- writing -----------------------------------------------------------------------------
    def append(self, data: bytes) -> None:
        """Append whole CSV lines (and the header first if the file is new), then fsync. On
        failure the file is put back to its size before the call, so no partial row stays."""
        if not data:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise ResultsWriteError(f"could not write {self.path}: {exc.strerror or exc}") from None
        try:
            before = os.fstat(fd).st_size
            view = memoryview(HEADER + data if before == 0 else data)
            while view:  # unbuffered: nothing is left in a buffer to be flushed after a failure
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, before)
                os.fsync(fd)
            except OSError:  # the next load cuts a torn line by bytes anyway
                pass
            raise ResultsWriteError(f"could not write {self.path}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    def append_rows(self, rows: Iterable[dict]) -> None:
        """Append rows given as dicts (small amounts, tests); a sweep appends formatted units."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writerows(rows)
        self.append(buf.getvalue().encode())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not every platform opens directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_text_safely(path: Path, text: str) -> None:
    """Write a small report file (sweep.json, summary.json) whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover
            pass
        raise ResultsWriteError(f"could not write {path}: {exc.strerror or exc}") from None


