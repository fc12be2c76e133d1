"""`sessions.csv`: a sweep's results, appended chunk by chunk and fsynced.

Rows are written as each chunk finishes, so an interrupted sweep loses nothing it wrote
and a re-run computes only what is missing.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from netem.errors import InputError

CSV_FIELDS = [
    "trace", "abr", "abr_params", "device", "preset", "movie", "segments",
    "avg_bitrate_bps", "time_avg_bitrate_bps", "utility", "rebuffer_s", "rebuffer_count",
    "rebuffer_ratio", "startup_s", "switches", "switch_magnitude_bps", "bytes", "session_s",
    "qoe", "qoe_model", "qoe_utility", "qoe_rebuffer_penalty", "qoe_smoothness_penalty",
    "qoe_linear", "qoe_log", "qoe_hd", "qoe_twitch", "latency_mean_s", "latency_max_s", "latency_end_s",
    "target_latency_s", "playback_rate_mean", "seeks", "chosen",
]
#: the live columns (empty for a VoD session)
LIVE_FIELDS = ("latency_mean_s", "latency_max_s", "latency_end_s", "target_latency_s", "playback_rate_mean", "seeks")
KEY_FIELDS = ("trace", "abr", "abr_params", "device", "preset", "movie")


class ResultsFile:
    """`sessions.csv`, appended chunk by chunk and fsynced; tolerant of a torn last line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[dict]:
        if not self.path.exists():
            return []
        raw = self.path.read_text()
        good_end = raw.rfind("\n") + 1
        if good_end != len(raw):  # an interrupted write left a partial line: drop it
            with open(self.path, "r+") as fh:
                fh.truncate(good_end)
            raw = raw[:good_end]
        rows = list(csv.DictReader(io.StringIO(raw)))
        if rows and set(CSV_FIELDS) - set(rows[0]):
            raise InputError(f"{self.path} was written by another version (columns differ); use a new --out")
        return rows

    def append(self, rows: list[dict]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
