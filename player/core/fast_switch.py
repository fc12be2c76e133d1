"""Fast switching, as dash.js 5 ships it (`streaming.buffer.fastSwitchEnabled`, on for VoD).

What dash.js does (src/streaming/StreamProcessor.js `_prepareForFastQualitySwitch`,
FragmentModel.js `getRequestForTime`, the same in the 5.2.1 build the harness runs):

- When the ABR rules change the quality, dash.js looks up the media request it executed
  last for the segment at the playhead plus a safety margin (`1.5 × fragmentDuration`). The
  margin is meant to be 1.5 segments, but `fragmentDuration` is `null` on the representation
  objects the ABR controller hands over, and `1.5 × null` is 0: the margin is 0, and the
  segment looked up is the one being played.
- If that segment's bitrate is below the new quality's, the buffer level is at least the
  margin (always, at 0) and no abandonment holds (ABANDON_LOAD, for `abandonLoadTimeout`,
  10 s, after the rules abandoned a download), the in-flight request (none: dash.js
  decides between requests) is aborted and the next request is for that segment, at the
  new quality. Requests then go on in order, each decided by the rules as usual,
  re-fetching each buffered segment, until they reach the end of the buffer and fetch new
  media again. A switch down on the way carries on in order (our MPDs declare
  `segmentAlignment`); another switch above the rung at the playhead starts again from the
  playhead.
- A re-fetched segment is appended over the old one: the buffer does not grow, so the
  buffer drains while the old media is fetched again, and a stall can start, and go on, in
  the middle of them. It is a throughput sample like any download, and dash.js's BOLA
  grows its placeholder buffer by its duration (the `dashjs` policy does that itself).
- dash.js does not look at what is buffered: a switch down while re-fetching asks again
  for versions the browser has fetched before. The edge's responses may be cached and must
  be revalidated (`Cache-Control: no-cache` with an ETag), so such a request is a 304: the
  request's latency, no body. Its throughput sample is the first download's of that URL:
  dash.js measures a request by the first Resource Timing entry whose name is its URL
  (HTTPLoader.js), which is the one of the first time it was fetched.
- The playhead dash.js reads is the video element's `currentTime`. A stalled Chrome
  stops it short of the buffered end (by 0.06-0.10 s, median 0.09 s, over the 20 stalls of
  the tuning set's recordings) and resumes from there, so right after a stall the segment
  "at the playhead" is still the one before, already played.

The model, per session row: the next request's segment (`next_index`: the end of the buffer,
or the segment being re-fetched), the segments fetched as new (`frontier`), and per
segment the rung of the version in the buffer and the rung and size of the version that
plays. A re-fetched version plays if it arrives before the playhead reaches its segment's
start; otherwise the old one played (most of the time for the first segment re-fetched,
which is being played when the switch happens). A session's `chosen` is the rung played;
its bytes the versions played, its wasted bytes the others (and abandoned attempts).
After the last segment is requested nothing else is (no decision follows it: none did in
the 24 recorded sessions). Versions fetched before are kept per row, segment and rung with
their first download's timing (float32), only under a preset with fast switching.

The batch simulator (`player.core.simulator`) and the session core (`player.core.session`)
call these rules with their own clocks. Units: seconds, bits per second, bytes.
"""
from __future__ import annotations

import numpy as np

from player.core.buffer import BufferState

_EPS_S = 1e-9


def refetch_bound(n_segments: int, n_rungs: int) -> int:
    """A bound on one session's re-fetching requests before a new segment, for the loops
    that run them: a start from the playhead needs a rung above the one buffered there (and
    none follows an abandonment for `abandon_lock_s`), so about `n_rungs` starts per segment
    the playhead is in, each re-fetching at most the whole presentation."""
    return n_segments * n_segments * (n_rungs + 1) + n_segments + 10


