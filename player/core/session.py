"""The sans-IO session core: what to fetch next, fed with completed downloads and clock ticks.

In the style of h11, it never opens a socket or sleeps: a driver (the HTTP player, a test,
or the analytical link in `drive_with_link`) asks `next_action(now)`, performs it, and
reports back with `download_done`, `download_failed` or `tick`. Every rule comes from
`player.core.rules` with one row (the batch simulator runs the same rules with n rows), so
the two worlds share them (DESIGN.md, "one model, two clocks"); this module keeps only the
event-driven clock and the event log (`player.core.events`).

A live session (a core made with `live`, `player.core.live.LiveRows`) also asks the live
rules, in the order the simulator's live lockstep (`player.core.livesim`) keeps: the wait for
room (once per request), the seeks due, the wait for the segment's availability, the
decision; a driver reports each low-latency chunk as it arrives (`chunk_arrived`) and ends
the session at its duration (`end_session`, dropping what is in flight).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import abr
from abr.errors import PolicyOutputError
from netem.errors import InputError
from player.core import events as ev
from player.core.fast_switch import refetch_bound
from player.core.live import LiveRows
from player.core.presets import SessionPreset
from player.core.rules import (MAX_ATTEMPTS, DecisionHook, DecisionRecord, SegmentPlan, SessionRows, accept_abandon,
                               can_abandon, delivered_bytes, next_offer_s, payload_link)
from player.core.summary import session_summary

__all__ = ["Done", "Fetch", "SegmentPlan", "SessionCore", "Wait", "drive_with_link"]


@dataclass(frozen=True)
class Fetch:
    segment: int
    rung: int
    expected_bytes: float
    # the preset's init-segment request before this one (`SessionPreset.init_bytes`): its
    # body bytes (0: a revalidation, HTTP 304); None: no init request. A driver that models
    # the link (`drive_with_link`) performs it first; a real player fetches its own inits.
    init_bytes: float | None = None
    # fast switching (`player.core.fast_switch`): the segment is in the buffer already and this
    # request replaces it (its media does not add to the buffer)
    refetch: bool = False
    # live: the segment's index since availabilityStartTime (the driver turns it into a URL)
    media_index: int | None = None


@dataclass(frozen=True)
class Wait:
    until_s: float


@dataclass(frozen=True)
class Done:
    pass


_ROW = np.zeros(1, dtype=np.int64)   # the core's one row, as an index array


class _RowView:
    """A read-only scalar view of the core's one row of an array the rules keep
    (`owner` is "rules" or "state", the buffer): the core's drivers and listeners read
    plain numbers, the rules keep arrays of one row."""

    def __init__(self, owner: str, name: str, kind: type, doc: str) -> None:
        self.owner, self.name, self.kind, self.__doc__ = owner, name, kind, doc

    def __get__(self, core: "SessionCore | None", cls: type | None = None):
        if core is None:
            return self
        return self.kind(getattr(getattr(core, self.owner), self.name)[0])


_EPS = 1e-9


class SessionCore:
    """One streaming session's state machine."""

    def __init__(self, plan: SegmentPlan, policy: abr.Policy, preset: SessionPreset,
                 mask: np.ndarray | None = None, buffer_cap_s: float | None = None,
                 startup_threshold_s: float | None = None, on_decision: DecisionHook | None = None,
                 live: LiveRows | None = None) -> None:
        self.policy = policy
        self.preset = preset
        self.rules = SessionRows(plan, preset, 1, mask=mask, buffer_cap_s=buffer_cap_s,
                                 startup_threshold_s=startup_threshold_s, live=live)
        self.live = live
        self.plan = plan = self.rules.plan     # the segments as the preset plays them
        policy.reset(1, abr.Ladder(plan.bitrates_bps, float(np.median(plan.durations_s))))
        self.on_decision = on_decision
        self.now = 0.0
        self.next_segment = 0
        self.in_flight: Fetch | None = None
        self.events: list[ev.Event] = []
        self.chosen: list[int] = []
        self.rebuffer_per_segment: list[float] = []
        self.bytes_downloaded = 0
        self.wasted_bytes = 0
        self.abandons = 0
        self.refetches = 0                 # fast switching's re-fetched segments
        self.ended = False
        self._stall_during_fetch = 0.0
        self._was_stalled = False
        self._stall_started_s = 0.0
        self._was_playing = bool(self.state.playing[0])
        self._delayed_for: int = -1        # the segment whose policy delay has been waited
        self._pending: tuple[int, float] | None = None   # (rung, delay) decided, waiting out the delay
        # live: per segment, the latency and rate when it arrived; the stage of the next request
        # (0 room, 1 seeks and availability, 2 decision) and the chunks of the one in flight
        self.live_latency: list[float] = []
        self.rates: list[float] = []
        self._stage = (-1, 0)
        self._request_s = 0.0
        self._available_s = np.nan
        self._chunks: list[tuple[float, float, float, float]] = []
        if live is not None:
            live.changes = []
            d = live.describe()
            self._emit(ev.LiveJoin, delay_s=d["delay_s"], delay_source=d["delay_source"], edge0_s=d["edge0_s"],
                       start_s=d["start_s"], first_segment=d["first_segment"],
                       segment_duration_s=d["segment_duration_s"], low_latency=d["low_latency"],
                       catchup=d["catchup"], duration_s=d["duration_s"],
                       extra={k: d[k] for k in ("chunk_s", "availability_time_offset_s", "time_shift_depth_s")})

    # -- read-only views ----------------------------------------------------------------------
    @property
    def state(self):
        """The buffer (`player.core.buffer.BufferState`, one row)."""
        return self.rules.buffer

    @property
    def mask(self) -> np.ndarray:
        return self.rules.mask

    buffer_cap_s = _RowView("rules", "buffer_cap_s", float, "The buffer's cap now (seconds).")
    buffer_s = _RowView("state", "buffer_s", float, "Media in the buffer now (seconds).")
    last_rung = _RowView("rules", "last_rung", int, "The rung of the newest decision (-1 before the first).")
    startup_s = _RowView("state", "startup_s", float, "When playback started (NaN before it has).")
    stall_count = _RowView("state", "stall_count", int, "Stalls so far (the startup wait is not one).")

    @property
    def last_throughput_bps(self) -> float:
        """The newest throughput sample (NaN before the first download)."""
        return float(self.rules.throughput.last()[0])

    @property
    def last_download_s(self) -> float:
        """The newest sample's download time (NaN before the first download)."""
        return float(self.rules.download_time.last()[0])

    @property
    def live_latency_s(self) -> float | None:
        """Live: wall clock − presentation time of the playhead now (None: not live)."""
        return None if self.live is None else float(self.live.latency(self.state, _ROW)[0])

    @property
    def playback_rate(self) -> float:
        return 1.0 if self.live is None else float(self.live.rate[0])

    @property
    def target_latency_s(self) -> float | None:
        return None if self.live is None else float(self.live.target_s[0])

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
            stall = float(self.rules.elapse(np.array([dt]))[0])
            if stall > 0 and not self._was_stalled:
                self._stall_started_s = now - stall
            self._stall_during_fetch += stall
            self.now = now
            if self.state.stalled[0] and not self._was_stalled:
                self._emit(ev.StallStart, buffer_s=0.0)
            self._was_stalled = bool(self.state.stalled[0])
            if self.live is not None and self.live.changes:
                for _, t, rate, latency in self.live.changes:
                    self.events.append(ev.Rate(t, playback_rate=rate, live_latency_s=latency,
                                               target_latency_s=float(self.live.target_s[0])))
                self.live.changes.clear()

    # -- what to do next ----------------------------------------------------------------------
    def next_action(self, now: float) -> Fetch | Wait | Done:
        self.tick(now)
        if self.in_flight is not None:
            raise RuntimeError("a download is already in flight")
        if self.live is not None:
            return self._next_live()
        fast = self.rules.fast
        k = self.next_segment if fast is None else int(fast.next_index[0])
        if k >= self.plan.n_segments:
            if not self.ended:
                self._finish()
            return Done()
        if self._pending is None:
            wait = float(self.rules.room_wait_s(k, _ROW)[0])
            if wait > 1e-9:
                self._emit(ev.Wait, seconds=wait, buffer_s=self.buffer_s)
                return Wait(self.now + wait)
            rung, delay = self._decide(k)
            if delay > 0:
                self._pending = (rung, self.now + delay)
                self._emit(ev.Wait, seconds=delay, buffer_s=self.buffer_s, reason="policy delay")
                return Wait(self.now + delay)
        else:
            rung, until = self._pending
            if self.now < until - 1e-9:
                return Wait(until)
        self._pending = None
        rules = self.rules
        if rules.inits is not None:
            rules.first_inits_before_clock(k, _ROW, np.array([rung]))
        if fast is not None:
            st = self.state
            to = int(fast.target(_ROW, np.array([rung]), rules.last_rung, fast.playhead_s(st), st.buffer_s,
                                 np.array([self.now]))[0])
            if to >= 0:
                fast.redirect(_ROW, np.array([to]))
                k = to
        init_bytes = self._init_request(rung) if rules.inits is not None else None
        self.in_flight = fetch = self._fetch(k, rung, init_bytes)
        return fetch

    def _fetch(self, k: int, rung: int, init_bytes: float | None) -> Fetch:
        """The request for segment `k` at `rung`; a re-fetch (fast switching) of a version
        fetched before has no body (a 304)."""
        size = float(self.plan.sizes_bytes[k, rung])
        fast = self.rules.fast
        if fast is None or not fast.is_refetch(_ROW, k)[0]:
            return Fetch(k, rung, size, init_bytes)
        body = float(fast.body_bytes(_ROW, k, np.array([rung]), np.array([size]))[0])
        return Fetch(k, rung, body, init_bytes, refetch=True)
    def _next_live(self) -> Fetch | Wait | Done:
        """`next_action` of a live session (see the module docstring)."""
        live, k = self.live, self.next_segment
        end = live.end_s
        if self.ended or self.now >= end - _EPS or k >= self.plan.n_segments:
            if not self.ended:
                self._finish()
            return Done()
        if self._pending is None:
            seg, stage = self._stage
            if seg != k:
                seg, stage = k, 0
            if stage == 0:
                self._stage = (k, 1)
                wait = float(self.rules.room_wait_s(k, _ROW)[0])
                if wait > _EPS:
                    self._emit(ev.Wait, seconds=wait, buffer_s=self.buffer_s)
                    return Wait(min(self.now + wait, end))
            if stage <= 1:
                self._stage = (k, 2)
                before = self.live_latency_s
                seeked, gone = live.before_request(self.state, k, _ROW)
                if seeked.size:
                    self._emit(ev.Seek, skipped_s=before - self.live_latency_s, live_latency_s=self.live_latency_s,
                               reason="gone" if gone[0] else "catch-up", next_segment=int(live.segment(k, _ROW)[0]))
                avail = float(live.available_at(k, _ROW)[0])
                if avail > self.now:
                    self._emit(ev.Wait, seconds=avail - self.now, buffer_s=self.buffer_s, reason="availability")
                    return Wait(min(avail, end))
            rung, delay = self._decide(k)
            if delay > 0:
                self._pending = (rung, self.now + delay)
                self._emit(ev.Wait, seconds=delay, buffer_s=self.buffer_s, reason="policy delay")
                return Wait(min(self.now + delay, end))
        else:
            rung, until = self._pending
            if self.now < until - 1e-9:
                return Wait(min(until, end))
        self._pending = None
        self._request_s = self.now
        self._available_s = float(live.available_for_s(k, _ROW, np.array([self.now]))[0])
        self._chunks = []
        fetch = Fetch(k, rung, float(self.rules.segment_sizes(k, _ROW)[0, rung]), None,
                      media_index=int(live.segment(k, _ROW)[0]))
        self.in_flight = fetch
        return fetch

    def _chunk_bytes(self, fetch: Fetch, size_bytes: float) -> np.ndarray:
        """(C,) the bytes of each chunk of a live request (`LiveRows.chunk_bytes`)."""
        return self.live.chunk_bytes(np.array([size_bytes]), fetch.segment, _ROW, np.array([fetch.rung]))[0]

    def live_chunks(self, fetch: Fetch) -> tuple[np.ndarray, np.ndarray]:
        """A live request's chunks as the model has them: bytes of each (the content's own
        chunks, else the segment's in the model's shares) and the session time each is produced."""
        return (self._chunk_bytes(fetch, fetch.expected_bytes),
                self.live.releases(fetch.segment, _ROW)[0])

    def chunk_arrived(self, now: float, size_bytes: int, media_s: float | None = None,
                      first_byte_s: float | None = None) -> None:
        """A low-latency chunk of the in-flight segment arrived whole at `now` (its first byte
        at `first_byte_s`): its playable media joins the buffer. `media_s`: its media
        duration (None: the model's nominal chunk)."""
        fetch = self._require_in_flight()
        self.tick(now)
        c = len(self._chunks)
        live = self.live
        if media_s is None:
            media_s = float(live.chunk_ends[min(c, live.chunk_ends.size - 1)]
                            - live.chunk_starts[min(c, live.chunk_starts.size - 1)])
        was_playing = bool(self.state.playing[0])
        self.rules.chunk_arrived(fetch.segment, np.array([float(media_s)]), _ROW)
        start = (now if first_byte_s is None else first_byte_s) - self._request_s
        self._chunks.append((float(size_bytes), start, now - self._request_s, self.buffer_s))
        self._arrival_events(fetch.segment, was_playing)
        self._emit(ev.Chunk, segment=fetch.segment, index=c, bytes=int(size_bytes), media_s=float(media_s),
                   buffer_s=self.buffer_s)

    def _arrival_events(self, k: int, was_playing: bool) -> None:
        """A stall ended or playback started with media that just arrived."""
        if self._was_stalled and not self.state.stalled[0]:
            self._emit(ev.StallEnd, segment=k, stall_s=self.now - self._stall_started_s)
            self._was_stalled = False
        if bool(self.state.playing[0]) and not was_playing:
            self._was_playing = True
            self._emit(ev.Startup, startup_s=self.startup_s)

    def segment_gone(self, now: float, wasted_bytes: int = 0) -> None:
        """The origin says the in-flight live segment left its time-shift buffer (HTTP 410):
        the request failed, and the next one seeks to the live edge first."""
        fetch = self._require_in_flight()
        self.download_failed(now, wasted_bytes, "gone (HTTP 410)")
        self.live.pending_seek[0] = True
        self._stage = (fetch.segment, 1)

    def clock_corrected(self, now: float, delta_s: float) -> None:
        """The driver learned that the origin's clock is `delta_s` further ahead than it
        thought (a new clock synchronisation): the live edge moves by as much, and with it the
        latency; the next request is prepared again (seeks, availability)."""
        self.tick(now)
        self.live.edge0 += delta_s
        if self.in_flight is None and self._pending is None:
            self._stage = (self.next_segment, 1)

    def end_session(self, now: float) -> None:
        """The live session's duration is up at `now`: what is in flight is dropped, nothing
        is played out (a driver a hair late ends it at the core's clock)."""
        self.tick(max(now, self.now))
        self.in_flight = None
        self._pending = None
        if not self.ended:
            self._finish()

    def _init_request(self, rung: int) -> float | None:
        need, size = self.rules.inits.request(_ROW, np.array([rung]))
        return float(size[0]) if need[0] else None

    def _decide(self, k: int) -> tuple[int, float]:
        seen: list[DecisionRecord] = []
        try:
            rung_a, delay_a = self.rules.choose(self.policy, k, _ROW, hook=seen.append, time_s=np.array([self.now]))
        except PolicyOutputError as exc:   # a user's policy answered nonsense: one line, not a traceback
            raise InputError(str(exc)) from None
        rec = seen[0]
        if self.on_decision is not None:
            self.on_decision(rec)
        rung = int(rung_a[0])
        delay = float(delay_a[0]) if delay_a is not None else 0.0
        self._emit(ev.Decision, segment=k, rung=rung, bitrate_bps=float(self.plan.bitrates_bps[rung]),
                   buffer_s=self.buffer_s, observation=self._observed(k),
                   inputs={key: _plain(v) for key, v in rec.inputs.items()}, reason=rec.reason)
        return rung, delay

    def _observed(self, k: int) -> dict[str, Any]:
        """What the decision's event reports of the observation (plain numbers)."""
        tp, dt = self.last_throughput_bps, self.last_download_s
        return {"buffer_s": self.buffer_s, "last_rung": self.last_rung,
                "last_throughput_bps": tp if np.isfinite(tp) else None,
                "last_download_s": dt if np.isfinite(dt) else None,
                "segments_left": int(self.plan.n_segments - k), "allowed": self.mask[0].tolist(),
                "playing": bool(self.state.playing[0])}

    def observation(self, k: int) -> abr.Observation:
        """What the policy would see before choosing segment `k` now."""
        return self.rules.observation(k, _ROW, time_s=np.array([self.now]))

    # -- reports from the driver --------------------------------------------------------------
    def download_done(self, now: float, size_bytes: int, latency_s: float, transfer_s: float,
                      first_byte_s: float | None = None) -> None:
        """The in-flight segment arrived completely at `now`. Live: bytes not reported by
        `chunk_arrived` are its last chunk, whose first byte came at `first_byte_s`."""
        fetch = self._require_in_flight()
        self.tick(now)
        k, rung = fetch.segment, fetch.rung
        if fetch.refetch:
            self._refetched(fetch, size_bytes, latency_s, transfer_s)
            return
        sample = float(self.rules.downloaded(k, np.array([rung]), np.array([float(size_bytes)]),
                                             np.array([latency_s]), np.array([transfer_s]), _ROW)[0])
        if self.rules.fast is not None:
            self.rules.fast.arrived(_ROW, np.array([k]), np.array([rung]), np.array([float(size_bytes)]),
                                    self.rules.fast.playhead_s(self.state), None, latency_s, transfer_s)
        live_fields = {}
        if self.live is not None:
            self._last_chunk(fetch, float(size_bytes), now, first_byte_s)
            self._commit_chunks()
            lat = self.live_latency_s
            self.live_latency.append(lat)
            self.rates.append(self.playback_rate)
            live_fields = {"live_latency_s": lat, "playback_rate": self.playback_rate}
        if self._was_stalled and not self.state.stalled[0]:
            self._emit(ev.StallEnd, segment=k, stall_s=self.now - self._stall_started_s)
        self._was_stalled = bool(self.state.stalled[0])
        started = bool(self.state.playing[0]) and not self._was_playing
        self._was_playing = bool(self.state.playing[0])
        self.bytes_downloaded += int(size_bytes)
        self.chosen.append(rung)
        self.rebuffer_per_segment.append(self._stall_during_fetch)
        stall_here = self._stall_during_fetch
        self._stall_during_fetch = 0.0  # stalls from now on belong to the next segment
        self.next_segment = k + 1
        self.in_flight = None
        self._emit(ev.Download, segment=k, rung=rung, bytes=int(size_bytes), latency_s=latency_s,
                   transfer_s=transfer_s, throughput_bps=sample, buffer_s=self.buffer_s, stall_s=stall_here,
                   **live_fields)
        if started:
            self._emit(ev.Startup, startup_s=self.startup_s)

    def _refetched(self, fetch: Fetch, size_bytes: int, latency_s: float, transfer_s: float) -> None:
        """A re-fetched segment arrived (fast switching): a throughput sample and the rung,
        no media for the buffer (a stall goes on); its version plays if it came in time."""
        k, rung, body = fetch.segment, np.array([fetch.rung]), np.array([float(size_bytes)])
        fast = self.rules.fast
        version = np.array([float(self.plan.sizes_bytes[k, fetch.rung])])
        lat, xfer = np.array([latency_s]), np.array([transfer_s])
        sample = float(self.rules.sampled(rung, *fast.sample(_ROW, k, rung, version, body, lat, xfer), _ROW)[0])
        if fast.arrived(_ROW, np.array([k]), rung, version, fast.playhead_s(self.state), body, lat, xfer)[0]:
            self.chosen[k] = fetch.rung
        self.bytes_downloaded += int(size_bytes)
        self.refetches += 1
        self.in_flight = None
        self._emit(ev.Download, segment=k, rung=fetch.rung, bytes=int(size_bytes), latency_s=latency_s,
                   transfer_s=transfer_s, throughput_bps=sample, buffer_s=self.buffer_s, stall_s=0.0, refetch=True)
    def _last_chunk(self, fetch: Fetch, size_bytes: float, now: float, first_byte_s: float | None) -> None:
        """A completed live download whose last chunk the driver did not report (it gives the
        chunk's `first_byte_s` instead, as `drive_with_link` does): that chunk, with the
        model's share of the bytes when every other chunk was reported."""
        C = self.live.facts.chunks
        if first_byte_s is None or not self.live.chunks.width or len(self._chunks) >= C:
            return
        if len(self._chunks) == C - 1:
            rest = float(self._chunk_bytes(fetch, size_bytes)[-1])
        else:
            rest = size_bytes - sum(c[0] for c in self._chunks)
        if rest > 0:
            self._chunks.append((rest, first_byte_s - self._request_s, now - self._request_s, self.buffer_s))

    def _commit_chunks(self) -> None:
        """The completed download's chunks become the observation's chunk timing (more than
        the log holds: the extra ones merged into the last)."""
        log = self.live.chunks
        if not log.width:
            return
        if not self._chunks:
            log.set(_ROW, np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0)),
                    np.array([self._available_s]))
            return
        a = np.array(self._chunks, dtype=np.float64)
        if a.shape[0] > log.width:
            tail = a[log.width - 1:]
            merged = np.array([tail[:, 0].sum(), tail[0, 1], tail[-1, 2], tail[-1, 3]])
            a = np.vstack([a[:log.width - 1], merged])
        log.set(_ROW, a[None, :, 0], a[None, :, 1], a[None, :, 2], a[None, :, 3], np.array([self._available_s]))
        self._chunks = []

    def download_failed(self, now: float, wasted_bytes: int, reason: str) -> None:
        """The in-flight request failed (after the driver's own retries): try again, same segment."""
        fetch = self._require_in_flight()
        self.tick(now)
        self.wasted_bytes += int(wasted_bytes)
        self.bytes_downloaded += int(wasted_bytes)
        self._emit(ev.Failure, segment=fetch.segment, reason=reason, wasted_bytes=int(wasted_bytes))
        self.in_flight = None

    def check_abandon(self, now: float, bytes_done: float, elapsed_s: float, latency_s: float | None = None) -> int:
        """Offer an in-flight download to the policy's abandonment hook; -1 carries on.
        When it returns a rung, the driver aborts and calls `abandoned`. `latency_s`: from the
        request to the first byte (the elapsed time while none has come; None: not known)."""
        fetch = self._require_in_flight()
        self.tick(now)
        k = fetch.segment
        prog = abr.Progress(
            sessions=_ROW, rung=np.array([fetch.rung]), bytes_done=np.array([bytes_done]),
            bytes_total=np.array([fetch.expected_bytes]), elapsed_s=np.array([elapsed_s]),
            buffer_s=self.state.buffer_s.copy(), segment_duration_s=float(self.plan.durations_s[k]),
            sizes_bytes=self.plan.sizes_bytes[k][None, :], mask=self.mask,
            request_latency_s=None if latency_s is None else np.array([float(latency_s)]))
        new = np.asarray(self.policy.abandon(prog), dtype=np.int64)
        return int(new[0]) if accept_abandon(new, np.array([fetch.rung]))[0] else -1

    def abandoned(self, now: float, wasted_bytes: int, new_rung: int, reason: str = "policy",
                  decide_again: bool = False) -> Fetch | Wait:
        """The driver aborted the in-flight download; refetch the same segment at `new_rung`.

        `reason` says why: "policy" (the abandonment hook), "missing" (the server has no such
        object at that rung), "license" (the license no longer allows the rung).
        `decide_again` (a driver following the preset's `abandon_reselect`, as Sabre does):
        the policy chooses the segment's rung afresh instead; the answer is `next_action`'s,
        a Fetch, or a Wait (for room or the policy's delay) after which `next_action` fetches."""
        fetch = self._require_in_flight()
        self.tick(now)
        self.wasted_bytes += int(wasted_bytes)
        self.bytes_downloaded += int(wasted_bytes)
        self.abandons += 1
        if reason == "policy" and self.rules.fast is not None:
            self.rules.fast.abandoned(_ROW, np.array([self.now]))
        self._emit(ev.Abandon, segment=fetch.segment, from_rung=fetch.rung, to_rung=new_rung,
                   wasted_bytes=int(wasted_bytes), reason=reason)
        if decide_again:
            self.in_flight = None
            return self.next_action(self.now)
        init = self._init_request(new_rung) if self.rules.inits is not None else None
        if self.live is None:
            again = self._fetch(fetch.segment, new_rung, init)
        else:
            size = float(self.rules.segment_sizes(fetch.segment, _ROW)[0, new_rung])
            again = Fetch(fetch.segment, new_rung, size, init, media_index=fetch.media_index)
            self._chunks = []
        self.in_flight = again
        return again

    def pause(self, now: float) -> None:
        """The user paused: the playhead stops (no drain, no stall); downloads go on to the cap."""
        self.tick(now)
        if not self.state.paused[0]:
            self.state.paused[0] = True
            self._emit(ev.Pause, buffer_s=self.buffer_s)

    def resume(self, now: float) -> None:
        self.tick(now)
        if self.state.paused[0]:
            self.state.paused[0] = False
            self._emit(ev.Resume, buffer_s=self.buffer_s)

    def set_mask(self, allowed: np.ndarray, reason: str) -> bool:
        """Change which rungs may be chosen (a license policy arrived or was renewed).
        Returns whether anything changed; a change is logged as a "mask" event."""
        new = np.asarray(allowed, dtype=bool).reshape(self.mask.shape)
        if not new.any():
            raise ValueError("a mask must allow at least one rung")
        if np.array_equal(new, self.mask):
            return False
        self.rules.set_mask(new)
        self._emit(ev.Mask, allowed=new[0].tolist(), reason=reason)
        return True

    def _require_in_flight(self) -> Fetch:
        if self.in_flight is None:
            raise RuntimeError("no download in flight")
        return self.in_flight

    def _finish(self) -> None:
        if self.live is not None:   # ended by duration: stalls since the last arrival count with it
            if self.rebuffer_per_segment:
                self.rebuffer_per_segment[-1] += self._stall_during_fetch
                self._stall_during_fetch = 0.0
        elif self.preset.play_out_at_end:
            self.state.play_out()
            self.now = float(self.state.clock_s[0])
        self.ended = True
        self._emit(ev.End, played_s=float(self.state.played_s[0]))

    def _emit(self, kind: type[ev.Event], **data: Any) -> None:
        self.events.append(kind(t_s=self.now, **data))

    # -- results ------------------------------------------------------------------------------
    def summary(self, qoe_model: str = "linear", labels: dict[str, Any] | None = None) -> dict[str, Any]:
        """The session's summary so far (`player.core.summary`): the simulator's fields over
        the segments that arrived; `complete` says whether every segment did."""
        n = len(self.chosen)
        wasted = self.wasted_bytes
        fast = self.rules.fast
        if fast is not None:  # fast switching: re-fetched versions that never played are wasted too
            wasted += int(fast.wasted_bytes()[0])
        live = {}
        if self.live is not None:
            m = self.live.metrics(self.state)
            live = {"live_latency_s": np.asarray(self.live_latency), "playback_rate": np.asarray(self.rates),
                    "live": {k: v[0].item() for k, v in m.items()}, "n_segments": None}
        out = session_summary(
            np.asarray(self.chosen, dtype=np.int64), np.asarray(self.rebuffer_per_segment[:n]),
            self.plan.durations_s, self.plan.bitrates_bps, startup_s=self.startup_s,
            session_s=float(self.state.clock_s[0]), stall_count=self.stall_count,
            bytes_=self.bytes_downloaded - wasted, wasted_bytes=wasted, abandons=self.abandons,
            heights=self.plan.heights, qoe_skip_first=self.preset.qoe_skip_first, qoe_model=qoe_model,
            played_s=float(self.state.played_s[0]), **{"n_segments": self.plan.n_segments, **live},
            labels={"abr_params": self.policy.describe(), **(labels or {}),
                    "played_s": float(self.state.played_s[0])})
        if fast is not None:
            out["refetches"] = self.refetches
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()[0] if v.ndim >= 1 and v.shape[0] == 1 else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def drive_with_link(core: SessionCore, link, trace_index: int = 0, *, trace_start_s: float = 0.0,
                    overhead_s: Callable[[Fetch], float] | None = None) -> SessionCore:
    """Run a session to the end on the analytical link, one request at a time (virtual time).

    The differential tests use this to hold the session core and the batch simulator to
    the same answers; it is also the reference for the HTTP driver's loop. The trace starts
    at `trace_start_s` (as `SessionSpec.trace_start_s`); `overhead_s(fetch)`, when given, is
    each media request's own overhead in place of the link's (`netem.link.Link.transfer`).
    """
    if core.live is not None:
        if trace_start_s or overhead_s is not None:
            raise ValueError("a live session is driven from the trace's start with the link's own overhead")
        return _drive_live(core, link, trace_index)
    lag = -float(trace_start_s)  # session clock minus trace clock (Pensieve's latency is outside trace time)
    idx = np.array([trace_index])
    p = core.preset
    abandoning = can_abandon(p, core.policy)
    offered_attempts = MAX_ATTEMPTS if p.abandon_reselect else 10 ** 9
    payload = payload_link(link) if abandoning and p.abandon_min_bytes > 0 else None
    attempts = {}          # segment -> requests made for it so far
    bound = (MAX_ATTEMPTS + 10) * core.plan.n_segments + 10
    if core.rules.fast is not None:
        bound += 10 * refetch_bound(core.plan.n_segments, core.plan.n_rungs)
    for action in _fetches(core, bound):
        while True:
            if action.init_bytes is not None:  # the init segment first, on the same link
                it = link.transfer(idx, np.array([core.now - lag]), np.array([action.init_bytes]))
                lag += float(it.total_s[0]) - float(it.trace_advance_s[0])
                core.tick(core.now + float(it.total_s[0]))
            start = core.now
            start_trace = np.array([start - lag])
            extra = None if overhead_s is None else np.array([float(overhead_s(action))])
            tr = link.transfer(idx, start_trace, np.array([action.expected_bytes]), extra)
            total, lat = float(tr.total_s[0]), float(tr.latency_s[0])
            attempts[action.segment] = attempts.get(action.segment, 0) + 1
            new = -1
            offered = action.rung > 0 and action.expected_bytes > 0 and attempts[action.segment] <= offered_attempts
            if abandoning and offered:
                first_byte = start - lag + (lat if p.link.latency_advances_trace else 0.0)
                size = np.array([action.expected_bytes])
                e, got, j = 0.0, 0.0, 1
                while True:
                    e = float(next_offer_s(p, payload, idx, np.array([first_byte]), j, np.array([e]), np.array([got]),
                                           tr.latency_s, size, tr.transfer_s)[0])
                    if not e < total:
                        break
                    got = float(delivered_bytes(link, idx, np.array([first_byte]), np.array([e]), tr.latency_s,
                                                size, tr.transfer_s)[0])
                    new = core.check_abandon(start + e, got, e, min(lat, e))
                    if new >= 0:
                        if not p.link.latency_advances_trace:
                            lag += lat
                        action = core.abandoned(start + e, int(got), new, decide_again=p.abandon_reselect)
                        break
                    j += 1
            if new < 0:
                break
            if isinstance(action, Wait):   # a new decision's wait: back to the session's loop
                break
        if new >= 0:
            continue
        lag += total - float(tr.trace_advance_s[0])
        core.download_done(start + total, int(action.expected_bytes), lat, float(tr.transfer_s[0]))
    return core


