"""abrlab's own small, immutable model of a DASH presentation.

Presentation → Period → AdaptationSet → Representation, with the BaseURL alternatives and
ContentProtection descriptors in effect at each level (inherited ones merged in). The
rest of the code sees only this model, never mpegdash's objects or the XML
(`player.dash.loading.parse_manifest` builds it). Segments are in `player.dash.segments`.

Units: seconds (float), bits per second (float), bytes (int).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from player.dash.errors import UnsupportedManifest
from player.dash.segments import PendingSidx, SegmentIndex

__all__ = ["DASH_SYSTEMS", "MP4PROTECTION", "LIVE_UNSUPPORTED", "BaseUrl", "ContentProtection",
           "Representation", "AdaptationSet", "Period", "Presentation"]

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
