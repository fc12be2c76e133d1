"""MPEG-DASH manifests: parse an MPD into abrlab's own small, immutable model.

`mpegdash` parses the structure (MPD → Period → AdaptationSet → Representation and the
segment-addressing elements); the rest of the code never sees its objects. Where
mpegdash 0.4.1 is wrong or silent the raw DOM is read alongside, element by element:

* booleans (`bool("false")` is True in mpegdash): segmentAlignment, bitstreamSwitching, ...
* ContentProtection with any namespace prefix (default_KID, pssh), at MPD, Period,
  AdaptationSet and Representation level, plus the license URL (dashif:Laurl,
  clearkey:Laurl, ms:laurl@licenseUrl, mspr:la_url);
* BaseURL with DVB failover attributes (serviceLocation, dvb:priority, dvb:weight);
* undeclared namespace prefixes (mpegdash's parser raises): declared for it, with a note.

Untrusted input. The XML is parsed only by defusedxml (entity declarations and external
references refused) after a size check (`MAX_MANIFEST_BYTES`) and a streaming pass that
bounds the element count and depth, so the DOM mpegdash walks is bounded too. mpegdash is
handed that DOM through `MPEGDASHParser.parse`, with its loader replaced: it never gets a
URL or a string it could open. SegmentTimeline repeats are never expanded into lists:
a `SegmentIndex` stores runs and computes segments on demand, bounded by the period end
and by `MAX_SEGMENTS` per representation (so `r="1000000000"` costs nothing). Segment URLs
of a remote manifest must be http/https.

Errors are `ManifestError`s with one-line messages that start with ``unsupported: ``
(well-formed but beyond this player, e.g. live) or ``invalid: `` (malformed), or
``unavailable: `` (the manifest could not be read or fetched).

Units: seconds (float), bits per second (float), bytes (int).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import codecs
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.dom import minidom
from xml.sax import SAXException
from xml.sax import handler as sax_handler

import defusedxml
import defusedxml.minidom
import defusedxml.sax
from mpegdash.nodes import MPEGDASH
from mpegdash.parser import MPEGDASHParser

from netem.errors import InputError
from player.dash import sidx as sidx_mod

__all__ = [
    "MAX_MANIFEST_BYTES", "MAX_ELEMENTS", "MAX_SEGMENTS",
    "ManifestError", "UnsupportedManifest", "InvalidManifest", "ManifestUnavailable",
    "Presentation", "Period", "AdaptationSet", "Representation", "BaseUrl",
    "ContentProtection", "Segment", "InitSegment", "SegmentIndex", "PendingSidx",
    "parse_manifest", "load_manifest", "load_manifest_async", "fetch_manifest", "resolve_sidx",
    "parse_xs_duration",
]

MAX_MANIFEST_BYTES = 16 * 1024 * 1024   # bytes of XML accepted
MAX_ELEMENTS = 100_000                  # XML elements (DOM + mpegdash: ~1.5 kB, ~30 µs each)
MAX_ATTRIBUTES = 400_000                # XML attributes, all elements together
MAX_DEPTH = 64                          # element nesting
MAX_SEGMENTS = 1_000_000                # segments per representation
MAX_BASE_URL_ALTERNATIVES = 32          # failover alternatives kept per representation
MAX_DURATION_S = 10 ** 10               # any duration beyond ~300 years is refused
MAX_TEMPLATE_WIDTH = 32                 # $Number%0<width>d$

LIVE_UNSUPPORTED = "live (type=dynamic) presentations are not supported yet"

DASH_SYSTEMS = {
    "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed": "widevine",
    "9a04f079-9840-4286-ab92-e65be0885f95": "playready",
    "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b": "clearkey",
    "e2719d58-a985-b3c9-781a-b030af78d30e": "clearkey",
    "94ce86fb-07ff-4f43-adb8-93d2fa968ca2": "fairplay",
    "f239e769-efa3-4850-9c16-a903c6932efb": "primetime",
    "3d5e6d35-9b9a-41e8-b843-dd3c6e72c42c": "chinadrm",
}
MP4PROTECTION = "urn:mpeg:dash:mp4protection:2011"
TRICKMODE = "http://dashif.org/guidelines/trickmode"
# EssentialProperty schemes whose meaning does not stop a headless player from using the set.
UNDERSTOOD_ESSENTIAL = {
    "urn:mpeg:mpegB:cicp:ColourPrimaries",
    "urn:mpeg:mpegB:cicp:TransferCharacteristics",
    "urn:mpeg:mpegB:cicp:MatrixCoefficients",
    "urn:mpeg:mpegB:cicp:VideoFullRangeFlag",
    "http://dashif.org/guidelines/thumbnail_tile",
}
# Namespace URIs declared for prefixes a manifest uses without declaring them.
KNOWN_PREFIXES = {
    "cenc": "urn:mpeg:cenc:2013",
    "mspr": "urn:microsoft:playready",
    "dashif": "https://dashif.org/CPS",
    "clearkey": "http://dashif.org/guidelines/clearKey",
    "ck": "http://dashif.org/guidelines/clearKey",
    "dvb": "urn:dvb:dash:dash-extensions:2014-1",
    "xlink": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "scte35": "http://www.scte.org/schemas/35/2016",
    "ms": "urn:microsoft",
}
XLINK_NS = "http://www.w3.org/1999/xlink"


# ---------------------------------------------------------------------------------------
# errors


class ManifestError(InputError):
    """A manifest this player cannot use; `str(exc)` is one line starting with `prefix`."""

    prefix = "invalid: "

    def __init__(self, reason: str, *, where: str | None = None) -> None:
        reason = " ".join(str(reason).split())
        if where:
            reason = f"{reason} (at {' '.join(where.split())})"
        self.reason = reason
        super().__init__(self.prefix + reason)
        self.where = where


class UnsupportedManifest(ManifestError):
    """Well-formed, but beyond this player (live, xlink, list MPDs, limits...)."""

    prefix = "unsupported: "


class InvalidManifest(ManifestError):
    """Malformed: not XML, refused XML (entities), or not a usable MPD."""

    prefix = "invalid: "


class ManifestUnavailable(ManifestError):
    """The manifest could not be read or fetched (missing file, HTTP error, timeout)."""

    prefix = "unavailable: "


# ---------------------------------------------------------------------------------------
# the model


ByteRange = tuple[int, int]   # (first byte, last byte), inclusive, as in an HTTP Range header


@dataclass(frozen=True)
class BaseUrl:
    """One resolved BaseURL alternative (DVB-DASH failover: lower priority first)."""

    url: str
    service_location: str | None = None
    priority: int = 1
    weight: int = 1


@dataclass(frozen=True)
class ContentProtection:
    scheme_id_uri: str
    value: str | None = None
    system_id: str | None = None        # lowercase UUID from urn:uuid:..., None for mp4protection
    default_kid: str | None = None      # lowercase 8-4-4-4-12 UUID, whatever the prefix
    pssh: str | None = None             # base64, whitespace removed
    license_url: str | None = None      # dashif:Laurl, clearkey:Laurl, ms:laurl, mspr:la_url

    @property
    def system_name(self) -> str:
        if self.system_id:
            return DASH_SYSTEMS.get(self.system_id, self.system_id)
        if self.scheme_id_uri == MP4PROTECTION:
            return self.value or "cenc"
        return self.scheme_id_uri

    def to_dict(self) -> dict[str, Any]:
        return {"scheme_id_uri": self.scheme_id_uri, "value": self.value,
                "system_id": self.system_id, "system": self.system_name,
                "default_kid": self.default_kid, "pssh": self.pssh,
                "license_url": self.license_url}


@dataclass(frozen=True)
class InitSegment:
    url: str
    byte_range: ByteRange | None = None


@dataclass(frozen=True)
class Segment:
    url: str
    byte_range: ByteRange | None    # None: the whole resource
    start_s: float                  # presentation time, period start included
    duration_s: float
    number: int | None = None       # $Number$ for template/list addressing

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def size_bytes(self) -> int | None:
        return None if self.byte_range is None else self.byte_range[1] - self.byte_range[0] + 1


@dataclass(frozen=True)
class _Run:
    first: int      # index of the run's first segment
    count: int
    t: int          # media time of the first segment, timescale ticks
    d: int          # duration of each segment, ticks


@dataclass(frozen=True)
class _Template:
    """A parsed SegmentTemplate@media: literal parts and ($Number$/$Time$, width) slots."""

    parts: tuple[tuple[str, int | str], ...]   # ("lit", text) or ("Number"|"Time", width)

    def format(self, number: int, time: int) -> str:
        out = []
        for kind, arg in self.parts:
            if kind == "lit":
                out.append(arg)  # type: ignore[arg-type]
            else:
                v = number if kind == "Number" else time
                out.append(f"{v:0{arg}d}" if arg else str(v))
        return "".join(out)


@dataclass(frozen=True, eq=False)
class SegmentIndex(Sequence):
    """The segments of one representation, computed on demand (never a big list).

    `len(index)`, `index[i]`, iteration and slices give `Segment`s with absolute, resolved
    URLs. `init` is the initialization segment (or None). `with_base_url(url)` gives the
    same index against another BaseURL alternative (failover).
    """

    addressing: str                     # "template" | "timeline" | "list" | "sidx" | "single"
    base_url: str
    timescale: int
    offset_s: float                     # presentation time of media time 0 (period start - PTO)
    runs: tuple[_Run, ...]
    start_number: int = 1
    end_s: float | None = None          # period end: segments are clipped to it
    template: _Template | None = None   # media URLs from a template, else `urls`
    urls: tuple[str | None, ...] | None = None      # relative media URLs (None: the BaseURL)
    ranges: tuple[ByteRange | None, ...] | None = None
    init_url: str | None = None         # relative initialization URL ("" = the BaseURL)
    init_range: ByteRange | None = None
    has_init: bool = False
    allowed_schemes: frozenset[str] = frozenset({"http", "https", "file"})
    where: str = ""
    _firsts: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_firsts", tuple(r.first for r in self.runs))

    # Sequence protocol -----------------------------------------------------------------
    def __len__(self) -> int:
        if not self.runs:
            return 0
        last = self.runs[-1]
        return last.first + last.count

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("segment index out of range")
        run = self.runs[bisect.bisect_right(self._firsts, i) - 1]
        t = run.t + (i - run.first) * run.d
        start = self.offset_s + t / self.timescale
        dur = run.d / self.timescale
        if self.end_s is not None and start + dur > self.end_s:
            dur = max(0.0, self.end_s - start)
        number = self.start_number + i
        if self.template is not None:
            rel: str | None = self.template.format(number, t)
        else:
            rel = self.urls[i] if self.urls is not None else None
        rng = self.ranges[i] if self.ranges is not None else None
        url = _join_checked(self.base_url, rel or "", self.allowed_schemes, self.where)
        return Segment(url=url, byte_range=rng, start_s=start, duration_s=dur,
                       number=number if self.addressing in ("template", "timeline", "list") else None)

    def __iter__(self) -> Iterator[Segment]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (f"SegmentIndex({self.addressing}, {len(self)} segments, "
                f"{self.duration_s:.3f} s, base={self.base_url!r})")

    # helpers ---------------------------------------------------------------------------
    @property
    def init(self) -> InitSegment | None:
        if not self.has_init:
            return None
        url = _join_checked(self.base_url, self.init_url or "", self.allowed_schemes, self.where)
        return InitSegment(url=url, byte_range=self.init_range)

    @property
    def start_s(self) -> float:
        return self[0].start_s if len(self) else 0.0

    @property
    def duration_s(self) -> float:
        """Sum of the segment durations (clipped to the period end), seconds."""
        total = Fraction(0)
        for r in self.runs:
            total += Fraction(r.count * r.d, self.timescale)
        total_s = float(total)
        if self.end_s is not None and len(self):
            total_s = min(total_s, self.end_s - self.start_s)
        return total_s

    def with_base_url(self, base_url: str) -> SegmentIndex:
        """The same segments resolved against another BaseURL (e.g. a failover alternative)."""
        _check_scheme(base_url, self.allowed_schemes, self.where)
        return replace(self, base_url=base_url)


@dataclass(frozen=True)
class PendingSidx:
    """A SegmentBase representation whose segments are in a `sidx` box not yet fetched.

    Fetch `index_range` (inclusive, None: the whole resource) of `url`, then call
    `resolve_sidx(representation, data)`.
    """

    url: str                            # resource holding the sidx
    index_range: ByteRange | None
    media_url: str                      # resource holding the media (usually == url)
    init: InitSegment | None
    timescale: int                      # SegmentBase@timescale (for the PTO)
    presentation_time_offset: int
    period_start_s: float
    period_end_s: float | None
    allowed_schemes: frozenset[str] = frozenset({"http", "https", "file"})
    where: str = ""

    def with_base_url(self, base_url: str) -> PendingSidx:
        """The same pending index against another BaseURL alternative (failover)."""
        _check_scheme(base_url, self.allowed_schemes, self.where)

        def swap(u: str) -> str:
            return base_url if u == self.media_url else u

        init = replace(self.init, url=swap(self.init.url)) if self.init else None
        return replace(self, url=swap(self.url), media_url=base_url, init=init)


@dataclass(frozen=True)
class Representation:
    id: str
    bandwidth_bps: float
    width: int | None
    height: int | None
    frame_rate: float | None
    codecs: str | None
    mime_type: str | None
    base_urls: tuple[BaseUrl, ...]
    segment_index: SegmentIndex | None          # None when a sidx must be fetched (or live)
    pending_sidx: PendingSidx | None = None
    protection: tuple[ContentProtection, ...] = ()   # effective: own + inherited
    audio_sampling_rate: int | None = None
    note: str | None = None

    @property
    def needs_sidx(self) -> bool:
        return self.segment_index is None and self.pending_sidx is not None

    @property
    def segment_count(self) -> int | None:
        return None if self.segment_index is None else len(self.segment_index)

    @property
    def addressing(self) -> str:
        if self.segment_index is not None:
            return self.segment_index.addressing
        if self.pending_sidx is not None:
            return "sidx"
        return "unknown"

    @property
    def default_kid(self) -> str | None:
        for cp in self.protection:
            if cp.default_kid:
                return cp.default_kid
        return None


@dataclass(frozen=True)
class AdaptationSet:
    id: str | None
    content_type: str                   # "video" | "audio" | "text" | "image" | "unknown"
    mime_type: str | None
    codecs: str | None
    lang: str | None
    representations: tuple[Representation, ...]
    protection: tuple[ContentProtection, ...] = ()   # effective: own + Period + MPD
    roles: tuple[str, ...] = ()
    segment_alignment: bool = False
    subsegment_alignment: bool = False
    bitstream_switching: bool | None = None
    ignored: bool = False               # kept in the model, not played
    note: str | None = None

    @property
    def ladder(self) -> tuple[Representation, ...]:
        """Representations sorted by bandwidth, lowest first."""
        return tuple(sorted(self.representations, key=lambda r: (r.bandwidth_bps, r.id)))


@dataclass(frozen=True)
class Period:
    id: str | None
    start_s: float
    duration_s: float | None
    adaptation_sets: tuple[AdaptationSet, ...]
    base_urls: tuple[BaseUrl, ...] = ()
    protection: tuple[ContentProtection, ...] = ()   # effective: own + MPD

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.start_s + self.duration_s

    def playable(self, content_type: str | None = None) -> tuple[AdaptationSet, ...]:
        return tuple(a for a in self.adaptation_sets if not a.ignored and a.representations
                     and (content_type is None or a.content_type == content_type))


@dataclass(frozen=True)
class Presentation:
    type: str                           # "static" | "dynamic"
    duration_s: float | None
    min_buffer_time_s: float | None
    periods: tuple[Period, ...]
    base_urls: tuple[BaseUrl, ...] = ()
    protection: tuple[ContentProtection, ...] = ()   # MPD-level only; see all_protection()
    source_url: str | None = None
    notes: tuple[str, ...] = ()         # repairs and tolerances applied while parsing

    @property
    def is_live(self) -> bool:
        return self.type == "dynamic"

    def require_static(self) -> Presentation:
        """Raise `UnsupportedManifest` for a live presentation; return self otherwise."""
        if self.type != "static":
            raise UnsupportedManifest(LIVE_UNSUPPORTED)
        return self

    def representations(self) -> Iterator[tuple[Period, AdaptationSet, Representation]]:
        for p in self.periods:
            for a in p.adaptation_sets:
                for r in a.representations:
                    yield p, a, r

    def all_protection(self) -> tuple[ContentProtection, ...]:
        """Every distinct ContentProtection descriptor, at any level, in document order."""
        seen: dict[ContentProtection, None] = dict.fromkeys(self.protection)
        for p in self.periods:
            seen.update(dict.fromkeys(p.protection))
            for a in p.adaptation_sets:
                seen.update(dict.fromkeys(a.protection))
                for r in a.representations:
                    seen.update(dict.fromkeys(r.protection))
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `abrlab mpd info --json`."""
        return {
            "type": self.type,
            "duration_s": self.duration_s,
            "min_buffer_time_s": self.min_buffer_time_s,
            "source": self.source_url,
            "periods": [{
                "id": p.id, "start_s": p.start_s, "duration_s": p.duration_s,
                "adaptation_sets": [{
                    "id": a.id, "content_type": a.content_type, "mime_type": a.mime_type,
                    "lang": a.lang, "ignored": a.ignored, "note": a.note,
                    "protection": sorted({cp.system_name for cp in a.protection}),
                    "representations": [{
                        "id": r.id, "width": r.width,
                        "bandwidth": int(r.bandwidth_bps) if r.bandwidth_bps.is_integer()
                        else r.bandwidth_bps,
                        "height": r.height, "frame_rate": r.frame_rate, "codecs": r.codecs,
                        "mime_type": r.mime_type, "addressing": r.addressing,
                        "segments": r.segment_count,
                        "base_urls": [b.url for b in r.base_urls],
                        "note": r.note,
                    } for r in a.representations],
                } for a in p.adaptation_sets],
            } for p in self.periods],
            "protection": [cp.to_dict() for cp in self.all_protection()],
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------
# small parsers


_DUR_RE = re.compile(
    r"^\s*P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d|\.)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d*)?|\.\d+)S)?)?\s*$",
    re.I)  # lower-case designators (PT1M00s) are tolerated, as dash.js does
_DUR_UNITS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)


