"""A VoD presentation played live: its tracks on the looped timeline, paths, segments.

`LivePresentation(packaged, config)` takes any `netem.package.Packaged` (a content
description's `Presentation`, an `EncodedPresentation`, or a directory loaded by
`netem.live.vod.load_directory`) and answers, for the live presentation:

* which track and segment a path names (``manifest.mpd``, ``REP/init.mp4``,
  ``REP/NUMBER.m4s`` with $Number$ addressing, ``REP/tTIME.m4s`` with $Time$);
* segment j's bytes (`netem.live.segments`) and, for low latency, when each chunk
  may leave (the clock time of its last sample's end);
* the `Schedule` (availability, windows, periods) of `netem.live.timeline`.

Content checks happen here, once: $Number$ addressing needs equal segment durations (a
shorter last segment, as a description whose duration is not a whole number of segments
ends with, is left out of the loop), a chunk must be shorter than a segment, a Period
must hold whole segments, the time-shift buffer at least one segment.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np

from netem.errors import InputError, UsageError
from netem.live.config import MAX_WINDOW_SEGMENTS, LiveConfig
from netem.live.segments import InitInfo, LiveSegment, VodSegment, build, parse_init, parse_segment
from netem.live.timeline import RefTimeline, Schedule, TrackTiming
from netem.package import Packaged, Track

MANIFEST = "manifest.mpd"
_PATH = re.compile(r"^(?P<rep>[A-Za-z0-9_.\-]{1,64})/(?:(?P<init>init\.mp4)|(?P<num>\d{1,19})\.m4s|"
                   r"t(?P<time>\d{1,20})\.m4s)$")
VOD_CACHE = 512
#: Periods one MPD may list (time-shift buffer / Period duration).
MAX_PERIODS = 200
LIVE_CACHE = 64


@dataclass
class LiveTrack:
    """One Representation of the live presentation."""

    index: int
    track: Track
    init: InitInfo
    timing: TrackTiming

    @property
    def rep_id(self) -> str:
        return self.track.rep_id

    @property
    def timescale(self) -> int:
        return self.timing.timescale


@dataclass(frozen=True)
class Target:
    """What a path names: ``what`` is "mpd", "init" or "media" (segment `j` of `track`)."""

    what: str
    track: LiveTrack | None = None
    j: int = -1


#: seconds after AST where `chunk_sizes_bytes` takes its loop (2033: decode times in 64 bits)
FAR_FROM_AST_S = 2.0e9


class LivePresentation:
    """See the module docstring. `config` is checked here against the content."""

    def __init__(self, packaged: Packaged, config: LiveConfig) -> None:
        self.config = config.check()
        self.packaged = packaged
        tracks = list(packaged.tracks)
        if not tracks:
            raise InputError("the presentation has no tracks", where="live")
        video = [t for t in tracks if t.kind == "video"]
        ref = (video or tracks)[0]
        n = min(t.n_segments for t in tracks)
        if config.addressing == "number":
            n = _uniform_count(ref, n)
        self.n_vod = n
        self.ref = RefTimeline(ref.timescale, ref.starts[:n], ref.durations[:n])
        for t in tracks:
            if not _PATH.match(f"{t.rep_id}/init.mp4") or not t.rep_id.strip("."):
                raise UsageError(f"representation id {t.rep_id!r} cannot name a live path "
                                 "(letters, digits, '_', '-', '.' only)", where="live")
        self._inits = [parse_init(t.init(), where=f"{t.rep_id}/init.mp4") for t in tracks]
        self._vod = functools.lru_cache(maxsize=VOD_CACHE)(self._parse_vod)
        self.tracks: list[LiveTrack] = []
        for i, (t, info) in enumerate(zip(tracks, self._inits)):
            same = info.timescale == ref.timescale and t.starts[:n].tolist() == ref.starts[:n].tolist() \
                and t.durations[:n].tolist() == ref.durations[:n].tolist()
            grid = 1 if same else _sample_grid(self._vod(i, 0))
            self.tracks.append(LiveTrack(i, t, info, TrackTiming(self.ref, info.timescale, grid)))
        self._by_id = {lt.rep_id: lt for lt in self.tracks}
        self.nominal_s = self.ref.nominal_ticks / self.ref.timescale
        self.max_segment_s = max(self.ref.durations) / self.ref.timescale
        self.ato_s = 0.0
        if config.low_latency:
            if config.chunk_s >= self.nominal_s:
                raise UsageError(f"--chunk-duration {config.chunk_s:g} s must be shorter than the segments "
                                 f"({self.nominal_s:g} s)")
            self.ato_s = self.nominal_s - config.chunk_s
        self._check_periods()
        if config.time_shift_depth_s < self.max_segment_s:
            raise UsageError(f"--time-shift-depth {config.time_shift_depth_s:g} s is shorter than a segment "
                             f"({self.max_segment_s:g} s)")
        shortest_s = min(self.ref.durations) / self.ref.timescale
        if config.time_shift_depth_s / shortest_s > MAX_WINDOW_SEGMENTS:
            raise UsageError(f"--time-shift-depth {config.time_shift_depth_s:g} s holds more than "
                             f"{MAX_WINDOW_SEGMENTS} segments of {shortest_s:g} s")
        self.schedule = Schedule(self.ref, config.availability_start_s, config.time_shift_depth_s, self.ato_s,
                                 config.period_s)
        self.segment = functools.lru_cache(maxsize=LIVE_CACHE)(self._segment)

    # -- checks ------------------------------------------------------------------------------
    def _check_periods(self) -> None:
        p = self.config.period_s
        if p is None:
            return
        ticks = p * self.ref.timescale
        if p < self.max_segment_s:
            raise UsageError(f"--period-duration {p:g} s is shorter than a segment ({self.max_segment_s:g} s)")
        if self.config.time_shift_depth_s / p > MAX_PERIODS:
            raise UsageError(f"--period-duration {p:g} s puts more than {MAX_PERIODS} Periods in the "
                             f"{self.config.time_shift_depth_s:g} s time-shift buffer")
        if self.config.addressing == "number" and (abs(ticks - round(ticks)) > 1e-6
                                                   or round(ticks) % self.ref.nominal_ticks):
            raise UsageError(f"--period-duration {p:g} s must be a whole number of segments "
                             f"({self.nominal_s:g} s each) with $Number$ addressing")

    # -- paths -------------------------------------------------------------------------------
    def resolve(self, path: str) -> Target:
        """What `path` (without the leading slash) names; KeyError when nothing."""
        if path == MANIFEST:
            return Target("mpd")
        m = _PATH.match(path)
        lt = self._by_id.get(m["rep"]) if m else None
        if lt is None:
            raise KeyError(path)
        if m["init"]:
            return Target("init", lt)
        if self.config.addressing == "number" and m["num"] is not None:
            j = int(m["num"]) - 1
            if j < 0:
                raise KeyError(path)
            return Target("media", lt, j)
        if self.config.addressing == "timeline" and m["time"] is not None:
            j = lt.timing.index_of_start(int(m["time"]))
            if j is None:
                raise KeyError(path)
            return Target("media", lt, j)
        raise KeyError(path)

    def media_path(self, lt: LiveTrack, j: int) -> str:
        """The URL path (no leading slash) of segment j of a track, as the MPD implies it."""
        if self.config.addressing == "timeline":
            return f"{lt.rep_id}/t{lt.timing.start(j)}.m4s"
        return f"{lt.rep_id}/{j + 1}.m4s"

    def track(self, rep_id: str) -> LiveTrack:
        return self._by_id[rep_id]

    # -- segments ------------------------------------------------------------------------------
    def _parse_vod(self, index: int, k: int) -> VodSegment:
        t, info = self.packaged.tracks[index], self._inits[index]
        return parse_segment(lambda a, b: t.segment_bytes(k, a, b), int(t.sizes[k]), iv_size=info.iv_size,
                             defaults=info.defaults, where=f"{t.rep_id} segment {k}")

    def _segment(self, index: int, j: int) -> LiveSegment:
        lt = self.tracks[index]
        _, k = self.ref.vod_index(j)
        vod = self._vod(index, k)
        start, end = lt.timing.start(j), lt.timing.end(j)
        chunk = None
        if self.config.low_latency:
            chunk = max(1, round(self.config.chunk_s * lt.timescale))
        t = lt.track
        return build(vod, lambda a, b: t.segment_bytes(k, a, b), sequence=j + 1, start=start, duration=end - start,
                     chunk_ticks=chunk)

    def chunk_release_s(self, lt: LiveTrack, seg: LiveSegment) -> list[float]:
        """Origin-clock time at which each chunk of `seg` is complete (its last sample's end)."""
        ast = self.schedule.ast_s
        return [ast + ticks / lt.timescale for ticks in seg.chunk_end_ticks]

    def chunk_sizes_bytes(self, kind: str = "video") -> np.ndarray:
        """(segments of the loop, tracks of `kind` in order, chunks) the bytes of each chunk of
        each segment as this origin sends it (its moof and mdat; the styp with the first): what
        a simulator needs to time chunked downloads of this content exactly. Segments after
        the loop's first repeat each other's sizes, so one loop, taken far from AST (the
        decode times there take the 64-bit form, as on today's wall clock), is enough."""
        tracks = [lt for lt in self.tracks if lt.track.kind == kind]
        if not tracks:
            raise InputError(f"the presentation has no {kind} track", where="live")
        n = self.n_vod
        base = n * math.ceil(FAR_FROM_AST_S / self.nominal_s / n)   # a loop's first segment
        rows = []
        for i in range(n):
            j = base + i
            per_track = []
            for lt in tracks:
                seg = self._segment(lt.index, j)
                ends = np.asarray(seg.chunk_ends, dtype=np.int64)
                per_track.append(np.diff(np.concatenate([[0], ends])))
            rows.append(per_track)
        widths = {len(c) for r in rows for c in r}
        if len(widths) != 1:
            raise InputError(f"segments have different chunk counts ({sorted(widths)})", where="live")
        return np.asarray(rows, dtype=np.int64)

    @property
    def max_segment_duration_s(self) -> float:
        """The longest segment of any track (a following track may run up to one sample longer)."""
        slack = max([lt.timing.grid / lt.timescale for lt in self.tracks if not lt.timing.identity], default=0.0)
        return math.ceil((self.max_segment_s + slack) * 1000) / 1000


def _sample_grid(vod: VodSegment) -> int:
    """A track's constant sample duration (AAC: 1024 ticks), else 1 tick."""
    durs = {s.duration for s in vod.samples}
    return durs.pop() if len(durs) == 1 else 1


def _uniform_count(ref: Track, n: int) -> int:
    """How many VoD segments loop with $Number$ addressing: all, or all but a shorter last one."""
    durs = [int(d) for d in ref.durations[:n]]
    body = durs[:-1] if n > 1 and durs[-1] < durs[0] else durs
    odd = [i for i, d in enumerate(body) if d != body[0]]
    if odd:
        i = odd[0]
        raise UsageError(f"$Number$ addressing needs segments of equal duration, but segment {i} lasts "
                         f"{durs[i] / ref.timescale:g} s and segment 0 {durs[0] / ref.timescale:g} s; "
                         "use --addressing timeline", where="--addressing")
    return len(body)
