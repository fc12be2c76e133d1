"""Where a representation's segments are: the segment index, computed on demand.

A `SegmentIndex` stores runs of equal-duration segments (`SegmentRun`, as a
SegmentTimeline writes them) and computes each `Segment` when asked, so a manifest that
repeats a segment a billion times costs nothing until the player walks that far. A
`PendingSidx` is a SegmentBase representation whose index is in a `sidx` box still to be
fetched (`player.dash.addressing.resolve_sidx` turns its bytes into a `SegmentIndex`). A
`LiveSegmentTemplate` is the unbounded list of a live SegmentTemplate with @duration:
segment k is computed from its number, and which numbers exist depends on the wall clock
(`player.dash.availability.available_segment_numbers`).

Units: seconds (float), bytes (int); media times are ticks of `timescale`.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

from player.dash.errors import InvalidManifest, UnsupportedManifest
from player.dash.urls import LOCAL_SCHEMES, check_url_scheme, join_url_checked

__all__ = ["MAX_TEMPLATE_WIDTH", "ByteRange", "InitSegment", "Segment", "SegmentRun",
           "MediaTemplate", "parse_media_template", "SegmentIndex", "PendingSidx",
           "LiveSegmentTemplate"]

MAX_TEMPLATE_WIDTH = 32                 # $Number%0<width>d$

ByteRange = tuple[int, int]   # (first byte, last byte), inclusive, as in an HTTP Range header


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
class SegmentRun:
    """`count` consecutive segments of equal duration (one SegmentTimeline S with its @r)."""

    first: int      # index of the run's first segment
    count: int
    t: int          # media time of the first segment, timescale ticks (S@t)
    d: int          # duration of each segment, ticks (S@d)


@dataclass(frozen=True)
class MediaTemplate:
    """A parsed SegmentTemplate@media: literal parts and ($Number$/$Time$, width) slots."""

    parts: tuple[tuple[str, int | str], ...]   # ("lit", text) or ("Number"|"Time", width)

    @property
    def is_literal(self) -> bool:
        """True when no $Number$/$Time$ slot remains (the same URL for every segment)."""
        return all(kind == "lit" for kind, _ in self.parts)

    def format(self, number: int, time: int) -> str:
        out = []
        for kind, arg in self.parts:
            if kind == "lit":
                out.append(arg)  # type: ignore[arg-type]
            else:
                v = number if kind == "Number" else time
                out.append(f"{v:0{arg}d}" if arg else str(v))
        return "".join(out)


def parse_media_template(text: str, what: str, where: str, rep_id: str,
                         bandwidth: int) -> MediaTemplate:
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
    return MediaTemplate(tuple(parts))



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
    runs: tuple[SegmentRun, ...]
    start_number: int = 1
    end_s: float | None = None          # period end: segments are clipped to it
    template: MediaTemplate | None = None   # media URLs from a template, else `urls`
    urls: tuple[str | None, ...] | None = None      # relative media URLs (None: the BaseURL)
    ranges: tuple[ByteRange | None, ...] | None = None
    init_url: str | None = None         # relative initialization URL ("" = the BaseURL)
    init_range: ByteRange | None = None
    has_init: bool = False
    allowed_schemes: frozenset[str] = LOCAL_SCHEMES
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
        url = join_url_checked(self.base_url, rel or "", self.allowed_schemes, self.where)
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
        return _resolved_init(self)

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
        check_url_scheme(base_url, self.allowed_schemes, self.where)
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
    allowed_schemes: frozenset[str] = LOCAL_SCHEMES
    where: str = ""

    def with_base_url(self, base_url: str) -> PendingSidx:
        """The same pending index against another BaseURL alternative (failover)."""
        check_url_scheme(base_url, self.allowed_schemes, self.where)

        def swap(u: str) -> str:
            return base_url if u == self.media_url else u

        init = replace(self.init, url=swap(self.init.url)) if self.init else None
        return replace(self, url=swap(self.url), media_url=base_url, init=init)


@dataclass(frozen=True)
class LiveSegmentTemplate:
    """A live SegmentTemplate with @duration and no SegmentTimeline: an unbounded list.

    Segment number `start_number + i` starts `i * duration` ticks after the period start
    (media time `presentation_time_offset + i * duration`, for $Time$). The list has no
    end unless the period or @endNumber gives one; which segments exist at a given
    wall-clock time is `player.dash.availability.available_segment_numbers`.
    """

    base_url: str
    template: MediaTemplate
    timescale: int
    duration: int                       # ticks, every segment
    start_number: int
    period_start_s: float               # on the presentation timeline (0 = availabilityStartTime)
    period_end_s: float | None = None
    end_number: int | None = None
    presentation_time_offset: int = 0
    init_url: str | None = None         # relative initialization URL ("" = the BaseURL)
    init_range: ByteRange | None = None
    has_init: bool = False
    availability_time_offset_s: float = 0.0     # effective (segment element + BaseURL); may be inf
    allowed_schemes: frozenset[str] = LOCAL_SCHEMES
    where: str = ""

    @property
    def duration_s(self) -> float:
        return self.duration / self.timescale

    @property
    def init(self) -> InitSegment | None:
        return _resolved_init(self)

    def segment(self, number: int) -> Segment:
        """The segment of this $Number$ (clipped to the period end, like a SegmentIndex's)."""
        i = number - self.start_number
        if i < 0 or (self.end_number is not None and number > self.end_number):
            raise IndexError(f"segment number {number} is outside this template "
                             f"({self.start_number}..{self.end_number or ''})")
        start = self.period_start_s + float(Fraction(i * self.duration, self.timescale))
        dur = self.duration_s
        if self.period_end_s is not None and start + dur > self.period_end_s:
            dur = max(0.0, self.period_end_s - start)
        rel = self.template.format(number, self.presentation_time_offset + i * self.duration)
        url = join_url_checked(self.base_url, rel, self.allowed_schemes, self.where)
        return Segment(url=url, byte_range=None, start_s=start, duration_s=dur, number=number)

    def with_base_url(self, base_url: str) -> LiveSegmentTemplate:
        """The same template resolved against another BaseURL (failover)."""
        check_url_scheme(base_url, self.allowed_schemes, self.where)
        return replace(self, base_url=base_url)


def _resolved_init(addressed: SegmentIndex | LiveSegmentTemplate) -> InitSegment | None:
    """The initialization segment of an index or template, its URL resolved and checked."""
    if not addressed.has_init:
        return None
    url = join_url_checked(addressed.base_url, addressed.init_url or "", addressed.allowed_schemes,
                           addressed.where)
    return InitSegment(url=url, byte_range=addressed.init_range)
