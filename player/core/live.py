"""The rules of a live (and low-latency) session, written once for both clocks.

The batch simulator (`player.core.livesim`, n rows) and the sans-IO session core
(`player.core.session`, one row, fed by `drive_with_link` or the HTTP player) both keep a
`LiveRows` beside their `SessionRows` and ask it every live question, so a live session is
the same model on both clocks.

The model, stated once (times in seconds; presentation time = seconds since the
availability start time, AST):

* **The timeline.** The content's segments (all of duration D) loop from AST: segment j
  spans [jD, (j+1)D) of presentation time. It is produced in real time: media of
  presentation time p exists once the origin clock reads AST + p.
* **Availability.** Segment j may be requested from (j+1)D − ATO (availabilityTimeOffset:
  0 for whole segments; D − chunk for low latency, when its first CMAF chunk is complete)
  until (j+1)D + timeShiftBufferDepth. Before, the origin answers 425 (a request waits for
  availability); after, 410 (the session seeks to the live edge).
* **Chunks.** A low-latency segment is C = ⌈D / chunk⌉ CMAF chunks; chunk c is produced at
  jD + min((c+1)·chunk, D) and its bytes (the segment's, in proportion to the chunk's media
  in the simulator) cannot leave before; after the request's latency they cross the link
  at its rate (`chunk_arrivals`): delivery at min(link, producer). Each chunk's media joins
  the buffer as it arrives (dash.js appends chunks to MSE as they come). Whole segments are
  one chunk.
* **The live delay** (the latency target), dash.js's order of precedence
  (`PlaybackController.computeAndSetLiveDelay`, `live_delay`): the player's own setting
  (`delay_s`, dash.js `delay.liveDelay`), then its setting in segments
  (`delay_segments`, `liveDelayFragmentCount`), then the ServiceDescription's
  Latency@target, then `suggestedPresentationDelay`, else 4 segment durations
  (FRAGMENT_DURATION_FACTOR), else 4 × minBufferTime; at most the time-shift buffer.
* **The join.** At session start (clock 0) the live edge is at presentation time E₀ (the
  origin clock − AST, after clock synchronisation in the HTTP player; chosen by the preset
  in the simulator). Playback starts at P₀ = E₀ − delay: the first request is for the
  segment holding P₀, and the media before P₀ in it is not played (dash.js seeks to P₀).
* **Latency** = wall clock − presentation time of the playhead = E₀ + t − (P₀ + played +
  skipped), with `played` the media played (at the playback rate) and `skipped` the media
  jumped over by seeks. It grows during stalls and before playback starts.
* **Catch-up.** Every `law.interval_s` of session time (the grid is the session clock's
  multiples of it) a playing row's catch-up law (`player.core.catchup`) sets its playback
  rate; the buffer drains at that rate. A law may ask to seek (dash.js maxDrift): the seek
  is applied before the next request: the playhead jumps to E − target, over buffered
  media first, and beyond it the next request is for the segment holding the new position.
* **The buffer target** is min(the preset's cap, the live delay) (dash.js
  `getStableBufferTime` for live).
* **The end.** A live session ends by duration: at `duration_s` of session time whatever is
  in flight is dropped and nothing is played out.

Units: seconds, bits per second, bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netem.errors import InputError
from netem.live.config import (DEFAULT_TARGET_LATENCY_S, DEFAULT_TSBD_S, MAX_LATENCY_FACTOR, MIN_LATENCY_FACTOR,
                               PLAYBACK_RATE_MAX, PLAYBACK_RATE_MIN)
from player.core import catchup
from player.core.buffer import BufferState
from player.core.catchup import CatchupInput, CatchupLaw, ServiceBounds

#: dash.js PlaybackController: FRAGMENT_DURATION_FACTOR and MIN_BUFFER_TIME_FACTOR
DELAY_SEGMENTS = 4.0
DELAY_MIN_BUFFER_FACTOR = 4.0
#: at most this many chunks of one download are kept for the observation (the rest are merged)
MAX_CHUNKS = 256
#: a live session without a duration (the HTTP player until `q`) ends after this long
DEFAULT_OPEN_DURATION_S = 24 * 3600.0
_EPS = 1e-9
CHUNK_COUNT_SLACK = 1e-3
#: bytes of a chunk a reader gets in its first read (`LiveSettings.first_read_bytes`'s default):
#: one packet (Mahimahi's, and a TCP segment's)
FIRST_READ_BYTES = 1500


@dataclass(frozen=True)
class LiveFacts:
    """What the manifest says about a live stream (the simulator's: `LiveSettings.facts`)."""

    segment_duration_s: float
    availability_time_offset_s: float = 0.0
    chunk_s: float | None = None                 # low latency: the CMAF chunk duration
    service: ServiceBounds = field(default_factory=ServiceBounds)
    suggested_delay_s: float | None = None
    min_buffer_time_s: float | None = None
    time_shift_depth_s: float | None = None      # None: the whole stream stays

    def __post_init__(self) -> None:
        if not (self.segment_duration_s > 0 and math.isfinite(self.segment_duration_s)):
            raise InputError(f"live segments need a positive duration, got {self.segment_duration_s!r}")
        if self.chunk_s is not None and not (0 < self.chunk_s <= self.segment_duration_s):
            raise InputError(f"a chunk of {self.chunk_s!r} s does not fit segments of {self.segment_duration_s} s")

    @property
    def low_latency(self) -> bool:
        return self.chunk_s is not None

    @property
    def chunks(self) -> int:
        """CMAF chunks per segment (1: whole segments)."""
        if self.chunk_s is None:
            return 1
        # an MPD writes the offset to the microsecond: a ratio a hair above a whole number is one
        return max(1, math.ceil(self.segment_duration_s / self.chunk_s - CHUNK_COUNT_SLACK))


def live_delay(facts: LiveFacts, *, delay_s: float | None = None, delay_segments: float | None = None
               ) -> tuple[float, str]:
    """The live delay (latency target) in dash.js's order of precedence, and where it came
    from: "setting", "setting (segments)", "ServiceDescription", "suggestedPresentationDelay",
    "4 segments", "4 x minBufferTime"; capped at the time-shift buffer depth."""
    d = facts.segment_duration_s
    sd = facts.service.latency_target_s
    spd = facts.suggested_delay_s
    if delay_s is not None and delay_s > 0:
        delay, source = float(delay_s), "setting"
    elif delay_segments is not None and delay_segments > 0:
        delay, source = float(delay_segments) * d, "setting (segments)"
    elif sd is not None and sd > 0:
        delay, source = float(sd), "ServiceDescription"
    elif spd is not None and spd > 0:
        delay, source = float(spd), "suggestedPresentationDelay"
    elif math.isfinite(d):
        delay, source = DELAY_SEGMENTS * d, "4 segments"
    else:  # pragma: no cover - a LiveFacts always has a finite segment duration
        delay, source = DELAY_MIN_BUFFER_FACTOR * (facts.min_buffer_time_s or 0.0), "4 x minBufferTime"
    if facts.time_shift_depth_s is not None and facts.time_shift_depth_s > 0 and delay > facts.time_shift_depth_s:
        delay = float(facts.time_shift_depth_s)
        source += " (capped at timeShiftBufferDepth)"
    return delay, source


@dataclass(frozen=True)
class LiveSettings:
    """A preset's live part: the player's settings, and the origin the simulator plays.

    The player: the catch-up law and its parameters, its own live delay (None: dash.js's
    precedence over the manifest), how long a session lasts. The origin (what `abrlab serve
    --live` would write in its MPD; the HTTP player reads the real MPD instead): low-latency
    chunks, the ServiceDescription's target latency (our origin writes one with low latency,
    min ¾ and max 2× the target, playback rate 0.96–1.04), the time-shift buffer, and where
    in a segment the live edge is when a simulated session starts (`join_phase`, a fraction
    of a segment) and which of the content's segments it plays first (`join_segment`: 0,
    the first; a prediction of a real session joins where the real player joined, since
    the content's segments differ in size). How an encoded segment's bytes split over its
    chunks (`first_chunk_share`: the first chunk's share, which holds the keyframe; None:
    in proportion to media, as the origin's generated payload is) and how many bytes of a
    chunk the reader gets in its first read (`first_read_bytes`), which together set what
    a per-chunk throughput estimate reads (`chunk_shares`, `chunk_arrivals`), with the
    reader busy `read_busy_s` after each chunk it completes; a first read of at least
    `first_read_s` of the link's capacity (a grant of our shaper: 1,500 bytes or 5 ms of
    capacity, whichever is more); with `shaped_reads`, a segment complete when requested
    comes as one body on one grid of such grants (`whole_body_arrivals`), as our edge
    sends it. Whether the buffer target is
    at most the live delay (`buffer_target_at_most_delay`; `LiveRows.buffer_cap`)."""

    duration_s: float = 300.0
    catchup: str = "none"
    catchup_params: tuple[tuple[str, Any], ...] = ()
    delay_s: float | None = None
    delay_segments: float | None = None
    chunk_s: float | None = None
    target_latency_s: float | None = None
    time_shift_depth_s: float = DEFAULT_TSBD_S
    join_phase: float = 0.5
    join_segment: int = 0
    first_chunk_share: float | None = None
    first_read_bytes: float = FIRST_READ_BYTES
    read_busy_s: float = 0.0
    first_read_s: float = 0.0
    shaped_reads: bool = False
    buffer_target_at_most_delay: bool = True

    def __post_init__(self) -> None:
        if not (self.duration_s > 0):
            raise InputError(f"a live session needs a positive duration, got {self.duration_s!r}")
        if self.first_chunk_share is not None and not (0 < self.first_chunk_share < 1):
            raise InputError(f"first_chunk_share must be in (0, 1), got {self.first_chunk_share!r}")
        if not (self.first_read_bytes >= 0):
            raise InputError(f"first_read_bytes must be at least 0, got {self.first_read_bytes!r}")
        if not (0 <= self.read_busy_s < 1):
            raise InputError(f"read_busy_s must be in [0, 1) s, got {self.read_busy_s!r}")
        if not (0 <= self.first_read_s < 1):
            raise InputError(f"first_read_s must be in [0, 1) s, got {self.first_read_s!r}")
        if not (0 <= self.join_phase < 1):
            raise InputError(f"join_phase must be in [0, 1), got {self.join_phase!r}")
        if not (isinstance(self.join_segment, (int, np.integer)) and self.join_segment >= 0):
            raise InputError(f"join_segment must be a segment index (an integer ≥ 0), got {self.join_segment!r}")
        catchup.get(self.catchup, **dict(self.catchup_params))   # an unknown law or parameter fails here

    def law(self) -> CatchupLaw:
        return catchup.get(self.catchup, **dict(self.catchup_params))

    def facts(self, segment_duration_s: float) -> LiveFacts:
        """What our origin would say with these settings (its MPD's numbers)."""
        d = float(segment_duration_s)
        low = self.chunk_s is not None
        if low and not self.chunk_s < d:
            raise InputError(f"a CMAF chunk of {self.chunk_s:g} s must be shorter than the segments ({d:g} s)",
                             where="--chunk-duration")
        target = self.target_latency_s if self.target_latency_s is not None else (
            DEFAULT_TARGET_LATENCY_S if low else None)
        service = ServiceBounds()
        if target is not None:
            service = ServiceBounds(target, MIN_LATENCY_FACTOR * target, MAX_LATENCY_FACTOR * target,
                                    PLAYBACK_RATE_MIN, PLAYBACK_RATE_MAX)
        chunk = self.chunk_s if low else None
        return LiveFacts(d, (d - chunk) if low else 0.0, chunk, service, None,
                         max(0.5, 2 * chunk) if low else max(1.0, 2 * d), self.time_shift_depth_s)


def uniform_duration(durations_s: np.ndarray) -> tuple[float, int]:
    """The live segment duration of a content (its first segment's) and how many of its
    segments loop: all, or all but a shorter last one (as the origin loops $Number$
    content). InputError when the durations differ otherwise."""
    d = np.asarray(durations_s, dtype=np.float64)
    n = d.size
    if n > 1 and d[-1] < d[0] - 1e-9:
        n -= 1
    if np.any(np.abs(d[:n] - d[0]) > 1e-6 * d[0]):
        raise InputError("a live session needs segments of one duration (the content's differ)")
    return float(d[0]), int(n)


def chunk_shares(chunk_media_s: np.ndarray, first_share: float | None = None) -> np.ndarray:
    """The share of a segment's bytes in each of its chunks (chunks of `chunk_media_s` seconds
    of media): in proportion to their media, or, with `first_share`, that much in the first
    chunk and the rest in proportion to the others' media. A segment starts with a keyframe,
    so an encoded segment's first chunk carries far more than its media's share (34-46% of
    the bytes in the first of five 0.1 s chunks of the interop's x264 encodings, where the
    media's share is 20%); when the link is the bottleneck, the first chunk's media reaches
    the buffer late and the later, small chunks arrive quickly, and a rate measured per chunk
    (dash.js's moof parsing) reads the small chunks' first-read error large."""
    media = np.asarray(chunk_media_s, dtype=np.float64)
    share = media / media.sum()
    if first_share is None or media.size < 2:
        return share
    rest = media[1:] / media[1:].sum()
    return np.concatenate([[float(first_share)], (1.0 - float(first_share)) * rest])


def first_read(link, idx: np.ndarray, start_s: np.ndarray, read_bytes: float, read_s: float = 0.0) -> np.ndarray:
    """Bytes of a reader's first read of a transfer starting at `start_s`: `read_bytes`, or
    `read_s` of the link's capacity from there when that is more (a grant of our shaper)."""
    first = np.full(np.shape(start_s), float(read_bytes))
    if read_s:
        first = np.maximum(first, link.delivered_bits(idx, start_s, start_s + read_s) / 8.0)
    return first


def chunk_arrivals(link, idx: np.ndarray, first_byte_s: np.ndarray, sizes_bytes: np.ndarray,
                   release_s: np.ndarray, first_read_bytes: float = FIRST_READ_BYTES,
                   read_busy_s: float = 0.0, first_read_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """When the reader first sees each chunk of a chunked download and when its last byte
    arrives (trace time, (n, C) each): chunk c leaves at max(first byte, its release, the
    previous chunk's end) and takes the link's exact capacity from there
    (`netem.link.Link.deliver`); its first bytes (the moof) reach the reader with its first
    read, `first_read_bytes` later (or `first_read_s` of the link's capacity when that is
    more: a shaped link's grant, as `netem.shaper` hands them out; the whole chunk if
    smaller), and not before the reader
    is done with the previous chunk, `read_busy_s` after that one's end (dash.js appends it
    and fires its events first). A reader that times a chunk from its moof (dash.js's moof
    parsing, our player's chunk timer) thus misses the first read's transfer and, when
    chunks come back to back, its busy time: on small chunks its rate reads high, as
    dash.js's does."""
    n, C = sizes_bytes.shape
    start = np.empty((n, C))
    end = np.empty((n, C))
    prev = np.asarray(first_byte_s, dtype=np.float64)
    for c in range(C):
        s = np.maximum(prev, release_s[:, c])
        b = np.asarray(sizes_bytes[:, c], dtype=np.float64)
        e = link.deliver(idx, s, b)
        start[:, c] = link.deliver(idx, s, np.minimum(b, first_read(link, idx, s, first_read_bytes, first_read_s)))
        if c and read_busy_s:
            start[:, c] = np.minimum(np.maximum(start[:, c], prev + read_busy_s), e)
        end[:, c] = e
        prev = e
    return start, end


def whole_body_arrivals(link, idx: np.ndarray, first_byte_s: np.ndarray, sizes_bytes: np.ndarray,
                        grant_bytes: float, grant_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """`chunk_arrivals` for a segment complete when requested, which our edge sends as one
    body: whole grants of max(`grant_bytes`, `grant_s` of capacity) back to back from the
    first byte (`netem.shaper`), one read each, so chunk boundaries fall inside reads. A
    chunk ends with the read holding its last byte; the next chunk's moof, in that same read
    or the next, is seen with the next one (dash.js looks for a moof before it completes the
    previous chunk), so each chunk after the first is seen one read late; a chunk within one
    read begins and ends together."""
    s0 = np.asarray(first_byte_s, dtype=np.float64)
    sizes = np.asarray(sizes_bytes, dtype=np.float64)
    n = sizes.shape[0]
    q = first_read(link, idx, s0, grant_bytes, grant_s)[:, None]
    offsets = np.cumsum(sizes, axis=1)
    total = offsets[:, -1:]
    held = np.ceil(offsets / q - _EPS)                          # reads up to each chunk's last byte
    at = lambda b: np.stack([link.deliver(idx, s0, b[:, c]) for c in range(b.shape[1])], axis=1)
    end = at(np.minimum(held * q, total))
    first = np.concatenate([np.ones((n, 1)), held[:, :-1] + 1], axis=1)
    return np.minimum(at(np.minimum(first * q, total)), end), end


class ChunkLog:
    """Per row, the chunks of its newest completed download (for the observation): bytes,
    first and last byte times since the request, the buffer at each chunk's end, and how long
    the segment had been available when the request went out."""

    def __init__(self, n: int, width: int) -> None:
        self.width = max(0, min(int(width), MAX_CHUNKS))
        self.bytes = np.full((n, self.width), np.nan)
        self.start_s = np.full((n, self.width), np.nan)
        self.end_s = np.full((n, self.width), np.nan)
        self.buffer_s = np.full((n, self.width), np.nan)
        self.available_s = np.full(n, np.nan)

    def set(self, rows: np.ndarray, bytes_: np.ndarray, start_s: np.ndarray, end_s: np.ndarray,
            buffer_s: np.ndarray, available_s: np.ndarray) -> None:
        """Rows' newest downloads, (len(rows), C) each, C ≤ width (NaN-padded on the right)."""
        C = bytes_.shape[1]
        for arr, val in ((self.bytes, bytes_), (self.start_s, start_s), (self.end_s, end_s),
                         (self.buffer_s, buffer_s)):
            arr[rows] = np.nan
            arr[rows, :C] = val[:, :self.width]
        self.available_s[rows] = available_s

    def fields(self, rows) -> dict[str, np.ndarray]:
        return {"chunk_bytes": self.bytes[rows], "chunk_start_s": self.start_s[rows], "chunk_end_s": self.end_s[rows],
                "chunk_buffer_s": self.buffer_s[rows], "segment_available_s": self.available_s[rows]}


class LiveRows:
    """The live state of n session rows (see the module docstring): the join, the segment
    each request is for, availability, chunk production, the playback rate and its law,
    latency and its statistics.

    `sizes_bytes` (K, R) are the looped segments' sizes (the HTTP player's estimate:
    bandwidth × duration, one row); `edge0_s` the live edge at session start per row;
    `duration_s` the session length (None: the settings'; the HTTP player gives
    `DEFAULT_OPEN_DURATION_S` when the user gives none). `chunk_sizes_bytes` (K, R, C): each
    chunk's bytes as the origin sends them (`netem.content.Content.chunk_layout`), when the
    content has them for these chunks; the segments' sizes are then their sums, and the
    chunks' split is theirs instead of `chunk_shares`' model."""

    def __init__(self, facts: LiveFacts, settings: LiveSettings, sizes_bytes: np.ndarray, n: int,
                 edge0_s: np.ndarray | float, duration_s: float | None = None,
                 chunk_sizes_bytes: np.ndarray | None = None) -> None:
        self.facts = facts
        self.settings = settings
        self.n = n
        D = facts.segment_duration_s
        self.D = D
        self.sizes = np.asarray(sizes_bytes, dtype=np.float64)
        self.K = self.sizes.shape[0]
        self.layout = None
        if chunk_sizes_bytes is not None:
            layout = np.asarray(chunk_sizes_bytes, dtype=np.float64)[:self.K]
            if layout.shape[:2] != self.sizes.shape or layout.shape[2] != facts.chunks:
                raise InputError(f"chunk sizes of shape {layout.shape} do not fit {self.K} segments × "
                                 f"{self.sizes.shape[1]} rungs × {facts.chunks} chunks", where="live")
            self.layout = layout
            self.sizes = layout.sum(axis=2)
        self.delay_s, self.delay_source = live_delay(facts, delay_s=settings.delay_s,
                                                     delay_segments=settings.delay_segments)
        self.end_s = float(duration_s if duration_s is not None else settings.duration_s)
        self.edge0 = np.broadcast_to(np.asarray(edge0_s, dtype=np.float64), (n,)).copy()
        self.p0 = self.edge0 - self.delay_s
        self.j0 = np.floor(self.p0 / D + _EPS).astype(np.int64)
        self.clip_s = self.p0.copy()                 # media before this presentation time is not played
        self.offset = np.zeros(n, dtype=np.int64)    # segments jumped over by seeks
        self.skipped_s = np.zeros(n)
        self.seg_pos = np.zeros(n)                   # media of the in-flight segment already in the buffer
        self.pending_seek = np.zeros(n, dtype=bool)
        self.rate = np.ones(n)
        self.target_s = np.full(n, self.delay_s)
        self.law = settings.law()
        self.law.reset(n, facts.service)
        C = facts.chunks
        c = np.arange(C)
        chunk = facts.chunk_s if facts.chunk_s is not None else D
        self.chunk_ends = np.minimum((c + 1) * chunk, D)                 # within a segment
        self.chunk_ends[-1] = D
        self.chunk_starts = np.concatenate([[0.0], self.chunk_ends[:-1]])
        self.chunk_share = chunk_shares(self.chunk_ends - self.chunk_starts, settings.first_chunk_share)
        self.chunks = ChunkLog(n, C if facts.low_latency else 0)
        # statistics
        self.latency_integral = np.zeros(n)          # ∫ latency dt while playing
        self.rate_integral = np.zeros(n)             # ∫ rate dt while media plays
        self.media_time = np.zeros(n)                # time media plays (not stalled)
        self.play_time = np.zeros(n)
        self.latency_max = np.zeros(n)
        self.rate_changes = np.zeros(n, dtype=np.int64)
        self.seeks = np.zeros(n, dtype=np.int64)
        self.changes: list[tuple[int, float, float, float]] | None = None   # (row, t, rate, latency) when logged

    # -- requests ------------------------------------------------------------------------------
    @property
    def max_requests(self) -> int:
        """The most segments a session can request in its duration (the ones produced by then)."""
        ato = self.facts.availability_time_offset_s
        return int(math.ceil((self.delay_s + min(self.end_s, DEFAULT_OPEN_DURATION_S) + ato) / self.D)) + 2

    def segment(self, k: int, rows) -> np.ndarray:
        """The global segment index (since AST) of request `k` per row."""
        return self.j0[rows] + k + self.offset[rows]

    def sizes_at(self, k: int, rows) -> np.ndarray:
        """(len(rows), R) sizes of request k's segment."""
        return self.sizes[self.segment(k, rows) % self.K]

    def horizon(self, k: int, rows, h: int) -> np.ndarray:
        """(len(rows), h, R) sizes of the next h segments from request k."""
        j = self.segment(k, rows)[:, None] + np.arange(h)[None, :]
        return self.sizes[j % self.K]

    def available_at(self, k: int, rows) -> np.ndarray:
        """Session time from which request k's segment may be requested."""
        j = self.segment(k, rows)
        return (j + 1) * self.D - self.facts.availability_time_offset_s - self.edge0[rows]

    def releases(self, k: int, rows) -> np.ndarray:
        """(len(rows), C) session times at which each chunk of request k's segment is produced."""
        j = self.segment(k, rows)
        return (j * self.D - self.edge0[rows])[:, None] + self.chunk_ends[None, :]

    def chunk_bytes(self, size_bytes: np.ndarray, k: int | None = None, rows=None,
                    rung: np.ndarray | None = None) -> np.ndarray:
        """(len(size), C) a segment's bytes split over its chunks: the content's own chunks
        of request k's segment at `rung` when it has them (`layout`), else in the model's
        shares (`chunk_shares`)."""
        if self.layout is not None and k is not None:
            return self.layout[self.segment(k, rows) % self.K, np.asarray(rung, dtype=np.int64)]
        return np.asarray(size_bytes, dtype=np.float64)[:, None] * self.chunk_share[None, :]

    def arrivals(self, link, idx: np.ndarray, first_byte_s: np.ndarray, sizes_bytes: np.ndarray,
                 release_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`chunk_arrivals` with this session's reader (`first_read_bytes`, `first_read_s`,
        `read_busy_s`; `whole_body_arrivals` for segments complete when asked, with
        `shaped_reads`): the one call the simulator and the sans-IO core's link driver both make."""
        st = self.settings
        if not st.shaped_reads:
            return chunk_arrivals(link, idx, first_byte_s, sizes_bytes, release_s,
                                  st.first_read_bytes, st.read_busy_s, st.first_read_s)
        whole = release_s[:, -1] <= first_byte_s               # produced when asked: one body
        part = ~whole
        start = np.empty(sizes_bytes.shape)
        end = np.empty(sizes_bytes.shape)
        if part.any():
            start[part], end[part] = chunk_arrivals(link, idx[part], first_byte_s[part], sizes_bytes[part],
                                                    release_s[part], st.first_read_bytes, st.read_busy_s,
                                                    st.first_read_s)
        if whole.any():
            start[whole], end[whole] = whole_body_arrivals(link, idx[whole], first_byte_s[whole], sizes_bytes[whole],
                                                           st.first_read_bytes, st.first_read_s)
        return start, end

    def available_for_s(self, k: int, rows, clock_s: np.ndarray) -> np.ndarray:
        """How long request k's segment has been available at session time `clock_s`."""
        return clock_s - self.available_at(k, rows)

    # -- latency ------------------------------------------------------------------------------------
    def latency(self, buf: BufferState, rows) -> np.ndarray:
        return self.edge0[rows] + buf.clock_s[rows] - (self.p0[rows] + buf.played_s[rows] + self.skipped_s[rows])

    def buffer_cap(self, cap_s: np.ndarray) -> np.ndarray:
        """A live session's buffer target: at most its live delay (dash.js 4's
        `getBufferTimeDefault`), or, with `buffer_target_at_most_delay` off, the preset's own
        (dash.js 5's ScheduleController uses the unadjusted bufferTimeDefault, so its buffer
        fills as far as segments are available: up to the current latency)."""
        if not self.settings.buffer_target_at_most_delay:
            return cap_s
        return np.minimum(cap_s, self.delay_s)

    # -- time -------------------------------------------------------------------------------------------
    def elapse(self, buf: BufferState, dt: np.ndarray, rows) -> np.ndarray:
        """Let `dt` pass for `rows` at their playback rates, the catch-up law running at each
        grid point on the way; returns the stall time."""
        rows = _index(rows, self.n)
        dt = np.broadcast_to(np.asarray(dt, dtype=np.float64), rows.shape).copy()
        iv = float(self.law.interval_s)
        if not math.isfinite(iv):
            return self._advance(buf, rows, dt)
        stall = np.zeros(rows.size)
        rem = dt
        bound = int(np.ceil(float(rem.max(initial=0.0)) / iv)) + 3
        for _ in range(bound):
            active = rem > 1e-12
            if not active.any():
                break
            clock = buf.clock_s[rows]
            nxt = (np.floor(clock / iv + _EPS) + 1.0) * iv
            step = np.where(active, np.minimum(rem, nxt - clock), 0.0)
            stall += self._advance(buf, rows, step)
            rem = rem - step
            hit = active & (buf.clock_s[rows] >= nxt - _EPS)
            if hit.any():
                self.evaluate(buf, rows[hit])
        return stall

    def _advance(self, buf: BufferState, rows: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """One stretch at constant rates: the buffer and the latency statistics."""
        moving = buf.playing[rows] & ~buf.paused[rows]
        lat0 = self.latency(buf, rows)
        rate = self.rate[rows]
        b0, _ = buf.playable(rows)
        stall = buf.elapse(dt, rows, rate)
        # ∫ latency: it changes at 1 − rate while media plays, at 1 once playback stops
        tau = np.where(moving, np.minimum(dt, b0 / rate), 0.0)
        integral = lat0 * dt + (1 - rate) * tau * tau / 2 + (1 - rate) * tau * (dt - tau) + (dt - tau) ** 2 / 2
        self.latency_integral[rows] += np.where(moving, integral, 0.0)
        self.play_time[rows] += np.where(moving, dt, 0.0)
        self.rate_integral[rows] += rate * tau
        self.media_time[rows] += tau
        self.latency_max[rows] = np.maximum(self.latency_max[rows], np.where(moving, self.latency(buf, rows), 0.0))
        return stall

    def evaluate(self, buf: BufferState, rows: np.ndarray) -> None:
        """Run the catch-up law for the playing rows among `rows` (at a grid point)."""
        rows = rows[buf.playing[rows] & ~buf.paused[rows]]
        if rows.size == 0:
            return
        x = CatchupInput(rows, self.latency(buf, rows), self.target_s[rows], buf.buffer_s[rows].copy(),
                         buf.stalled[rows].copy(), buf.stall_count[rows].copy(), buf.clock_s[rows].copy(),
                         self.rate[rows].copy())
        out = self.law.update(x)
        changed = np.abs(out.rate - x.rate) > 1e-12
        self.rate_changes[rows] += changed
        self.rate[rows] = out.rate
        self.target_s[rows] = out.target_s
        self.pending_seek[rows] |= out.seek_s > 0
        if self.changes is not None:
            for i in np.flatnonzero(changed):
                self.changes.append((int(rows[i]), float(x.clock_s[i]), float(out.rate[i]), float(x.latency_s[i])))

    # -- before a request ---------------------------------------------------------------------------------
    def before_request(self, buf: BufferState, k: int, rows) -> tuple[np.ndarray, np.ndarray]:
        """Seeks due before request k: one the law asked for, or the segment has left the
        time-shift buffer (410). Returns the rows that seeked and, for each, whether its
        segment was gone."""
        rows = _index(rows, self.n)
        now = self.edge0[rows] + buf.clock_s[rows]
        gone = np.zeros(rows.size, dtype=bool)
        tsbd = self.facts.time_shift_depth_s
        if tsbd is not None:
            gone = (self.segment(k, rows) + 1) * self.D + tsbd < now
        do = self.pending_seek[rows] | gone
        if not do.any():
            return rows[:0], gone[:0]
        r = rows[do]
        self.seek(buf, k, r)
        return r, gone[do]

    def seek(self, buf: BufferState, k: int, rows: np.ndarray) -> None:
        """Jump the playhead of `rows` to the live edge − target: over buffered media first;
        beyond it request k is for the segment holding the new position."""
        now = self.edge0[rows] + buf.clock_s[rows]
        pos = self.p0[rows] + buf.played_s[rows] + self.skipped_s[rows]
        jump = np.maximum(now - self.target_s[rows] - pos, 0.0)
        held = buf.buffer_s[rows]
        self.skipped_s[rows] += jump
        buf.buffer_s[rows] = np.maximum(held - jump, 0.0)
        beyond = jump > held
        new_pos = pos + jump
        want = np.floor(new_pos / self.D + _EPS).astype(np.int64)
        bump = np.maximum(want - self.segment(k, rows), 0)
        self.offset[rows] += np.where(beyond, bump, 0)
        self.clip_s[rows] = np.where(beyond, new_pos, self.clip_s[rows])
        self.pending_seek[rows] = False
        self.seeks[rows] += 1

    # -- media arriving ------------------------------------------------------------------------------------
    def playable(self, k: int, rows, media_s: np.ndarray) -> np.ndarray:
        """The playable part of the next `media_s` of request k's segment (after what is in
        already), and moves the position within the segment on."""
        start = self.segment(k, rows) * self.D + self.seg_pos[rows]
        end = start + media_s
        self.seg_pos[rows] += media_s
        return np.maximum(end - np.maximum(start, self.clip_s[rows]), 0.0)

    def rest_of_segment(self, k: int, rows) -> np.ndarray:
        """The playable media of request k's segment not yet added (a completed download), and
        resets the position for the next segment."""
        media = self.playable(k, rows, np.maximum(self.D - self.seg_pos[rows], 0.0))
        self.seg_pos[rows] = 0.0
        return media

    # -- results ------------------------------------------------------------------------------------------
    def metrics(self, buf: BufferState) -> dict[str, np.ndarray]:
        """Per row: mean latency while playing (time-weighted), its maximum and value at the
        end, the target, the mean playback rate, rate changes, seeks, media skipped."""
        rows = np.arange(self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.play_time > 0, self.latency_integral / self.play_time, np.nan)
            rate = np.where(self.media_time > 0, self.rate_integral / self.media_time, np.nan)
        return {"latency_mean_s": mean, "latency_max_s": np.maximum(self.latency_max, self.latency(buf, rows)),
                "latency_end_s": self.latency(buf, rows), "target_latency_s": self.target_s.copy(),
                "playback_rate_mean": rate, "rate_changes": self.rate_changes.copy(), "seeks": self.seeks.copy(),
                "skipped_s": self.skipped_s.copy()}

    def describe(self) -> dict[str, Any]:
        """The session's live set-up (row 0) for an event or a report."""
        return {"delay_s": self.delay_s, "delay_source": self.delay_source, "edge0_s": float(self.edge0[0]),
                "start_s": float(self.p0[0]), "first_segment": int(self.j0[0]), "segment_duration_s": self.D,
                "low_latency": self.facts.low_latency, "chunk_s": self.facts.chunk_s,
                "availability_time_offset_s": self.facts.availability_time_offset_s,
                "time_shift_depth_s": self.facts.time_shift_depth_s, "catchup": self.law.describe(),
                "duration_s": self.end_s}


def simulated_start(settings: LiveSettings, facts: LiveFacts, loop_segments: int) -> float:
    """The live edge (presentation time) at a simulated session's start: `join_phase` of a
    segment past a segment start, far enough from AST that the time-shift buffer is full,
    and so that the first segment played is the content's `join_segment` (modulo the loop;
    0: its first)."""
    D = facts.segment_duration_s
    delay, _ = live_delay(facts, delay_s=settings.delay_s, delay_segments=settings.delay_segments)
    loop = loop_segments * D
    cycles = math.ceil((delay + (facts.time_shift_depth_s or 0.0) + 2 * D) / loop) + 1
    # the playhead starts in segment (cycles × loop / D + join_segment): the content's join_segment
    p0 = cycles * loop + (settings.join_segment % loop_segments) * D + ((settings.join_phase * D - delay) % D)
    return p0 + delay


def _index(rows, n: int) -> np.ndarray:
    if isinstance(rows, slice):
        return np.arange(n)[rows]
    return np.asarray(rows, dtype=np.int64)


def simulated_rows(durations_s: np.ndarray, sizes_bytes: np.ndarray, settings: LiveSettings, n: int,
                   chunk_sizes_bytes: np.ndarray | None = None) -> LiveRows:
    """The live rows of a simulated batch: the content looped as the origin loops it, the
    origin the settings describe, every row joining at `simulated_start`; with the
    content's own chunks when it has them for the settings' chunk duration."""
    D, K = uniform_duration(durations_s)
    facts = settings.facts(D)
    return LiveRows(facts, settings, np.asarray(sizes_bytes)[:K], n, simulated_start(settings, facts, K),
                    chunk_sizes_bytes=chunk_sizes_bytes)
