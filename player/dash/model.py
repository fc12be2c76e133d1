"""abrlab's own small, immutable model of a DASH presentation.

Presentation → Period → AdaptationSet → Representation, with the BaseURL alternatives and
ContentProtection descriptors in effect at each level (inherited ones merged in). The
rest of the code sees only this model, never mpegdash's objects or the XML
(`player.dash.loading.parse_manifest` builds it). Segments are in `player.dash.segments`.

Live (type="dynamic") presentations carry their timing as the MPD states it: the
availability start time and publish time as seconds since the Unix epoch (UTC), the
update period, time-shift buffer depth and suggested delay in seconds, the UTCTiming
sources in document order, and the low-latency signals (availabilityTimeOffset and
availabilityTimeComplete per representation, ServiceDescription latency and playback
rates). Parsing accepts them; `player.dash.live` turns them into what the live player
plays (`require_static` remains for a caller that can only play static presentations).

Units: seconds (float), bits per second (float), bytes (int).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from player.dash.errors import UnsupportedManifest
from player.dash.segments import LiveSegmentTemplate, PendingSidx, SegmentIndex

__all__ = ["DASH_SYSTEMS", "MP4PROTECTION", "LIVE_UNSUPPORTED", "UTC_TIMING_METHODS",
           "SUPPORTED_UTC_TIMING_METHODS", "BaseUrl", "ContentProtection", "UtcTiming",
           "ServiceDescription", "Representation", "AdaptationSet", "Period", "Presentation"]

LIVE_UNSUPPORTED = ("live playback: this player does not play type=dynamic presentations yet "
                    "(`abrlab mpd info` shows their live timing)")

# UTCTiming schemes (ISO/IEC 23009-1 5.8.5.7) → the method's short name.
UTC_TIMING_METHODS = {
    f"urn:mpeg:dash:utc:{method}:{year}": method
    for method in ("http-iso", "http-xsdate", "http-head", "direct", "http-ntp", "ntp", "sntp")
    for year in (2014, 2012)
}
# What an HTTP client can use without an NTP stack.
SUPPORTED_UTC_TIMING_METHODS = frozenset({"http-iso", "http-xsdate", "http-head", "direct"})

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


@dataclass(frozen=True)
class BaseUrl:
    """One resolved BaseURL alternative (DVB-DASH failover: lower priority first)."""

    url: str
    service_location: str | None = None
    priority: int = 1
    weight: int = 1
    availability_time_offset_s: float | None = None    # this BaseURL's (or its parent's); may be inf
    availability_time_complete: bool | None = None


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
class UtcTiming:
    """One UTCTiming element: how a live client may learn the time the server keeps."""

    scheme_id_uri: str
    value: str | None

    @property
    def method(self) -> str | None:
        """http-iso, http-xsdate, http-head, direct, http-ntp, ntp, sntp; None if unknown."""
        return UTC_TIMING_METHODS.get(self.scheme_id_uri.strip())

    @property
    def supported(self) -> bool:
        return self.method in SUPPORTED_UTC_TIMING_METHODS

    def to_dict(self) -> dict[str, Any]:
        return {"scheme_id_uri": self.scheme_id_uri, "value": self.value, "method": self.method,
                "supported": self.supported}


@dataclass(frozen=True)
class ServiceDescription:
    """The service provider's wishes for a low-latency client (ISO/IEC 23009-1 Annex K).

    Latency is in seconds (the MPD writes milliseconds); playback rates are factors of
    normal speed. None where the MPD says nothing.
    """

    id: str | None = None
    scopes: tuple[str, ...] = ()                 # Scope@schemeIdUri values
    latency_target_s: float | None = None
    latency_min_s: float | None = None
    latency_max_s: float | None = None
    latency_reference_id: int | None = None
    playback_rate_min: float | None = None
    playback_rate_max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "scopes": list(self.scopes),
                "latency_target_s": self.latency_target_s, "latency_min_s": self.latency_min_s,
                "latency_max_s": self.latency_max_s,
                "latency_reference_id": self.latency_reference_id,
                "playback_rate_min": self.playback_rate_min,
                "playback_rate_max": self.playback_rate_max}


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
    live_template: LiveSegmentTemplate | None = None    # live @duration template: unbounded
    # Effective low-latency signals (None: not stated, i.e. 0 s and complete): the segment
    # element's offset plus its first BaseURL's (ISO/IEC 23009-1 5.6.4: they add up).
    availability_time_offset_s: float | None = None
    availability_time_complete: bool | None = None

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
        if self.live_template is not None:
            return "live-template"
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
    start_s: float | None               # None: a live period whose start is not known yet
    duration_s: float | None
    adaptation_sets: tuple[AdaptationSet, ...]
    base_urls: tuple[BaseUrl, ...] = ()
    protection: tuple[ContentProtection, ...] = ()   # effective: own + MPD

    @property
    def end_s(self) -> float | None:
        if self.start_s is None or self.duration_s is None:
            return None
        return self.start_s + self.duration_s

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
    # live timing (type="dynamic"; None where the MPD does not say)
    availability_start_time_s: float | None = None   # seconds since the epoch, UTC
    availability_end_time_s: float | None = None
    publish_time_s: float | None = None
    minimum_update_period_s: float | None = None     # refresh period; None: no updates
    time_shift_buffer_depth_s: float | None = None   # None: the whole presentation
    suggested_presentation_delay_s: float | None = None
    max_segment_duration_s: float | None = None
    utc_timings: tuple[UtcTiming, ...] = ()          # in document order: first preferred
    service_descriptions: tuple[ServiceDescription, ...] = ()

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
        """The JSON shape of `abrlab mpd info --json` (a "live" part for live ones only)."""
        out: dict[str, Any] = {
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
                    "representations": [_representation_dict(r, self.is_live)
                                        for r in a.representations],
                } for a in p.adaptation_sets],
            } for p in self.periods],
            "protection": [cp.to_dict() for cp in self.all_protection()],
            "notes": list(self.notes),
        }
        if self.is_live:
            out["live"] = self.live_dict()
        return out

    def live_dict(self) -> dict[str, Any]:
        """The live timing of `to_dict()` (only live presentations have it)."""
        return {
            "availability_start_time": _iso8601(self.availability_start_time_s),
            "availability_start_time_s": self.availability_start_time_s,
            "availability_end_time_s": self.availability_end_time_s,
            "publish_time": _iso8601(self.publish_time_s),
            "publish_time_s": self.publish_time_s,
            "minimum_update_period_s": self.minimum_update_period_s,
            "time_shift_buffer_depth_s": self.time_shift_buffer_depth_s,
            "suggested_presentation_delay_s": self.suggested_presentation_delay_s,
            "max_segment_duration_s": self.max_segment_duration_s,
            "min_buffer_time_s": self.min_buffer_time_s,
            "utc_timing": [u.to_dict() for u in self.utc_timings],
            "service_descriptions": [d.to_dict() for d in self.service_descriptions],
        }


def _iso8601(epoch_s: float | None) -> str | None:
    """Seconds since the epoch → '2024-01-01T00:00:00.5Z' (UTC, fractions only when needed)."""
    if epoch_s is None:
        return None
    whole = math.floor(epoch_s)
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=whole)
    frac = f"{epoch_s - whole:.6f}"[1:].rstrip("0").rstrip(".")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def _json_seconds(v: float | None) -> float | str | None:
    """JSON has no infinity: an infinite offset is written "INF", as in the MPD."""
    return "INF" if v is not None and math.isinf(v) else v


def _representation_dict(r: Representation, live: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id, "width": r.width,
        "bandwidth": int(r.bandwidth_bps) if r.bandwidth_bps.is_integer() else r.bandwidth_bps,
        "height": r.height, "frame_rate": r.frame_rate, "codecs": r.codecs,
        "mime_type": r.mime_type, "addressing": r.addressing, "segments": r.segment_count,
        "base_urls": [b.url for b in r.base_urls], "note": r.note,
    }
    if live:
        t = r.live_template
        out.update({
            "availability_time_offset_s": _json_seconds(r.availability_time_offset_s),
            "availability_time_complete": r.availability_time_complete,
            "live_template": None if t is None else {
                "start_number": t.start_number, "end_number": t.end_number,
                "segment_duration_s": t.duration_s, "timescale": t.timescale,
                "period_start_s": t.period_start_s, "period_end_s": t.period_end_s},
        })
    return out
