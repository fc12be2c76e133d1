"""Segment addressing: SegmentTemplate, SegmentTimeline, SegmentList and SegmentBase →
a `SegmentIndex` (or a `PendingSidx` when the index is in a `sidx` box still to fetch).

The addressing element in effect is the most specific of Period, AdaptationSet and
Representation; its attributes inherit along that chain (ISO/IEC 23009-1 §5.3.9). The
timeline is never expanded into a list: a SegmentTimeline becomes runs of equal-duration
segments (`SegmentRun`), bounded by the period end and by `MAX_SEGMENTS` per
representation, so `r="1000000000"` costs nothing. All arithmetic on media times is exact
(integers and fractions of ticks).

Live (type="dynamic"): a SegmentTemplate with @duration and no timeline has no last
segment; it becomes a `LiveSegmentTemplate` (`player.dash.availability` says which of its
segments exist at a wall-clock time). A timeline is
finite and expands as for static presentations. The availabilityTimeOffset and
availabilityTimeComplete in effect are read here too: the addressing element's (the most
specific level's) plus the BaseURL's offset, which ISO/IEC 23009-1 5.6.4 adds to it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any
from xml.dom import minidom

from netem.errors import BoxError
from netem.isobmff import SidxUnsupported, Subsegment, find_sidx
from player.dash.errors import InvalidManifest, UnsupportedManifest
from player.dash.model import BaseUrl, Representation
from player.dash.segments import (ByteRange, InitSegment, LiveSegmentTemplate, PendingSidx,
                                  SegmentIndex, SegmentRun, parse_media_template)
from player.dash.urls import join_url_checked
from player.dash.values import parse_byte_range, parse_xs_bool
from player.dash.xmlsafe import attribute, child_elements

__all__ = ["MAX_SEGMENTS", "AddressingContext", "SegmentAddressing", "build_segment_index",
           "resolve_sidx"]

MAX_SEGMENTS = 1_000_000                # segments per representation


@dataclass(frozen=True)
class AddressingContext:
    """What a representation's addressing needs from its surroundings."""

    period_start: Fraction | None       # None: a live period whose start is not known yet
    period_dur: Fraction | None
    allowed: frozenset[str]
    where: str
    live: bool
    raw_levels: tuple[minidom.Element, ...] = ()    # the DOM of Period, AdaptationSet, Representation


@dataclass(frozen=True)
class SegmentAddressing:
    """Where a representation's segments are, and when (live) they become available."""

    index: SegmentIndex | None = None
    pending_sidx: PendingSidx | None = None
    live_template: LiveSegmentTemplate | None = None
    availability_time_offset_s: float | None = None     # effective: element + BaseURL
    availability_time_complete: bool | None = None


# ---------------------------------------------------------------------------------------
# templates and timelines


def _ceil_div(num: Fraction | int, den: Fraction | int) -> int:
    return math.ceil(Fraction(num) / Fraction(den))


def _check_cap(n: int, where: str) -> None:
    if n > MAX_SEGMENTS:
        raise UnsupportedManifest(
            f"more than {MAX_SEGMENTS} segments in one representation (limit)", where=where)


