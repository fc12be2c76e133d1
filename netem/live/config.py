"""What a live origin is asked to be: `LiveConfig` and the checks of its values.

All times are seconds. Checks that need the content (is the chunk shorter than a
segment, is the Period a whole number of segments) are made where the content is known,
in `netem.live.presentation`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from netem.errors import InputError, UsageError

ADDRESSING = ("number", "timeline")
UTC_METHODS = ("http-iso", "http-xsdate", "http-head", "direct")
DEFAULT_UTC_TIMING = UTC_METHODS
DEFAULT_TSBD_S = 60.0  # livesim2's default time-shift buffer
DEFAULT_TARGET_LATENCY_S = 3.5  # dash.js / livesim2 low-latency examples
MAX_TSBD_S = 7 * 86400.0
#: At most this many segments in the time-shift buffer (bounds each MPD's timeline).
MAX_WINDOW_SEGMENTS = 20_000
#: ServiceDescription bounds as livesim2 writes them: min = ¾ target, max = 2 × target.
MIN_LATENCY_FACTOR = 0.75
MAX_LATENCY_FACTOR = 2.0
PLAYBACK_RATE_MIN = 0.96
PLAYBACK_RATE_MAX = 1.04


@dataclass(frozen=True)
class LiveConfig:
    """The live presentation's parameters (seconds; AST in seconds since the epoch).

    `chunk_s` set means low latency (CMAF chunks, availabilityTimeOffset). `period_s`
    set means a new Period every `period_s` seconds. `min_update_period_s` None: the
    nominal segment duration. `too_early_status`: 425 (RFC 8470) or 404.
    """

    addressing: str = "number"
    availability_start_s: float = 0.0
    time_shift_depth_s: float = DEFAULT_TSBD_S
    chunk_s: float | None = None
    target_latency_s: float = DEFAULT_TARGET_LATENCY_S
    period_s: float | None = None
    too_early_status: int = 425
    utc_timing: tuple[str, ...] = DEFAULT_UTC_TIMING
    min_update_period_s: float | None = None

    @property
    def low_latency(self) -> bool:
        return self.chunk_s is not None

    def check(self) -> "LiveConfig":
        """Raise UsageError/InputError naming the option that is wrong; returns self."""
        if self.addressing not in ADDRESSING:
            raise UsageError(f"live addressing must be one of {', '.join(ADDRESSING)}, got {self.addressing!r} "
                             "(list and base addressing are VoD only)", where="--addressing")
        _positive(self.time_shift_depth_s, "--time-shift-depth", MAX_TSBD_S)
        if not math.isfinite(self.availability_start_s):
            raise InputError("availability start time must be finite", where="--availability-start")
        if self.chunk_s is not None:
            _positive(self.chunk_s, "--chunk-duration", 3600.0)
        _positive(self.target_latency_s, "--target-latency", 3600.0)
        if self.period_s is not None:
            _positive(self.period_s, "--period-duration", 30 * 86400.0)
        if self.min_update_period_s is not None:
            _positive(self.min_update_period_s, "minimumUpdatePeriod", 86400.0)
        if self.too_early_status not in (425, 404):
            raise InputError(f"must be 425 or 404, got {self.too_early_status}", where="--too-early-status")
        if not self.utc_timing or any(m not in UTC_METHODS for m in self.utc_timing) \
                or len(set(self.utc_timing)) != len(self.utc_timing):
            raise InputError(f"expected a comma-separated order of {', '.join(UTC_METHODS)} (each at most once), "
                             f"got {','.join(self.utc_timing)!r}", where="--utc-timing")
        return self


def _positive(value: float, where: str, limit: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= limit):
        raise InputError(f"must be positive seconds (at most {limit:g}), got {value!r}", where=where)


def parse_utc_timing(text: str) -> tuple[str, ...]:
    """"http-iso,direct" → ("http-iso", "direct") (checked by `LiveConfig.check`)."""
    return tuple(s.strip().lower() for s in str(text).split(",") if s.strip())


_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?(Z|[+-]00:?00)?$")


def parse_instant(text: str, where: str = "--availability-start") -> float:
    """Seconds since the epoch from "1700000000", "2024-01-01" or "2024-01-01T00:00:00Z"
    (UTC; a numeric offset other than +00:00 is refused rather than guessed)."""
    s = str(text).strip()
    try:
        v = float(s)
    except ValueError:
        v = None
    if v is not None:
        if not math.isfinite(v) or abs(v) > 1e11:
            raise InputError(f"{text!r} is not a usable time", where=where)
        return v
    m = _ISO.match(s)
    if not m:
        raise InputError(f"{text!r} is neither seconds since the epoch nor an ISO 8601 UTC time such as "
                         "2024-01-01T00:00:00Z", where=where)
    y, mo, d, hh, mm, ss = (int(g) if g else 0 for g in m.groups()[:6])
    frac = float(m.group(7)) if m.group(7) else 0.0
    try:
        return datetime(y, mo, d, hh, mm, ss, tzinfo=timezone.utc).timestamp() + frac
    except (ValueError, OverflowError):
        raise InputError(f"{text!r} is not a valid date", where=where) from None