def _duration(text: str | None, what: str, where: str | None = None) -> Fraction | None:
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
    value = _duration(text, "duration")
    assert value is not None
    return float(value)


def _byte_range(text: str | None, what: str, where: str) -> ByteRange | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d{1,18})\s*-\s*(\d{1,18})\s*", text)
    if not m:
        raise InvalidManifest(f"{what}={text!r} is not a byte range 'first-last'", where=where)
    a, b = int(m.group(1)), int(m.group(2))
    if b < a:
        raise InvalidManifest(f"{what}={text!r} ends before it starts", where=where)
    return a, b


def _frame_rate(text: str | None) -> float | None:
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


def _bool(text: str | None) -> bool | None:
    """xs:boolean (and ConditionalUintType: a number means true)."""
    if text is None:
        return None
    t = text.strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    return t.isdigit()


def _norm_uuid(text: str, what: str, where: str) -> str:
    hexdigits = re.sub(r"[\s{}-]", "", text).lower()
    if not re.fullmatch(r"[0-9a-f]{32}", hexdigits):
        raise InvalidManifest(f"{what}={text!r} is not a UUID", where=where)
    h = hexdigits
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _parse_template(text: str, what: str, where: str, rep_id: str,
                    bandwidth: int) -> _Template:
    """Split a template, substituting $RepresentationID$, $Bandwidth$ and $$ right away."""
    parts: list[tuple[str, int | str]] = []
    lit: list[str] = []
    i = 0
    while i < len(text):
        j = text.find("$", i)
        if j < 0:
            lit.append(text[i:])
            break
        lit.append(text[i:j])
        k = text.find("$", j + 1)
        if k < 0:
            raise InvalidManifest(f"{what}={text!r} has an unterminated '$'", where=where)
        token = text[j + 1:k]
        i = k + 1
        if token == "":
            lit.append("$")
            continue
        m = re.fullmatch(r"(RepresentationID|Number|Bandwidth|Time|SubNumber)(?:%0?(\d{1,3})d)?",
                         token)
        if not m:
            raise InvalidManifest(f"{what}={text!r} has an unknown identifier ${token}$",
                                  where=where)
        name, width = m.group(1), int(m.group(2) or 0)
        if width > MAX_TEMPLATE_WIDTH:
            raise InvalidManifest(f"{what}={text!r}: format width {width} is unreasonable",
                                  where=where)
        if name == "SubNumber":
            raise UnsupportedManifest(f"{what}={text!r}: $SubNumber$ is not supported",
                                      where=where)
        if name == "RepresentationID":
            lit.append(rep_id)
        elif name == "Bandwidth":
            lit.append(f"{bandwidth:0{width}d}" if width else str(bandwidth))
        else:
            if lit:
                parts.append(("lit", "".join(lit)))
                lit = []
            parts.append((name, width))
    if lit:
        parts.append(("lit", "".join(lit)))
    return _Template(tuple(parts))