def _timeline_runs(ss: list[Any], end_media: Fraction | None, where: str,
                   live: bool = False) -> list[SegmentRun]:
    """Runs from SegmentTimeline S elements; repeats bounded by the period end and the cap.

    A last S with @r=-1 in an open period repeats to the period end: in a live MPD that
    is "until the live edge", which this player does not follow yet (unsupported); in a
    static one the MPD is wrong (invalid).

    Integer arithmetic only (the period end is a fraction of ticks, kept as num/den);
    contiguous S elements of equal duration merge into one run.
    """
    runs: list[SegmentRun] = []
    total = 0
    cur: int | None = None              # where the previous S ends, as declared (ticks)
    last_start: int | None = None       # start of the previous S's last segment (ticks)
    end_num, end_den = (end_media.numerator, end_media.denominator) if end_media is not None \
        else (0, 1)
    n_s = len(ss)
    for i, s in enumerate(ss):
        d = s.d
        if d is None or d <= 0:
            raise InvalidManifest(f"SegmentTimeline S[{i + 1}] needs @d > 0", where=where)
        if s.t is not None and s.t < 0:
            raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@t is negative", where=where)
        # A small overlap with the previous segment is tolerated (packagers round); an
        # S that starts before the previous segment would play time backwards.
        if s.t is not None and last_start is not None and s.t < last_start:
            raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@t={s.t} goes backwards: the "
                                  f"previous segment starts at {last_start}", where=where)
        t = s.t if s.t is not None else (cur if cur is not None else 0)
        r = s.r if s.r is not None else 0
        if r < -1:
            raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@r={r} (must be >= -1)", where=where)
        nxt = ss[i + 1].t if i + 1 < n_s else None
        if r == -1:
            if i + 1 < n_s and nxt is None:
                raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@r=-1 needs the next S to have @t",
                                      where=where)
            if nxt is not None:
                count = max(0, -((t - nxt) // d))
            elif end_media is not None:
                count = max(0, -((t * end_den - end_num) // (d * end_den)))
            elif live:
                raise UnsupportedManifest(f"SegmentTimeline S[{i + 1}]@r=-1 repeats up to the live "
                                          f"edge, which this player does not follow yet",
                                          where=where)
            else:
                raise InvalidManifest(f"SegmentTimeline S[{i + 1}]@r=-1 repeats to the period end, "
                                      f"but the period has no known end", where=where)
            # repeating "until the next S" ends there, even when d does not divide the gap
            cur = t + count * d if nxt is None else max(t, nxt)
        else:
            count = r + 1
            cur = t + count * d
        last_start = t + max(count - 1, 0) * d
        if end_media is not None:
            # segments starting before the period end: ceil((end - t) / d)
            count = min(count, max(0, -((t * end_den - end_num) // (d * end_den))))
        if count > MAX_SEGMENTS - total:
            _check_cap(total + count, where)
        if count:
            last = runs[-1] if runs else None
            if last is not None and last.d == d and last.t + last.count * d == t:
                runs[-1] = SegmentRun(last.first, last.count + count, last.t, d)
            else:
                runs.append(SegmentRun(total, count, t, d))
            total += count
    return runs


def _truncate_runs(runs: list[SegmentRun], n: int) -> list[SegmentRun]:
    out = []
    for r in runs:
        if r.first >= n:
            break
        out.append(r if r.first + r.count <= n else replace(r, count=n - r.first))
    return out


# ---------------------------------------------------------------------------------------
# the addressing element in effect


_ELEMENT_LISTS = (("template", "segment_templates"), ("list", "segment_lists"),
                  ("base", "segment_bases"))
_ELEMENT_NAMES = {"template": "SegmentTemplate", "list": "SegmentList", "base": "SegmentBase"}


def _first(nodes: list[Any] | None) -> Any:
    return nodes[0] if nodes else None


@dataclass(frozen=True)
class _Addressing:
    """The addressing element in effect for one representation, and the timing it sets."""

    kind: str | None                    # "template" | "list" | "base" | None (no element)
    chain: tuple[Any, ...]              # that element at each level, least specific first
    ctx: AddressingContext
    base_url: str
    timescale: int
    pto: int                            # presentationTimeOffset, ticks
    end_media: Fraction | None          # the period end in media time, ticks

    def pick(self, attr: str) -> Any:
        """Most specific non-None attribute along the inheritance chain."""
        for node in reversed(self.chain):
            v = getattr(node, attr, None)
            if v is not None:
                return v
        return None

    @property
    def element(self) -> str:
        """The element's name, for messages: SegmentTemplate, SegmentList or SegmentBase."""
        return _ELEMENT_NAMES.get(self.kind or "", "SegmentBase")

    def start_number(self) -> int:
        """@startNumber (default 1); a negative one would only name missing resources."""
        n = self.pick("start_number")
        if n is None:
            return 1
        if n < 0:
            raise InvalidManifest(f"{self.element}@startNumber={n} must be >= 0",
                                  where=self.ctx.where)
        return n

    def raw_attribute(self, name: str) -> str | None:
        """An attribute of the addressing element read from the DOM (mpegdash misreads
        booleans), most specific level first."""
        for level in reversed(self.ctx.raw_levels):
            els = child_elements(level, self.element) if self.kind else []
            if els and els[0].hasAttribute(name):
                return attribute(els[0], name)
        return None

    def availability(self, base: BaseUrl) -> tuple[float | None, bool | None]:
        """(availabilityTimeOffset, availabilityTimeComplete) in effect with `base`."""
        own = self.raw_attribute("availabilityTimeOffset")   # a float: checked by xmlsafe
        offsets = [float(v) for v in (own,) if v is not None]
        if base.availability_time_offset_s is not None:
            offsets.append(base.availability_time_offset_s)
        complete = parse_xs_bool(self.raw_attribute("availabilityTimeComplete"))
        if complete is None:
            complete = base.availability_time_complete
        return (sum(offsets) if offsets else None), complete

    def index_fields(self) -> dict[str, Any]:
        """The `SegmentIndex` fields every addressing mode shares."""
        start, dur = self.ctx.period_start, self.ctx.period_dur
        return dict(base_url=self.base_url, timescale=self.timescale,
                    offset_s=float(start - Fraction(self.pto, self.timescale)),
                    end_s=None if dur is None else float(start + dur),
                    allowed_schemes=self.ctx.allowed, where=self.ctx.where)

    def init_from_element(self) -> dict[str, Any]:
        """The `SegmentIndex` init fields from an Initialization element ({} when none)."""
        init = _first(self.pick("initializations"))
        if init is None:
            return {}
        return {"has_init": True, "init_url": init.source_url or "",
                "init_range": parse_byte_range(init.range, "Initialization@range", self.ctx.where)}


def _addressing(levels: list[Any], base_url: str, ctx: AddressingContext) -> _Addressing:
    kind = None
    for node in reversed(levels):
        kind = next((k for k, name in _ELEMENT_LISTS if getattr(node, name)), None)
        if kind:
            break
    chain: tuple[Any, ...] = ()
    if kind:
        name = dict(_ELEMENT_LISTS)[kind]
        chain = tuple(n for n in (_first(getattr(lv, name)) for lv in levels) if n is not None)
    probe = _Addressing(kind, chain, ctx, base_url, 1, 0, None)
    ts = probe.pick("timescale")
    if ts is None:
        ts = 1
    elif ts <= 0:
        raise InvalidManifest(f"{probe.element}@timescale={ts} must be > 0", where=ctx.where)
    # A negative PTO is outside the schema, but its meaning is clear; dash.js plays such content.
    pto = probe.pick("presentation_time_offset") or 0
    end_media = None if ctx.period_dur is None else pto + ctx.period_dur * ts
    return replace(probe, timescale=ts, pto=pto, end_media=end_media)


def build_segment_index(levels: list[Any], base: BaseUrl, rep_id: str, bandwidth: int,
                        ctx: AddressingContext) -> SegmentAddressing:
    """levels: mpegdash Period, AdaptationSet, Representation (least specific first);
    `base`: the representation's first BaseURL alternative."""
    if ctx.period_start is None:
        raise UnsupportedManifest("the period's start is not known yet (a live Period without "
                                  "@start after one without @duration)", where=ctx.where)
    a = _addressing(levels, base.url, ctx)
    ato, atc = a.availability(base)
    found = SegmentAddressing(availability_time_offset_s=ato, availability_time_complete=atc)
    if a.kind == "template":
        index = _from_template(a, rep_id, bandwidth, ato or 0.0)
        if isinstance(index, LiveSegmentTemplate):
            return replace(found, live_template=index)
        return replace(found, index=index)
    if a.kind == "list":
        return replace(found, index=_from_list(a))
    if a.kind == "base":
        index, pending = _from_base(a)
        return replace(found, index=index, pending_sidx=pending)
    return replace(found, index=_single(a, rel="", init_kw={}))


# ---------------------------------------------------------------------------------------
# one function per addressing mode


def _template_init(a: _Addressing, rep_id: str, bandwidth: int) -> dict[str, Any]:
    init_t = a.pick("initialization")
    if not init_t:
        return a.init_from_element()
    it = parse_media_template(init_t, "SegmentTemplate@initialization", a.ctx.where, rep_id,
                              bandwidth)
    if not it.is_literal:
        raise InvalidManifest("SegmentTemplate@initialization may not use $Number$/$Time$",
                              where=a.ctx.where)
    return {"has_init": True, "init_url": it.format(0, 0)}


def _from_template(a: _Addressing, rep_id: str, bandwidth: int,
                   availability_time_offset_s: float) -> SegmentIndex | LiveSegmentTemplate:
    where, ctx = a.ctx.where, a.ctx
    media = a.pick("media")
    if not media:
        raise InvalidManifest("SegmentTemplate has no @media", where=where)
    tpl = parse_media_template(media, "SegmentTemplate@media", where, rep_id, bandwidth)
    init_kw = _template_init(a, rep_id, bandwidth)
    start_number = a.start_number()
    timeline = _first(a.pick("segment_timelines"))
    if timeline is not None:
        runs = _timeline_runs(timeline.Ss or [], a.end_media, where, ctx.live)
        return SegmentIndex(addressing="timeline", runs=tuple(runs), start_number=start_number,
                            template=tpl, **a.index_fields(), **init_kw)
    d = a.pick("duration")
    if d is None:
        if not tpl.is_literal:
            raise InvalidManifest("SegmentTemplate has neither @duration nor a SegmentTimeline",
                                  where=where)
        return _single(a, rel=tpl.format(0, 0), init_kw=init_kw)
    if d <= 0:
        raise InvalidManifest("SegmentTemplate@duration must be > 0", where=where)
    end_number = a.pick("end_number")
    if ctx.live:
        # The list grows with the wall clock: never expanded (see player.dash.availability).
        assert ctx.period_start is not None
        end = None if ctx.period_dur is None else ctx.period_start + ctx.period_dur
        return LiveSegmentTemplate(
            base_url=a.base_url, template=tpl, timescale=a.timescale, duration=d,
            start_number=start_number, period_start_s=float(ctx.period_start),
            period_end_s=None if end is None else float(end), end_number=end_number,
            presentation_time_offset=a.pto, availability_time_offset_s=availability_time_offset_s,
            allowed_schemes=ctx.allowed, where=where, **init_kw)
    if ctx.period_dur is not None:
        n = _ceil_div(ctx.period_dur * a.timescale, d)
        if end_number is not None:
            n = min(n, max(0, end_number - start_number + 1))
    elif end_number is not None:
        n = max(0, end_number - start_number + 1)
    else:
        raise InvalidManifest("cannot count SegmentTemplate@duration segments: the period "
                              "has no duration (no Period@duration, next Period@start or "
                              "MPD@mediaPresentationDuration)", where=where)
    _check_cap(n, where)
    runs = [SegmentRun(0, n, a.pto, d)] if n else []
    return SegmentIndex(addressing="template", runs=tuple(runs), start_number=start_number,
                        template=tpl, **a.index_fields(), **init_kw)


def _from_list(a: _Addressing) -> SegmentIndex:
    where, ctx = a.ctx.where, a.ctx
    seg_urls = a.pick("segment_urls") or []
    _check_cap(len(seg_urls), where)
    urls = tuple(u.media for u in seg_urls)
    ranges = tuple(parse_byte_range(u.media_range, "SegmentURL@mediaRange", where)
                   for u in seg_urls)
    start_number = a.start_number()
    timeline = _first(a.pick("segment_timelines"))
    d = a.pick("duration")
    if timeline is not None:
        runs = _truncate_runs(_timeline_runs(timeline.Ss or [], a.end_media, where, ctx.live),
                              len(urls))
    elif d is not None:
        if d <= 0:
            raise InvalidManifest("SegmentList@duration must be > 0", where=where)
        n = len(urls)
        if a.end_media is not None:
            n = min(n, max(0, _ceil_div(a.end_media - a.pto, d)))
        runs = [SegmentRun(0, n, a.pto, d)] if n else []
    elif len(urls) == 1:
        if ctx.period_dur is None:
            raise InvalidManifest("a SegmentList of one SegmentURL without @duration needs "
                                  "the period duration", where=where)
        dur = ctx.period_dur
        return SegmentIndex(addressing="list", runs=(SegmentRun(0, 1, 0, dur.numerator),),
                            start_number=start_number, urls=urls, ranges=ranges,
                            **{**a.index_fields(), "timescale": dur.denominator,
                               "offset_s": float(ctx.period_start)}, **a.init_from_element())
    elif not urls:
        runs = []
    else:
        raise InvalidManifest("SegmentList has several SegmentURLs but neither @duration nor "
                              "a SegmentTimeline", where=where)
    n = sum(r.count for r in runs)
    return SegmentIndex(addressing="list", runs=tuple(runs), start_number=start_number,
                        urls=urls[:n], ranges=ranges[:n], **a.index_fields(),
                        **a.init_from_element())


def _from_base(a: _Addressing) -> tuple[SegmentIndex | None, PendingSidx | None]:
    where, ctx, base = a.ctx.where, a.ctx, a.base_url
    init_kw = a.init_from_element()
    index_range = parse_byte_range(a.pick("index_range"), "SegmentBase@indexRange", where)
    rep_index = _first(a.pick("representation_indexes"))
    if index_range is None and rep_index is None:
        return _single(a, rel="", init_kw=init_kw), None
    index_url = base
    if rep_index is not None:
        if rep_index.source_url:
            index_url = join_url_checked(base, rep_index.source_url, ctx.allowed, where)
        if index_range is None:
            index_range = parse_byte_range(rep_index.range, "RepresentationIndex@range", where)
    init = None
    if init_kw:
        init = InitSegment(join_url_checked(base, init_kw["init_url"], ctx.allowed, where),
                           init_kw["init_range"])
    end = None if ctx.period_dur is None else ctx.period_start + ctx.period_dur
    return None, PendingSidx(url=index_url, index_range=index_range, media_url=base, init=init,
                             timescale=a.timescale, presentation_time_offset=a.pto,
                             period_start_s=float(ctx.period_start),
                             period_end_s=None if end is None else float(end),
                             allowed_schemes=ctx.allowed, where=where)


def _single(a: _Addressing, rel: str, init_kw: dict[str, Any]) -> SegmentIndex:
    """The whole resource as one segment spanning the period."""
    ctx = a.ctx
    if ctx.period_dur is None:
        if ctx.live:
            raise UnsupportedManifest("live segment list depends on the wall clock", where=ctx.where)
        raise InvalidManifest("a single-segment representation needs the period duration",
                              where=ctx.where)
    dur = ctx.period_dur
    return SegmentIndex(addressing="single", runs=(SegmentRun(0, 1, 0, dur.numerator),),
                        urls=(rel or None,),
                        **{**a.index_fields(), "timescale": dur.denominator,
                           "offset_s": float(ctx.period_start)}, **init_kw)


# ---------------------------------------------------------------------------------------
# SegmentBase: the index from the sidx box


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
        box = find_sidx(sidx_bytes, offset=offset)
        subs = box.subsegments()
    except SidxUnsupported as exc:
        raise UnsupportedManifest(f"sidx: {exc}", where=where) from None
    except BoxError as exc:
        raise InvalidManifest(f"sidx: {exc}", where=where) from None
    if pending.url != pending.media_url:
        # A separate index resource: offsets count from the start of the media resource.
        shift = -box.anchor
        subs = [Subsegment(s.first_byte + shift, s.last_byte + shift, s.start, s.duration)
                for s in subs]
    _check_cap(len(subs), where)
    ts = box.timescale
    pto_s = Fraction(pending.presentation_time_offset, pending.timescale or 1)
    period_start = Fraction(pending.period_start_s)
    runs: list[SegmentRun] = []
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
            runs.append(SegmentRun(len(ranges), 1, s.start, s.duration))
        ranges.append((s.first_byte, s.last_byte))
    init = pending.init
    return SegmentIndex(
        addressing="sidx", base_url=pending.media_url, timescale=ts,
        offset_s=float(period_start - pto_s), runs=tuple(runs), end_s=pending.period_end_s,
        ranges=tuple(ranges), has_init=init is not None,
        init_url=init.url if init else None, init_range=init.byte_range if init else None,
        allowed_schemes=pending.allowed_schemes, where=where)
