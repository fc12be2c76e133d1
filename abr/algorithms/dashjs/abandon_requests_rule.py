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
        and `measured_s`, the time it was measured over."""
        s = np.asarray(progress.sessions, dtype=np.int64)
        n = s.size
        out = no_change(n)
        done = np.asarray(progress.bytes_done, dtype=np.float64)
        total = np.asarray(progress.bytes_total, dtype=np.float64)
        elapsed = np.asarray(progress.elapsed_s, dtype=np.float64)
        rung = np.asarray(progress.rung, dtype=np.int64)
        buf = np.asarray(progress.buffer_s, dtype=np.float64)
        # a download this rule has not seen yet (its clock went back): forget the last one's start
        fresh = ~(elapsed >= self.last_e[s])
        self.first_t[s] = np.where(fresh, np.nan, self.first_t[s])
        self.traces[s] = np.where(fresh, 0, self.traces[s])
        self.units[s] = np.where(fresh, 0.0, self.units[s])
        self.last_e[s] = elapsed
        # a progress event (a trace of the request) when at least one more packet has arrived
        # since the last; the first one sets firstByteDate and its bytes are left out of the rate
        units = np.floor(done / self.progress_unit_bytes)
        event = units > self.units[s]
        self.units[s] = np.where(event, units, self.units[s])
        self.traces[s] += event
        first = np.isnan(self.first_t[s]) & event
        self.first_t[s] = np.where(first, elapsed, self.first_t[s])
        self.first_b[s] = np.where(first, done, self.first_b[s])
        since = elapsed - self.first_t[s]  # NaN until bytes flow
        # the rule runs on progress events only (AbrController._onFragmentLoadProgress)
        live = (event & (buf <= self.buffer_time_default_s) & (since > self.min_time_s)
                & (self.traces[s] >= self.min_samples)
                & (done > 0) & (done < total) & (rung > 0) & ~self.abandoned[s])
        if not live.any():
            return SwitchRequest(out, {"throughput_bps": np.full(n, np.nan), "measured_s": np.full(n, np.nan)})
        with np.errstate(divide="ignore", invalid="ignore"):
            kbps = js_round((done - self.first_b[s]) * 8.0 / np.maximum(since * 1000.0, 1.0))
            projected = total * 8.0 / kbps / 1000.0
        slow = live & (projected >= self.multiplier * progress.segment_duration_s)
        target = optimal_rung(kbps * 1000.0, bitrates_bps)
        mask = np.asarray(progress.mask, dtype=bool)
        idx = np.where(mask, np.arange(mask.shape[1]), -1)
        target = np.maximum.accumulate(idx, axis=1)[np.arange(n), target]
        new_total = total * bitrates_bps[np.maximum(target, 0)] / bitrates_bps[rung]
        ok = slow & (target >= 0) & (target < rung) & (total - done > new_total)
        out[ok] = target[ok]
        self.abandoned[s[ok]] = True
        return SwitchRequest(out, {"throughput_bps": np.where(live, kbps * 1000.0, np.nan),
                                   "measured_s": np.where(live, since, np.nan)})