# ---------------------------------------------------------------------------------------
# URLs


def _check_scheme(url: str, allowed: frozenset[str], where: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if not scheme or scheme in allowed:
        return
    if "file" not in allowed:
        raise InvalidManifest(
            f"URL {url[:200]!r} uses scheme '{scheme}'; a remote manifest may reference only "
            f"http/https URLs", where=where)
    raise UnsupportedManifest(f"URL {url[:200]!r}: scheme '{scheme}' is not supported "
                              f"(http, https and local files only)", where=where)


def _join(base: str, rel: str) -> str:
    rel = rel.strip()
    if rel.startswith("//") and urlsplit(base).scheme.lower() == "file":
        # A scheme-relative URL in a local manifest means the network, not file://host/...
        return "https:" + rel
    if not base:
        return rel
    return urljoin(base, rel)


def _join_checked(base: str, rel: str, allowed: frozenset[str], where: str) -> str:
    url = _join(base, rel)
    _check_scheme(url, allowed, where)
    return url


# ---------------------------------------------------------------------------------------
# XML: bounded, defused parsing


class _Limit(Exception):
    pass


class _Census(sax_handler.ContentHandler):
    """Streaming pass: count elements, bound depth, note the root element."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.attributes = 0
        self.depth = 0
        self.root: tuple[str | None, str] | None = None

    def startElementNS(self, name, qname, attrs):  # noqa: N802 (SAX API)
        self.count += 1
        self.depth += 1
        if self.root is None:
            self.root = name
        if self.count > MAX_ELEMENTS:
            raise _Limit(f"the manifest has more than {MAX_ELEMENTS} XML elements (limit)")
        if self.depth > MAX_DEPTH:
            raise _Limit(f"the manifest nests elements deeper than {MAX_DEPTH} (limit)")
        self.attributes += len(attrs)
        if self.attributes > MAX_ATTRIBUTES:
            raise _Limit(f"the manifest has more than {MAX_ATTRIBUTES} XML attributes (limit)")

    def endElementNS(self, name, qname):  # noqa: N802
        self.depth -= 1


def _census(text: str) -> _Census:
    parser = defusedxml.sax.make_parser()
    parser.setFeature(sax_handler.feature_namespaces, True)
    parser.forbid_dtd = False
    parser.forbid_entities = True
    parser.forbid_external = True
    census = _Census()
    parser.setContentHandler(census)
    parser.feed(text)
    parser.close()
    return census


def _xml_error(exc: BaseException) -> ManifestError:
    if isinstance(exc, _Limit):
        return UnsupportedManifest(str(exc))
    if isinstance(exc, defusedxml.EntitiesForbidden):
        return InvalidManifest(f"XML entity declaration refused ({exc.name!r}): entity bombs and "
                               f"external entities are not accepted")
    if isinstance(exc, defusedxml.ExternalReferenceForbidden):
        return InvalidManifest("XML external reference refused (external entities are not accepted)")
    if isinstance(exc, defusedxml.DTDForbidden):
        return InvalidManifest("XML DTD refused")
    if isinstance(exc, defusedxml.DefusedXmlException):
        return InvalidManifest(f"XML refused: {exc}")
    if isinstance(exc, SAXException):
        return InvalidManifest(f"not well-formed XML: {exc.getMessage()}"
                               + (f", line {exc.getLineNumber()}, column {exc.getColumnNumber()}"
                                  if hasattr(exc, "getLineNumber") else ""))
    return InvalidManifest(f"not well-formed XML: {exc}")


_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)


def _declare_missing_prefixes(text: str) -> tuple[str, list[str]] | None:
    """Declare on the root element the namespace prefixes used but never declared."""
    scan = _COMMENT_RE.sub(lambda m: " " * len(m.group(0)), text)
    used = set(re.findall(r"<\s*([A-Za-z_][\w.-]*):[A-Za-z_]", scan))
    used |= set(re.findall(r"\s([A-Za-z_][\w.-]*):[A-Za-z_][\w.-]*\s*=\s*[\"']", scan))
    declared = set(re.findall(r"xmlns:([A-Za-z_][\w.-]*)\s*=", scan))
    missing = sorted(used - declared - {"xml", "xmlns"})
    root = re.search(r"<(?:[A-Za-z_][\w.-]*:)?MPD(?=[\s/>])", scan)
    if not missing or not root:
        return None
    decl = "".join(f' xmlns:{p}="{KNOWN_PREFIXES.get(p, "urn:abrlab:undeclared:" + p)}"'
                   for p in missing)
    pos = root.end()
    return text[:pos] + decl + text[pos:], missing


# mpegdash converts these attributes with int()/float() and raises on bad values. The ones
# the model uses make the manifest invalid; the rest are removed before mpegdash sees them.
_USED_INTS = {
    "Representation": ("bandwidth", "width", "height"),
    "AdaptationSet": ("width", "height"),
    "SegmentTemplate": ("timescale", "presentationTimeOffset", "duration", "startNumber", "endNumber"),
    "SegmentList": ("timescale", "presentationTimeOffset", "duration", "startNumber", "endNumber"),
    "SegmentBase": ("timescale", "presentationTimeOffset"),
    "S": ("t", "d", "r"),
}
_OTHER_INTS = {
    "AdaptationSet": ("id", "minBandwidth", "maxBandwidth", "minWidth", "maxWidth", "minHeight",
                      "maxHeight", "selectionPriority", "subsegmentStartsWithSAP", "startWithSAP"),
    "Representation": ("qualityRanking", "numChannels", "sampleRate", "startWithSAP"),
    "SubRepresentation": ("level", "bandwidth", "width", "height", "startWithSAP"),
    "ContentComponent": ("id",),
    "Event": ("presentationTime", "duration", "id"),
    "EventStream": ("timescale",),
}
_OTHER_INT_LISTS = {"Subset": ("contains",), "SubRepresentation": ("dependencyLevel",)}
_OTHER_FLOATS = ("maximumSAPPeriod", "maxPlayoutRate", "availabilityTimeOffset")
_INT_RE = re.compile(r"\s*[+-]?\d{1,20}\s*")


def _xml_path(el: minidom.Element) -> str:
    parts = []
    node: Any = el
    while node is not None and node.nodeType == node.ELEMENT_NODE:
        name = node.localName or node.nodeName
        label = name
        if node.getAttribute("id"):
            label = f"{name}[@id={node.getAttribute('id')!r}]"
        elif node.parentNode is not None and node.parentNode.nodeType == node.ELEMENT_NODE:
            same = [c for c in node.parentNode.childNodes
                    if c.nodeType == c.ELEMENT_NODE and (c.localName or c.nodeName) == name]
            if len(same) > 1:
                label = f"{name}[{same.index(node) + 1}]"
        parts.append(label)
        node = node.parentNode
    return "/" + "/".join(reversed(parts))


_FLOAT_ELEMENTS = {"AdaptationSet", "Representation", "SubRepresentation", "BaseURL",
                   "SegmentBase", "SegmentList", "SegmentTemplate"}
_CHECKED = set(_USED_INTS) | set(_OTHER_INTS) | set(_OTHER_INT_LISTS) | _FLOAT_ELEMENTS


def _sanitize(dom: minidom.Document, stash: dict[int, dict[str, str]], notes: list[str]) -> None:
    """Check numeric attributes before mpegdash converts them (see _USED_INTS); refuse xlink."""
    for el in dom.getElementsByTagName("*"):
        if el.hasAttributeNS(XLINK_NS, "href"):
            raise UnsupportedManifest(
                f"remote elements (xlink:href on <{el.localName or el.nodeName}>) are not supported",
                where=_xml_path(el))
        name = el.localName or el.nodeName
        if name not in _CHECKED:
            continue
        for attr in _USED_INTS.get(name, ()):
            if el.hasAttribute(attr):
                v = el.getAttribute(attr)
                if not _INT_RE.fullmatch(v):
                    raise InvalidManifest(f"{name}@{attr}={v[:40]!r} is not an integer",
                                          where=_xml_path(el))
        for attr in _OTHER_INTS.get(name, ()):
            if el.hasAttribute(attr):
                v = el.getAttribute(attr)
                if not _INT_RE.fullmatch(v):
                    stash.setdefault(id(el), {})[attr] = v
                    el.removeAttribute(attr)
                    if not (name == "AdaptationSet" and attr == "id"):
                        notes.append(f"ignored non-integer {name}@{attr}={v[:40]!r}")
        for attr in _OTHER_INT_LISTS.get(name, ()):
            if el.hasAttribute(attr):
                v = el.getAttribute(attr)
                if not all(_INT_RE.fullmatch(x) for x in re.split(r"[, ]", v)):
                    el.removeAttribute(attr)
                    notes.append(f"ignored malformed {name}@{attr}={v[:40]!r}")
        if name in _FLOAT_ELEMENTS:
            for attr in _OTHER_FLOATS:
                if el.hasAttribute(attr):
                    v = el.getAttribute(attr)
                    try:
                        float(v)
                    except ValueError:
                        el.removeAttribute(attr)
                        notes.append(f"ignored non-numeric {name}@{attr}={v[:40]!r}")


class _DomParser(MPEGDASHParser):
    """mpegdash's parser, fed a DOM we built with defusedxml (never a URL or a raw string)."""

    @classmethod
    def load_xmldom(cls, string_or_url):  # noqa: D102
        if not isinstance(string_or_url, minidom.Document):
            raise TypeError("_DomParser only accepts a checked minidom Document")
        return string_or_url


def _decode(data: bytes, charset: str | None = None) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="strict")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidManifest(f"not valid UTF-16: {exc.reason}") from None
    enc = charset
    if not enc:
        m = re.match(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']""", data[:300])
        enc = m.group(1).decode("ascii") if m else "utf-8"
    try:
        codecs.lookup(enc)
    except LookupError:
        raise InvalidManifest(f"unknown character encoding {enc!r}") from None
    try:
        return data.decode(enc)
    except UnicodeDecodeError as exc:
        raise InvalidManifest(f"not valid {enc}: {exc.reason} at byte {exc.start}") from None


# ---------------------------------------------------------------------------------------
# raw DOM helpers


def _kids(el: Any, name: str) -> list[minidom.Element]:
    """Children as mpegdash's parse_child_nodes finds them (same rule, same order)."""
    return [c for c in el.childNodes if c.nodeType == c.ELEMENT_NODE
            and (c.localName == name or c.nodeName == name)]


def _attr(el: minidom.Element, name: str) -> str | None:
    return el.getAttribute(name) if el.hasAttribute(name) else None


def _text(el: minidom.Element) -> str:
    out = []
    for c in el.childNodes:
        if c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE):
            out.append(c.data)
    return "".join(out).strip()


