"""The HTTP player's live session: the loop of `player.core.session.SessionCore` for a live MPD.

`LiveDriver(player, presentation, manifest_body)` plays a type=dynamic presentation with the
player's fetcher, events and clock (`player.http.player.HttpPlayer` hands live manifests
here); every rule is the core's (`player.core.live`), the driver does the I/O:

* **Set-up.** The live edge's Period (`player.dash.playback.select`) becomes a
  `player.dash.live.LivePlan`. The origin's clock is learned from the MPD's UTCTiming
  (`player.http.clocksync`, every scheme in document order, the ``Date`` header as the last
  resort). The session clock starts then: the live edge E₀ = origin time − AST, and the core
  joins at E₀ − delay (dash.js's order of precedence). A preset that is not live plays with
  `live-ll` (low-latency MPD) or `live` settings, as dash.js would.
* **Requests.** The core says which segment (its index since AST) and when it is
  available; the driver fetches its URL ($Number$ from the Period's template), with the
  audio segment of the same index. A low-latency body arrives chunk by chunk: each CMAF
  chunk (`player.http.chunks`, moof boundaries) is reported to the core as it completes,
  with its bytes, times and media duration, so the buffer grows and the policy sees chunk
  timing. 425 Too Early (or 404 at the live edge): wait (the server's Retry-After, at most a
  segment) and ask again, synchronising the clock again every third time; 410 Gone: the
  core seeks to the live edge, after the clock is synchronised again (a drifted clock is
  what puts a player outside the window).
* **The MPD** is fetched again every minimumUpdatePeriod (through
  `player.http.manifests`); new Periods join the plan.
* **The end**: at `duration_s` of session time (what is in flight is dropped) or when the
  user stops the session (`q`, Ctrl-C).
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from netem.errors import PlaybackError
from player.core.events import ClockSync, Manifest, Missing, Note, SessionStart
from player.core.live import DEFAULT_OPEN_DURATION_S, LiveRows
from player.core.presets import PRESETS, SessionPreset
from player.core.session import Done, Fetch, SessionCore, Wait
from player.dash.live import LivePlan, build_live
from player.dash.model import Presentation
from player.dash.playback import select
from player.http.chunks import ChunkArrival, ChunkTimer, track_info
from player.http.clocksync import synchronise
from player.http.fetcher import Body, FetchFailed, NotFound, Resource, TooEarly
from player.http.manifests import fetch_manifest, parse_body
from player.http.media import check_media, is_isobmff
from player.http.parts import body_limit

#: failures of one segment (425/404 retries included) before the session gives up
MAX_LIVE_FAILURES = 40
#: the clock is synchronised again after this many 425s (and after every 410)
RESYNC_AFTER_TOO_EARLY = 3
#: a re-synchronisation smaller than this leaves the session's live edge alone
RESYNC_MIN_S = 0.05
_ROW = np.zeros(1, dtype=np.int64)


class LiveDriver:
    """A live session over the player's I/O (see the module docstring)."""

    def __init__(self, player: Any, presentation: Presentation, manifest: Body) -> None:
        self.player = player
        self.presentation = presentation
        self.manifest = manifest
        self.plan: LivePlan | None = None
        self.preset: SessionPreset | None = None
        self.sync = None
        self.refreshes = 0
        self.too_early = 0
        self._refresh_task: asyncio.Task | None = None

    # -- set-up ----------------------------------------------------------------------------------
    async def setup(self) -> None:
        pl = self.player
        pres = self.presentation
        plan = build_live(select(pres, pl.device), pl.device, extra_origins=pl.extra_origins,
                          drm_system=pl.drm_system, license_url=pl.license_url)
        pl.fetcher.use_alternatives(max([t.n_alternatives for t in plan.video]
                                        + ([plan.audio.n_alternatives] if plan.audio else [])))
        for note in plan.notes:
            pl.publish(Note(pl.now(), note))
        self.preset = pl.preset
        if self.preset.live is None:
            name = "live-ll" if plan.facts.low_latency else "live"
            self.preset = PRESETS[name]
            pl.publish(Note(pl.now(), f"a live manifest: playing with the {name!r} preset's live semantics "
                                      f"(preset {pl.preset_name!r} is VoD)"))
        self.sync = await synchronise(pl.fetcher, pres.utc_timings, pl.wall, self.manifest)
        pl.publish(ClockSync(pl.now(), self.sync.offset_s, self.sync.method, self.sync.rtt_s, list(self.sync.notes)))
        self.plan = plan
        pl.plan = plan

    def start_session(self) -> SessionCore:
        """The session clock starts now: the core joins the live edge as the origin sees it."""
        pl, plan, preset = self.player, self.plan, self.preset
        pl.offset = pl.clock.now()
        pl.session_start_monotonic = pl.clock.t0 + pl.offset / pl.clock.time_scale
        edge0 = pl.wall(pl.offset) + self.sync.offset_s - plan.availability_start_s
        duration = pl.duration_s if pl.duration_s is not None else DEFAULT_OPEN_DURATION_S   # until stopped
        live = LiveRows(plan.facts, preset.live, plan.segment_plan.sizes_bytes, 1, edge0, duration)
        mask = plan.mask.copy() if pl.license is None else pl.licensed_rungs(pl.license)
        core = SessionCore(plan.segment_plan, preset.policy(pl.abr_name, dict(pl.abr_params)), preset, mask=mask,
                           buffer_cap_s=plan.buffer_cap_s, startup_threshold_s=plan.startup_threshold_s, live=live)
        pl.core = core
        pl.publish(SessionStart(pl.now(), pl.url, pl.abr_name, core.policy.describe(), preset.name,
                                pl.clock.time_scale, pl.offset, plan.describe(),
                                cmcd=None if pl.cmcd is None else pl.cmcd.mode,
                                session_id=None if pl.cmcd is None else pl.cmcd.sid,
                                extra={"live": live.describe(), "clock_sync": self.sync.to_dict()}))
        if plan.protected:
            pl.start_license()
        return core

    # -- the loop -----------------------------------------------------------------------------------
    async def play(self) -> None:
        pl = self.player
        core = self.start_session()
        update = self.presentation.minimum_update_period_s
        if update is not None:
            self._refresh_task = asyncio.ensure_future(self._refresh(max(update, 0.1 * self.plan.facts.segment_duration_s)))
        failures = 0
        try:
            for _ in range(50 * (core.plan.n_segments + 10)):
                pl.raise_if_failed()
                action = core.next_action(pl.core_now())
                pl.drain_core()
                if isinstance(action, Done):
                    return
                if isinstance(action, Wait):
                    await pl.wait_until(action.until_s)
                    continue
                failures = 0 if await self._segment(action) else failures + 1
                if failures >= MAX_LIVE_FAILURES:
                    raise PlaybackError(f"live segment {action.media_index} failed {failures} times in a row")
            raise PlaybackError("the live session did not end (loop bound reached)")  # pragma: no cover
        finally:
            await self.stop()

    async def stop(self) -> None:
        task, self._refresh_task = self._refresh_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def end_now(self) -> None:
        """The user stopped the session: it ends here, what is in flight dropped."""
        core = self.player.core
        if core is not None and not core.ended:
            core.end_session(self.player.core_now())
            self.player.drain_core()

    async def _segment(self, fetch: Fetch) -> bool:
        """Fetch one live segment (video at the rung, audio of the same index); False when it
        failed and must be asked for again."""
        pl, plan, core = self.player, self.plan, self.player.core
        j, rung = fetch.media_index, fetch.rung
        d = plan.facts.segment_duration_s
        audio_task = asyncio.ensure_future(self._audio(j)) if plan.audio is not None else None
        tried: set[int] = set()
        while True:
            try:
                body, init_new = await self._video(fetch, rung)
                break
            except NotFound as m:
                # 404 where the segment should be: missing at this rung (404 at the bleeding
                # edge is an origin that says "not yet" so, and is retried)
                if m.status == 404 and self._available_for(fetch) >= d:
                    tried.add(rung)
                    new = pl.other_rung(rung, tried)
                    pl.counters["missing"] += 1
                    pl.publish(Missing(pl.now(), fetch.segment, rung, new, m.url))
                    if new is None:
                        await _cancel(audio_task)
                        raise PlaybackError(f"live segment {j} is missing (HTTP 404) at every representation "
                                            f"(last: {m.url})") from None
                    fetch = core.abandoned(pl.core_now(), m.wasted, new, reason="missing")
                    pl.drain_core()
                    rung = new
                    continue
                await _cancel(audio_task)
                if m.status == 410:
                    core.segment_gone(pl.core_now(), m.wasted)
                    await self.resync()
                else:
                    core.download_failed(pl.core_now(), m.wasted, f"not yet (HTTP {m.status}): {m.url}")
                    await pl.clock.sleep(0.25 * d)
                pl.drain_core()
                return False
            except _Ended:
                await _cancel(audio_task)
                return True
            except TooEarly as e:
                await _cancel(audio_task)
                core.download_failed(pl.core_now(), 0, "too early (HTTP 425)")
                pl.drain_core()
                self.too_early += 1
                if self.too_early % RESYNC_AFTER_TOO_EARLY == 0:
                    await self.resync()
                await pl.clock.sleep(min(e.retry_after_s or 0.25 * d, d))
                return False
            except BaseException:
                await _cancel(audio_task)
                raise
        try:
            audio, audio_init = await audio_task if audio_task is not None else ([], None)
        except NotFound as m:
            raise PlaybackError(f"live audio segment {j} is missing (HTTP {m.status}): {m.url}") from None
        parts = [body] + audio
        t_done = max(p.t_done for p in parts)
        size = sum(p.size for p in parts) + len(init_new or b"") + len(audio_init or b"")
        if plan.protected:
            await pl.need_license()
        await pl.decrypt_and_check(j, rung, body, audio)
        transfer = max(1e-9, t_done - body.t_sent - body.latency_s)
        core.download_done(max(t_done - pl.offset, core.now), size, body.latency_s, transfer)
        pl.drain_core()
        return True

    async def resync(self) -> None:
        """Learn the origin's clock again (after a 410, or 425s in a row: the clocks drifted)
        and move the session's live edge by the change."""
        pl = self.player
        new = await synchronise(pl.fetcher, self.presentation.utc_timings, pl.wall, self.manifest)
        delta = new.offset_s - self.sync.offset_s
        self.sync = new
        pl.publish(ClockSync(pl.now(), new.offset_s, new.method, new.rtt_s, list(new.notes) + [
            f"re-synchronised: the origin's clock moved {delta:+.3f} s against ours"]))
        if abs(delta) > RESYNC_MIN_S and pl.core is not None and not pl.core.ended:
            pl.core.clock_corrected(pl.core_now(), delta)
            pl.drain_core()

    def _available_for(self, fetch: Fetch) -> float:
        """How long the in-flight segment has been available, by the model (session clock)."""
        core = self.player.core
        return float(core.live.available_for_s(fetch.segment, _ROW, np.array([core.now]))[0])

    async def _video(self, fetch: Fetch, rung: int) -> tuple[Body, bytes | None]:
        """The video part of a live segment at `rung`, its chunks reported as they arrive, and
        its init segment's bytes when this fetch brought them. `_Ended` when the session's
        duration ran out meanwhile (the core has ended)."""
        pl, plan, core = self.player, self.plan, self.player.core
        j = fetch.media_index
        track = plan.video[rung]
        d = plan.facts.segment_duration_s
        left = core.live.end_s - pl.core_now()
        init_task = pl.inits.request(track, j)

        def on_chunk(c: ChunkArrival) -> None:
            if core.in_flight is fetch and c.last_byte_s - pl.offset < core.live.end_s:
                core.chunk_arrived(max(c.last_byte_s - pl.offset, core.now), c.bytes, c.media_s,
                                   first_byte_s=c.first_byte_s - pl.offset)
                pl.drain_core()

        timer = ChunkTimer(on_chunk, lambda: track_info(pl.inits.data(track.init_key(j))))
        res = Resource("media", lambda alt: track.segment(j, alt), track.n_alternatives,
                       body_limit(None, track.rep.bandwidth_bps, d), object_type="v" if track.kind == "video" else "a",
                       segment=fetch.segment, rung=rung, track=track.kind, bitrate_bps=track.rep.bandwidth_bps,
                       duration_s=d, check=check_media if is_isobmff(track.rep.mime_type) else None,
                       on_data=timer.feed)
        try:
            body = await asyncio.wait_for(pl.fetch_resource(res), pl.clock.wall(left) + 1e-3)
        except (TimeoutError, asyncio.TimeoutError):
            core.end_session(min(core.live.end_s, max(pl.core_now(), core.now)))
            pl.drain_core()
            raise _Ended() from None
        return body, await init_task

    async def _audio(self, j: int) -> tuple[list[Body], bytes | None]:
        pl, track = self.player, self.plan.audio
        init_task = pl.inits.request(track, j)
        res = Resource("media", lambda alt: track.segment(j, alt), track.n_alternatives,
                       body_limit(None, track.rep.bandwidth_bps, self.plan.facts.segment_duration_s), object_type="a",
                       segment=j, track="audio", bitrate_bps=track.rep.bandwidth_bps,
                       duration_s=self.plan.facts.segment_duration_s)
        try:
            body = await pl.fetch_resource(res)
        except BaseException:
            if not init_task.done():
                init_task.cancel()
            raise
        return [body], await init_task

    async def _refresh(self, period_s: float) -> None:
        """Fetch the MPD again every `period_s` (minimumUpdatePeriod); new Periods join."""
        pl = self.player
        while True:
            await pl.clock.sleep(period_s)
            try:
                body = await fetch_manifest(pl.fetcher, [pl.url])
                pres = parse_body(body)
            except (FetchFailed, PlaybackError, ValueError) as exc:
                pl.publish(Note(pl.now(), f"MPD refresh failed: {str(exc)[:200]}"))
                continue
            self.refreshes += 1
            self.presentation = pres
            pl.presentation = pres
            pl.publish(Manifest(pl.now(), body.final_url or body.url, body.size, pres.type, pres.duration_s,
                                periods=len(pres.periods), notes=list(pres.notes),
                                extra={"refresh": self.refreshes}))
            for note in self.plan.refresh(pres):
                pl.publish(Note(pl.now(), note))

    def summary_extra(self) -> dict:
        return {"live": {"clock_sync": None if self.sync is None else self.sync.to_dict(),
                         "refreshes": self.refreshes,
                         "setup": None if self.player.core is None or self.player.core.live is None
                         else self.player.core.live.describe()}}


class _Ended(Exception):
    """The session's duration ran out during a fetch (the core has ended)."""


async def _cancel(task: asyncio.Task | None) -> None:
    """Stop a helper task and collect what it ended with (an error it raised included)."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
