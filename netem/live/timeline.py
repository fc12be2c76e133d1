"""The live timeline: VoD content looped from the availability start time, as pure functions.

A live presentation made from VoD content plays the content's segments over and over,
starting at `availabilityStartTime` (AST). Global segment index j = 0, 1, 2, … counts
segments since AST: j = L·n + k is VoD segment k (0-based) of loop L, where n is the
number of VoD segments. Its `$Number$` is j + 1 (startNumber 1) and its media time
(`tfdt`, `$Time$`) is its start in ticks since AST: L × (loop duration) + the VoD
segment's start relative to the first segment. All arithmetic is in integer ticks.

One track is the *reference* (the first video rung): its VoD segment boundaries define
the timeline (`RefTimeline`). Every other track follows it (`TrackTiming`): its segment
j spans the reference segment's boundaries converted to its own timescale and rounded
to its sample grid (an AAC track's 1024-tick frames), the rule `netem.package` uses within
one loop, applied to the whole live timeline so no track drifts from loop to loop.

Availability (ISO/IEC 23009-1 §5.3.9.5, as DASH-IF livesim2 applies it): segment j can be
fetched from its availability start, AST + (end of j) − availabilityTimeOffset, until
its end falls out of the time-shift buffer, at AST + (end of j) + timeShiftBufferDepth.
(Ends are in seconds since AST; period starts cancel out because the media timeline runs
on across periods, each Period's presentationTimeOffset being its start.)

Periods (``--period-duration P``): period p starts at the first segment starting at or
after p × P (exactly p × P when P is a whole number of segments).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from netem.errors import InputError


def round_div(num: int, den: int) -> int:
    """num / den rounded to the nearest integer, exactly, for den > 0; halves go to the even
    neighbour as numpy's `rint` does, so loop 0 matches `netem.package`'s audio boundaries."""
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q


class RefTimeline:
    """The reference track's VoD segments, looped forever from AST (ticks of `timescale`)."""

    def __init__(self, timescale: int, starts, durations) -> None:
        starts = np.asarray(starts, dtype=np.int64)
        durs = np.asarray(durations, dtype=np.int64)
        if durs.size == 0 or np.any(durs <= 0):
            raise InputError("the content needs segments of positive duration", where="live timeline")
        self.timescale = int(timescale)
        self.rel_starts = [int(x) for x in starts - starts[0]]
        self.durations = [int(x) for x in durs]
        self.n = len(self.durations)
        self.loop_ticks = self.rel_starts[-1] + self.durations[-1]
        self._rel = np.asarray(self.rel_starts, dtype=np.int64)

    def vod_index(self, j: int) -> tuple[int, int]:
        """(loop, VoD segment) of global segment j."""
        return divmod(j, self.n)

    def start(self, j: int) -> int:
        loop, k = divmod(j, self.n)
        return loop * self.loop_ticks + self.rel_starts[k]

    def end(self, j: int) -> int:
        loop, k = divmod(j, self.n)
        return loop * self.loop_ticks + self.rel_starts[k] + self.durations[k]

    def index_at(self, t: int) -> int:
        """The segment whose [start, end) holds media time t ≥ 0."""
        loop, r = divmod(int(t), self.loop_ticks)
        k = int(np.searchsorted(self._rel, r, side="right")) - 1
        return loop * self.n + k

    def first_starting_at_or_after(self, t: int) -> int:
        j = self.index_at(t)
        return j if self.start(j) >= t else j + 1

    @property
    def nominal_ticks(self) -> int:
        """The most common segment duration."""
        vals, counts = np.unique(np.asarray(self.durations), return_counts=True)
        return int(vals[np.argmax(counts)])

    @property
    def uniform(self) -> bool:
        return all(d == self.durations[0] for d in self.durations)