def _attrs_by_local(el: minidom.Element) -> dict[str, str]:
    """Attributes keyed by local name (lower-cased), whatever their prefix."""
    out: dict[str, str] = {}
    attrs = el.attributes
    for i in range(attrs.length if attrs else 0):
        a = attrs.item(i)
        local = (a.localName or a.name.split(":")[-1]).lower()
        if a.name.startswith("xmlns"):
            continue
        out.setdefault(local, a.value)
    return out


def _descendants(el: minidom.Element) -> Iterator[minidom.Element]:
    for c in el.childNodes:
        if c.nodeType == c.ELEMENT_NODE:
            yield c
            yield from _descendants(c)


def _content_protection(el: minidom.Element, where: str) -> ContentProtection:
    attrs = _attrs_by_local(el)
    scheme = (_attr(el, "schemeIdUri") or "").strip()
    system_id = None
    if scheme.lower().startswith("urn:uuid:"):
        system_id = _norm_uuid(scheme[9:], "ContentProtection@schemeIdUri", where)
    kid = attrs.get("default_kid")
    default_kid = _norm_uuid(kid, "ContentProtection@default_KID", where) if kid else None
    pssh = None
    license_url = None
    for d in _descendants(el):
        local = (d.localName or d.nodeName.split(":")[-1]).lower()
        if local == "pssh" and pssh is None:
            raw = re.sub(r"\s+", "", _text(d))
            try:
                base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidManifest("ContentProtection pssh is not valid base64",
                                      where=where) from None
            pssh = raw or None
        elif local in ("laurl", "la_url") and license_url is None:
            dattrs = _attrs_by_local(d)
            license_url = (dattrs.get("licenseurl") or _text(d) or "").strip() or None
    return ContentProtection(scheme_id_uri=scheme, value=_attr(el, "value"), system_id=system_id,
                             default_kid=default_kid, pssh=pssh, license_url=license_url)


