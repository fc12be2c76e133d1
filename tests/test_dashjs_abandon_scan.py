"""The dash.js abandonment rule offered many progress points per session in one call
(`abr.Policy.ABANDON_SCANS`, how the simulator offers them) answers exactly as the rule did
offered one point at a time. The reference below is that rule as it was, kept verbatim."""
from __future__ import annotations

import numpy as np
import pytest

from abr import Progress
from abr.algorithms.dashjs.abandon_requests_rule import AbandonRequestsRule
from abr.algorithms.dashjs.switch_request import SwitchRequest, js_round, no_change, optimal_rung

BITRATES = np.array([0.3e6, 0.75e6, 1.2e6, 1.85e6, 2.85e6])
STATE = ("first_t", "first_b", "traces", "units", "last_e", "abandoned")


def should_abandon_one_by_one(self, progress: Progress, bitrates_bps: np.ndarray) -> SwitchRequest:
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


def new_rule(n: int, unit: float) -> AbandonRequestsRule:
    return AbandonRequestsRule(n, 12.0, 1.8, 0.5, 6, unit)


def downloads(rng, n: int, offers: int, unit: float):
    """Per session, one download: rung, size, a buffer level and bytes arriving in bursts
    with pauses (offers with no new packet are no progress event)."""
    rung = rng.integers(0, BITRATES.size, n)
    total = BITRATES[rung] * 4.0 / 8.0 * rng.uniform(0.8, 1.2, n)
    step = rng.exponential(1.0, (n, offers)) * (rng.random((n, offers)) < 0.7)
    step *= (total / rng.uniform(10, 80, n))[:, None]
    step[rng.random(n) < 0.2, :] *= unit / max(float(step.max()), 1.0)   # slower than a packet per offer
    done = np.minimum(np.cumsum(step, axis=1), total[:, None])
    buffer = rng.uniform(0, 25, n)[:, None] - 0.05 * np.arange(1, offers + 1)[None, :]
    return rung, total, done, np.maximum(buffer, 0.0)


def offer(s, rung, total, done, elapsed, buffer):
    n = s.size
    return Progress(sessions=s, rung=rung, bytes_done=done, bytes_total=total, elapsed_s=elapsed,
                    buffer_s=buffer, segment_duration_s=4.0, sizes_bytes=np.tile(BITRATES / 2, (n, 1)),
                    mask=np.ones((n, BITRATES.size), dtype=bool))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bulk", [1, 3, 32])
def test_many_offers_per_call_answer_as_one_at_a_time(seed, bulk):
    rng = np.random.default_rng(seed)
    n, offers, unit = 40, 90, 1500.0
    one, many = new_rule(n, unit), new_rule(n, unit)
    for download in range(3):          # state carried over from one download to the next
        rung, total, done, buffer = downloads(rng, n, offers, unit)
        if download == 2:
            one.on_new_request(np.arange(0, n, 2))
            many.on_new_request(np.arange(0, n, 2))
        want = np.full((n, offers), -2)
        pending = np.arange(n)
        for j in range(offers):        # one offer per session per call, as the HTTP player does
            if pending.size == 0:
                break
            e = np.full(pending.size, 0.05 * (j + 1))
            r = should_abandon_one_by_one(one, offer(pending, rung[pending], total[pending], done[pending, j], e,
                                                     buffer[pending, j]), BITRATES)
            want[pending, j] = r.rung
            pending = pending[r.rung < 0]
        got = np.full((n, offers), -2)
        pending = np.arange(n)
        for j in range(0, offers, bulk):   # `bulk` offers per session per call, grouped by session
            if pending.size == 0:
                break
            cols = np.arange(j, min(offers, j + bulk))
            s = np.repeat(pending, cols.size)
            c = np.tile(cols, pending.size)
            r = many.should_abandon(offer(s, rung[s], total[s], done[s, c], 0.05 * (c + 1), buffer[s, c]),
                                    BITRATES)
            hit = np.flatnonzero(r.rung >= 0)
            assert np.unique(s[hit]).size == hit.size            # at most one abandonment per session
            last = {int(x): int(y) for x, y in zip(s[hit], c[hit])}
            keep = np.array([last.get(int(x), offers) >= int(y) for x, y in zip(s, c)], dtype=bool)
            got[s[keep], c[keep]] = r.rung[keep]
            pending = np.setdiff1d(pending, s[hit])
        assert np.array_equal(got, want)
        for name in STATE:
            a, b = getattr(one, name), getattr(many, name)
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    assert (want >= 0).any()            # the cases include abandonments


def test_offers_are_grouped_per_session_not_sorted():
    """Two sessions' groups in either order give each session the same answers."""
    rng = np.random.default_rng(9)
    n, offers = 2, 60
    rung, total, done, buffer = downloads(rng, n, offers, 1500.0)
    rung[:] = 4
    done[:] = np.linspace(1, 0.2 * total[0], offers)[None, :]
    buffer[:] = 5.0
    answers = []
    for order in ([0, 1], [1, 0]):
        rule = new_rule(n, 1500.0)
        s = np.repeat(order, offers)
        c = np.tile(np.arange(offers), n)
        r = rule.should_abandon(offer(s, rung[s], total[s], done[s, c], 0.05 * (c + 1), buffer[s, c]), BITRATES)
        answers.append({int(k): r.rung[s == k].tolist() for k in order})
    assert answers[0] == answers[1]
    assert any(x >= 0 for x in answers[0][0])
