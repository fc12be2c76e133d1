"""Catch-up laws: how a live session's playback rate follows its latency target.

A low-latency player keeps its latency (wall clock − presentation time of the playhead) near
a target by playing slightly faster or slower than real time, and by seeking when it has
fallen too far behind. Players differ in the law; each is a small class here with its
parameters, their units and defaults (`abr.Param`), vectorised over session rows:

* `dashjs` — dash.js 5 `CatchupController`, default mode: a sigmoid-like rate
  ``(1 − c) + 2c / (1 + e^(−5 Δ))`` with Δ = latency − target and c the allowed deviation on
  that side (dash.js's default ±0.5, i.e. 0.5×–1.5×; the MPD's ServiceDescription
  PlaybackRate narrows it); rate 1 while the buffer is at or below dash.js's stall threshold
  (0.3 s: its BufferController's BUFFER_EMPTY state, which the CatchupController follows; a
  level above half the target clears it too); a new rate is applied only when it differs
  from the current one by at least 0.02 / (0.5 / c_max) (or is exactly 1); beyond
  `maxDrift` (12 s, or the ServiceDescription's Latency@max − @target + 0.5 s) it seeks to
  the live edge − target.
* `dashjs-lolp` — the same controller in LoL+ mode (`liveCatchup.mode`
  liveCatchupModeLoLP): below `playbackBufferMin` (0.5 s) the rate follows the buffer
  (``Δ = buffer − min``), otherwise the latency, with no change inside ±2 % of the target.
* `shaka` — Shaka Player's `liveSync` (`Player.onTimeUpdate_`): bang-bang. Above target +
  tolerance play at the maximum rate, below target − tolerance at the minimum, otherwise 1;
  optional panic mode (the minimum rate for `panic_threshold_s` after a rebuffer).
* `media3` — Media3 `DefaultLivePlaybackSpeedControl`: proportional,
  ``1 + k·(latency − target)`` clamped to [min, max] (unit speed within 20 ms of the target),
  changed at most every `interval_s`; each rebuffer raises the target by 0.5 s (up to the
  ServiceDescription's maximum) and the target drifts back down towards a safe offset (the
  smoothed minimum possible latency, latency − buffer, plus three deviations).
* `none` — rate 1 always (dash.js does not catch up on a live stream that is not low
  latency unless told to).

A law runs every `interval_s` of session time (the grid is the session clock's multiples
of it: the video element's `timeupdate`, about 4 Hz, for dash.js and Shaka; Media3's
minimum update interval) for the rows that are playing and not paused. Its answer is the
new rate, a forward seek in seconds (0: none) and the latency target it works to (Media3
moves its target; the others keep the session's).

Rates are factors of normal speed; times are seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from abr.base import Param, coerce_param
from netem.errors import InputError

#: dash.js MediaPlayerModel: DEFAULT_CATCHUP_PLAYBACK_RATE_MIN/MAX (as deviations from 1), the
#: limits a setting is clamped to, DEFAULT_CATCHUP_MAX_DRIFT.
DASHJS_RATE_DEVIATION = 0.5
DASHJS_MIN_DEVIATION_LIMIT = 0.5
DASHJS_MAX_DEVIATION_LIMIT = 1.0
DASHJS_MAX_DRIFT_S = 12.0
#: ServiceDescription maxDrift = (Latency@max − Latency@target + 500 ms) / 1000
DASHJS_SD_DRIFT_MARGIN_S = 0.5
#: Media3 calls getAdjustedPlaybackSpeed from doSomeWork, every 10 ms while playing.
MEDIA3_CALL_PERIOD_S = 0.01


@dataclass(frozen=True)
class CatchupInput:
    """What a law sees at one evaluation, for `rows` (arrays over those rows)."""

    rows: np.ndarray          # which of the reset rows
    latency_s: np.ndarray     # wall clock − presentation time of the playhead
    target_s: np.ndarray      # the session's live delay (its latency target)
    buffer_s: np.ndarray
    stalled: np.ndarray       # bool: in a stall now
    stall_count: np.ndarray   # stalls so far (one more than last time: a rebuffer happened)
    clock_s: np.ndarray       # session clock
    rate: np.ndarray          # the current playback rate


@dataclass(frozen=True)
class CatchupOutput:
    rate: np.ndarray
    seek_s: np.ndarray        # forward seek (0: none)
    target_s: np.ndarray      # the target the law now works to


@dataclass(frozen=True)
class ServiceBounds:
    """What the MPD's ServiceDescription says (None where it is silent)."""

    latency_target_s: float | None = None
    latency_min_s: float | None = None
    latency_max_s: float | None = None
    playback_rate_min: float | None = None
    playback_rate_max: float | None = None