def _protection(el: minidom.Element, where: str) -> tuple[ContentProtection, ...]:
    return tuple(_content_protection(c, where) for c in _kids(el, "ContentProtection"))


def _merge_cp(*groups: tuple[ContentProtection, ...]) -> tuple[ContentProtection, ...]:
    return tuple(dict.fromkeys(cp for g in groups for cp in g))


def _resolve_base_urls(parents: tuple[BaseUrl, ...], el: minidom.Element,
                       allowed: frozenset[str], where: str) -> tuple[BaseUrl, ...]:
    """This level's BaseURL alternatives resolved against each of the parent's."""
    kids = _kids(el, "BaseURL")
    if not kids:
        return parents
    out: dict[str, BaseUrl] = {}
    for k in kids:
        text = _text(k)
        attrs = _attrs_by_local(k)
        service = _attr(k, "serviceLocation")
        prio = _int_attr_any(attrs.get("priority"))
        weight = _int_attr_any(attrs.get("weight"))
        for p in parents:
            url = _join(p.url, text)
            _check_scheme(url, allowed, where)
            if url not in out:
                out[url] = BaseUrl(url=url, service_location=service or p.service_location,
                                   priority=prio if prio is not None else p.priority,
                                   weight=weight if weight is not None else p.weight)
            if len(out) >= MAX_BASE_URL_ALTERNATIVES:
                break
    return tuple(sorted(out.values(), key=lambda b: b.priority))


def _int_attr_any(v: str | None) -> int | None:
    return int(v) if v is not None and _INT_RE.fullmatch(v) else None


# ---------------------------------------------------------------------------------------
# segment addressing


def _ceil_div(num: Fraction | int, den: Fraction | int) -> int:
    return math.ceil(Fraction(num) / Fraction(den))


def _check_cap(n: int, where: str) -> None:
    if n > MAX_SEGMENTS:
        raise UnsupportedManifest(
            f"more than {MAX_SEGMENTS} segments in one representation (limit)", where=where)


