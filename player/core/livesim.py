"""The simulator's lockstep for live sessions: n rows, one request per step, virtual time.

Every rule is `player.core.live.LiveRows`' and `player.core.rules.SessionRows`' (the session
core runs the same ones with one row); this module only orders them within a step and
records what happened. A batch is live when its preset is (`SessionPreset.live`);
`player.core.simulator.simulate_batch` hands it here.

Order within step k, per row still in session: wait until the buffer has room (not before
the first request); the seeks due (a catch-up seek asked for, or the segment left the
time-shift buffer); wait until the segment is available; the decision; the policy's own
delay; the request: after the link's latency, each chunk leaves the origin once produced and
crosses the link at its rate (`player.core.live.LiveRows.arrivals`), each chunk's media joining
the buffer as it arrives; the arrival. Every wait and transfer is cut at the session's
duration: the row's session ends there, a download still in flight is dropped, nothing is
played out. Stall time after the last segment that arrived counts with that segment.
"""
from __future__ import annotations

import numpy as np

from player.core.rules import DecisionHook

_EPS = 1e-9


class LiveLockstep:
    """The live steps of one simulator batch (`batch`: its rules, link, trace clocks and
    records, as `player.core.simulator` builds them)."""

    def __init__(self, batch) -> None:
        self.batch = batch
        self.rules = batch.rules
        self.live = batch.rules.live
        n, K = batch.n, batch.K
        self.done = np.zeros(n, dtype=bool)
        self.counted = np.zeros((K, n), dtype=bool)
        for name in ("live_latency", "rate"):
            batch.rec[name] = np.full((K, n), np.nan)

    def run(self, hook: DecisionHook | None) -> None:
        for k in range(self.batch.K):
            rows = np.flatnonzero(~self.done)
            if rows.size == 0:
                break
            self.step(k, rows, hook)
        rows = np.flatnonzero(~self.done)
        if rows.size:   # requests ran out before the duration (cannot happen with max_requests)
            self.until_end(rows, np.full(rows.size, np.inf))
        self.fold_tail_stalls()

    # -- time, cut at the session's end ----------------------------------------------------------
    def until_end(self, rows: np.ndarray, dt: np.ndarray, k: int | None = None) -> np.ndarray:
        """Let `dt` pass for `rows`, but not past the session's end (rows reaching it are done);
        stalls go to step k's record. Returns the rows still in session."""
        buf = self.rules.buffer
        left = self.live.end_s - buf.clock_s[rows]
        ends = dt >= left - _EPS
        step = np.where(ends, np.maximum(left, 0.0), dt)
        if np.any(step > 0):
            stall = self.batch.elapse(rows, step)
            if k is not None:
                self.batch.rec["rebuffer"][k, rows] += stall
        self.done[rows[ends]] = True
        return rows[~ends]

    # -- one request -----------------------------------------------------------------------------
    def step(self, k: int, rows: np.ndarray, hook: DecisionHook | None) -> None:
        b, rules, live = self.batch, self.rules, self.live
        buf, rec = rules.buffer, b.rec
        if k > 0:
            wait = rules.room_wait_s(k, rows)
            rec["wait"][k, rows] += wait
            rows = self.until_end(rows, wait, k)
        live.before_request(buf, k, rows)
        avail = np.maximum(live.available_at(k, rows) - buf.clock_s[rows], 0.0)
        rec["wait"][k, rows] += avail
        rows = self.until_end(rows, avail, k)
        if rows.size == 0:
            return
        rung, delay = rules.choose(b.policy, k, rows, hook=hook, time_s=buf.clock_s[rows].copy(), sessions=rows)
        if delay is not None:
            rec["wait"][k, rows] += delay
            keep = self.until_end(rows, delay, k)
            rung = rung[np.isin(rows, keep)]
            rows = keep
        if rows.size:
            self.fetch(k, rows, rung)

    def fetch(self, k: int, rows: np.ndarray, rung: np.ndarray) -> None:
        b, rules, live = self.batch, self.rules, self.live
        buf, rec, link = rules.buffer, b.rec, b.link
        q = buf.clock_s[rows].copy()
        rec["request"][k, rows] = q
        size = rules.segment_sizes(k, rows)[np.arange(rows.size), rung]
        available = live.available_for_s(k, rows, q)
        lag = q - b.trace_t[rows]                       # session clock − trace clock (constant meanwhile)
        tidx = b.tidx[rows]
        lat = link.latency(tidx, b.trace_t[rows]) + link.params.overhead_s
        first_byte = b.trace_t[rows] + (lat if link.params.latency_advances_trace else 0.0)
        parts = live.chunk_bytes(size, k, rows, rung)
        starts, ends = live.arrivals(link, tidx, first_byte, parts, live.releases(k, rows) - lag[:, None])
        starts += lag[:, None]
        ends += lag[:, None]
        C = parts.shape[1]
        media = live.chunk_ends - live.chunk_starts
        level = np.full((rows.size, C), np.nan)
        alive = np.ones(rows.size, dtype=bool)
        for c in range(C):
            idx = np.flatnonzero(alive)
            r = rows[idx]
            keep = self.until_end(r, np.maximum(ends[idx, c] - buf.clock_s[r], 0.0), k)
            alive[idx[~np.isin(r, keep)]] = False
            if c < C - 1 and keep.size:
                rules.chunk_arrived(k, np.full(keep.size, media[c]), keep)
            level[idx, c] = buf.buffer_s[r]
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            return
        r, rg = rows[idx], rung[idx]
        transfer = np.maximum(ends[idx, -1] - q[idx] - lat[idx], 1e-9)
        rules.downloaded(k, rg, size[idx], lat[idx], transfer, r)
        level[idx, -1] = buf.buffer_s[r]
        if live.chunks.width:
            live.chunks.set(r, parts[idx], starts[idx] - q[idx, None], ends[idx] - q[idx, None], level[idx],
                            available[idx])
        b.chosen[k, r] = rg
        rec["download"][k, r] = ends[idx, -1] - q[idx]
        rec["latency"][k, r] = lat[idx]
        rec["buffer"][k, r] = buf.buffer_s[r]
        rec["size"][k, r] = size[idx]
        rec["live_latency"][k, r] = live.latency(buf, r)
        rec["rate"][k, r] = live.rate[r]
        self.counted[k, r] = True

    def fold_tail_stalls(self) -> None:
        """Stall time in a step whose segment never arrived counts with the last one that did."""
        rec = self.batch.rec["rebuffer"]
        count = self.counted.sum(axis=0)
        K = rec.shape[0]
        last = np.maximum(count - 1, 0)
        cols = np.arange(rec.shape[1])
        tail = np.where(np.arange(K)[:, None] >= count[None, :], rec, 0.0).sum(axis=0)
        rec[:, :] = np.where(np.arange(K)[:, None] < np.maximum(count, 1)[None, :], rec, 0.0)
        rec[last, cols] += np.where(count > 0, tail, 0.0)

    @property
    def segments(self) -> np.ndarray:
        """Segments that arrived per row (a prefix of the steps)."""
        return self.counted.sum(axis=0)
