"""dash.js `AbandonRequestsRule` (src/streaming/rules/abr/AbandonRequestsRule.js), offered
in-flight downloads by the simulator and the HTTP player.

When the buffer is at most bufferTimeDefault, the request has had at least
`minThroughputSamplesThreshold` (6) progress events and more than 500 ms have passed since
the first, with the rate measured from that first event on (dash.js leaves its bytes out:
they hold the latency and any wait for the first bytes): if the projected download time
reaches `abandonDurationMultiplier` (1.8) segment durations, refetch at the rung at or
below the measured rate, provided the whole new segment is smaller than what is left of
the current one. A segment is abandoned at most once (`abandonDict`, keyed by the segment:
its refetch runs to the end).

A progress event needs new data: bytes arrive in packets (1500 bytes at least, the
emulator's shaping quantum), so on a link slower than a packet per check the events, and
with them the rule, wait; the first event then comes when the link picks up, and a slow
start is not held against the rest of the download. The rule runs on progress events
only: during an outage it is not asked at all.

What an abandonment does to the other rules (a throughput sample, the switch history
reset, BOLA's placeholder, ABANDON_LOAD) is the policy's to apply.
"""
from __future__ import annotations

import numpy as np

from abr.algorithms.dashjs.switch_request import SwitchRequest, js_round, no_change, optimal_rung
from abr.base import Progress


class AbandonRequestsRule:
    """Per-session progress of the current request: when bytes were first seen flowing and
    how many, how many progress events, and whether its segment was abandoned already."""

    def __init__(self, n: int, buffer_time_default_s: float, multiplier: float, min_time_s: float,
                 min_samples: int, progress_unit_bytes: float) -> None:
        self.buffer_time_default_s = float(buffer_time_default_s)
        self.multiplier = float(multiplier)
        self.min_time_s = float(min_time_s)
        self.min_samples = int(min_samples)
        self.progress_unit_bytes = max(1.0, float(progress_unit_bytes))
        self.first_t = np.full(n, np.nan)
        self.first_b = np.zeros(n)
        self.traces = np.zeros(n, dtype=np.int64)       # progress events of the current request
        self.units = np.zeros(n)                        # whole packets received at the last event
        self.last_e = np.full(n, np.inf)
        self.abandoned = np.zeros(n, dtype=bool)        # this segment was abandoned once already

    def on_new_request(self, sessions: np.ndarray) -> None:
        """A decision was made: a new segment's download follows."""
        self.first_t[sessions] = np.nan
        self.traces[sessions] = 0
        self.units[sessions] = 0.0
        self.abandoned[sessions] = False
        self.last_e[sessions] = np.inf

    def should_abandon(self, progress: Progress, bitrates_bps: np.ndarray) -> SwitchRequest:
        """The rung to refetch at per in-flight download, NO_CHANGE to carry on. Reason:
        `throughput_bps`, the rate measured since the first progress event (whole kbit/s),
        and `measured_s`, the time it was measured over.

        The offers may hold several progress points of a session, grouped by session in time
        order (`abr.Policy.ABANDON_SCANS`): each is answered as if offered one by one — the
        rule's state (the first event, the events counted, the packets seen) is a running
        count within each group — and a group ends at its first abandonment: the offers after
        it answer NO_CHANGE and leave no trace in the state."""
        s = np.asarray(progress.sessions, dtype=np.int64)
        n = s.size
        out = no_change(n)
        if n == 0:
            return SwitchRequest(out, {"throughput_bps": np.zeros(0), "measured_s": np.zeros(0)})
        done = np.asarray(progress.bytes_done, dtype=np.float64)
        total = np.asarray(progress.bytes_total, dtype=np.float64)
        elapsed = np.asarray(progress.elapsed_s, dtype=np.float64)
        rung = np.asarray(progress.rung, dtype=np.int64)
        buf = np.asarray(progress.buffer_s, dtype=np.float64)
        at = np.arange(n)
        starts = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))   # each group's first offer
        ends = np.append(starts[1:], n) - 1
        g = np.repeat(np.arange(starts.size), np.diff(np.append(starts, n)))  # the group of each offer
        gs = s[starts]
        # a download this rule has not seen yet (its clock went back): forget the last one's start
        fresh = ~(elapsed[starts] >= self.last_e[gs])
        first_t0 = np.where(fresh, np.nan, self.first_t[gs])
        traces0 = np.where(fresh, 0, self.traces[gs])
        units0 = np.where(fresh, 0.0, self.units[gs])
        # a progress event (a trace of the request) when at least one more packet has arrived
        # than at any earlier offer; the first one sets firstByteDate and its bytes are left
        # out of the rate
        units = np.floor(done / self.progress_unit_bytes)
        offset = g * 2.0 ** 32                 # running maxima that restart with each group
        upto = np.maximum.accumulate(units + offset) - offset
        before = np.concatenate([[-np.inf], upto[:-1]])
        before[starts] = -np.inf
        seen_units = np.maximum(units0[g], before)
        event = units > seen_units
        counted = np.cumsum(event)
        traces = traces0[g] + counted - (counted - event)[starts][g]
        first_event = np.minimum.reduceat(np.where(event, at, n), starts)[g]
        had = ~np.isnan(first_t0[g])
        begun = first_event <= at
        fe = np.minimum(first_event, n - 1)
        first_t = np.where(had, first_t0[g], np.where(begun, elapsed[fe], np.nan))
        first_b = np.where(had, self.first_b[gs][g], np.where(begun, done[fe], self.first_b[gs][g]))
        since = elapsed - first_t  # NaN until bytes flow
        # the rule runs on progress events only (AbrController._onFragmentLoadProgress)
        live = (event & (buf <= self.buffer_time_default_s) & (since > self.min_time_s)
                & (traces >= self.min_samples)
                & (done > 0) & (done < total) & (rung > 0) & ~self.abandoned[s])
        ok = np.zeros(n, dtype=bool)
        kbps = np.full(n, np.nan)
        if live.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                kbps = js_round((done - first_b) * 8.0 / np.maximum(since * 1000.0, 1.0))
                projected = total * 8.0 / kbps / 1000.0
            slow = live & (projected >= self.multiplier * progress.segment_duration_s)
            target = optimal_rung(kbps * 1000.0, bitrates_bps)
            mask = np.asarray(progress.mask, dtype=bool)
            idx = np.where(mask, np.arange(mask.shape[1]), -1)
            target = np.maximum.accumulate(idx, axis=1)[at, target]
            new_total = total * bitrates_bps[np.maximum(target, 0)] / bitrates_bps[rung]
            ok = slow & (target >= 0) & (target < rung) & (total - done > new_total)
            first_ok = np.minimum.reduceat(np.where(ok, at, n), starts)
            ok &= at == first_ok[g]
            out[ok] = target[ok]
            ends = np.where(first_ok < n, first_ok, ends)
        # the state as the last offer answered leaves it
        self.last_e[gs] = elapsed[ends]
        self.units[gs] = np.maximum(seen_units[ends], units[ends])
        self.traces[gs] = traces[ends]
        self.first_t[gs] = first_t[ends]
        self.first_b[gs] = first_b[ends]
        self.abandoned[s[ok]] = True
        return SwitchRequest(out, {"throughput_bps": np.where(live, kbps * 1000.0, np.nan),
                                   "measured_s": np.where(live, since, np.nan)})