class CatchupLaw:
    """Base class: parameters as `abr.Policy` declares them; `reset` per session batch,
    `update` at each evaluation."""

    name: ClassVar[str] = "none"
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    interval_s: float = float("inf")

    def __init__(self, **params: Any) -> None:
        known = {p.name: p for p in self.PARAMS}
        unknown = set(params) - set(known)
        if unknown:
            raise InputError(f"catch-up law {self.name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(known) or 'none'}")
        for p in self.PARAMS:
            value = params.get(p.name, p.default)
            if isinstance(value, str):
                try:
                    value = coerce_param(p, value)
                except ValueError as exc:
                    raise InputError(f"catch-up law {self.name}: {exc}") from None
            setattr(self, p.name, value)
        self.params = {p.name: getattr(self, p.name) for p in self.PARAMS}
        if not (self.interval_s > 0):
            raise InputError(f"catch-up law {self.name}: interval_s must be positive, got {self.interval_s!r}")

    def describe(self) -> str:
        ps = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({ps})" if ps else self.name

    def reset(self, n: int, bounds: ServiceBounds) -> None:
        self.n = n
        self.bounds = bounds

    def update(self, x: CatchupInput) -> CatchupOutput:
        return CatchupOutput(np.ones(x.rows.size), np.zeros(x.rows.size), x.target_s)


def _sigmoid_rate(delta: np.ndarray, low_dev: float, high_dev: float) -> np.ndarray:
    """dash.js: (1 − c) + 2c / (1 + e^(−5 Δ)), c = the deviation allowed on Δ's side."""
    c = np.where(delta < 0, low_dev, high_dev)
    with np.errstate(over="ignore"):
        return (1.0 - c) + (2.0 * c) / (1.0 + np.exp(-5.0 * delta))


class DashJsCatchup(CatchupLaw):
    """dash.js `CatchupController`, default mode (see the module docstring)."""

    name = "dashjs"
    PARAMS = (
        Param("interval_s", 0.25, "s", "how often the law runs (dash.js runs it on the video element's "
              "timeupdate, about 4 Hz)"),
        Param("playback_rate_min", None, "x", "slowest rate (liveCatchup.playbackRate.min + 1; None: the "
              "ServiceDescription's PlaybackRate@min, else 0.5)"),
        Param("playback_rate_max", None, "x", "fastest rate (liveCatchup.playbackRate.max + 1; None: the "
              "ServiceDescription's PlaybackRate@max, else 1.5)"),
        Param("max_drift_s", None, "s", "seek to the live edge − target beyond this latency drift "
              "(liveCatchup.maxDrift; None: ServiceDescription Latency@max − @target + 0.5 s, else 12 s; "
              "0: never seek)"),
        Param("stall_threshold_s", 0.3, "s", "at or below this buffer level dash.js is in BUFFER_EMPTY and "
              "plays at rate 1 (streaming.buffer.lowLatencyStallThreshold and stallThreshold)"),
    )

    def reset(self, n: int, bounds: ServiceBounds) -> None:
        super().reset(n, bounds)
        lo = self.playback_rate_min if self.playback_rate_min is not None else bounds.playback_rate_min
        hi = self.playback_rate_max if self.playback_rate_max is not None else bounds.playback_rate_max
        # MediaPlayerModel: the deviations, clamped to dash.js's limits (a positive min or a
        # negative max means no change on that side)
        self.low_dev = DASHJS_RATE_DEVIATION if lo is None else float(np.clip(1.0 - lo, 0.0,
                                                                               DASHJS_MIN_DEVIATION_LIMIT))
        self.high_dev = DASHJS_RATE_DEVIATION if hi is None else float(np.clip(hi - 1.0, 0.0,
                                                                                DASHJS_MAX_DEVIATION_LIMIT))
        drift = self.max_drift_s
        if drift is None:
            t, mx = bounds.latency_target_s, bounds.latency_max_s
            drift = (mx - t + DASHJS_SD_DRIFT_MARGIN_S) if t is not None and mx is not None and mx > t \
                else DASHJS_MAX_DRIFT_S
        self.drift_s = float(drift)
        # minPlaybackRateChange (not Safari): 0.02 / (0.5 / max)
        self.min_change = 0.02 * self.high_dev / 0.5

    def _seek(self, x: CatchupInput) -> np.ndarray:
        drift = x.latency_s - x.target_s
        return np.where((self.drift_s > 0) & (drift > self.drift_s), drift, 0.0)

    def _apply(self, x: CatchupInput, new: np.ndarray, seek: np.ndarray) -> CatchupOutput:
        take = (np.abs(x.rate - new) >= self.min_change) | (new == 1.0)
        rate = np.where((seek > 0) | ~take, x.rate, new)
        return CatchupOutput(rate, seek, x.target_s)

    def update(self, x: CatchupInput) -> CatchupOutput:
        # CatchupController.playbackStalled: the BufferController's state (BUFFER_EMPTY at a
        # level of at most the stall threshold once playing, BUFFER_LOADED above it; both
        # re-checked on every buffer level update), also cleared above half the live delay
        stalled = (x.buffer_s <= self.stall_threshold_s) & ~(x.buffer_s > x.target_s / 2)
        new = np.where(stalled, 1.0, _sigmoid_rate(x.latency_s - x.target_s, self.low_dev, self.high_dev))
        return self._apply(x, new, self._seek(x))


