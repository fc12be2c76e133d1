"""The HTTP player: one streaming session over real HTTP (aiohttp), driving the sans-IO core.

`HttpPlayer(url, ...).run()` fetches and parses the MPD, picks what to play
(`player.dash.playback`), resolves SegmentBase indexes (one range request per representation
for the init segment and its ``sidx`` together when they are adjacent), then runs the loop
of `player.core.session.drive_with_link` with real I/O: ask the core, fetch, report back.
This module is that loop and its glue; each part of the I/O has its own module:

* `player.http.fetcher` — every request (manifest, segments, inits, indexes, licences)
  with one retry policy, failover between BaseURL alternatives, resume, limits;
* `player.http.parts` — a segment's resources and the init segments kept;
* `player.http.licences` / `player.http.decryption` — protection;
* `player.http.cmcd` — CTA-5004 keys on every request; `player.http.clock` — the clock.

Clocks. Presentation seconds = ``time.monotonic()`` × ``time_scale`` since the player
started (`player.http.clock.Clock`), so at ``--time-scale K`` the session runs K× faster,
matching an edge that serves ``trace.scaled(K)``; with no ``time_scale`` given the player
adopts the one the edge announces on the manifest (``X-Abrlab-Time-Scale``), else 1. The
core's clock starts at the session start (just before the first segment request, after the
manifest and indexes), like the simulator's; event ``t_s`` fields are seconds since the
player started (the summary's ``setup_s`` is the difference).

A segment is handed to the core (``download_done``) when its video part, the audio segments
that go with it and any init segment not fetched before (one per representation and
period: a period boundary brings new ones) have all arrived: the playable buffer is then
the smaller of the two tracks at segment granularity. Its size is the sum of those bytes;
latency is the video request's, transfer runs to the last byte of any part. 404/410 on a
media segment at every alternative: the same segment at another representation (lower
first; event ``missing``); missing everywhere is an error. Abandonment: the fetcher asks
the core's ``check_abandon`` (and the licence policy's mask) as the body arrives; on a
rung the core's ``abandoned`` is called and the segment fetched at the new rung.

Protection: for protected content the license request starts with the session (in
parallel with the first segment and its init segment) and must have arrived before the
first protected segment (a clear period may come first) is handed to the core. Its policy
(``max_height``) masks representations; a renewal runs at 80 % of the license duration. If
the license cannot be had, the player falls back to unprotected representations when the
manifest has some, else stops with a clear error. With ``cryptography`` installed,
segments are decrypted (CENC AES-CTR) and checked (`verify_media`).

Live (type=dynamic) manifests are played by `player.http.live.LiveDriver` on the same
fetcher, events and clock: clock synchronisation through UTCTiming, the live edge and delay
in dash.js's order of precedence, MPD refreshes, 425/410, chunk-by-chunk low-latency bodies;
the session ends after `duration_s` (or when stopped). Memory stays bounded over hours: the
event log keeps the newest `MAX_LOG_EVENTS` events and the core's are handed on, not kept.

Observing a session (the dashboard's hook): events are the typed dataclasses of
`player.core.events` (the schema: `events.field_names(kind)`; the JSON line of one is
``event.as_dict()``). ``player.add_listener(fn)`` calls ``fn(event)`` for each (an
awaitable result is scheduled as a task); ``async for event in player.events()`` yields
them (the stream ends after the ``summary`` or ``error`` event); ``player.events_log``
keeps them all; ``player.snapshot()`` is the current state.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import time
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from netem.errors import DecryptError, InputError, LicenseError, PlaybackError
from player.core.device import DeviceProfile
from player.core.events import (Decrypt, Error, Event, LicenseFallback, Manifest, Missing, Note, SessionStart, Summary,
                                json_safe)
from player.core.presets import get as get_preset
from player.core.session import Done, Fetch, SessionCore, Wait
from player.dash.addressing import resolve_sidx
from player.dash.errors import UnsupportedManifest
from player.dash.playback import PlaybackPlan, Selection, build, make_core, select, swap_origin
from player.http import cmcd as cmcd_mod
from player.http.clock import Clock
from player.http.config import HttpConfig
from player.http.decryption import SessionDecryption, crypto_available
from player.http.fetcher import Abandoned, Body, ByteRange, Fetcher, NotFound, Resource, open_client
from player.http.hub import EventHub
from player.http.licences import License, LicenseClient, allowed_rungs
from player.http.live import LiveDriver
from player.http.manifests import fetch_manifest, parse_body
from player.http.parts import InitSegments, index_resource, media_resource

__all__ = ["HttpPlayer", "HttpConfig", "PlaybackError", "play"]


class HttpPlayer:
    """One session against `url` (an MPD over http/https). See the module doc."""

    def __init__(self, url: str, *, abr: str = "bola", abr_params: dict[str, Any] | None = None,
                 preset: str = "default", device: DeviceProfile | None = None, time_scale: float | None = None,
                 cmcd: str | None = None, extra_origins: tuple[str, ...] | list[str] = (),
                 config: HttpConfig | None = None, qoe_model: str = "linear", trace_label: str = "network",
                 drm_system: str | None = None, license_url: str | None = None, decrypt: bool = True,
                 on_segment: Callable[[dict, bytes], None] | None = None, content_id: str | None = None,
                 session_id: str | None = None, duration_s: float | None = None) -> None:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsupportedManifest(f"the player needs an http(s) MPD URL, got {url[:200]!r} (serve a directory "
                                      "with `abrlab serve DIR` or `python -m http.server`)")
        self.url = url
        self.abr_name = abr
        self.abr_params = dict(abr_params or {})
        self.preset_name = preset
        self.preset = get_preset(preset)
        self.device = device
        self.clock = Clock(1.0 if time_scale is None else time_scale)
        self.time_scale_given = time_scale is not None   # else: the edge's, once the manifest says it
        self.config = config or HttpConfig()
        self.qoe_model = qoe_model
        self.trace_label = trace_label
        self.drm_system = drm_system
        self.license_url = license_url
        self.decrypt = decrypt
        self.on_segment = on_segment
        self.extra_origins = tuple(extra_origins)
        sid = session_id or cmcd_mod.new_session_id()
        cid = content_id or hashlib.sha256(url.split("?")[0].encode()).hexdigest()[:16]
        self.cmcd = cmcd_mod.CmcdConfig(cmcd, sid, cid) if cmcd else None
        self.hub = EventHub()
        self.client: aiohttp.ClientSession | None = None     # the HTTP client (one per player)
        self.fetcher: Fetcher | None = None
        self.presentation = None
        self.selection: Selection | None = None
        self.plan: PlaybackPlan | None = None
        self.core: SessionCore | None = None
        self.offset = 0.0               # player clock at the session start
        self.session_start_monotonic: float | None = None
        self.inits = InitSegments(self.fetch_resource)
        self.license: License | None = None
        self._license_client: LicenseClient | None = None
        self._license_task: asyncio.Task | None = None
        self._renew_task: asyncio.Task | None = None
        self.decryption = SessionDecryption()
        self._fatal: BaseException | None = None
        self._stalls_at_last_request = 0
        self._tried_sets: list = []
        self.counters = {"abandons": 0, "missing": 0, "decrypted_segments": 0}
        self.summary: dict | None = None
        self.duration_s = duration_s     # a live session's length (None: until stopped, at most a day)
        self.live: LiveDriver | None = None
        self.wall0 = time.time()          # the local wall clock when the player's clock started

    # -- observing -----------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[Event], Any]) -> None:
        """Call `fn(event)` for every event, a typed `player.core.events.Event` (a returned
        awaitable is scheduled as a task)."""
        self.hub.add_listener(fn)

    def events(self) -> AsyncIterator[Event]:
        """Every event from now on; ends after the "summary" or "error" event."""
        return self.hub.stream()

    @property
    def events_log(self) -> list[Event]:
        """The events published so far, in order (the newest `MAX_LOG_EVENTS`)."""
        return list(self.hub.log)

    def all_counters(self) -> dict[str, int]:
        """The fetcher's counters (requests, retries, failovers, ...) and the player's."""
        fetched = self.fetcher.counters if self.fetcher is not None else {}
        return {**fetched, **self.counters}

    def snapshot(self) -> dict:
        """The session's state now, for a dashboard."""
        core, plan = self.core, self.plan
        if core is not None and not core.ended:
            core.tick(self.core_now())  # a clock tick: stalls and the playhead show as they happen
            self.drain_core()
        out: dict[str, Any] = {"t_s": self.clock.now(), "url": self.url, "phase": "setup" if core is None else
                               ("ended" if core.ended else "playing")}
        if core is not None and plan is not None:
            st = core.state
            last = core.last_rung
            out.update({
                "session_s": core.now, "buffer_s": float(st.buffer_s[0]), "buffer_cap_s": core.buffer_cap_s,
                "playing": bool(st.playing[0]), "stalled": bool(st.stalled[0]), "paused": bool(st.paused[0]),
                "played_s": float(st.played_s[0]),
                "stall_s": float(st.stall_s[0]), "stalls": int(st.stall_count[0]),
                "segment": core.next_segment, "segments": core.plan.n_segments, "rung": last,
                "bitrate_bps": float(plan.bitrates_bps[last]) if last >= 0 else None,
                "throughput_bps": finite_or_none(core.last_throughput_bps),
                "ladder_bps": plan.bitrates_bps.tolist(), "allowed": core.mask[0].tolist(),
                "bytes": int(core.bytes_downloaded), "wasted_bytes": int(core.wasted_bytes),
                "in_flight": None if core.in_flight is None else {"segment": core.in_flight.segment,
                                                                   "rung": core.in_flight.rung},
                "edge": self.fetcher.edges.current, "license": None if self.license is None else self.license.to_dict(),
            })
            if core.live is not None:
                out.update({"live": True, "live_latency_s": core.live_latency_s, "target_latency_s": core.target_latency_s,
                            "playback_rate": core.playback_rate, "session_end_s": core.live.end_s})
        out.update(self.all_counters())
        return out

    def pause(self) -> None:
        """Stop the playhead; downloads go on until the buffer is full."""
        if self.core is not None:
            self.core.pause(self.core_now())
            self.drain_core()

    def resume(self) -> None:
        if self.core is not None:
            self.core.resume(self.core_now())
            self.drain_core()

    @property
    def paused(self) -> bool:
        return bool(self.core is not None and self.core.state.paused[0])

    def publish(self, event: Event) -> None:
        """Log `event` and hand it to every listener and event stream."""
        self.hub.publish(event)

    def drain_core(self) -> None:
        """Publish the core's new events, moved from its clock to the player's (and drop
        them from the core: the hub's log keeps what is kept)."""
        core = self.core
        if core is None:
            return
        new = list(core.events)
        core.events.clear()
        for e in new:
            self.publish(e.at(e.t_s + self.offset, session_t_s=round(e.t_s, 6)))

    def raise_if_failed(self) -> None:
        """A background task (a licence renewal) failed for good: raise its error here."""
        if self._fatal is not None:
            raise self._fatal

    def start_license(self) -> None:
        """Start acquiring the licence (once), in parallel with the session."""
        if self._license_task is None:
            self._license_task = asyncio.ensure_future(self.acquire_license())

    # -- clocks ------------------------------------------------------------------------------------
    def now(self) -> float:
        """Player clock (presentation seconds since the player started)."""
        return self.clock.now()

    def wall(self, t: float) -> float:
        """The local wall clock (seconds since the epoch) at player-clock time `t`: the wall
        clock when the player started, moved on at the player's (scaled) pace."""
        return self.wall0 + t

    def core_now(self) -> float:
        """Session clock (the core's): player clock minus the set-up time."""
        t = self.clock.now() - self.offset
        return max(t, self.core.now) if self.core is not None else t

    # -- running -------------------------------------------------------------------------------------
    async def run(self) -> dict:
        """Play to the end; returns the summary. Raises PlaybackError (network, license)
        or ManifestError/InputError (the manifest or the options)."""
        self.clock.start()
        self.wall0 = time.time()
        error: BaseException | None = None
        try:
            async with open_client(self.config) as client:
                self.client = client
                self.fetcher = Fetcher(client, self.clock, self.config, emit=self.publish, decorate=self._decorate)
                try:
                    await self._setup()
                    await self._play()
                    self.summary = self._summary()
                finally:
                    await self._cancel_tasks()
        except BaseException as exc:
            error = exc
            raise
        finally:
            if error is not None and not isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
                msg = str(error) if isinstance(error, (PlaybackError, InputError)) else \
                    f"{type(error).__name__}: {error}"
                self.publish(Error(self.now(), msg))
                if self.core is not None and self.plan is not None:
                    try:
                        self.summary = self._summary(error=msg)
                    except Exception:  # pragma: no cover - the summary must not hide the error
                        self.summary = None
            elif error is not None and self.core is not None and self.plan is not None and self.live is not None:
                # a live session stopped by the user (q, Ctrl-C) ends there, as a live session does
                self.live.end_now()
                self.summary = self._summary()
            elif error is not None and self.core is not None and self.plan is not None:
                # stopped by the user (q, Ctrl-C): the summary of what was played so far
                self.summary = self._summary(error="stopped before the end")
            elif error is None and self.summary is not None:
                self.publish(Summary(self.now(), self.summary))
            self.hub.close()
        return self.summary  # type: ignore[return-value]

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in (self._license_task, self._renew_task, *self.inits.tasks(), *self.hub.tasks())
                 if t is not None]
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def fetch_resource(self, res: Resource) -> Body:
        return await self.fetcher.fetch(res)

    # -- set-up: manifest, selection, indexes ------------------------------------------------------------
    async def _setup(self) -> None:
        origins = [self.url] + [swap_origin(self.url, o) for o in self.extra_origins]
        self.fetcher.use_alternatives(len(origins))
        body = await fetch_manifest(self.fetcher, origins)
        self._follow_time_scale(body.time_scale)
        pres = parse_body(body)
        self.presentation = pres
        self.publish(Manifest(self.now(), body.final_url or body.url, body.size, pres.type, pres.duration_s, periods=len(pres.periods),
                                 notes=list(pres.notes)))
        if pres.is_live:
            self.live = LiveDriver(self, pres, body)
            await self.live.setup()
            return
        await self._prepare(select(pres, self.device))

    def _follow_time_scale(self, announced: float | None) -> None:
        """Run at the time scale the edge announces, unless the caller chose one: then
        keep it, and say once that the two differ (every rate would be off by their ratio)."""
        k = self.clock.time_scale
        if announced is None or announced == k:
            return
        if not self.time_scale_given:
            self.clock.rescale(announced)
            return
        self.publish(Note(self.now(), f"the edge announces time scale {announced:g} but this player runs at "
                                      f"{k:g} (--time-scale): unless a shaping proxy between them runs at {k:g}, "
                                      f"rates and times are {announced / k:.3g}x off"))

    async def _prepare(self, selection: Selection) -> None:
        """Resolve the selection's SegmentBase indexes and build the plan."""
        self.selection = selection
        self._tried_sets.extend(selection.mains)
        indexes = {}
        pending = [(i, r) for i, r in selection.representations() if r.needs_sidx]
        if pending:
            results = await asyncio.gather(*(self._sidx(r) for _, r in pending))
            indexes = dict(zip(((i, r.id) for i, r in pending), results))
        plan = build(selection, indexes, self.device, extra_origins=self.extra_origins,
                     drm_system=self.drm_system, license_url=self.license_url)
        self.fetcher.use_alternatives(max([t.n_alternatives for t in plan.video]
                                          + ([plan.audio.n_alternatives] if plan.audio else [])))
        for note in plan.notes:
            self.publish(Note(self.now(), note))
        self.plan = plan

    async def _sidx(self, rep) -> Any:
        res, n_init = index_resource(rep, self.extra_origins)
        try:
            body = await self.fetch_resource(res)
        except NotFound as m:
            raise PlaybackError(f"segment index of representation {rep.id!r} not found (HTTP 404) at {m.url}") \
                from None
        data = body.data
        if n_init:
            init = rep.pending_sidx.init
            self.inits.keep((init.url, init.byte_range), data[:n_init])
            data = data[n_init:]
        return resolve_sidx(rep, data)

    # -- the session -----------------------------------------------------------------------------------
    def _start_session(self, first: bool = True) -> None:
        plan = self.plan
        mask = plan.mask.copy() if self.license is None else self.licensed_rungs(self.license)
        old = self.core
        core = make_core(plan, self.abr_name, self.abr_params, self.preset, mask=mask)
        described = plan.describe()
        # the session clock starts now, once the core exists (its creation is set-up work)
        if first:
            self.offset = self.clock.now()
            self.session_start_monotonic = self.clock.t0 + self.offset / self.clock.time_scale
            core_t = 0.0
        else:
            core_t = max(old.now if old is not None else 0.0, self.clock.now() - self.offset)
        self.core = core
        if core_t > 0:
            core.tick(core_t)
        self.publish(SessionStart(self.now(), self.url, self.abr_name, core.policy.describe(), self.preset_name,
                                     self.clock.time_scale, self.offset, described, restart=not first,
                                     cmcd=None if self.cmcd is None else self.cmcd.mode,
                                     session_id=None if self.cmcd is None else self.cmcd.sid))
        if plan.protected:
            self.start_license()

    async def _play(self) -> None:
        if self.live is not None:
            await self.live.play()
            return
        self._start_session(first=True)
        plan = self.plan
        failures: dict[int, int] = {}
        bound = 20 * (plan.n_segments + 10) * (self.config.max_failures_per_segment + len(plan.video) + 2)
        for _ in range(bound):
            if self._fatal is not None:
                raise self._fatal
            core = self.core
            action = core.next_action(self.core_now())
            self.drain_core()
            if isinstance(action, Done):
                if self.config.real_time_play_out:
                    await self.clock.sleep(float(core.state.clock_s[0]) - (self.clock.now() - self.offset))
                return
            if isinstance(action, Wait):
                await self.wait_until(action.until_s)
                continue
            try:
                await self._segment(action)
            except LicenseError as exc:
                await self._license_fallback(exc)
            except DecryptError as exc:
                k = action.segment
                failures[k] = failures.get(k, 0) + 1
                if self.core.in_flight is not None:
                    self.core.download_failed(self.core_now(), 0, f"decrypt: {exc}")
                    self.drain_core()
                if failures[k] >= self.config.max_failures_per_segment:
                    raise PlaybackError(f"segment {k + 1}: {exc}") from None
        raise PlaybackError("the session did not end (loop bound reached)")  # pragma: no cover

    async def wait_until(self, until_s: float) -> None:
        """Sleep on the session clock until `until_s` (a wait for room in the buffer)."""
        delay = until_s - (self.clock.now() - self.offset)
        if delay > 0:
            await self.clock.sleep(delay)
        self.core.tick(max(until_s, self.core_now()))
        self.drain_core()

    # -- one segment ---------------------------------------------------------------------------------
    async def _segment(self, fetch: Fetch) -> None:
        """Fetch segment `fetch.segment` (video part at the chosen rung, its audio, a new init
        segment) and hand it to the core; abandonment and missing objects switch rungs."""
        plan, core = self.plan, self.core
        k = fetch.segment
        audio_task = None
        if plan.audio is not None and plan.audio_for[k]:
            audio_task = asyncio.ensure_future(self._audio_parts(k))
        tried: set[int] = set()
        try:
            rung = fetch.rung
            while True:
                track = plan.video[rung]
                init_task = self.inits.request(track, k)
                res = media_resource(plan, track, k, rung)
                res.abandon_check = self._abandon_check
                try:
                    body = await self.fetch_resource(res)
                    break
                except Abandoned as a:
                    self.counters["abandons"] += 1
                    core.abandoned(self.core_now(), a.wasted, a.rung)
                    self.drain_core()
                    rung = a.rung
                except NotFound as m:
                    tried.add(rung)
                    self.counters["missing"] += 1
                    new = self.other_rung(rung, tried)
                    self.publish(Missing(self.now(), k, rung, new, m.url))
                    if new is None:
                        raise PlaybackError(f"segment {k + 1} is missing (HTTP 404/410) at every representation "
                                            f"(last: {m.url})") from None
                    core.abandoned(self.core_now(), m.wasted, new, reason="missing")
                    self.drain_core()
                    rung = new
            init_new = await init_task
            audio, audio_init = await audio_task if audio_task is not None else ([], None)
        except BaseException:
            if audio_task is not None and not audio_task.done():
                audio_task.cancel()
                await asyncio.gather(audio_task, return_exceptions=True)
            raise
        parts = [body] + audio
        t_done = max(p.t_done for p in parts)
        size = sum(p.size for p in parts) + len(init_new or b"") + len(audio_init or b"")
        latency = body.latency_s
        transfer = max(1e-9, t_done - body.t_sent - latency)
        # protected content: the license must be here before the segment can play
        if plan.protected and (plan.video[rung].protected_at(k) or (
                plan.audio is not None and any(plan.audio.protected_at(j) for j in plan.audio_for[k]))):
            await self.need_license()
        await self.decrypt_and_check(k, rung, body, audio)
        core.download_done(max(t_done - self.offset, core.now), size, latency, transfer)
        self.drain_core()

    async def _audio_parts(self, k: int) -> tuple[list[Body], bytes | None]:
        """The audio segments that go with video segment `k`, and the bytes of any init
        segment fetched for them (a period boundary may need a new one)."""
        track = self.plan.audio
        wanted = self.plan.audio_for[k]
        firsts = {track.init_key(j): j for j in reversed(wanted)}
        init_tasks = [self.inits.request(track, j) for j in firsts.values()]
        out = []
        try:
            for j in wanted:
                try:
                    out.append(await self.fetch_resource(media_resource(self.plan, track, j, None)))
                except NotFound as m:
                    raise PlaybackError(f"audio segment {j + 1} is missing (HTTP 404/410): {m.url}") from None
        except BaseException:
            for t in init_tasks:
                if not t.done():
                    t.cancel()
            raise
        inits = [b for b in await asyncio.gather(*init_tasks) if b]
        return out, (b"".join(inits) if inits else None)

    def other_rung(self, rung: int, tried: set[int]) -> int | None:
        """The rung to try when a segment is missing at `rung`: the next lower allowed one not
        tried, else the next higher; None when none is left."""
        mask = self.core.mask[0]
        below = [r for r in range(rung - 1, -1, -1) if mask[r] and r not in tried]
        above = [r for r in range(rung + 1, mask.size) if mask[r] and r not in tried]
        return (below or above or [None])[0]

    def _abandon_check(self, bytes_done: float, elapsed_s: float) -> int:
        core = self.core
        fetch = core.in_flight
        if fetch is None:
            return -1
        if not core.mask[0, fetch.rung]:   # the license no longer allows it
            allowed = np.flatnonzero(core.mask[0])
            below = allowed[allowed < fetch.rung]
            return int(below[-1] if below.size else allowed[0])
        r = core.check_abandon(self.core_now(), bytes_done, elapsed_s)
        self.drain_core()
        return r

    # -- license -------------------------------------------------------------------------------------
    async def acquire_license(self) -> License:
        dev = self.device
        self._license_client = LicenseClient(self.fetcher, self.plan.drm,
                                             robustness=dev.drm_robustness if dev else None,
                                             hdcp=dev.hdcp if dev else None, retry=self.config.license_retry(),
                                             emit=self.publish)
        lic = await self._license_client.acquire()
        self._apply_license(lic)
        if lic.duration_s is not None:
            self._renew_task = asyncio.ensure_future(self._keep_renewed(lic))
        return lic

    async def _keep_renewed(self, lic: License) -> None:
        try:
            await self._license_client.keep_renewed(lic, self.config.renew_at,
                                                    lambda new: self._apply_license(new, renewal=True))
        except PlaybackError as exc:
            self._fatal = exc

    def _apply_license(self, lic: License, renewal: bool = False) -> None:
        """Use a (new or renewed) license: keys for decryption, its policy as a mask."""
        self.license = lic
        if self.decrypt and lic.keys and crypto_available():
            self.decryption.use_keys(lic.keys)
        elif self.decrypt and lic.keys and not renewal:
            self.publish(Note(self.now(), "segments are not decrypted: the optional 'cryptography' package is "
                                             "missing (pip install abrlab[drm])"))
        if self.core is not None:
            new = self.licensed_rungs(lic)
            if self.core.set_mask(new, f"{'renewed ' if renewal else ''}license policy max_height={lic.max_height}"):
                self.drain_core()

    def licensed_rungs(self, lic: License) -> np.ndarray:
        mask, none_allowed = allowed_rungs(lic, self.plan.heights, self.plan.mask)
        if none_allowed:
            self.publish(Note(self.now(), "the license policy allows no representation this device plays; "
                                          "the lowest the device allows stays"))
        return mask

    async def need_license(self) -> License:
        if self._license_task is None:
            self._license_task = asyncio.ensure_future(self.acquire_license())
        return await asyncio.shield(self._license_task)

    async def _license_fallback(self, exc: LicenseError) -> None:
        pres = self.presentation
        try:
            selection = select(pres, self.device, clear_only=True, exclude=self._tried_sets)
        except UnsupportedManifest:
            raise PlaybackError(f"license: {exc}; the manifest has no unprotected representations to fall "
                                "back to") from None
        self.publish(LicenseFallback(self.now(), str(exc), selection.main.id))
        old_core = self.core
        await self._prepare(selection)
        if self.plan.protected:  # pragma: no cover - select(clear_only) excludes protected sets
            raise PlaybackError(f"license: {exc}")
        self._license_task = None
        self.license = None
        if old_core is not None and old_core.in_flight is not None:
            old_core.download_failed(self.core_now(), 0, "license failed")
            self.drain_core()
        self._start_session(first=False)

    # -- decryption and checks --------------------------------------------------------------------------
    async def decrypt_and_check(self, k: int, rung: int, video: Body, audio: list[Body]) -> None:
        """Decrypt (and check) the segment's parts when protected and a key is at hand; give
        each part to `on_segment`."""
        plan = self.plan
        jobs = [(plan.video[rung], video, k, rung)]
        jobs += [(plan.audio, b, j, None) for b, j in zip(audio, plan.audio_for[k])]
        for track, body, idx, r in jobs:
            data, samples = body.data, None
            rep = track.rep_at(idx)
            if track.protected_at(idx):
                data, samples = await self.decryption.decrypt(data, track.init_key(idx),
                                                              lambda: self.inits.bytes_for(track, idx), rep.codecs)
            if samples is not None:
                self.counters["decrypted_segments"] += 1
                self.publish(Decrypt(self.now(), idx, track.kind, samples, rung=r))
            if self.on_segment is not None:
                self.on_segment({"segment": idx, "rung": r, "track": track.kind, "rep": rep.id,
                                 "url": body.url, "range": body.byte_range, "decrypted": samples is not None}, data)

    # -- CMCD ------------------------------------------------------------------------------------------
    def _decorate(self, res: Resource, url: str, rng: ByteRange | None, alt: int, headers: dict) -> str:
        """Attach CMCD to a request (when enabled): returns the URL to send."""
        if self.cmcd is None:
            return url
        return self.cmcd.apply(url, headers, cmcd_mod.request_data(self.cmcd, res, url, alt, self._status(res)))

    def _status(self, res: Resource) -> cmcd_mod.PlayerStatus:
        core = self.core
        if core is None:
            return cmcd_mod.PlayerStatus()
        allowed = np.flatnonzero(core.mask[0])
        starved = core.stall_count > self._stalls_at_last_request   # since the previous media request
        if res.what == "media" and res.track == self.plan.video[0].kind:
            self._stalls_at_last_request = core.stall_count
        return cmcd_mod.PlayerStatus(
            buffer_s=core.buffer_s, throughput_bps=finite_or_none(core.last_throughput_bps),
            top_bitrate_bps=float(self.plan.bitrates_bps[allowed[-1]]) if allowed.size else None,
            urgent=(not bool(core.state.playing[0])) or bool(core.state.stalled[0]), starved=bool(starved))

    # -- results -------------------------------------------------------------------------------------
    def _summary(self, error: str | None = None) -> dict:
        counters = self.all_counters()
        extra = {
            "mode": "http", "url": self.url, "time_scale": self.clock.time_scale, "setup_s": self.offset,
            "ranges_ignored": counters.get("ranges_ignored", 0),
            "requests": counters.get("requests", 0), "retries": counters.get("retries", 0),
            "failovers": counters.get("failovers", 0), "abandons": counters["abandons"],
            "missing": counters["missing"], "decrypted_segments": counters["decrypted_segments"],
            "license": None if self.license is None else self.license.to_dict(),
            "cmcd": None if self.cmcd is None else self.cmcd.mode,
            "session_id": None if self.cmcd is None else self.cmcd.sid,
            "complete": error is None and self.core.ended,
        }
        if error is not None:
            extra["error"] = error
        if self.live is not None:
            extra.update(self.live.summary_extra())
        labels = {"abr": self.abr_name, "trace": self.trace_label, "movie": self.url,
                  "device": self.plan.device.name if self.plan.device else "none", "preset": self.preset_name}
        s = self.core.summary(self.qoe_model, labels=labels)
        # the core's wasted bytes (abandoned requests; with fast switching, versions that never
        # played too) and those the fetcher threw away (failed attempts)
        extra["wasted_bytes"] = int(s["wasted_bytes"]) + counters.get("wasted_bytes", 0)
        s.update(extra)
        return json_safe(s)


def finite_or_none(x: float) -> float | None:
    """`x`, or None when it is NaN or infinite (nothing measured yet)."""
    return x if math.isfinite(x) else None


async def play(url: str, **kwargs: Any) -> dict:
    """Run one session and return its summary (see `HttpPlayer`)."""
    return await HttpPlayer(url, **kwargs).run()
