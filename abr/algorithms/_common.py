"""Pieces several policies share: start-up choice, the insufficient-buffer rule, request
abandonment, masked arg-max and a counter-based random stream.

Sources: dash.js `InsufficientBufferRule.js` and `AbandonRequestsRule.js`
(github.com/Dash-Industry-Forum/dash.js, src/streaming/rules/abr/); Sabre's
`ThroughputRule` (Spiteri et al., "From theory to practice: improving bitrate adaptation
in the DASH reference player", MMSys 2018; github.com/UMass-LIDS/sabre).
"""
from __future__ import annotations

import numpy as np

from abr.base import Param, Progress, highest_below

#: Start-up throughput when nothing has been measured yet: dash.js picks the rung closest
#: to 1000 kbit/s for video, Shaka's default bandwidth estimate is 1 Mbit/s, and on
#: Pensieve's ladder it gives rung 1 (750 kbit/s), Pensieve's DEFAULT_QUALITY.
INITIAL_BPS = 1_000_000.0

P_INITIAL = Param("initial_bps", INITIAL_BPS, "bit/s",
                  "throughput assumed before the first download completes (the first choice "
                  "is the highest rung at or below it; dash.js/Shaka use 1 Mbit/s)")


P_CHUNK_ESTIMATOR = Param(
    "chunk_estimator", "moof", "-",
    "how a chunked (low-latency) download becomes a throughput sample, when the session reports "
    "chunk timing: moof (dash.js default: each chunk over its own transfer, idle gaps left out), "
    "data (dash.js downloaded-data: the back-to-back reads) or aast (from the chunks available "
    "at the request; also delays a request up to 250 ms to measure)")


def masked_argmax(score: np.ndarray, mask: np.ndarray, last: bool = False) -> np.ndarray:
    """Arg-max over allowed rungs per row; ties go to the lowest rung, or the highest if
    `last`. Rows with nothing allowed fall back to the unmasked arg-max."""
    if not mask.all():
        score = np.where(mask, score, -np.inf)
    if last:
        r = score.shape[1]
        return (r - 1 - np.argmax(score[:, ::-1], axis=1)).astype(np.int64)
    return np.argmax(score, axis=1).astype(np.int64)


class InsufficientBuffer:
    """Cap the rung so that one segment can be fetched before the buffer drains.

    cap = highest rung with bitrate <= safety · throughput · buffer / segment_duration.

    dash.js (`InsufficientBufferRule`, v3): safety 0.5, ignoring the first 2 segments.
    Sabre (`ThroughputRule`, `no_ibr` off): safety starts at 0.9 and is multiplied by 0.9
    at every decision down to 0.5, from the first decision on. Per-session state.
    """

    def __init__(self, n: int, safety_init: float, safety_min: float, decay: float,
                 ignore_segments: int) -> None:
        self.safety = np.full(n, float(safety_init))
        self.safety_min = float(safety_min)
        self.decay = float(decay)
        self.ignore = int(ignore_segments)
        self.calls = np.zeros(n, dtype=np.int64)

    def cap(self, sessions: np.ndarray, buffer_s: np.ndarray, throughput_bps: np.ndarray,
            segment_duration_s: float, bitrates_bps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cap rung per row, the bitrate bound) — cap is the top rung where inactive."""
        s = self.safety[sessions]
        bound = s * throughput_bps * np.maximum(buffer_s, 0.0) / segment_duration_s
        active = (self.calls[sessions] >= self.ignore) & np.isfinite(bound)
        cap = np.where(active, highest_below(np.nan_to_num(bound), bitrates_bps),
                       bitrates_bps.size - 1)
        self.safety[sessions] = np.maximum(s * self.decay, self.safety_min)
        self.calls[sessions] += 1
        return cap, np.where(active, bound, np.nan)


ABANDON_PARAMS = (
    Param("abandon_multiplier", 1.8, "x segment duration",
          "abandon when the projected download time exceeds this many segment durations "
          "(dash.js ABANDON_MULTIPLIER / Sabre abandon_multiplier)"),
    Param("abandon_grace_s", 0.5, "s",
          "never abandon a download younger than this (dash.js GRACE_TIME_THRESHOLD 500 ms)"),
)


class AbandonsByThroughput:
    """The abandonment answer of a policy with `abandon_rule` (dash.js's throughput rule and
    its BOLA-E): the policy's own safety factor, multiplier and grace time; no answer when
    its `abandonment` is off or before it has a ladder. A policy mixes this in beside `Policy`."""

    ABANDON_IS_PURE = True

    def abandon_answer(self, progress: Progress) -> np.ndarray:
        if not self.abandonment or self.ladder is None:
            return np.full(np.shape(progress.sessions), -1, dtype=np.int64)
        return abandon_rule(progress, self.ladder.bitrates_bps, self.safety_factor,
                            float(self.abandon_multiplier), float(self.abandon_grace_s))


def abandon_rule(progress: Progress, bitrates_bps: np.ndarray, safety: float,
                 multiplier: float, grace_s: float) -> np.ndarray:
    """dash.js AbandonRequestsRule / Sabre ThroughputRule.check_abandon, vectorised.

    For each in-flight download older than the grace time and not already at the lowest
    rung: measure its throughput so far; if the projected total download time exceeds
    `multiplier` segment durations, refetch at the highest allowed rung at or below
    `safety` × that throughput — but only if that rung is lower and its whole segment is
    smaller than what is left of the current one. Returns the rung, or -1 to carry on.
    """
    done = np.asarray(progress.bytes_done, dtype=np.float64)
    total = np.asarray(progress.bytes_total, dtype=np.float64)
    elapsed = np.asarray(progress.elapsed_s, dtype=np.float64)
    rung = np.asarray(progress.rung, dtype=np.int64)
    n = rung.size
    out = np.full(n, -1, dtype=np.int64)
    live = (elapsed >= grace_s) & (done > 0) & (done < total) & (rung > 0)
    if not live.any():
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(live, done * 8.0 / elapsed, np.nan)
        projected = elapsed + (total - done) * 8.0 / rate
    slow = live & (projected > multiplier * progress.segment_duration_s)
    if not slow.any():
        return out
    mask = np.asarray(progress.mask, dtype=bool)
    target = highest_below(np.nan_to_num(rate * safety), bitrates_bps)
    # highest allowed rung at or below the target
    idx = np.where(mask, np.arange(mask.shape[1]), -1)
    allowed_below = np.maximum.accumulate(idx, axis=1)
    target = allowed_below[np.arange(n), target]
    sizes = np.asarray(progress.sizes_bytes, dtype=np.float64)
    new_size = sizes[np.arange(n), np.maximum(target, 0)]
    ok = slow & (target >= 0) & (target < rung) & (new_size < total - done)
    out[ok] = target[ok]
    return out


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def uniform_stream(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """A uniform float in [0, 1) for each (key, counter) pair: SplitMix64 of both, so a
    session's draws depend on nothing but its own key and how many draws it made."""
    k = np.asarray(keys, dtype=np.int64).astype(np.uint64)
    c = np.asarray(counters, dtype=np.int64).astype(np.uint64)
    z = k * _M1 + (c + np.uint64(1)) * _M3
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