class DashJsLoLpCatchup(DashJsCatchup):
    """dash.js `CatchupController` in LoL+ mode (see the module docstring)."""

    name = "dashjs-lolp"
    PARAMS = DashJsCatchup.PARAMS + (
        Param("playback_buffer_min_s", 0.5, "s", "below this buffer the rate follows the buffer, not the "
              "latency (liveCatchup.playbackBufferMin)"),
    )
    #: the latency band around the target without a rate change (±2 % of the target)
    TOLERANCE = 0.02

    def update(self, x: CatchupInput) -> CatchupOutput:
        bmin = float(self.playback_buffer_min_s)
        by_buffer = (1.0 - self.low_dev) + (2.0 * self.low_dev) / (1.0 + np.exp(-5.0 * (x.buffer_s - bmin)))
        delta = x.latency_s - x.target_s
        by_latency = np.where(np.abs(delta) <= self.TOLERANCE * x.target_s, 1.0,
                              _sigmoid_rate(delta, self.low_dev, self.high_dev))
        new = np.where(x.buffer_s < bmin, by_buffer, by_latency)
        return self._apply(x, new, self._seek(x))


class ShakaCatchup(CatchupLaw):
    """Shaka Player `liveSync`: bang-bang around target ± tolerance (see the module docstring)."""

    name = "shaka"
    PARAMS = (
        Param("interval_s", 0.25, "s", "how often the law runs (Shaka runs it on timeupdate, about 4 Hz)"),
        Param("tolerance_s", 0.5, "s", "half-width of the band around the target with rate 1 "
              "(liveSync.targetLatencyTolerance)"),
        Param("playback_rate_max", None, "x", "rate above the band (None: the ServiceDescription's "
              "PlaybackRate@max, else liveSync.maxPlaybackRate 1.1)"),
        Param("playback_rate_min", None, "x", "rate below the band and in panic (None: the "
              "ServiceDescription's PlaybackRate@min, else liveSync.minPlaybackRate 0.95)"),
        Param("panic_mode", False, "bool", "play at the minimum rate for panic_threshold_s after a rebuffer "
              "(liveSync.panicMode)"),
        Param("panic_threshold_s", 60.0, "s", "how long panic mode lasts after a rebuffer"),
    )
    DEFAULT_MAX = 1.1
    DEFAULT_MIN = 0.95

    def reset(self, n: int, bounds: ServiceBounds) -> None:
        super().reset(n, bounds)
        self.rmax = float(self.playback_rate_max if self.playback_rate_max is not None
                          else bounds.playback_rate_max or self.DEFAULT_MAX)
        self.rmin = float(self.playback_rate_min if self.playback_rate_min is not None
                          else bounds.playback_rate_min or self.DEFAULT_MIN)
        self.seen_stalls = np.zeros(n, dtype=np.int64)
        self.last_rebuffer_s = np.full(n, -np.inf)

    def update(self, x: CatchupInput) -> CatchupOutput:
        r = x.rows
        new_stall = x.stall_count > self.seen_stalls[r]
        self.seen_stalls[r] = x.stall_count
        self.last_rebuffer_s[r] = np.where(new_stall | x.stalled, x.clock_s, self.last_rebuffer_s[r])
        tol = float(self.tolerance_s)
        above = x.latency_s > x.target_s + tol
        below = x.latency_s < np.maximum(0.0, x.target_s - tol)
        rate = np.where(above, self.rmax, np.where(below, self.rmin, 1.0))
        if self.panic_mode:
            rate = np.where(x.clock_s - self.last_rebuffer_s[r] <= float(self.panic_threshold_s), self.rmin, rate)
        return CatchupOutput(rate, np.zeros(r.size), x.target_s)


