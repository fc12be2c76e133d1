"""Attribute values of an MPD: xs:duration, xs:dateTime, xs:boolean, byte ranges, frame
rates, UUIDs.

Each parser takes the attribute's text and names the attribute and element in its error
(`what`, `where`), so a malformed value gives one line saying which one. Durations are
exact `Fraction`s of a second until the model converts them to float.
"""
from __future__ import annotations

import calendar
import math
import re
from fractions import Fraction

from player.dash.errors import InvalidManifest
from player.dash.segments import ByteRange

__all__ = ["MAX_DURATION_S", "INTEGER_RE", "parse_duration", "parse_xs_duration", "parse_xs_datetime",
           "parse_byte_range", "parse_frame_rate", "parse_xs_bool", "normalize_uuid",
           "int_or_none"]

MAX_DURATION_S = 10 ** 10               # any duration beyond ~300 years is refused
INTEGER_RE = re.compile(r"\s*[+-]?\d{1,20}\s*")   # what int() of an attribute may accept

_DUR_RE = re.compile(
    r"^\s*P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d|\.)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d*)?|\.\d+)S)?)?\s*$",
    re.I)  # lower-case designators (PT1M00s) are tolerated, as dash.js does
_DUR_UNITS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)


def parse_duration(text: str | None, what: str, where: str | None = None) -> Fraction | None:
    """xs:duration → exact seconds (None when the attribute is absent)."""
    if text is None:
        return None
    m = _DUR_RE.match(text) if len(text) < 200 else None
    if not m or not any(m.groups()):
        raise InvalidManifest(f"{what}={text!r} is not an xs:duration (e.g. PT1M30.5S)", where=where)
    total = Fraction(0)
    for value, unit in zip(m.groups(), _DUR_UNITS):
        if value:
            total += Fraction(value) * unit
    if total > MAX_DURATION_S:
        raise InvalidManifest(f"{what}={text!r} is unreasonably long", where=where)
    return total


def parse_xs_duration(text: str) -> float:
    """'PT1H2M3.5S' -> 3723.5 seconds (years as 365 days, months as 30 days)."""
    value = parse_duration(text, "duration")
    assert value is not None
    return float(value)


_DATETIME_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,12})?"
    r"(Z|[+-]\d{2}:\d{2})?\s*$", re.I)


def parse_xs_datetime(text: str | None, what: str, where: str | None = None) -> float | None:
    """xs:dateTime → seconds since the Unix epoch, UTC (None when the attribute is absent).

    A time without a zone is taken as UTC, as dash.js and Shaka do (live MPDs are written
    in UTC; ISO/IEC 23009-1 asks for it). Fractions of a second are kept.
    """
    if text is None:
        return None
    m = _DATETIME_RE.match(text) if len(text) < 80 else None
    if not m:
        raise InvalidManifest(f"{what}={text!r} is not an xs:dateTime (e.g. "
                              f"2024-01-01T00:00:00Z)", where=where)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1000 <= year <= 9998 and 1 <= month <= 12
            and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour <= 24 and minute <= 59 and second <= 60):
        raise InvalidManifest(f"{what}={text!r} is not a valid date and time (years 1000-9998)",
                              where=where)
    epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = (m.group(8) or "Z").upper()
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        zh, zm = int(zone[1:3]), int(zone[4:6])
        if zh > 14 or zm > 59:
            raise InvalidManifest(f"{what}={text!r} has an impossible time zone", where=where)
        epoch -= sign * (zh * 3600 + zm * 60)
    return float(epoch + Fraction(m.group(7) or "0"))


def parse_byte_range(text: str | None, what: str, where: str) -> ByteRange | None:
    """'first-last' → (first, last), inclusive (None when the attribute is absent)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d{1,18})\s*-\s*(\d{1,18})\s*", text)
    if not m:
        raise InvalidManifest(f"{what}={text!r} is not a byte range 'first-last'", where=where)
    a, b = int(m.group(1)), int(m.group(2))
    if b < a:
        raise InvalidManifest(f"{what}={text!r} ends before it starts", where=where)
    return a, b


def parse_frame_rate(text: str | None) -> float | None:
    """'30', '30000/1001' or '29.97' → frames per second; None when absent or unusable."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d{1,9})(?:\s*/\s*(\d{1,9}))?\s*", text)
    if not m:
        try:
            v = float(text)
        except ValueError:
            return None
        return v if math.isfinite(v) and v > 0 else None
    num, den = int(m.group(1)), int(m.group(2) or 1)
    return num / den if den else None


def parse_xs_bool(text: str | None) -> bool | None:
    """xs:boolean (and ConditionalUintType: a number means true)."""
    if text is None:
        return None
    t = text.strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    return t.isdigit()


def normalize_uuid(text: str, what: str, where: str) -> str:
    """Any spelling of a UUID ({...}, no dashes, upper case) → lowercase 8-4-4-4-12."""
    hexdigits = re.sub(r"[\s{}-]", "", text).lower()
    if not re.fullmatch(r"[0-9a-f]{32}", hexdigits):
        raise InvalidManifest(f"{what}={text!r} is not a UUID", where=where)
    h = hexdigits
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def int_or_none(text: str | None) -> int | None:
    """An integer attribute, or None when absent or not an integer (tolerated values)."""
    return int(text) if text is not None and INTEGER_RE.fullmatch(text) else None
