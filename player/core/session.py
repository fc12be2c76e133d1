"""The sans-IO session core: what to fetch next, fed with completed downloads and clock ticks.

In the style of h11, it never opens a socket or sleeps: a driver (the HTTP player, a test,
or the analytical link in `drive_with_link`) asks `next_action(now)`, performs it, and
reports back with `download_done`, `download_failed` or `tick`. It uses the simulator's
buffer model (`player.core.buffer.BufferState`, n = 1) and the same batch policy interface with
one row, so the two worlds share every rule (DESIGN.md, "one model, two clocks").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import abr
from player.core.buffer import BufferState
from player.core.presets import SessionPreset

HISTORY = 8
HORIZON = 5


@dataclass(frozen=True)
class SegmentPlan:
    """What the session knows of the presentation: durations, bitrates, sizes (estimated
    as bitrate × duration where the manifest does not say)."""

    durations_s: np.ndarray          # (K,)
    bitrates_bps: np.ndarray         # (R,) ascending
    sizes_bytes: np.ndarray          # (K, R)

    @classmethod
    def from_content(cls, content) -> "SegmentPlan":
        return cls(content.segment_durations_s, content.bitrates_bps, content.segment_sizes_bytes.astype(float))

    @property
    def n_segments(self) -> int:
        return int(self.durations_s.size)


@dataclass(frozen=True)
class Fetch:
    segment: int
    rung: int
    expected_bytes: float
    # the preset's init-segment request before this one (`SessionPreset.init_bytes`): its
    # body bytes (0: a revalidation, HTTP 304); None: no init request. A driver that models
    # the link (`drive_with_link`) performs it first; a real player fetches its own inits.
    init_bytes: float | None = None


@dataclass(frozen=True)
class Wait:
    until_s: float


@dataclass(frozen=True)
class Done:
    pass


@dataclass
class Event:
    """One line of the event log."""

    t_s: float
    kind: str                 # decision, download, stall_start, stall_end, startup, abandon, failure, wait, end
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"t_s": round(self.t_s, 6), "event": self.kind, **self.data}


class SessionCore:
    """One streaming session's state machine."""

    def __init__(self, plan: SegmentPlan, policy: abr.Policy, preset: SessionPreset,
                 mask: np.ndarray | None = None, buffer_cap_s: float | None = None,
                 startup_threshold_s: float | None = None) -> None:
        self.plan = plan
        self.policy = policy
        self.preset = preset
        R = plan.bitrates_bps.size
        self.mask = np.ones((1, R), dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(1, R)
        self.cap = np.array([buffer_cap_s if buffer_cap_s is not None else preset.buffer_cap_s])
        top = preset.top_cap_s(float(plan.durations_s.sum()))
        self._top_cap = None if top is None else np.array([top])   # the buffer target at the top rung
        thr = startup_threshold_s if startup_threshold_s is not None else 0.0
        self.startup_thr = np.array([max(thr, preset.startup_threshold_s)])
        policy.reset(1, abr.Ladder(plan.bitrates_bps, float(np.median(plan.durations_s))))
        self.state = BufferState.new(1, playing_from_start=preset.startup_is_stall)
        self.now = 0.0
        self.next_segment = 0
        self.in_flight: Fetch | None = None
        self.last_rung = -1
        self.tp_hist = np.full((1, HISTORY), np.nan)
        self.dt_hist = np.full((1, HISTORY), np.nan)
        self.lat_hist = np.full((1, HISTORY), np.nan)
        self._padded = np.concatenate([plan.sizes_bytes, np.repeat(plan.sizes_bytes[-1:], HORIZON, axis=0)])
        self.events: list[Event] = []
        self.chosen: list[int] = []
        self.rebuffer_per_segment: list[float] = []
        self.bytes_downloaded = 0
        self.wasted_bytes = 0
        self.ended = False
        self._stall_during_fetch = 0.0
        self._was_stalled = False
        self._was_playing = bool(self.state.playing[0])
        self._init_last = -1                           # rung of the last init segment requested
        self._init_had = np.zeros(R, dtype=bool)       # rungs whose init segment was requested before

    # -- clock ------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Let wall (or virtual) time pass up to `now`; never backwards."""
        if now < self.now - 1e-9:
            raise ValueError(f"time went backwards: {now} < {self.now}")
        dt = max(0.0, now - self.now)
        if self.ended:  # playback is over: time passes, nothing drains or stalls
            self.now = max(self.now, now)
            return
        if dt > 0:
            stall = float(self.state.elapse(np.array([dt]))[0])
            self._stall_during_fetch += stall
            self.now = now
            if self.state.stalled[0] and not self._was_stalled:
                self._emit("stall_start", buffer_s=0.0)
            self._was_stalled = bool(self.state.stalled[0])

    # -- what to do next ----------------------------------------------------------------------
    def next_action(self, now: float) -> Fetch | Wait | Done:
        self.tick(now)
        if self.in_flight is not None:
            raise RuntimeError("a download is already in flight")
        if self.next_segment >= self.plan.n_segments:
            if not self.ended:
                self._finish()
            return Done()
        k = self.next_segment
        if k > 0:
            target = self.cap
            if self._top_cap is not None and self.last_rung == int(np.flatnonzero(self.mask[0])[-1]):
                target = self._top_cap
            wait = float(self.state.room_wait(self.plan.durations_s[k], target, self.preset.whole_segment_fits,
                                              self.preset.wait_quantum_s)[0])
            if wait > 1e-9:
                self._emit("wait", seconds=wait, buffer_s=float(self.state.buffer_s[0]))
                return Wait(self.now + wait)
        rung = self._decide(k)
        if k == 0 and self._init_last < 0 and not self.preset.init_at_start:
            self._init_last = rung          # the first init came before the session clock
            self._init_had[rung] = True
        fetch = Fetch(k, rung, float(self.plan.sizes_bytes[k, rung]), self._init_for(rung))
        self.in_flight = fetch
        return fetch

    def _init_for(self, rung: int) -> float | None:
        """The init-segment request before a request at `rung`, as the batch simulator's `_Inits`."""
        if self.preset.init_bytes <= 0 or rung == self._init_last:
            return None
        size = 0.0 if self.preset.init_revalidated and self._init_had[rung] else float(self.preset.init_bytes)
        self._init_last = rung
        self._init_had[rung] = True
        return size

    def _decide(self, k: int) -> int:
        R = self.plan.bitrates_bps.size
        if k == 0 and self.preset.first_rung is not None:
            rung = int(abr.apply_mask(np.array([min(self.preset.first_rung, R - 1)]), self.mask)[0])
            self._emit("decision", segment=k, rung=rung, reason="preset first rung")
            return rung
        obs = self.observation(k)
        rung = int(self.policy.select(obs)[0])
        info = {key: _plain(v) for key, v in self.policy.last_info.items()}
        self._emit("decision", segment=k, rung=rung, bitrate_bps=float(self.plan.bitrates_bps[rung]),
                   buffer_s=float(self.state.buffer_s[0]), inputs=info)
        return rung

    def observation(self, k: int) -> abr.Observation:
        s = self.state
        return abr.Observation(
            sessions=np.zeros(1, dtype=np.int64), buffer_s=s.buffer_s.copy(),
            last_rung=np.array([self.last_rung]), throughput_bps=self.tp_hist, download_time_s=self.dt_hist,
            next_sizes_bytes=self._padded[None, k:k + HORIZON], segments_left=np.array([self.plan.n_segments - k]),
            segment_index=np.array([k]), segment_duration_s=float(self.plan.durations_s[k]),
            playing=s.playing.copy(), mask=self.mask, time_s=np.array([self.now]), buffer_cap_s=self.cap,
            latency_s=self.lat_hist)

    # -- reports from the driver --------------------------------------------------------------
    def download_done(self, now: float, size_bytes: int, latency_s: float, transfer_s: float) -> None:
        """The in-flight segment arrived completely at `now`."""
        fetch = self._require_in_flight()
        self.tick(now)
        k, rung = fetch.segment, fetch.rung
        self.state.add(np.array([self.plan.durations_s[k]]), self.startup_thr)
        if self._was_stalled:
            self._emit("stall_end", segment=k)
        self._was_stalled = False
        started = bool(self.state.playing[0]) and not self._was_playing
        self._was_playing = bool(self.state.playing[0])
        measured = max(transfer_s + (latency_s if self.preset.throughput_includes_latency else 0.0), 1e-9)
        self.tp_hist = np.concatenate([self.tp_hist[:, 1:], [[size_bytes * 8.0 / measured]]], axis=1)
        self.dt_hist = np.concatenate([self.dt_hist[:, 1:], [[measured]]], axis=1)
        self.lat_hist = np.concatenate([self.lat_hist[:, 1:], [[latency_s]]], axis=1)
        self.bytes_downloaded += int(size_bytes)
        self.chosen.append(rung)
        self.rebuffer_per_segment.append(self._stall_during_fetch)
        stall_here = self._stall_during_fetch
        self._stall_during_fetch = 0.0  # stalls from now on belong to the next segment
        self.last_rung = rung
        self.next_segment = k + 1
        self.in_flight = None
        self._emit("download", segment=k, rung=rung, bytes=int(size_bytes), latency_s=latency_s,
                   transfer_s=transfer_s, throughput_bps=size_bytes * 8.0 / measured,
                   buffer_s=float(self.state.buffer_s[0]), stall_s=stall_here)
        if started:
            self._emit("startup", startup_s=float(self.state.startup_s[0]))

    def download_failed(self, now: float, wasted_bytes: int, reason: str) -> None:
        """The in-flight request failed (after the driver's own retries): try again, same segment."""
        self._require_in_flight()
        self.tick(now)
        self.wasted_bytes += int(wasted_bytes)
        self.bytes_downloaded += int(wasted_bytes)
        self._emit("failure", segment=self.in_flight.segment, reason=reason, wasted_bytes=int(wasted_bytes))
        self.in_flight = None

    def check_abandon(self, now: float, bytes_done: float, elapsed_s: float, latency_s: float | None = None) -> int:
        """Offer an in-flight download to the policy's abandonment hook; -1 carries on.
        When it returns a rung, the driver aborts and calls `abandoned`. `latency_s`: request
        to first byte (the elapsed time while no byte has come; None: unknown)."""
        fetch = self._require_in_flight()
        self.tick(now)
        k = fetch.segment
        prog = abr.Progress(
            sessions=np.zeros(1, dtype=np.int64), rung=np.array([fetch.rung]), bytes_done=np.array([bytes_done]),
            bytes_total=np.array([fetch.expected_bytes]), elapsed_s=np.array([elapsed_s]),
            buffer_s=self.state.buffer_s.copy(), segment_duration_s=float(self.plan.durations_s[k]),
            sizes_bytes=self.plan.sizes_bytes[k][None, :], mask=self.mask,
            latency_s=None if latency_s is None else np.array([latency_s]))
        new = int(self.policy.abandon(prog)[0])
        return new if 0 <= new < fetch.rung else -1

    def abandoned(self, now: float, wasted_bytes: int, new_rung: int, reason: str = "policy") -> Fetch:
        """The driver aborted the in-flight download; refetch the same segment at `new_rung`.

        `reason` says why: "policy" (the abandonment hook), "missing" (the server has no such
        object at that rung), "license" (the license no longer allows the rung)."""
        fetch = self._require_in_flight()
        self.tick(now)
        self.wasted_bytes += int(wasted_bytes)
        self.bytes_downloaded += int(wasted_bytes)
        self._emit("abandon", segment=fetch.segment, from_rung=fetch.rung, to_rung=new_rung,
                   wasted_bytes=int(wasted_bytes), reason=reason)
        refetch = Fetch(fetch.segment, new_rung, float(self.plan.sizes_bytes[fetch.segment, new_rung]),
                        self._init_for(new_rung))
        self.in_flight = refetch
        return refetch

    def pause(self, now: float) -> None:
        """The user paused: the playhead stops (no drain, no stall); downloads go on to the cap."""
        self.tick(now)
        if not self.state.paused[0]:
            self.state.paused[0] = True
            self._emit("pause", buffer_s=float(self.state.buffer_s[0]))

    def resume(self, now: float) -> None:
        self.tick(now)
        if self.state.paused[0]:
            self.state.paused[0] = False
            self._emit("resume", buffer_s=float(self.state.buffer_s[0]))

    def set_mask(self, allowed: np.ndarray, reason: str) -> bool:
        """Change which rungs may be chosen (a license policy arrived or was renewed).
        Returns whether anything changed; a change is logged as a "mask" event."""
        new = np.asarray(allowed, dtype=bool).reshape(self.mask.shape)
        if not new.any():
            raise ValueError("a mask must allow at least one rung")
        if np.array_equal(new, self.mask):
            return False
        self.mask = new
        self._emit("mask", allowed=new[0].tolist(), reason=reason)
        return True

    def _require_in_flight(self) -> Fetch:
        if self.in_flight is None:
            raise RuntimeError("no download in flight")
        return self.in_flight

    def _finish(self) -> None:
        if self.preset.play_out_at_end:
            self.state.play_out()
            self.now = float(self.state.clock_s[0])
        self.ended = True
        self._emit("end", played_s=float(self.state.played_s[0]))

    def _emit(self, kind: str, **data: Any) -> None:
        self.events.append(Event(self.now, kind, data))

    # -- results ------------------------------------------------------------------------------
    @property
    def startup_s(self) -> float:
        return float(self.state.startup_s[0])

    @property
    def stall_count(self) -> int:
        return int(self.state.stall_count[0])


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()[0] if v.ndim >= 1 and v.shape[0] == 1 else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def drive_with_link(core: SessionCore, link, trace_index: int = 0) -> SessionCore:
    """Run a session to the end on the analytical link, one request at a time (virtual time).

    The differential tests use this to hold the session core and the batch simulator to
    the same answers; it is also the reference for the HTTP driver's loop.
    """
    lag = 0.0  # session clock minus trace clock (Pensieve's latency is outside trace time)
    idx = np.array([trace_index])
    p = core.preset
    abandoning = p.abandonment and type(core.policy).abandon is not abr.Policy.abandon
    for _ in range(10 * core.plan.n_segments + 10):
        action = core.next_action(core.now)
        if isinstance(action, Done):
            return core
        if isinstance(action, Wait):
            core.tick(action.until_s)
            continue
        while True:
            if action.init_bytes is not None:  # the init segment first, on the same link
                it = link.transfer(idx, np.array([core.now - lag]), np.array([action.init_bytes]))
                lag += float(it.total_s[0]) - float(it.trace_advance_s[0])
                core.tick(core.now + float(it.total_s[0]))
            start = core.now
            tr = link.transfer(idx, np.array([start - lag]), np.array([action.expected_bytes]))
            total, lat = float(tr.total_s[0]), float(tr.latency_s[0])
            new = -1
            if abandoning and action.rung > 0:
                first_byte = start - lag + (lat if p.link.latency_advances_trace else 0.0)
                j = 1
                while j * p.abandon_interval_s < total:
                    e = j * p.abandon_interval_s
                    flowing = max(e - lat, 0.0)
                    if link.params.noise is None:
                        got = float(link.delivered_bits(idx, np.array([first_byte]), np.array([first_byte + flowing]))[0])
                        got *= p.link.efficiency / 8.0
                    else:
                        got = action.expected_bytes * flowing / max(float(tr.transfer_s[0]), 1e-12)
                    got = min(got, action.expected_bytes)
                    new = core.check_abandon(start + e, got, e, min(lat, e))
                    if new >= 0:
                        if not p.link.latency_advances_trace:
                            lag += lat
                        action = core.abandoned(start + e, int(got), new)
                        break
                    j += 1
            if new < 0:
                break
        lag += total - float(tr.trace_advance_s[0])
        core.download_done(start + total, int(action.expected_bytes), lat, float(tr.transfer_s[0]))
    raise RuntimeError("session did not end")  # pragma: no cover - bounded loop guard
