"""Session rows held compactly, for resuming and reporting a sweep of any size.

A sweep of a million sessions must not hold a million dicts. `SessionTable` keeps, per row,
one integer naming its identity (trace, policy with its resolved parameters, device, preset,
movie — each distinct identity listed once) and float64 arrays of the few columns a report
uses: 56 bytes a row, so 1,000,000 sessions take about 60 MB whatever the movie's length
(the per-segment `chosen` column stays in sessions.csv). `SweepRows` is the part of a
table one sweep reports: each row's group (policy × device × preset), trace and occurrence.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from player.lab.results import CSV_FIELDS, KEY_FIELDS

#: the columns a report uses besides QoE (means, ratios, plots)
REPORT_COLUMNS = ("avg_bitrate_bps", "rebuffer_s", "session_s", "switches", "startup_s", "latency_mean_s",
                  "latency_max_s", "playback_rate_mean")
_KEY_LEN = len(KEY_FIELDS)     # the identity is the first fields of a row


def occurrence(codes: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions hold the same code (0 for the first)."""
    codes = np.asarray(codes)
    n = codes.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    s = codes[order]
    pos = np.arange(n)
    start = np.where(np.r_[True, s[1:] != s[:-1]], pos, 0)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = pos - np.maximum.accumulate(start)
    return rank


class SessionTable:
    """Rows of sessions.csv (loaded) and of new batches (added as arrays), compactly.

    The QoE column is the sweep's model's (`qoe_<model>`), so a resumed sweep reports one
    model even if an earlier run asked for another."""

    def __init__(self, qoe_model: str) -> None:
        self.qoe_model = qoe_model
        self.columns = ("qoe", *REPORT_COLUMNS)
        self._field_at = tuple(CSV_FIELDS.index(f"qoe_{qoe_model}" if c == "qoe" else c) for c in self.columns)
        self.keys: list[tuple[str, ...]] = []
        self._ids: dict[tuple[str, ...], int] = {}
        self._code = array("q")
        self._values = [array("d") for _ in self.columns]

    def __len__(self) -> int:
        return len(self._code)

    @property
    def nbytes(self) -> int:
        """The memory the rows take (the distinct identities aside)."""
        return sum(a.itemsize * len(a) for a in (self._code, *self._values))

    def key_id(self, key: tuple[str, ...]) -> int:
        i = self._ids.get(key)
        if i is None:
            i = self._ids[key] = len(self.keys)
            self.keys.append(key)
        return i

    def add_fields(self, fields: Sequence[str]) -> None:
        """One parsed row of sessions.csv (see `ResultsFile.load`)."""
        key = tuple(fields[:_KEY_LEN])
        i = self._ids.get(key)
        self._code.append(self.key_id(key) if i is None else i)
        for col, i in zip(self._values, self._field_at):
            col.append(float(fields[i]))

    def add(self, key_ids: Sequence[int] | np.ndarray, values: dict[str, np.ndarray]) -> None:
        """New rows as arrays: each row's identity id and every column in `self.columns`."""
        self._code.extend(np.asarray(key_ids, dtype=np.int64).tolist())
        for col, name in zip(self._values, self.columns):
            col.frombytes(np.ascontiguousarray(values[name], dtype=np.float64).tobytes())

    def codes(self) -> np.ndarray:
        return np.frombuffer(self._code, dtype=np.int64) if len(self._code) else np.zeros(0, dtype=np.int64)

    def values(self, name: str) -> np.ndarray:
        col = self._values[self.columns.index(name)]
        return np.frombuffer(col, dtype=np.float64) if len(col) else np.zeros(0)

    def counts(self) -> dict[tuple[str, ...], int]:
        """How many rows each identity has."""
        c = np.bincount(self.codes(), minlength=len(self.keys))
        return {k: int(n) for k, n in zip(self.keys, c)}


@dataclass(frozen=True)
class GroupLabel:
    """A policy × device × preset as a report names it."""

    abr: str          # the name the user gave (a registered name or path.py:Class)
    params: str       # the resolved parameters (the policy's description)
    device: str
    preset: str


@dataclass
class SweepRows:
    """The rows one sweep reports, as arrays over rows (file order, duplicates removed).

    `group[i]` indexes `groups`; `trace[i]` and `occurrence[i]` say which session of the
    trace list row i is (the same pair under two policies is the same network: the pairing of
    the paired tests)."""

    qoe_model: str
    groups: list[GroupLabel]
    group: np.ndarray
    trace: np.ndarray
    occurrence: np.ndarray
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.group.size)

    def count(self, g: int) -> int:
        return int(np.count_nonzero(self.group == g))