class FastSwitch:
    """The fast-switching state of n sessions over a plan of K segments."""

    def __init__(self, durations_s: np.ndarray, n_rungs: int, n: int, margin_s: float, stall_gap_s: float,
                 abandon_lock_s: float) -> None:
        durations_s = np.asarray(durations_s, dtype=np.float64)
        K = durations_s.size
        self.K = K
        self.starts_s = np.concatenate([[0.0], np.cumsum(durations_s)])   # (K + 1,): segment k is [starts[k], starts[k+1])
        self.margin_s = float(margin_s)
        self.stall_gap_s = float(stall_gap_s)
        self.abandon_lock_s = float(abandon_lock_s)
        self.abandoned_s = np.full(n, -np.inf)          # when each row last abandoned a download
        self.next_index = np.zeros(n, dtype=np.int64)    # the segment the next request is for
        self.frontier = np.zeros(n, dtype=np.int64)      # segments fetched as new (the buffer's end)
        self.buffered_rung = np.full((n, K), -1, dtype=np.int64)
        self.played_rung = np.full((n, K), -1, dtype=np.int64)
        self.played_bytes = np.zeros((n, K))
        self.had = np.zeros((n, K, n_rungs), dtype=bool)   # versions fetched before (the browser's cache)
        # their first download's latency and transfer time (float32: n × K × rungs of them)
        self.first_s = np.zeros((n, K, n_rungs, 2), dtype=np.float32)
        self.fetched_bytes = np.zeros(n)                 # every complete media download, re-fetches included
        self.refetches = np.zeros(n, dtype=np.int64)

    def playhead_s(self, buffer: BufferState, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The playhead dash.js reads: the media played, `stall_gap_s` short once a stall has
        stopped it at the buffer's end (never before 0)."""
        played = buffer.played_s[rows]
        return np.maximum(np.where(buffer.stall_count[rows] > 0, played - self.stall_gap_s, played), 0.0)

    def abandoned(self, rows: np.ndarray, now_s: np.ndarray) -> None:
        """Rows `rows` abandoned a download at `now_s` (session clock): no fast switching
        for `abandon_lock_s`."""
        self.abandoned_s[rows] = now_s

    def target(self, rows: np.ndarray, rung: np.ndarray, last_rung: np.ndarray, playhead_s: np.ndarray,
               buffer_s: np.ndarray, now_s: np.ndarray) -> np.ndarray:
        """Per row of `rows` about to request at `rung` at `now_s` (its previous request was
        at `last_rung`): the buffered segment to re-fetch from, or -1 to request as planned. A
        quality change re-fetches when a segment is buffered at playhead + margin, the
        buffer holds the margin, that segment's rung is below the new one and no
        abandonment holds."""
        # (a playhead within float noise of a boundary, as a stalled one is, is at the boundary:
        # both clocks reach it by different sums)
        at = playhead_s + self.margin_s + _EPS_S
        seg = np.searchsorted(self.starts_s, at, side="right") - 1
        buffered = (seg >= 0) & (seg < self.frontier[rows])
        seg_c = np.clip(seg, 0, self.K - 1)
        lower = self.buffered_rung[rows, seg_c] < rung
        free = now_s - self.abandoned_s[rows] >= self.abandon_lock_s
        go = (rung != last_rung) & (last_rung >= 0) & buffered & lower & (buffer_s >= self.margin_s - _EPS_S) & free
        return np.where(go, seg_c, -1)

    def redirect(self, rows: np.ndarray, to: np.ndarray) -> None:
        """Rows `rows` re-fetch from segment `to` (one per row) on."""
        self.next_index[rows] = to

    def is_refetch(self, rows: np.ndarray | slice, segment: np.ndarray | int) -> np.ndarray:
        """Whether a request for `segment` re-fetches a buffered one."""
        return np.asarray(segment) < self.frontier[rows]

    def body_bytes(self, rows: np.ndarray, segment: np.ndarray | int, rung: np.ndarray,
                   size_bytes: np.ndarray) -> np.ndarray:
        """The body of each row's request for `segment` at `rung` (`size_bytes` its size):
        none for a version fetched before (a 304)."""
        return np.where(self.had[rows, segment, rung], 0.0, size_bytes)

    def sample(self, rows: np.ndarray, segment: np.ndarray | int, rung: np.ndarray, size_bytes: np.ndarray,
               body_bytes: np.ndarray, latency_s: np.ndarray, transfer_s: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bytes, latency, transfer time) of the throughput sample of a download of `body_bytes`
        in `latency_s` + `transfer_s`: its own, or for a version fetched before (`size_bytes`
        then), the first download's."""
        old = self.had[rows, segment, rung]
        first = self.first_s[rows, segment, rung].astype(np.float64)
        return (np.where(old, size_bytes, body_bytes), np.where(old, first[..., 0], latency_s),
                np.where(old, first[..., 1], transfer_s))

    def arrived(self, rows: np.ndarray, segment: np.ndarray, rung: np.ndarray, size_bytes: np.ndarray,
                playhead_s: np.ndarray, body_bytes: np.ndarray | None = None, latency_s: np.ndarray | float = 0.0,
                transfer_s: np.ndarray | float = 0.0) -> np.ndarray:
        """Segment `segment` arrived for `rows` at `rung` (a version of `size_bytes`, of which
        `body_bytes` came now, default all, in `latency_s` + `transfer_s`); the next request
        is for the segment after it. A new segment plays at its rung; a re-fetched one
        replaces the buffered version, and plays if the playhead has not reached its start.
        Returns which rows' version plays."""
        segment = np.asarray(segment, dtype=np.int64)
        refetch = segment < self.frontier[rows]
        in_time = ~refetch | (playhead_s <= self.starts_s[segment] + _EPS_S)
        self.buffered_rung[rows, segment] = rung
        new = ~self.had[rows, segment, rung]
        lat = np.broadcast_to(np.asarray(latency_s, dtype=np.float64), rows.shape)
        xfer = np.broadcast_to(np.asarray(transfer_s, dtype=np.float64), rows.shape)
        self.first_s[rows[new], segment[new], rung[new]] = np.stack([lat[new], xfer[new]], axis=-1)
        self.had[rows, segment, rung] = True
        r, s = rows[in_time], segment[in_time]
        self.played_rung[r, s] = rung[in_time]
        self.played_bytes[r, s] = size_bytes[in_time]
        self.fetched_bytes[rows] += size_bytes if body_bytes is None else body_bytes
        self.refetches[rows] += refetch
        self.frontier[rows] = np.maximum(self.frontier[rows], segment + 1)
        self.next_index[rows] = segment + 1
        return in_time

    def wasted_bytes(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Bytes of complete downloads whose version never played (re-fetched too late, or
        replaced before it played)."""
        return self.fetched_bytes[rows] - self.played_bytes[rows].sum(axis=1)
