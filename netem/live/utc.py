"""UTCTiming served by the origin itself, so no player reaches for a public time server.

Four schemes of ISO/IEC 23009-1 (Annex and DASH-IF IOP §4.7), each an MPD element and,
for the HTTP ones, an endpoint on the origin that reads the origin's (offset) clock:

=============  ======================================  ================  ==========================
method         schemeIdUri                             endpoint          answer
=============  ======================================  ================  ==========================
http-iso       urn:mpeg:dash:utc:http-iso:2014          /utc/iso          ``2024-01-01T00:00:00.123Z``
http-xsdate    urn:mpeg:dash:utc:http-xsdate:2014       /utc/xsdate       the same xs:dateTime text
http-head      urn:mpeg:dash:utc:http-head:2014         /utc/head         a ``Date`` header (1 s)
direct         urn:mpeg:dash:utc:direct:2014            (none)            the MPD's generation time
=============  ======================================  ================  ==========================
"""
from __future__ import annotations

from datetime import datetime, timezone
from email.utils import formatdate
from xml.sax.saxutils import quoteattr

SCHEMES = {
    "http-iso": "urn:mpeg:dash:utc:http-iso:2014",
    "http-xsdate": "urn:mpeg:dash:utc:http-xsdate:2014",
    "http-head": "urn:mpeg:dash:utc:http-head:2014",
    "direct": "urn:mpeg:dash:utc:direct:2014",
}
PATHS = {"http-iso": "/utc/iso", "http-xsdate": "/utc/xsdate", "http-head": "/utc/head"}


def iso_ms(t: float) -> str:
    """UTC time as ISO 8601 / xs:dateTime with milliseconds: ``2024-01-01T00:00:00.123Z``."""
    ms = round(t * 1000)
    whole, frac = divmod(ms, 1000)
    d = datetime.fromtimestamp(whole, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:03d}Z"


def iso_seconds(t: float) -> str:
    """UTC time as xs:dateTime without fraction when it is a whole second (AST)."""
    if t == int(t):
        return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return iso_ms(t)


def http_date(t: float) -> str:
    """An HTTP ``Date`` (IMF-fixdate, RFC 9110 §5.6.7; whole seconds, truncated)."""
    return formatdate(int(t // 1), usegmt=True)


def utc_timing_lines(order, now_s: float, base_url: str, indent: str = "  ") -> list[str]:
    """The MPD's UTCTiming elements, in `order` (method names of `SCHEMES`)."""
    lines = []
    for method in order:
        value = iso_ms(now_s) if method == "direct" else base_url + PATHS[method]
        lines.append(f'{indent}<UTCTiming schemeIdUri="{SCHEMES[method]}" value={quoteattr(value)}/>')
    return lines