def _timeline_runs(ss: list[Any], ts: int, end_media: Fraction | None, where: str) -> list[_Run]:
    """Runs from SegmentTimeline S elements; repeats bounded by the period end and the cap.

    Integer arithmetic only (the period end is a fraction of ticks, kept as num/den);
    contiguous S elements of equal duration merge into one run.
    """
    runs: list[_Run] = []
    total = 0
    cur: int | None = None
    end_num, end_den = (end_media.numerator, end_media.denominator) if end_media is not None \
        else (0, 1)
    n_s = len(ss)
    for i, s in enumerate(ss):
        d = s.d
        if d is None or d <= 0:
            raise InvalidManifest(f"SegmentTimeline S[{i + 1}] needs @d > 0", where=where)
        if s.t is not None and s.t < 0:
            raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@t is negative", where=where)
        t = s.t if s.t is not None else (cur if cur is not None else 0)
        r = s.r if s.r is not None else 0
        if r < -1:
            raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@r={r} (must be >= -1)", where=where)
        if r == -1:
            nxt = ss[i + 1].t if i + 1 < n_s else None
            if i + 1 < n_s and nxt is None:
                raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@r=-1 needs the next S to have @t",
                                      where=where)
            if nxt is not None:
                count = max(0, -((t - nxt) // d))
            elif end_media is not None:
                count = max(0, -((t * end_den - end_num) // (d * end_den)))
            else:
                raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@r=-1 repeats to the period end, "
                                      f"but the period has no known end", where=where)
        else:
            count = r + 1
        if end_media is not None:
            # segments starting before the period end: ceil((end - t) / d)
            count = min(count, max(0, -((t * end_den - end_num) // (d * end_den))))
        if count > MAX_SEGMENTS - total:
            _check_cap(total + count, where)
        if count:
            last = runs[-1] if runs else None
            if last is not None and last.d == d and last.t + last.count * d == t:
                runs[-1] = _Run(last.first, last.count + count, last.t, d)
            else:
                runs.append(_Run(total, count, t, d))
            total += count
        cur = t + count * d
    return runs


def _truncate_runs(runs: list[_Run], n: int) -> list[_Run]:
    out = []
    for r in runs:
        if r.first >= n:
            break
        out.append(r if r.first + r.count <= n else replace(r, count=n - r.first))
    return out


@dataclass
class _Ctx:
    """What a representation's addressing needs from its surroundings."""

    period_start: Fraction
    period_dur: Fraction | None
    allowed: frozenset[str]
    where: str
    live: bool


def _first(nodes: list[Any] | None) -> Any:
    return nodes[0] if nodes else None


def _pick(chain: list[Any], attr: str) -> Any:
    """Most specific non-None attribute along the inheritance chain (least specific first)."""
    for node in reversed(chain):
        v = getattr(node, attr, None)
        if v is not None:
            return v
    return None


def _build_index(levels: list[Any], base: str, rep_id: str, bandwidth: int, ctx: _Ctx
                 ) -> tuple[SegmentIndex | None, PendingSidx | None]:
    """levels: mpegdash Period, AdaptationSet, Representation (least specific first)."""
    where = ctx.where
    kind = None
    for node in reversed(levels):
        if node.segment_templates:
            kind = "template"
        elif node.segment_lists:
            kind = "list"
        elif node.segment_bases:
            kind = "base"
        if kind:
            break
    attr = {"template": "segment_templates", "list": "segment_lists", "base": "segment_bases"}
    chain = [n for n in (_first(getattr(lv, attr[kind])) for lv in levels) if n is not None] \
        if kind else []
    ts = _pick(chain, "timescale") or 1
    if ts <= 0:
        raise InvalidManifest("@timescale must be > 0", where=where)
    # A negative PTO is outside the schema, but its meaning is clear; dash.js plays such content.
    pto = _pick(chain, "presentation_time_offset") or 0
    start = ctx.period_start
    end = None if ctx.period_dur is None else start + ctx.period_dur
    end_media = None if ctx.period_dur is None else pto + ctx.period_dur * ts
    common = dict(base_url=base, timescale=ts, offset_s=float(start - Fraction(pto, ts)),
                  end_s=None if end is None else float(end), allowed_schemes=ctx.allowed,
                  where=where)

    def init_from_element() -> dict[str, Any]:
        init = _first(_pick(chain, "initializations"))
        if init is None:
            return {}
        return {"has_init": True, "init_url": init.source_url or "",
                "init_range": _byte_range(init.range, "Initialization@range", where)}

    if kind == "template":
        media = _pick(chain, "media")
        if not media:
            raise InvalidManifest("SegmentTemplate has no @media", where=where)
        tpl = _parse_template(media, "SegmentTemplate@media", where, rep_id, bandwidth)
        init_kw: dict[str, Any] = {}
        init_t = _pick(chain, "initialization")
        if init_t:
            it = _parse_template(init_t, "SegmentTemplate@initialization", where, rep_id, bandwidth)
            if any(k != "lit" for k, _ in it.parts):
                raise InvalidManifest("SegmentTemplate@initialization may not use $Number$/$Time$",
                                      where=where)
            init_kw = {"has_init": True, "init_url": "".join(str(a) for _, a in it.parts)}
        else:
            init_kw = init_from_element()
        start_number = _pick(chain, "start_number")
        start_number = 1 if start_number is None else start_number
        timeline = _first(_pick(chain, "segment_timelines"))
        if timeline is not None:
            runs = _timeline_runs(timeline.Ss or [], ts, end_media, where)
            return SegmentIndex(addressing="timeline", runs=tuple(runs), start_number=start_number,
                                template=tpl, **common, **init_kw), None
        d = _pick(chain, "duration")
        if d is not None:
            if d <= 0:
                raise InvalidManifest("SegmentTemplate@duration must be > 0", where=where)
            end_number = _pick(chain, "end_number")
            if ctx.period_dur is not None:
                n = _ceil_div(ctx.period_dur * ts, d)
                if end_number is not None:
                    n = min(n, max(0, end_number - start_number + 1))
            elif end_number is not None:
                n = max(0, end_number - start_number + 1)
            elif ctx.live:
                raise UnsupportedManifest("live segment list depends on the wall clock", where=where)
            else:
                raise InvalidManifest("cannot count SegmentTemplate@duration segments: the period "
                                      "has no duration (no Period@duration, next Period@start or "
                                      "MPD@mediaPresentationDuration)", where=where)
            _check_cap(n, where)
            runs = [_Run(0, n, pto, d)] if n else []
            return SegmentIndex(addressing="template", runs=tuple(runs), start_number=start_number,
                                template=tpl, **common, **init_kw), None
        if any(k != "lit" for k, _ in tpl.parts):
            raise InvalidManifest("SegmentTemplate has neither @duration nor a SegmentTimeline",
                                  where=where)
        return _single(common, ctx, where, rel=tpl.format(0, 0), init_kw=init_kw), None

    if kind == "list":
        seg_urls = _pick(chain, "segment_urls") or []
        _check_cap(len(seg_urls), where)
        urls = tuple(u.media for u in seg_urls)
        ranges = tuple(_byte_range(u.media_range, "SegmentURL@mediaRange", where) for u in seg_urls)
        start_number = _pick(chain, "start_number")
        start_number = 1 if start_number is None else start_number
        timeline = _first(_pick(chain, "segment_timelines"))
        d = _pick(chain, "duration")
        if timeline is not None:
            runs = _truncate_runs(_timeline_runs(timeline.Ss or [], ts, end_media, where), len(urls))
        elif d is not None:
            if d <= 0:
                raise InvalidManifest("SegmentList@duration must be > 0", where=where)
            n = len(urls)
            if end_media is not None:
                n = min(n, max(0, _ceil_div(end_media - pto, d)))
            runs = [_Run(0, n, pto, d)] if n else []
        elif len(urls) == 1:
            if ctx.period_dur is None:
                raise InvalidManifest("a SegmentList of one SegmentURL without @duration needs "
                                      "the period duration", where=where)
            dur = ctx.period_dur
            return SegmentIndex(addressing="list", runs=(_Run(0, 1, 0, dur.numerator),),
                                start_number=start_number, urls=urls, ranges=ranges,
                                **{**common, "timescale": dur.denominator,
                                   "offset_s": float(start)}, **init_from_element()), None
        elif not urls:
            runs = []
        else:
            raise InvalidManifest("SegmentList has several SegmentURLs but neither @duration nor "
                                  "a SegmentTimeline", where=where)
        n = sum(r.count for r in runs)
        return SegmentIndex(addressing="list", runs=tuple(runs), start_number=start_number,
                            urls=urls[:n], ranges=ranges[:n], **common,
                            **init_from_element()), None

    if kind == "base":
        init_kw = init_from_element()
        index_range = _byte_range(_pick(chain, "index_range"), "SegmentBase@indexRange", where)
        rep_index = _first(_pick(chain, "representation_indexes"))
        if index_range is not None or rep_index is not None:
            index_url = base
            if rep_index is not None:
                if rep_index.source_url:
                    index_url = _join_checked(base, rep_index.source_url, ctx.allowed, where)
                if index_range is None:
                    index_range = _byte_range(rep_index.range, "RepresentationIndex@range", where)
            init = None
            if init_kw:
                init = InitSegment(_join_checked(base, init_kw["init_url"], ctx.allowed, where),
                                   init_kw["init_range"])
            return None, PendingSidx(url=index_url, index_range=index_range, media_url=base,
                                     init=init, timescale=ts, presentation_time_offset=pto,
                                     period_start_s=float(start),
                                     period_end_s=None if end is None else float(end),
                                     allowed_schemes=ctx.allowed, where=where)
        return _single(common, ctx, where, rel="", init_kw=init_kw), None

    return _single(common, ctx, where, rel="", init_kw={}), None


def _single(common: dict[str, Any], ctx: _Ctx, where: str, rel: str,
            init_kw: dict[str, Any]) -> SegmentIndex:
    """The whole resource as one segment spanning the period."""
    if ctx.period_dur is None:
        if ctx.live:
            raise UnsupportedManifest("live segment list depends on the wall clock", where=where)
        raise InvalidManifest("a single-segment representation needs the period duration",
                              where=where)
    dur = ctx.period_dur
    return SegmentIndex(addressing="single", runs=(_Run(0, 1, 0, dur.numerator),),
                        urls=(rel or None,),
                        **{**common, "timescale": dur.denominator,
                           "offset_s": float(ctx.period_start)}, **init_kw)


def resolve_sidx(rep: Representation | PendingSidx, sidx_bytes: bytes) -> SegmentIndex:
    """Segment index of a SegmentBase representation from the bytes of its index range.

    `sidx_bytes` are the bytes of `pending.index_range` (or of the whole index resource
    when the range is None). Byte ranges in the result are absolute file offsets; times are
    presentation times (period start included, presentationTimeOffset removed), clipped to
    the period end.
    """
    pending = rep.pending_sidx if isinstance(rep, Representation) else rep
    if pending is None:
        raise ValueError("this representation has no pending sidx")
    where = pending.where
    offset = pending.index_range[0] if pending.index_range else 0
    try:
        box = sidx_mod.parse_sidx(sidx_bytes, offset=offset)
        subs = box.subsegments()
    except sidx_mod.SidxUnsupported as exc:
        raise UnsupportedManifest(f"sidx: {exc}", where=where) from None
    except sidx_mod.SidxError as exc:
        raise InvalidManifest(f"sidx: {exc}", where=where) from None
    if pending.url != pending.media_url:
        # A separate index resource: offsets count from the start of the media resource.
        shift = -box.anchor
        subs = [sidx_mod.Subsegment(s.first_byte + shift, s.last_byte + shift, s.start, s.duration)
                for s in subs]
    _check_cap(len(subs), where)
    ts = box.timescale
    pto_s = Fraction(pending.presentation_time_offset, pending.timescale or 1)
    period_start = Fraction(pending.period_start_s)
    runs: list[_Run] = []
    ranges: list[ByteRange] = []
    end_media = None
    if pending.period_end_s is not None:
        end_media = (Fraction(pending.period_end_s) - period_start + pto_s) * ts
    for s in subs:
        if end_media is not None and s.start >= end_media:
            break
        if s.duration <= 0:
            raise InvalidManifest("sidx: a subsegment has duration 0", where=where)
        if runs and runs[-1].d == s.duration and runs[-1].t + runs[-1].count * runs[-1].d == s.start:
            runs[-1] = replace(runs[-1], count=runs[-1].count + 1)
        else:
            runs.append(_Run(len(ranges), 1, s.start, s.duration))
        ranges.append((s.first_byte, s.last_byte))
    init = pending.init
    return SegmentIndex(
        addressing="sidx", base_url=pending.media_url, timescale=ts,
        offset_s=float(period_start - pto_s), runs=tuple(runs), end_s=pending.period_end_s,
        ranges=tuple(ranges), has_init=init is not None,
        init_url=init.url if init else None, init_range=init.byte_range if init else None,
        allowed_schemes=pending.allowed_schemes, where=where)


# ---------------------------------------------------------------------------------------
# content type


_VIDEO_CODECS = ("avc", "hvc", "hev", "vp8", "vp9", "vp09", "av01", "dvh", "dvav", "dva1", "mp4v",
                 "lvc1", "vvc", "vvi")
_AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "ac-4", "opus", "vorbis", "flac", "dtsc", "dtse", "dtsh",
                 "dtsl", "mha1", "mhm1", "alac", "mp3", ".mp3")
_TEXT_CODECS = ("stpp", "wvtt", "tx3g", "ttml", "vtt")


def _type_from(mime: str | None, codecs_: str | None) -> str | None:
    if mime:
        m = mime.lower()
        for t in ("video", "audio", "text", "image"):
            if m.startswith(t + "/"):
                return t
        if "ttml" in m or "vtt" in m:
            return "text"
    if codecs_:
        first = [c.strip().lower() for c in codecs_.split(",")]
        if any(c.startswith(_VIDEO_CODECS) for c in first):
            return "video"
        if any(c.startswith(_AUDIO_CODECS) for c in first):
            return "audio"
        if any(c.startswith(_TEXT_CODECS) for c in first):
            return "text"
    return None


def _content_type(a: Any, reps: list[Any]) -> str:
    ct = (a.content_type or "").strip().lower()
    if ct in ("video", "audio", "text", "image"):
        return ct
    t = _type_from(a.mime_type, a.codecs)
    if t:
        return t
    for cc in a.content_components or []:
        if (cc.content_type or "").lower() in ("video", "audio", "text", "image"):
            return cc.content_type.lower()
    for r in reps:
        t = _type_from(r.mime_type, r.codecs)
        if t:
            return t
    return "unknown"


# ---------------------------------------------------------------------------------------
# the parser


def parse_manifest(text: str | bytes, url: str | None = None) -> Presentation:
    """Parse MPD XML into a `Presentation`.

    `url` is where the manifest came from ("https://..." or "file:///..."): relative
    BaseURLs and segment URLs resolve against it, and a remote (http/https) manifest may
    only reference http/https URLs. None: URLs stay relative. Raises `ManifestError`.
    """
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_MANIFEST_BYTES:
            raise UnsupportedManifest(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (limit)")
        text = _decode(bytes(text))
    if len(text) > MAX_MANIFEST_BYTES:
        raise UnsupportedManifest(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes (limit)")
    notes: list[str] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    # 1. bounded streaming pass (defused): element count, depth, root element.
    census = None
    for attempt in range(2):
        try:
            census = _census(text)
            break
        except (SAXException, defusedxml.DefusedXmlException, _Limit, ValueError) as exc:
            msg = exc.getMessage() if isinstance(exc, SAXException) else str(exc)
            repaired = _declare_missing_prefixes(text) if attempt == 0 and "unbound prefix" in msg \
                else None
            if repaired is None:
                raise _xml_error(exc) from None
            text, missing = repaired
            notes.append("declared namespace prefix(es) used without a declaration: "
                         + ", ".join(missing))
    assert census is not None
    if census.root is None or census.root[1] != "MPD":
        got = census.root[1] if census.root else "nothing"
        raise InvalidManifest(f"the root element is <{got}>, not <MPD>")
    # 2. the DOM (defused again: same text, same limits) and mpegdash's structure.
    try:
        dom = defusedxml.minidom.parseString(text)
    except Exception as exc:  # noqa: BLE001 - expat/defusedxml errors of the same text
        raise _xml_error(exc) from None
    stash: dict[int, dict[str, str]] = {}
    _sanitize(dom, stash, notes)
    try:
        mpd = _DomParser.parse(dom)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InvalidManifest(f"mpegdash could not read the structure: {exc}") from None
    root = dom.documentElement
    return _Builder(mpd, root, url, stash, notes).build()


class _Builder:
    def __init__(self, mpd: MPEGDASH, root: minidom.Element, url: str | None,
                 stash: dict[int, dict[str, str]], notes: list[str]) -> None:
        self.mpd = mpd
        self.root = root
        self.url = url
        self.stash = stash
        self.notes = notes
        scheme = urlsplit(url).scheme.lower() if url else ""
        self.remote = scheme in ("http", "https")
        self.allowed = frozenset({"http", "https"}) if self.remote \
            else frozenset({"http", "https", "file"})
        if url and scheme not in ("http", "https", "file"):
            raise UnsupportedManifest(f"manifest URL scheme '{scheme}' is not supported")

    def build(self) -> Presentation:
        mpd, root = self.mpd, self.root
        mtype = (mpd.type or "static").strip()
        if mtype == "list":
            raise UnsupportedManifest("list MPDs (type=list, ImportedMPD) are not supported")
        if mtype not in ("static", "dynamic"):
            raise InvalidManifest(f"MPD@type={mtype!r} (must be static or dynamic)")
        live = mtype == "dynamic"
        total = _duration(mpd.media_presentation_duration, "MPD@mediaPresentationDuration")
        min_buf = _duration(mpd.min_buffer_time, "MPD@minBufferTime")
        doc = BaseUrl(self.url or "")
        mpd_bases = _resolve_base_urls((doc,), root, self.allowed, "MPD/BaseURL")
        mpd_cp = _protection(root, "MPD")
        raw_periods = _kids(root, "Period")
        m_periods = mpd.periods or []
        if len(raw_periods) != len(m_periods):  # pragma: no cover - same rule on the same DOM
            raise InvalidManifest("Period elements could not be matched")
        if not m_periods:
            raise InvalidManifest("the MPD has no Period")
        # period timing
        starts: list[Fraction | None] = []
        durs: list[Fraction | None] = []
        for i, p in enumerate(m_periods):
            where = f"Period {self._label(p.id, i)}"
            s = _duration(p.start, "Period@start", where)
            if s is None:
                if i == 0:
                    s = Fraction(0)
                elif starts[-1] is not None and durs[-1] is not None:
                    s = starts[-1] + durs[-1]
                elif live:
                    s = None
                else:
                    raise InvalidManifest("Period has no @start and the previous Period has no "
                                          "duration", where=where)
            starts.append(s)
            durs.append(_duration(p.duration, "Period@duration", where))
        for i in range(len(m_periods)):
            if durs[i] is None and starts[i] is not None:
                nxt = starts[i + 1] if i + 1 < len(m_periods) else None
                if nxt is not None:
                    durs[i] = nxt - starts[i]
                elif i + 1 == len(m_periods) and total is not None:
                    durs[i] = total - starts[i]
                if durs[i] is not None and durs[i] < 0:
                    raise InvalidManifest("Period ends before it starts (check Period@start and "
                                          "MPD@mediaPresentationDuration)",
                                          where=f"Period {self._label(m_periods[i].id, i)}")
        periods = []
        for i, (p, rp) in enumerate(zip(m_periods, raw_periods)):
            periods.append(self._period(p, rp, i, starts[i] if starts[i] is not None else Fraction(0),
                                        durs[i], mpd_bases, mpd_cp, live))
        if total is None and all(p.duration_s is not None for p in periods):
            total = Fraction(periods[-1].start_s) + Fraction(periods[-1].duration_s or 0)
        return Presentation(type=mtype, duration_s=None if total is None else float(total),
                            min_buffer_time_s=None if min_buf is None else float(min_buf),
                            periods=tuple(periods), base_urls=mpd_bases, protection=mpd_cp,
                            source_url=self.url, notes=tuple(dict.fromkeys(self.notes)))

    @staticmethod
    def _label(id_: Any, i: int) -> str:
        return repr(str(id_)) if id_ is not None else f"#{i + 1}"

    def _period(self, p: Any, rp: minidom.Element, i: int, start: Fraction, dur: Fraction | None,
                parent_bases: tuple[BaseUrl, ...], mpd_cp: tuple[ContentProtection, ...],
                live: bool) -> Period:
        where = f"Period {self._label(p.id, i)}"
        bases = _resolve_base_urls(parent_bases, rp, self.allowed, where)
        cp = _merge_cp(_protection(rp, where), mpd_cp)
        sets = []
        raw_sets = _kids(rp, "AdaptationSet")
        for j, (a, ra) in enumerate(zip(p.adaptation_sets or [], raw_sets)):
            sets.append(self._adaptation_set(p, a, ra, j, start, dur, bases, cp, live, where))
        return Period(id=p.id, start_s=float(start), duration_s=None if dur is None else float(dur),
                      adaptation_sets=tuple(sets), base_urls=bases, protection=cp)

    def _adaptation_set(self, p: Any, a: Any, ra: minidom.Element, j: int, start: Fraction,
                        dur: Fraction | None, parent_bases: tuple[BaseUrl, ...],
                        parent_cp: tuple[ContentProtection, ...], live: bool,
                        pwhere: str) -> AdaptationSet:
        raw_id = self.stash.get(id(ra), {}).get("id", _attr(ra, "id"))
        where = f"{pwhere} > AdaptationSet {self._label(raw_id, j)}"
        bases = _resolve_base_urls(parent_bases, ra, self.allowed, where)
        cp = _merge_cp(_protection(ra, where), parent_cp)
        m_reps = a.representations or []
        raw_reps = _kids(ra, "Representation")
        ctype = _content_type(a, m_reps)
        ignored, note = False, None
        if ctype in ("text", "image"):
            ignored, note = True, f"{ctype} track: kept in the model, ignored by the player"
        elif ctype == "unknown":
            ignored, note = True, "content type unknown: ignored by the player"
        for ep in _kids(ra, "EssentialProperty"):
            scheme = (_attr(ep, "schemeIdUri") or "").strip()
            if scheme == TRICKMODE:
                ignored, note = True, "trick-play track (EssentialProperty trickmode): ignored"
            elif scheme not in UNDERSTOOD_ESSENTIAL:
                ignored, note = True, f"EssentialProperty {scheme!r} not understood: ignored"
        if not m_reps and not ignored:
            note = "no representations"
        roles = tuple((_attr(r, "value") or "") for r in _kids(ra, "Role"))
        reps = []
        for k, (r, rr) in enumerate(zip(m_reps, raw_reps)):
            reps.append(self._representation(p, a, r, rr, k, start, dur, bases, cp, live, ignored,
                                             where, ctype))
        return AdaptationSet(
            id=raw_id, content_type=ctype, mime_type=a.mime_type, codecs=a.codecs,
            lang=a.lang, representations=tuple(reps), protection=cp, roles=roles,
            segment_alignment=bool(_bool(_attr(ra, "segmentAlignment"))),
            subsegment_alignment=bool(_bool(_attr(ra, "subsegmentAlignment"))),
            bitstream_switching=_bool(_attr(ra, "bitstreamSwitching")),
            ignored=ignored, note=note)

    def _representation(self, p: Any, a: Any, r: Any, rr: minidom.Element, k: int,
                        start: Fraction, dur: Fraction | None, parent_bases: tuple[BaseUrl, ...],
                        parent_cp: tuple[ContentProtection, ...], live: bool, ignored: bool,
                        awhere: str, ctype: str) -> Representation:
        rep_id = r.id
        where = f"{awhere} > Representation {self._label(rep_id, k)}"
        note = None
        uses_id = any("$RepresentationID" in (getattr(t, "media", None) or "")
                      + (getattr(t, "initialization", None) or "")
                      for lv in (p, a, r) for t in (lv.segment_templates or []))
        if rep_id is None or not rep_id.strip():
            if uses_id and not ignored:
                raise InvalidManifest("Representation has no @id, which its SegmentTemplate "
                                      "uses ($RepresentationID$)", where=where)
            rep_id = f"#{k + 1}"
            note = "no @id in the manifest; named by position"
        bandwidth = r.bandwidth
        if bandwidth is None or bandwidth <= 0:
            if not ignored:
                raise InvalidManifest("Representation has no positive @bandwidth (required)",
                                      where=where)
            bandwidth = 0
        bases = _resolve_base_urls(parent_bases, rr, self.allowed, where)
        cp = _merge_cp(_protection(rr, where), parent_cp)
        ctx = _Ctx(period_start=start, period_dur=dur, allowed=self.allowed, where=where, live=live)
        index = pending = None
        try:
            index, pending = _build_index([p, a, r], bases[0].url, rep_id, bandwidth, ctx)
            if index is not None and len(index):
                index.init  # noqa: B018 - resolve now so scheme errors surface at load time
                index[0]
                index[len(index) - 1]
        except ManifestError as exc:
            if not (ignored or live):
                raise
            index = pending = None
            note = exc.reason if not live else "live: " + exc.reason
        width = r.width if r.width is not None else a.width
        height = r.height if r.height is not None else a.height
        for name, v in (("width", width), ("height", height)):
            if v is not None and v <= 0 and not ignored:
                raise InvalidManifest(f"Representation @{name}={v} must be > 0", where=where)
        asr = (r.audio_sampling_rate or a.audio_sampling_rate or "").split()
        asr_i = int(asr[0]) if asr and _INT_RE.fullmatch(asr[0]) else None
        return Representation(
            id=rep_id, bandwidth_bps=float(bandwidth), width=width, height=height,
            frame_rate=_frame_rate(r.frame_rate or a.frame_rate),
            codecs=r.codecs or a.codecs, mime_type=r.mime_type or a.mime_type,
            base_urls=bases, segment_index=index, pending_sidx=pending, protection=cp,
            audio_sampling_rate=asr_i, note=note)


# ---------------------------------------------------------------------------------------
# loading and fetching


def _is_url(s: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", s))


async def fetch_manifest(url: str, session: Any = None, max_bytes: int = MAX_MANIFEST_BYTES,
                         max_redirects: int = 5, timeout_s: float = 30.0) -> tuple[str, str]:
    """GET a manifest over http/https: returns (text, final_url after redirects).

    Redirects are followed by hand (at most `max_redirects`, http/https only); the body is
    read up to `max_bytes` (a larger Content-Length or body is refused, never buffered).
    """
    import aiohttp

    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsupportedManifest(f"manifest URL scheme '{scheme}' is not supported (http/https)")
    own = session is None
    if own:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
    current = url
    try:
        for _hop in range(max_redirects + 1):
            try:
                async with session.get(current, allow_redirects=False,
                                       headers={"Accept": "application/dash+xml, */*;q=0.5"}) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        loc = resp.headers.get("Location")
                        if not loc:
                            raise ManifestUnavailable(f"HTTP {resp.status} without Location from {current}")
                        nxt = urljoin(current, loc)
                        if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                            raise InvalidManifest(f"redirect from {current} to a non-http URL {nxt[:200]!r}")
                        current = nxt
                        continue
                    if resp.status != 200:
                        raise ManifestUnavailable(f"HTTP {resp.status} {resp.reason or ''} fetching {current}")
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        raise UnsupportedManifest(
                            f"the manifest is larger than {max_bytes} bytes (Content-Length "
                            f"{resp.content_length}) (limit)")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > max_bytes:
                            raise UnsupportedManifest(
                                f"the manifest is larger than {max_bytes} bytes (limit)")
                        chunks.append(chunk)
                    return _decode(b"".join(chunks), resp.charset), current
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise ManifestUnavailable(f"cannot fetch {current}: {type(exc).__name__}: {exc}") from None
        raise ManifestUnavailable(f"too many redirects (more than {max_redirects}) fetching {url}")
    finally:
        if own:
            await session.close()


def _read_local(path_or_url: str, max_bytes: int) -> tuple[bytes, str]:
    if path_or_url.lower().startswith("file://"):
        from urllib.request import url2pathname

        path = Path(url2pathname(urlsplit(path_or_url).path))
    else:
        path = Path(path_or_url)
    try:
        path = path.resolve()
        if not path.is_file():
            raise ManifestUnavailable(f"cannot read {str(path)!r}: not a file")
        if path.stat().st_size > max_bytes:
            raise UnsupportedManifest(f"the manifest is larger than {max_bytes} bytes (limit)")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ManifestUnavailable(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise UnsupportedManifest(f"the manifest is larger than {max_bytes} bytes (limit)")
    return data, path.as_uri()


async def load_manifest_async(path_or_url: str | Path, session: Any = None,
                              max_bytes: int = MAX_MANIFEST_BYTES) -> Presentation:
    s = str(path_or_url)
    if _is_url(s) and not s.lower().startswith("file://"):
        text, final = await fetch_manifest(s, session=session, max_bytes=max_bytes)
        return parse_manifest(text, final)
    data, uri = _read_local(s, max_bytes)
    return parse_manifest(data, uri)


def load_manifest(path_or_url: str | Path, max_bytes: int = MAX_MANIFEST_BYTES) -> Presentation:
    """Load and parse a manifest from a local path, a file:// URL or an http(s) URL."""
    s = str(path_or_url)
    if _is_url(s) and not s.lower().startswith("file://"):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(load_manifest_async(s, max_bytes=max_bytes))
        raise RuntimeError("load_manifest() called inside an event loop; "
                           "use `await load_manifest_async(...)`")
    data, uri = _read_local(s, max_bytes)
    return parse_manifest(data, uri)
