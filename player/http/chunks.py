"""The CMAF chunks of a low-latency segment as its body arrives (dash.js FetchLoader's moof parsing).

A low-latency segment is sent with chunked transfer encoding while it is produced: a
``moof`` + ``mdat`` pair (a CMAF chunk) leaves the origin as soon as it is complete. The
player reads the body as it comes (`player.http.fetcher`'s `on_data`) and `ChunkTimer` finds
the top-level boxes in it: a chunk starts with its ``moof`` (or a ``styp``/``prft``/``emsg``
before it) and ends with the end of the ``mdat`` after it. For each it reports the bytes,
when its first byte and its last byte had arrived (the read that brought them) and its media
duration (the ``trun`` sample durations over the track's timescale, from the init
segment's ``mdhd`` and ``trex`` defaults; None while the init segment is not at hand).

A body that is not ISO-BMFF, or a box with size 0 (to the end), stops the parse: the
segment is then reported whole at its end. Boxes are parsed with `netem.isobmff`; a ``moof``
over `MAX_MOOF_BYTES` is not parsed (its chunk has no media duration).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from netem import isobmff
from netem.errors import BoxError
from netem.live.segments import InitInfo, parse_init

MAX_MOOF_BYTES = 1 << 20
_BEFORE_MOOF = ("styp", "prft", "emsg", "sidx", "free", "skip")


@dataclass(frozen=True)
class ChunkArrival:
    """One CMAF chunk: its bytes (with any boxes before its moof), when its first and last
    bytes had arrived (player clock), its media duration (s; None: unknown)."""

    index: int
    bytes: int
    first_byte_s: float
    last_byte_s: float
    media_s: float | None


def track_info(init: bytes | None) -> InitInfo | None:
    """The timescale and defaults of an init segment (None: none, or not parseable)."""
    if not init:
        return None
    try:
        return parse_init(init)
    except (BoxError, ValueError):
        return None


def media_duration_s(moof: bytes, info: InitInfo | None) -> float | None:
    """The media a moof describes: its samples' durations over the track's timescale."""
    if info is None:
        return None
    try:
        boxes = isobmff.parse(moof)
        traf = isobmff.find(boxes, "moof/traf")
        tfhd_box = traf.find("tfhd") if traf is not None else None
        if tfhd_box is None:
            return None
        tfhd = isobmff.parse_tfhd(tfhd_box)
        merged = {**info.defaults, **{k: v for k, v in tfhd.items() if k.startswith("default_")}}
        ticks = sum(sum(isobmff.parse_trun(t, merged)["durations"]) for t in traf.find_all("trun"))
    except (BoxError, ValueError, KeyError, TypeError):
        return None
    return ticks / info.timescale if ticks > 0 else None


class ChunkTimer:
    """Finds CMAF chunks in a body as it grows (see the module docstring); `on_chunk` gets
    each as it completes. `info()` gives the track's `InitInfo` when it is known."""

    def __init__(self, on_chunk: Callable[[ChunkArrival], None], info: Callable[[], InitInfo | None]) -> None:
        self.on_chunk = on_chunk
        self.info = info
        self.reset()

    def reset(self) -> None:
        self.pos = 0
        self.start: int | None = None        # offset of the current chunk's first box
        self.first_s = 0.0
        self.media: float | None = None
        self.seen = 0
        self.count = 0
        self.stopped = False

    def feed(self, data: bytearray, now: float) -> None:
        """The body so far, after a read that ended at `now` (player clock)."""
        if len(data) < self.seen:              # a new attempt started over
            self.reset()
        self.seen = len(data)
        while not self.stopped and self.pos + 8 <= len(data):
            size = int.from_bytes(data[self.pos:self.pos + 4], "big")
            kind = bytes(data[self.pos + 4:self.pos + 8]).decode("latin-1")
            if size == 1:
                if self.pos + 16 > len(data):
                    return
                size = int.from_bytes(data[self.pos + 8:self.pos + 16], "big")
            if size < 8:                       # 0 (to the end) or nonsense: report the rest whole
                self.stopped = True
                return
            end = self.pos + size
            if kind in _BEFORE_MOOF or kind == "moof":
                if self.start is None:
                    self.start, self.first_s = self.pos, now
                if kind == "moof":
                    if end > len(data):
                        return
                    self.media = media_duration_s(bytes(data[self.pos:end]), self.info()) \
                        if size <= MAX_MOOF_BYTES else None
            elif kind == "mdat":
                if self.start is None:
                    self.start, self.first_s = self.pos, now
                if end > len(data):
                    return
                self.on_chunk(ChunkArrival(self.count, end - self.start, self.first_s, now, self.media))
                self.count += 1
                self.start, self.media = None, None
            self.pos = end