class TrackTiming:
    """Segment j of one track: the reference boundaries in this track's ticks, on its grid."""

    def __init__(self, ref: RefTimeline, timescale: int, grid: int = 1) -> None:
        self.ref = ref
        self.timescale = int(timescale)
        self.grid = max(1, int(grid))
        self.identity = self.timescale == ref.timescale and self.grid == 1

    def from_ref(self, ref_ticks: int) -> int:
        if self.identity:
            return ref_ticks
        unit = self.ref.timescale * self.grid
        return round_div(ref_ticks * self.timescale, unit) * self.grid

    def start(self, j: int) -> int:
        return self.from_ref(self.ref.start(j))

    def end(self, j: int) -> int:
        return self.from_ref(self.ref.end(j))

    def index_of_start(self, t: int) -> int | None:
        """The segment j starting exactly at media time t (this track's ticks), or None."""
        if t < 0:
            return None
        guess = self.ref.index_at(t * self.ref.timescale // self.timescale)
        for j in (guess - 1, guess, guess + 1):
            if j >= 0 and self.start(j) == t:
                return j
        return None

    def nominal_duration(self) -> int | None:
        """The reference's nominal duration in this track's ticks, if a whole number."""
        num = self.ref.nominal_ticks * self.timescale
        return num // self.ref.timescale if num % self.ref.timescale == 0 else None


@dataclass(frozen=True)
class Window:
    """Segments fetchable at one instant: global indices first..last (empty if last < first)."""

    first: int
    last: int

    @property
    def empty(self) -> bool:
        return self.last < self.first

    def __len__(self) -> int:
        return max(0, self.last - self.first + 1)


class Schedule:
    """When each segment of the live timeline exists: availability, windows and periods.

    `ast_s` is AST in seconds since the epoch, `tsbd_s` the time-shift buffer depth,
    `ato_s` the availabilityTimeOffset (0, or segment − chunk duration for low latency),
    `period_s` the Period length (None: one Period). Times passed in are the origin
    clock's (seconds since the epoch)."""

    def __init__(self, ref: RefTimeline, ast_s: float, tsbd_s: float, ato_s: float = 0.0,
                 period_s: float | None = None) -> None:
        self.ref = ref
        self.ast_s = float(ast_s)
        self.tsbd_s = float(tsbd_s)
        self.ato_s = float(ato_s)
        self.period_ticks = None if period_s is None else round(period_s * ref.timescale)

    # -- seconds <-> ticks ---------------------------------------------------------------
    def _ticks(self, seconds_since_ast: float) -> int:
        return math.floor(seconds_since_ast * self.ref.timescale)

    def seconds(self, ticks: int) -> float:
        """Origin-clock time (seconds since the epoch) of a reference media time."""
        return self.ast_s + ticks / self.ref.timescale

    # -- availability ----------------------------------------------------------------------
    def availability_start(self, j: int) -> float:
        return self.seconds(self.ref.end(j)) - self.ato_s

    def availability_end(self, j: int) -> float:
        return self.seconds(self.ref.end(j)) + self.tsbd_s

    def window(self, now_s: float) -> Window:
        """Every segment whose availability window holds `now_s`."""
        hi = self._ticks(now_s - self.ast_s + self.ato_s)  # ended by hi: available
        lo = self._ticks(now_s - self.ast_s - self.tsbd_s)  # ended by lo: gone
        last = self.ref.index_at(hi) - 1 if hi >= 0 else -1
        first = self.ref.index_at(lo) if lo >= 0 else 0
        return Window(first, last)

    def status(self, j: int, now_s: float) -> str:
        """"early", "ok" or "gone" for segment j at `now_s`."""
        w = self.window(now_s)
        if j > w.last:
            return "early"
        if j < w.first:
            return "gone"
        return "ok"

    # -- periods -----------------------------------------------------------------------------
    def period_of(self, j: int) -> int:
        if self.period_ticks is None:
            return 0
        return self.ref.start(j) // self.period_ticks

    def period_first(self, p: int) -> int:
        """The first segment of period p."""
        if self.period_ticks is None or p <= 0:
            return 0
        return self.ref.first_starting_at_or_after(p * self.period_ticks)

    def period_start_ticks(self, p: int) -> int:
        return self.ref.start(self.period_first(p))