def _fetches(core: SessionCore, bound: int):
    """The fetches the core asks for, in order, each wait it asks for passed on its clock;
    ends when the session is done. `bound` caps the core's actions (a guard against a core
    that never ends)."""
    for _ in range(bound):
        action = core.next_action(core.now)
        if isinstance(action, Done):
            return
        if isinstance(action, Wait):
            core.tick(action.until_s)
            continue
        yield action
    raise RuntimeError("session did not end")  # pragma: no cover - bounded loop guard


def _drive_live(core: SessionCore, link, trace_index: int) -> SessionCore:
    """`drive_with_link` for a live session: each request's chunks cross the link as they are
    produced (`player.core.live.LiveRows.arrivals`), reported one by one; the session ends at
    its duration, dropping what is in flight (the simulator's live lockstep, one row)."""
    idx = np.array([trace_index])
    p = core.preset.link
    end = core.live.end_s
    for action in _fetches(core, 20 * core.plan.n_segments + 20):
        q = core.now
        lat = float(link.latency(idx, np.array([q]))[0]) + p.overhead_s
        first_byte = q + (lat if p.latency_advances_trace else 0.0)
        parts, releases = core.live_chunks(action)
        starts, ends = core.live.arrivals(link, idx, np.array([first_byte]), parts[None, :], releases[None, :])
        C = parts.size
        for c in range(C):
            if max(ends[0, c] - core.now, 0.0) >= (end - core.now) - _EPS:
                core.end_session(end)
                return core
            if c < C - 1:
                core.chunk_arrived(float(ends[0, c]), int(parts[c]), first_byte_s=float(starts[0, c]))
        transfer = max(float(ends[0, -1]) - q - lat, 1e-9)
        core.download_done(float(ends[0, -1]), int(action.expected_bytes), lat, transfer,
                           first_byte_s=float(starts[0, -1]))
    return core
