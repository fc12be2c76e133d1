"""Clock synchronisation for live playback: the origin's time, from the MPD's UTCTiming.

A live player computes which segments exist from the wall clock, so its clock must agree
with the origin's (ISO/IEC 23009-1 5.8.5.7, DASH-IF IOP 4.7; dash.js `TimeSyncController`).
`synchronise` tries the manifest's UTCTiming elements in document order, the first that
answers wins:

* ``http-iso`` / ``http-xsdate``: GET the URL; the body is the time (xs:dateTime);
* ``http-head``: HEAD the URL; its ``Date`` header (whole seconds: the middle of that second
  is taken);
* ``direct``: the element's value is the time the MPD was generated;
* (``http-ntp``, ``ntp``, ``sntp`` need an NTP client: skipped, with a note.)

If none answers, the manifest response's own ``Date`` header; if it has none, the local
clock as it is (offset 0). The server's time is taken to hold at the middle of the request
(between sending it and the response's headers), so a symmetric delay cancels out.

Times: the local clock is a callable giving seconds since the epoch on the player's clock
(`player.http.clock.Clock`, scaled by `--time-scale`); `offset_s` is origin − local.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Sequence

from player.dash.errors import ManifestError
from player.dash.model import UtcTiming
from player.dash.values import parse_xs_datetime
from player.http.config import RetryPolicy
from player.http.fetcher import Body, FetchFailed, Fetcher, NotFound, Resource, TooEarly

#: a UTCTiming answer is tiny; a time source that fails twice is skipped
MAX_TIME_BYTES = 1024
TIME_RETRY = RetryPolicy(backoff_s=0.1, backoff_max_s=0.5, budget_s=5.0, attempts=2, per_edge=2, attempt_timeout_s=4.0)


@dataclass(frozen=True)
class ClockSync:
    """The origin clock − the local clock, how it was learned, and the round trip it took."""

    offset_s: float
    method: str            # http-iso, http-xsdate, http-head, direct, date-header, none
    rtt_s: float | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"offset_s": self.offset_s, "method": self.method, "rtt_s": self.rtt_s, "notes": list(self.notes)}


def http_date_s(text: str | None) -> float | None:
    """An HTTP ``Date`` as seconds since the epoch, at the middle of its whole second (None:
    absent or not a date)."""
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp() + 0.5
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _xs_time(text: str, where: str) -> float:
    value = parse_xs_datetime(text.strip(), "time", where)
    if value is None or not math.isfinite(value):
        raise ValueError(f"no time in {text[:60]!r}")
    return value


async def synchronise(fetcher: Fetcher, timings: Sequence[UtcTiming], wall: Callable[[float], float],
                      manifest: Body) -> ClockSync:
    """The offset of the origin's clock (see the module docstring). `wall(t)` turns the
    player's clock into local seconds since the epoch; `manifest` is the MPD's response."""
    notes: list[str] = []
    for timing in timings:
        method, value = timing.method, (timing.value or "").strip()
        if method is None:
            notes.append(f"UTCTiming {timing.scheme_id_uri!r}: unknown scheme, skipped")
            continue
        if not timing.supported:
            notes.append(f"UTCTiming {method}: needs an NTP client, skipped")
            continue
        try:
            if method == "direct":
                server = _xs_time(value, "UTCTiming direct")
                mid = wall((manifest.t_sent + manifest.t_sent + manifest.latency_s) / 2)
                return ClockSync(server - mid, method, manifest.latency_s, tuple(notes))
            head = method == "http-head"
            body = await fetcher.fetch(Resource("utc", lambda alt: (value, None), 1, MAX_TIME_BYTES,
                                                method="HEAD" if head else "GET", retry=TIME_RETRY, fail_fast=True))
            server = http_date_s(body.date) if head else _xs_time(body.data.decode("utf-8", "replace"),
                                                                  f"UTCTiming {method}")
            if server is None:
                raise ValueError("no Date header")
            mid = wall((body.t_sent + body.t_sent + body.latency_s) / 2)
            return ClockSync(server - mid, method, body.latency_s, tuple(notes))
        except (FetchFailed, NotFound, TooEarly, ManifestError, ValueError) as exc:
            notes.append(f"UTCTiming {method} ({value[:80]}): {exc}")
    server = http_date_s(manifest.date)
    if server is not None:
        mid = wall((manifest.t_sent + manifest.t_sent + manifest.latency_s) / 2)
        return ClockSync(server - mid, "date-header", manifest.latency_s, tuple(notes))
    notes.append("no time source answered: the local clock is taken as the origin's")
    return ClockSync(0.0, "none", None, tuple(notes))