class Media3Catchup(CatchupLaw):
    """Media3 `DefaultLivePlaybackSpeedControl` (see the module docstring)."""

    name = "media3"
    PARAMS = (
        Param("interval_s", 1.0, "s", "minimum interval between speed changes (minUpdateIntervalMs)"),
        Param("proportional_factor", 0.1, "1/s", "k in 1 + k·(latency − target) (proportionalControlFactor)"),
        Param("unit_band_s", 0.02, "s", "unit speed within this of the target (maxLiveOffsetErrorMsForUnitSpeed)"),
        Param("playback_rate_min", None, "x", "slowest speed (None: the ServiceDescription's PlaybackRate@min, "
              "else fallbackMinPlaybackSpeed 0.97)"),
        Param("playback_rate_max", None, "x", "fastest speed (None: the ServiceDescription's PlaybackRate@max, "
              "else fallbackMaxPlaybackSpeed 1.03)"),
        Param("rebuffer_increment_s", 0.5, "s", "target increase per rebuffer "
              "(targetLiveOffsetIncrementOnRebufferMs)"),
        Param("smoothing", 0.999, "-", "smoothing factor of the minimum possible offset per 10 ms call "
              "(minPossibleLiveOffsetSmoothingFactor; applied as smoothing^(interval/10 ms) per evaluation)"),
    )
    DEFAULT_MIN = 0.97
    DEFAULT_MAX = 1.03

    def reset(self, n: int, bounds: ServiceBounds) -> None:
        super().reset(n, bounds)
        self.rmin = float(self.playback_rate_min if self.playback_rate_min is not None
                          else bounds.playback_rate_min or self.DEFAULT_MIN)
        self.rmax = float(self.playback_rate_max if self.playback_rate_max is not None
                          else bounds.playback_rate_max or self.DEFAULT_MAX)
        self.max_offset = np.inf if bounds.latency_max_s is None else float(bounds.latency_max_s)
        self.min_offset = -np.inf if bounds.latency_min_s is None else float(bounds.latency_min_s)
        self.current = np.full(n, np.nan)       # currentTargetLiveOffset
        self.smoothed = np.full(n, np.nan)      # smoothedMinPossibleLiveOffset
        self.deviation = np.zeros(n)            # smoothedMinPossibleLiveOffsetDeviation
        self.adjusted = np.ones(n)              # adjustedPlaybackSpeed
        self.seen_stalls = np.zeros(n, dtype=np.int64)
        self.alpha = float(self.smoothing) ** (float(self.interval_s) / MEDIA3_CALL_PERIOD_S)

    def update(self, x: CatchupInput) -> CatchupOutput:
        r = x.rows
        ideal = np.clip(x.target_s, self.min_offset, self.max_offset)
        cur = np.where(np.isnan(self.current[r]), ideal, self.current[r])
        # notifyRebuffer: the target rises (up to the maximum offset)
        new_stall = x.stall_count > self.seen_stalls[r]
        self.seen_stalls[r] = x.stall_count
        cur = np.where(new_stall, np.minimum(cur + float(self.rebuffer_increment_s), self.max_offset), cur)
        # the smoothed minimum possible offset: the upper bound of what was safely possible
        low = x.latency_s - x.buffer_s
        a = self.alpha
        first = np.isnan(self.smoothed[r])
        sm = np.where(first, low, np.maximum(low, a * np.nan_to_num(self.smoothed[r]) + (1 - a) * low))
        dev = np.where(first, 0.0, a * self.deviation[r] + (1 - a) * np.abs(low - sm))
        self.smoothed[r], self.deviation[r] = sm, dev
        adj = self.adjusted[r]
        safe = sm + 3.0 * dev
        iv = float(self.interval_s)
        k = float(self.proportional_factor)
        max_dec = (adj - 1.0) * iv + (self.rmax - 1.0) * iv
        down = np.maximum(np.maximum(safe, ideal), cur - max_dec)
        slowing = x.latency_s - np.maximum(0.0, adj - 1.0) / k
        up = np.minimum(np.clip(slowing, cur, np.maximum(cur, safe)), self.max_offset)
        cur = np.where(cur > safe, down, up)
        self.current[r] = cur
        err = x.latency_s - cur
        speed = np.where(np.abs(err) < float(self.unit_band_s), 1.0, np.clip(1.0 + k * err, self.rmin, self.rmax))
        self.adjusted[r] = speed
        return CatchupOutput(speed, np.zeros(r.size), cur)


LAWS: dict[str, type[CatchupLaw]] = {c.name: c for c in (CatchupLaw, DashJsCatchup, DashJsLoLpCatchup, ShakaCatchup,
                                                          Media3Catchup)}


def get(name: str, **params: Any) -> CatchupLaw:
    """A catch-up law by name, with its parameters (InputError for an unknown one)."""
    if name not in LAWS:
        raise InputError(f"unknown catch-up law {name!r}; known: {', '.join(LAWS)}")
    return LAWS[name](**params)


def names() -> list[str]:
    return list(LAWS)
