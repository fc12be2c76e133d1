"""The builder: mpegdash's structure plus the raw DOM → abrlab's `Presentation`.

mpegdash gives the structure (MPD → Period → AdaptationSet → Representation and the
segment-addressing elements); where mpegdash 0.4.1 is wrong or silent the raw DOM is read
alongside, element by element: booleans (`bool("false")` is True in mpegdash),
ContentProtection with any namespace prefix and BaseURL failover attributes (see
`player.dash.descriptors`). Values inherit down the tree as ISO/IEC 23009-1 says; each
error names where it is (Period > AdaptationSet > Representation).

A live MPD's timing (availabilityStartTime, publishTime, minimumUpdatePeriod, ...) is read
only for type="dynamic" (a static presentation's model is what it always was). A timing
value that does not parse is dropped with a note, not refused: the model stays useful to
`abrlab mpd info`, and the live player decides what it cannot do without.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit
from xml.dom import minidom

from player.dash.addressing import AddressingContext, SegmentAddressing, build_segment_index
from player.dash.descriptors import (merge_protection, protection_descriptors, resolve_base_urls,
                                     service_descriptions, utc_timings)
from player.dash.errors import InvalidManifest, ManifestError, UnsupportedManifest
from player.dash.model import (AdaptationSet, BaseUrl, ContentProtection, Period, Presentation,
                               Representation)
from player.dash.urls import LOCAL_SCHEMES, REMOTE_SCHEMES
from player.dash.values import (int_or_none, parse_duration, parse_frame_rate, parse_xs_bool,
                                parse_xs_datetime)
from player.dash.xmlsafe import MpdDocument, attribute, child_elements

__all__ = ["TRICKMODE", "UNDERSTOOD_ESSENTIAL", "ManifestBuilder", "content_type_of"]

TRICKMODE = "http://dashif.org/guidelines/trickmode"
# EssentialProperty schemes whose meaning does not stop a headless player from using the set.
UNDERSTOOD_ESSENTIAL = {
    "urn:mpeg:mpegB:cicp:ColourPrimaries",
    "urn:mpeg:mpegB:cicp:TransferCharacteristics",
    "urn:mpeg:mpegB:cicp:MatrixCoefficients",
    "urn:mpeg:mpegB:cicp:VideoFullRangeFlag",
    "http://dashif.org/guidelines/thumbnail_tile",
}


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


def content_type_of(a: Any, reps: list[Any]) -> str:
    """video | audio | text | image | unknown, from @contentType, mime types or codecs."""
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
# the builder


def _label(id_: Any, i: int) -> str:
    return repr(str(id_)) if id_ is not None else f"#{i + 1}"


class ManifestBuilder:
    """Builds the model of one MPD read by `player.dash.xmlsafe.read_mpd_document`."""

    def __init__(self, doc: MpdDocument, url: str | None) -> None:
        self.mpd = doc.mpd
        self.root = doc.root
        self.url = url
        self.stash = doc.stash
        self.notes = doc.notes
        scheme = urlsplit(url).scheme.lower() if url else ""
        self.remote = scheme in ("http", "https")
        self.allowed = REMOTE_SCHEMES if self.remote else LOCAL_SCHEMES
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
        total = parse_duration(mpd.media_presentation_duration, "MPD@mediaPresentationDuration")
        min_buf = parse_duration(mpd.min_buffer_time, "MPD@minBufferTime")
        doc = BaseUrl(self.url or "")
        mpd_bases = resolve_base_urls((doc,), root, self.allowed, "MPD/BaseURL")
        mpd_cp = protection_descriptors(root, "MPD")
        raw_periods = child_elements(root, "Period")
        m_periods = mpd.periods or []
        if len(raw_periods) != len(m_periods):  # pragma: no cover - same rule on the same DOM
            raise InvalidManifest("Period elements could not be matched")
        if not m_periods:
            raise InvalidManifest("the MPD has no Period")
        starts, durs = self._period_timing(m_periods, total, live)
        periods = []
        for i, (p, rp) in enumerate(zip(m_periods, raw_periods)):
            periods.append(self._period(p, rp, i, starts[i], durs[i], mpd_bases, mpd_cp, live))
        last = periods[-1]
        if total is None and all(p.duration_s is not None for p in periods) \
                and last.start_s is not None:
            total = Fraction(last.start_s) + Fraction(last.duration_s or 0)
        timing = self._live_timing() if live else {}
        return Presentation(type=mtype, duration_s=None if total is None else float(total),
                            min_buffer_time_s=None if min_buf is None else float(min_buf),
                            periods=tuple(periods), base_urls=mpd_bases, protection=mpd_cp,
                            source_url=self.url, notes=tuple(dict.fromkeys(self.notes)),
                            **timing)

    def _live_timing(self) -> dict[str, Any]:
        """The `Presentation` fields of a live MPD's timing (see the module doc)."""
        mpd = self.mpd
        out: dict[str, Any] = {}
        for field_name, attr, value in (
                ("availability_start_time_s", "availabilityStartTime", mpd.availability_start_time),
                ("availability_end_time_s", "availabilityEndTime", mpd.availability_end_time),
                ("publish_time_s", "publishTime", mpd.publish_time)):
            out[field_name] = self._tolerated(parse_xs_datetime, value, f"MPD@{attr}")
        for field_name, attr, value in (
                ("minimum_update_period_s", "minimumUpdatePeriod", mpd.minimum_update_period),
                ("time_shift_buffer_depth_s", "timeShiftBufferDepth", mpd.time_shift_buffer_depth),
                ("suggested_presentation_delay_s", "suggestedPresentationDelay",
                 mpd.suggested_presentation_delay),
                ("max_segment_duration_s", "maxSegmentDuration", mpd.max_segment_duration)):
            seconds = self._tolerated(parse_duration, value, f"MPD@{attr}")
            out[field_name] = None if seconds is None else float(seconds)
        if out["availability_start_time_s"] is None:
            self.notes.append("live MPD without a usable @availabilityStartTime: segment "
                              "availability cannot be computed")
        out["utc_timings"] = utc_timings(self.root)
        out["service_descriptions"] = service_descriptions(self.root, self.notes)
        return out

    def _tolerated(self, parse: Any, value: str | None, what: str) -> Any:
        """parse(value), or None with a note when the value is malformed."""
        try:
            return parse(value, what)
        except InvalidManifest as exc:
            self.notes.append(f"{exc.reason}: ignored")
            return None

    @staticmethod
    def _period_timing(m_periods: list[Any], total: Fraction | None, live: bool
                       ) -> tuple[list[Fraction | None], list[Fraction | None]]:
        """Each period's start and duration (ISO/IEC 23009-1 §5.3.2.1), None when unknown."""
        starts: list[Fraction | None] = []
        durs: list[Fraction | None] = []
        for i, p in enumerate(m_periods):
            where = f"Period {_label(p.id, i)}"
            s = parse_duration(p.start, "Period@start", where)
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
            durs.append(parse_duration(p.duration, "Period@duration", where))
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
                                          where=f"Period {_label(m_periods[i].id, i)}")
        return starts, durs

    def _period(self, p: Any, rp: minidom.Element, i: int, start: Fraction | None,
                dur: Fraction | None,
                parent_bases: tuple[BaseUrl, ...], mpd_cp: tuple[ContentProtection, ...],
                live: bool) -> Period:
        where = f"Period {_label(p.id, i)}"
        bases = resolve_base_urls(parent_bases, rp, self.allowed, where)
        cp = merge_protection(protection_descriptors(rp, where), mpd_cp)
        sets = []
        raw_sets = child_elements(rp, "AdaptationSet")
        for j, (a, ra) in enumerate(zip(p.adaptation_sets or [], raw_sets)):
            sets.append(self._adaptation_set(p, rp, a, ra, j, start, dur, bases, cp, live, where))
        return Period(id=p.id, start_s=None if start is None else float(start),
                      duration_s=None if dur is None else float(dur),
                      adaptation_sets=tuple(sets), base_urls=bases, protection=cp)

    @staticmethod
    def _ignored_because(ra: minidom.Element, ctype: str) -> str | None:
        """Why the player leaves this adaptation set alone (None: it may play it)."""
        note = None
        if ctype in ("text", "image"):
            note = f"{ctype} track: kept in the model, ignored by the player"
        elif ctype == "unknown":
            note = "content type unknown: ignored by the player"
        for ep in child_elements(ra, "EssentialProperty"):
            scheme = (attribute(ep, "schemeIdUri") or "").strip()
            if scheme == TRICKMODE:
                note = "trick-play track (EssentialProperty trickmode): ignored"
            elif scheme not in UNDERSTOOD_ESSENTIAL:
                note = f"EssentialProperty {scheme!r} not understood: ignored"
        return note

    def _adaptation_set(self, p: Any, rp: minidom.Element, a: Any, ra: minidom.Element, j: int,
                        start: Fraction | None, dur: Fraction | None, parent_bases: tuple[BaseUrl, ...],
                        parent_cp: tuple[ContentProtection, ...], live: bool,
                        pwhere: str) -> AdaptationSet:
        raw_id = self.stash.get(id(ra), {}).get("id", attribute(ra, "id"))
        where = f"{pwhere} > AdaptationSet {_label(raw_id, j)}"
        bases = resolve_base_urls(parent_bases, ra, self.allowed, where)
        cp = merge_protection(protection_descriptors(ra, where), parent_cp)
        m_reps = a.representations or []
        raw_reps = child_elements(ra, "Representation")
        ctype = content_type_of(a, m_reps)
        note = self._ignored_because(ra, ctype)
        ignored = note is not None
        if not m_reps and not ignored:
            note = "no representations"
        roles = tuple((attribute(r, "value") or "") for r in child_elements(ra, "Role"))
        reps = []
        for k, (r, rr) in enumerate(zip(m_reps, raw_reps)):
            reps.append(self._representation((p, a, r), (rp, ra, rr), k, start, dur, bases, cp,
                                             live, ignored, where))
        return AdaptationSet(
            id=raw_id, content_type=ctype, mime_type=a.mime_type, codecs=a.codecs,
            lang=a.lang, representations=tuple(reps), protection=cp, roles=roles,
            segment_alignment=bool(parse_xs_bool(attribute(ra, "segmentAlignment"))),
            subsegment_alignment=bool(parse_xs_bool(attribute(ra, "subsegmentAlignment"))),
            bitstream_switching=parse_xs_bool(attribute(ra, "bitstreamSwitching")),
            ignored=ignored, note=note)

    def _representation(self, levels: tuple[Any, Any, Any], raw_levels: tuple[minidom.Element, ...],
                        k: int, start: Fraction | None, dur: Fraction | None,
                        parent_bases: tuple[BaseUrl, ...], parent_cp: tuple[ContentProtection, ...],
                        live: bool, ignored: bool, awhere: str) -> Representation:
        p, a, r = levels
        rep_id = r.id
        where = f"{awhere} > Representation {_label(rep_id, k)}"
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
        bases = resolve_base_urls(parent_bases, raw_levels[-1], self.allowed, where)
        cp = merge_protection(protection_descriptors(raw_levels[-1], where), parent_cp)
        ctx = AddressingContext(period_start=start, period_dur=dur, allowed=self.allowed,
                                where=where, live=live, raw_levels=raw_levels)
        found = SegmentAddressing()
        try:
            found = build_segment_index([p, a, r], bases[0], rep_id, bandwidth, ctx)
            _resolve_ends(found)
        except ManifestError as exc:
            # A live representation this player cannot address yet (an open-ended timeline,
            # a SegmentBase whose length grows) stays in the model with a note; a malformed
            # one is refused as in a static manifest.
            if not (ignored or (live and isinstance(exc, UnsupportedManifest))):
                raise
            found = replace(found, index=None, pending_sidx=None, live_template=None)
            note = exc.reason if not live else "live: " + exc.reason
        width = r.width if r.width is not None else a.width
        height = r.height if r.height is not None else a.height
        for name, v in (("width", width), ("height", height)):
            if v is not None and v <= 0 and not ignored:
                raise InvalidManifest(f"Representation @{name}={v} must be > 0", where=where)
        asr = (r.audio_sampling_rate or a.audio_sampling_rate or "").split()
        return Representation(
            id=rep_id, bandwidth_bps=float(bandwidth), width=width, height=height,
            frame_rate=parse_frame_rate(r.frame_rate or a.frame_rate),
            codecs=r.codecs or a.codecs, mime_type=r.mime_type or a.mime_type,
            base_urls=bases, segment_index=found.index, pending_sidx=found.pending_sidx,
            protection=cp, audio_sampling_rate=int_or_none(asr[0]) if asr else None, note=note,
            live_template=found.live_template,
            availability_time_offset_s=found.availability_time_offset_s,
            availability_time_complete=found.availability_time_complete)


def _resolve_ends(found: SegmentAddressing) -> None:
    """Resolve the init and first/last segment URLs now, so that a scheme a manifest may
    not use is refused at load time rather than at the first fetch."""
    index, live = found.index, found.live_template
    if index is not None and len(index):
        index.init  # noqa: B018
        index[0]
        index[len(index) - 1]
    if live is not None:
        live.init  # noqa: B018
        live.segment(live.start_number)
