"""The HTTP player: one streaming session over real HTTP (aiohttp), driving the sans-IO core.

`HttpPlayer(url, ...).run()` fetches and parses the MPD, picks what to play
(`player.dash.playback`), resolves SegmentBase indexes (one range request per representation
for the init segment and its ``sidx`` together when they are adjacent), then runs the loop
of `player.core.session.drive_with_link` with real I/O: ask the core, fetch, report back.

Clocks. Presentation seconds = ``time.monotonic()`` × ``time_scale`` since the player
started (`player.dash.playback.Clock`), so at ``--time-scale K`` the session runs K× faster,
matching an edge that serves ``trace.scaled(K)``. The core's clock starts at the session
start (just before the first segment request, after the manifest and indexes), like the
simulator's; event ``t_s`` fields are seconds since the player started (the summary's
``setup_s`` is the difference).

Fetching (`HttpConfig`):

* one `aiohttp.ClientSession` with keep-alive; a connect timeout (wall seconds: TCP
  connection set-up is not emulated), a first-byte timeout, an idle timeout (no body bytes)
  and a total timeout of ``total_timeout_factor`` × segment duration (all presentation
  seconds);
* 5xx, 408, 429, timeouts, resets and refused connections are retried with exponential
  backoff and jitter; after ``retries_per_edge`` consecutive failures on one BaseURL
  alternative (edge) the player fails over to the next and avoids the failed one for
  ``failover_penalty_s``; a partial body is resumed with a Range request (``If-Range`` on
  the ETag) when the server accepts ranges. Retrying one object stops after
  ``max_retry_s``: then the session ends with a one-line `PlaybackError`;
* 404/410 on a media segment: the other alternatives are tried, then the same segment at
  another representation (lower first; event ``missing``); missing everywhere is an error;
* a server that ignores ``Range`` (``python -m http.server``) is handled: the body is read
  up to the range's end and cut; the bytes before the range count as wasted;
* measurement: ``latency_s`` = request sent → response headers; ``transfer_s`` = the rest
  until the last byte (retries included, so a faulty fetch measures slow). A segment is
  handed to the core (``download_done``) when its video part, the audio segments that go
  with it and any init segment not fetched before (one per representation and period: a
  period boundary brings new ones) have all arrived: the playable buffer is then the smaller
  of the two tracks at segment granularity. Its size is the sum of those bytes; latency is
  the video request's, transfer runs to the last byte of any part.
* abandonment: every ``abandon_interval_s`` of a media download the core's
  ``check_abandon`` is asked (and the license policy's mask checked); on a rung the response
  is aborted, ``core.abandoned`` called and the segment fetched at the new rung, the
  bytes received so far counted as wasted.

Protection (`player.dash.drm`): for protected content the license request starts with the
session (in parallel with the first segment and its init segment) and must have arrived
before the first protected segment (a clear period may come first) is handed to the core. Its policy (``max_height``) masks
representations; a renewal runs at 80 % of the license duration. If the license cannot be
had, the player falls back to unprotected representations when the manifest has some, else
stops with a clear error. With ``cryptography`` installed, segments are decrypted (CENC
AES-CTR) and checked (`verify_media`).

CMCD (`player.http.cmcd`): with ``cmcd="query"`` or ``"headers"`` every request carries the
CTA-5004 keys br, bl, bs, d, mtp, nor/nrr, ot, sid, cid, su, tb (and sf, st).

Observing a session (the dashboard's hook): every event is a dict ``{"t_s", "event", ...}``
(see `EVENT_FIELDS`). ``player.add_listener(fn)`` calls ``fn(event)`` for each (an awaitable
result is scheduled as a task); ``async for ev in player.events()`` yields them (the stream
ends after the ``summary`` or ``error`` event); ``player.snapshot()`` is the current state.
"""
from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
import random
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import numpy as np

from netem.errors import InputError
from player.http import cmcd as cmcd_mod
from player.core.device import DeviceProfile
from netem.errors import DecryptError, LicenseError, PlaybackError
from player.dash.drm import (Decryptor, License, LicenseClient, RetryPolicy,
                        crypto_available, track_crypto, verify_media)
from player.dash.addressing import resolve_sidx
from player.dash.errors import ManifestUnavailable, UnsupportedManifest
from player.dash.loading import parse_manifest
from player.dash.xmlsafe import MAX_MANIFEST_BYTES
from player.dash.playback import Clock, PlaybackPlan, Selection, Track, build, make_core, select, swap_origin
from player.core.presets import get as get_preset
from player.core.session import Done, Fetch, SessionCore, Wait

MAX_INIT_BYTES = 16 * 1024 * 1024
MAX_MEDIA_BYTES = 512 * 1024 * 1024
ERROR_BODY_BYTES = 4096

#: Fields every event of a kind carries (beyond "t_s" and "event"); others may be added.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "manifest": ("url", "bytes", "type", "duration_s"),
    "session_start": ("url", "abr", "abr_params", "preset", "time_scale", "setup_s", "plan"),
    "request": ("what", "url", "range", "status", "bytes", "latency_s", "transfer_s", "edge", "attempt", "ok",
                "error", "segment", "rung", "track"),
    "decision": ("segment", "rung", "observation"),
    "wait": ("seconds", "buffer_s"),
    "download": ("segment", "rung", "bytes", "latency_s", "transfer_s", "throughput_bps", "buffer_s", "stall_s"),
    "stall_start": ("buffer_s",),
    "stall_end": ("segment",),
    "startup": ("startup_s",),
    "abandon": ("segment", "from_rung", "to_rung", "wasted_bytes"),
    "failure": ("segment", "reason", "wasted_bytes"),
    "missing": ("segment", "rung", "to_rung", "url"),
    "retry": ("what", "url", "attempt", "reason", "backoff_s"),
    "failover": ("what", "from_edge", "to_edge", "reason", "until_s"),
    "license_request": ("system", "url", "attempt", "renewal"),
    "license": ("system", "url", "latency_s", "renewal", "kids", "policy", "max_height", "license_duration_s"),
    "license_failed": ("system", "reason", "final", "renewal"),
    "license_fallback": ("reason",),
    "mask": ("allowed", "reason"),
    "decrypt": ("segment", "track", "samples"),
    "note": ("message",),
    "end": ("played_s",),
    "error": ("message",),
    "summary": ("summary",),
}


@dataclass
class HttpConfig:
    """Timeouts (presentation seconds unless stated), retries and checks of the HTTP driver."""

    connect_timeout_s: float = 4.0          # wall seconds
    first_byte_timeout_s: float = 10.0
    idle_timeout_s: float = 10.0
    total_timeout_factor: float = 8.0       # × segment duration
    min_total_timeout_s: float = 20.0
    retries_per_edge: int = 3
    backoff_s: float = 0.25
    backoff_max_s: float = 4.0
    max_retry_s: float = 60.0
    failover_penalty_s: float = 60.0
    abandon_interval_s: float = 0.25
    max_failures_per_segment: int = 6
    license_attempts: int = 3
    license_timeout_s: float = 10.0
    renew_at: float = 0.8                   # fraction of the license duration
    real_time_play_out: bool = False        # wait for the buffer to play out at the end
    seed: int = 0


# ---------------------------------------------------------------------------------------
# internal signals


class _Transient(Exception):
    """A failure worth retrying (5xx, timeout, reset, refused)."""


class _Status(Exception):
    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"HTTP {status}{': ' + detail if detail else ''}")
        self.status = status


class _Missing(Exception):
    def __init__(self, url: str, wasted: int) -> None:
        super().__init__(url)
        self.url = url
        self.wasted = wasted


class _Abandon(Exception):
    def __init__(self, rung: int, wasted: int) -> None:
        super().__init__(rung)
        self.rung = rung
        self.wasted = wasted


@dataclass
class Body:
    """One object fetched (possibly over several attempts)."""

    data: bytes
    url: str
    t_sent: float            # first attempt sent (player clock)
    latency_s: float         # of the attempt that delivered the data
    t_done: float
    edge: int
    attempts: int
    wasted: int = 0          # bytes received and thrown away (restarts, skipped prefixes)
    final_url: str = ""
    byte_range: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class _Obj:
    """What to fetch: `where(alt)` gives (url, byte range) on alternative `alt`."""

    what: str                                   # manifest | init | index | media
    where: Callable[[int], tuple[str, tuple[int, int] | None]]
    n_alts: int
    cap: int
    ot: str = "o"
    segment: int | None = None
    rung: int | None = None
    track: str | None = None
    bitrate_bps: float | None = None
    duration_s: float | None = None
    nxt: Callable[[int], tuple[str, tuple[int, int] | None] | None] | None = None
    check: Callable[[float, float], int] | None = None   # abandonment: (bytes_done, elapsed_s) -> rung | -1


@dataclass
class _State:
    """One object's fetch across attempts."""

    t_start: float
    got: bytearray = None  # type: ignore[assignment]
    wasted: int = 0
    attempts: int = 0
    resumable: bool = False
    etag: str | None = None

    def __post_init__(self) -> None:
        if self.got is None:
            self.got = bytearray()

    def discard(self) -> None:
        self.wasted += len(self.got)
        self.got.clear()


class Edges:
    """BaseURL alternatives and which have failed recently (DVB-DASH style failover)."""

    def __init__(self, n: int, penalty_s: float) -> None:
        self.n = max(1, n)
        self.penalty_s = penalty_s
        self.current = 0
        self.bad_until = [-math.inf] * self.n

    def order(self, now: float) -> list[int]:
        """Alternatives to try, best first: the current one, then the next ones, skipping
        those in penalty (unless every one is)."""
        ring = [(self.current + i) % self.n for i in range(self.n)]
        good = [a for a in ring if self.bad_until[a] <= now]
        return good or sorted(ring, key=lambda a: self.bad_until[a])

    def fail(self, alt: int, now: float) -> int:
        self.bad_until[alt % self.n] = now + self.penalty_s
        if alt % self.n == self.current:
            self.current = self.order(now)[0]
        return self.current


# ---------------------------------------------------------------------------------------
# the player


class HttpPlayer:
    """One session against `url` (an MPD over http/https). See the module doc."""

    def __init__(self, url: str, *, abr: str = "bola", abr_params: dict[str, Any] | None = None,
                 preset: str = "default", device: DeviceProfile | None = None, time_scale: float = 1.0,
                 cmcd: str | None = None, extra_origins: tuple[str, ...] | list[str] = (),
                 config: HttpConfig | None = None, qoe_model: str = "linear", trace_label: str = "network",
                 drm_system: str | None = None, license_url: str | None = None, decrypt: bool = True,
                 on_segment: Callable[[dict, bytes], None] | None = None, content_id: str | None = None,
                 session_id: str | None = None) -> None:
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
        self.clock = Clock(time_scale)
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
        self.rng = random.Random(f"abrlab-http:{self.config.seed}")
        self.listeners: list[Callable[[dict], Any]] = []
        self._queues: list[asyncio.Queue] = []
        self._tasks: set[asyncio.Task] = set()
        self.events_log: list[dict] = []
        self.session = None
        self.presentation = None
        self.selection: Selection | None = None
        self.plan: PlaybackPlan | None = None
        self.core: SessionCore | None = None
        self.offset = 0.0               # player clock at the session start
        self.session_start_monotonic: float | None = None
        self.edges = Edges(1 + len(self.extra_origins), self.config.failover_penalty_s)
        self.license: License | None = None
        self._license_task: asyncio.Task | None = None
        self._renew_task: asyncio.Task | None = None
        self._license_mask: np.ndarray | None = None
        self._decryptor: Decryptor | None = None
        self._inits: dict[tuple[str, tuple[int, int] | None], asyncio.Task] = {}
        self._init_bytes: dict[tuple[str, tuple[int, int] | None], bytes] = {}
        self._crypto: dict[tuple[str, tuple[int, int] | None], Any] = {}
        self._ncore = 0
        self._fatal: BaseException | None = None
        self._last_stalls = 0
        self._tried_sets: list = []
        self.counters = {"requests": 0, "retries": 0, "failovers": 0, "abandons": 0, "missing": 0,
                         "decrypted_segments": 0, "wasted_bytes": 0, "ranges_ignored": 0}
        self.summary: dict | None = None

    # -- observing -----------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[dict], Any]) -> None:
        """Call `fn(event)` for every event (a returned awaitable is scheduled as a task)."""
        self.listeners.append(fn)

    async def events(self) -> AsyncIterator[dict]:
        """Every event from now on; ends after the "summary" or "error" event."""
        q: asyncio.Queue = asyncio.Queue()
        self._queues.append(q)
        try:
            while True:
                ev = await q.get()
                if ev is None:
                    return
                yield ev
        finally:
            if q in self._queues:
                self._queues.remove(q)

    def snapshot(self) -> dict:
        """The session's state now, for a dashboard."""
        core, plan = self.core, self.plan
        if core is not None and not core.ended:
            core.tick(self.core_now())  # a clock tick: stalls and the playhead show as they happen
            self._drain_core()
        out: dict[str, Any] = {"t_s": self.clock.now(), "url": self.url, "phase": "setup" if core is None else
                               ("ended" if core.ended else "playing")}
        if core is not None and plan is not None:
            st = core.state
            last = core.last_rung
            tp = core.last_throughput_bps
            out.update({
                "session_s": core.now, "buffer_s": float(st.buffer_s[0]), "buffer_cap_s": core.buffer_cap_s,
                "playing": bool(st.playing[0]), "stalled": bool(st.stalled[0]), "paused": bool(st.paused[0]),
                "played_s": float(st.played_s[0]),
                "stall_s": float(st.stall_s[0]), "stalls": int(st.stall_count[0]),
                "segment": core.next_segment, "segments": plan.n_segments, "rung": last,
                "bitrate_bps": float(plan.bitrates_bps[last]) if last >= 0 else None,
                "throughput_bps": float(tp) if np.isfinite(tp) else None,
                "ladder_bps": plan.bitrates_bps.tolist(), "allowed": core.mask[0].tolist(),
                "bytes": int(core.bytes_downloaded), "wasted_bytes": int(core.wasted_bytes),
                "in_flight": None if core.in_flight is None else {"segment": core.in_flight.segment,
                                                                   "rung": core.in_flight.rung},
                "edge": self.edges.current, "license": None if self.license is None else self.license.to_dict(),
            })
        out.update({k: v for k, v in self.counters.items()})
        return out

    def pause(self) -> None:
        """Stop the playhead; downloads go on until the buffer is full."""
        if self.core is not None:
            self.core.pause(self.core_now())
            self._drain_core()

    def resume(self) -> None:
        if self.core is not None:
            self.core.resume(self.core_now())
            self._drain_core()

    @property
    def paused(self) -> bool:
        return bool(self.core is not None and self.core.state.paused[0])

    def emit(self, kind: str, **data: Any) -> dict:
        ev = {"t_s": round(self.clock.now(), 6), "event": kind, **data}
        self._publish(ev)
        return ev

    def _publish(self, ev: dict) -> None:
        ev = json_safe(ev)
        self.events_log.append(ev)
        for fn in list(self.listeners):
            res = fn(ev)
            if inspect.isawaitable(res):
                self._spawn(res)
        for q in self._queues:
            q.put_nowait(ev)

    def _drain_core(self) -> None:
        """Forward the core's new events (its clock moved to the player's)."""
        core = self.core
        if core is None:
            return
        new = core.events[self._ncore:]
        self._ncore = len(core.events)
        for e in new:
            d = e.as_dict()
            d["t_s"] = round(e.t_s + self.offset, 6)
            d["session_t_s"] = round(e.t_s, 6)
            self._publish(d)

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # -- clocks ------------------------------------------------------------------------------------
    def now(self) -> float:
        """Player clock (presentation seconds since the player started)."""
        return self.clock.now()

    def core_now(self) -> float:
        """Session clock (the core's): player clock minus the set-up time."""
        t = self.clock.now() - self.offset
        return max(t, self.core.now) if self.core is not None else t

    # -- running -------------------------------------------------------------------------------------
    async def run(self) -> dict:
        """Play to the end; returns the summary. Raises PlaybackError (network, license)
        or ManifestError/InputError (the manifest or the options)."""
        import aiohttp

        self.clock.start()
        timeout = aiohttp.ClientTimeout(total=None, connect=self.config.connect_timeout_s,
                                        sock_connect=self.config.connect_timeout_s)
        connector = aiohttp.TCPConnector(limit=32, keepalive_timeout=60.0)
        error: BaseException | None = None
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False,
                                             headers={"User-Agent": "abrlab-player/0.1"}) as session:
                self.session = session
                try:
                    await self._setup()
                    await self._play()
                    self.summary = self._summary()
                finally:
                    for t in list(self._tasks):
                        t.cancel()
                    for t in (self._license_task, self._renew_task, *self._inits.values()):
                        if t is not None and not t.done():
                            t.cancel()
                    await asyncio.gather(*self._tasks, *[t for t in (self._license_task, self._renew_task,
                                                                    *self._inits.values()) if t is not None],
                                         return_exceptions=True)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if error is not None and not isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
                msg = str(error) if isinstance(error, (PlaybackError, InputError)) else \
                    f"{type(error).__name__}: {error}"
                self.emit("error", message=msg)
                if self.core is not None and self.plan is not None:
                    try:
                        self.summary = self._summary(error=msg)
                    except Exception:  # pragma: no cover - the summary must not hide the error
                        self.summary = None
            elif error is not None and self.core is not None and self.plan is not None:
                # stopped by the user (q, Ctrl-C): the summary of what was played so far
                self.summary = self._summary(error="stopped before the end")
            elif error is None and self.summary is not None:
                self.emit("summary", summary=self.summary)
            for q in self._queues:
                q.put_nowait(None)
        return self.summary  # type: ignore[return-value]

    # -- set-up: manifest, selection, indexes ------------------------------------------------------------
    async def _setup(self) -> None:
        origins = [self.url] + [swap_origin(self.url, o) for o in self.extra_origins]
        obj = _Obj("manifest", lambda alt: (origins[alt % len(origins)], None), len(origins),
                   MAX_MANIFEST_BYTES, ot="m")
        try:
            body = await self._fetch(obj)
        except _Missing as m:
            raise ManifestUnavailable(f"HTTP 404 fetching {m.url}") from None
        final = body.final_url or body.url
        pres = parse_manifest(body.data, final)
        self.presentation = pres
        self.emit("manifest", url=final, bytes=body.size, type=pres.type, duration_s=pres.duration_s,
                  periods=len(pres.periods), notes=list(pres.notes))
        pres.require_static()
        await self._prepare(select(pres, self.device))

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
        n = max([t.n_alternatives for t in plan.video] + ([plan.audio.n_alternatives] if plan.audio else []))
        if n != self.edges.n:
            self.edges = Edges(n, self.config.failover_penalty_s)
        for note in plan.notes:
            self.emit("note", message=note)
        self.plan = plan

    async def _sidx(self, rep) -> Any:
        from player.dash.playback import alternatives

        pend = rep.pending_sidx
        bases = alternatives(rep, pend.media_url, self.extra_origins)
        init = pend.init
        combined = (init is not None and init.url == pend.url and init.byte_range is not None
                    and pend.index_range is not None and init.byte_range[1] + 1 == pend.index_range[0])

        def where(alt: int):
            p = pend.with_base_url(bases[alt % len(bases)]) if alt % len(bases) else pend
            if combined:
                return p.url, (p.init.byte_range[0], p.index_range[1])
            return p.url, p.index_range

        try:
            body = await self._fetch(_Obj("index", where, len(bases), MAX_INIT_BYTES, ot="i",
                                          track=rep.id, bitrate_bps=rep.bandwidth_bps))
        except _Missing as m:
            raise PlaybackError(f"segment index of representation {rep.id!r} not found (HTTP 404) at {m.url}") \
                from None
        data = body.data
        if combined:
            n_init = init.byte_range[1] - init.byte_range[0] + 1
            self._init_bytes[(init.url, init.byte_range)] = data[:n_init]
            data = data[n_init:]
        return resolve_sidx(rep, data)

    # -- the session -----------------------------------------------------------------------------------
    def _start_session(self, first: bool = True) -> None:
        plan = self.plan
        mask = plan.mask.copy()
        if self._license_mask is not None:
            mask = self._combine(mask, self._license_mask)
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
        self._ncore = 0
        if core_t > 0:
            core.tick(core_t)
        self.emit("session_start", url=self.url, abr=self.abr_name, abr_params=core.policy.describe(),
                  preset=self.preset_name, time_scale=self.clock.time_scale, setup_s=self.offset,
                  plan=described, cmcd=None if self.cmcd is None else self.cmcd.mode,
                  session_id=None if self.cmcd is None else self.cmcd.sid, restart=not first)
        if plan.protected and self._license_task is None:
            self._license_task = asyncio.ensure_future(self._acquire_license())

    async def _play(self) -> None:
        self._start_session(first=True)
        plan = self.plan
        failures: dict[int, int] = {}
        bound = 20 * (plan.n_segments + 10) * (self.config.max_failures_per_segment + len(plan.video) + 2)
        for _ in range(bound):
            if self._fatal is not None:
                raise self._fatal
            core = self.core
            action = core.next_action(self.core_now())
            self._drain_core()
            if isinstance(action, Done):
                if self.config.real_time_play_out:
                    await self.clock.sleep(float(core.state.clock_s[0]) - (self.clock.now() - self.offset))
                return
            if isinstance(action, Wait):
                await self._wait_until(action.until_s)
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
                    self._drain_core()
                if failures[k] >= self.config.max_failures_per_segment:
                    raise PlaybackError(f"segment {k + 1}: {exc}") from None
        raise PlaybackError("the session did not end (loop bound reached)")  # pragma: no cover

    async def _wait_until(self, until_s: float) -> None:
        """Sleep on the session clock until `until_s` (a wait for room in the buffer)."""
        delay = until_s - (self.clock.now() - self.offset)
        if delay > 0:
            await self.clock.sleep(delay)
        if self.core is not None and self.core_now() < until_s:
            self.core.tick(until_s)
        else:
            self.core.tick(self.core_now())
        self._drain_core()

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
                init_task = self._init(track, k)
                obj = self._media_obj(track, k, rung, "v" if track.kind == "video" else "a")
                obj.check = self._abandon_check
                try:
                    body = await self._fetch(obj)
                    break
                except _Abandon as a:
                    self.counters["abandons"] += 1
                    core.abandoned(self.core_now(), a.wasted, a.rung)
                    self._drain_core()
                    rung = a.rung
                except _Missing as m:
                    tried.add(rung)
                    self.counters["missing"] += 1
                    new = self._other_rung(rung, tried)
                    self.emit("missing", segment=k, rung=rung, to_rung=new, url=m.url)
                    if new is None:
                        raise PlaybackError(f"segment {k + 1} is missing (HTTP 404/410) at every representation "
                                            f"(last: {m.url})") from None
                    core.abandoned(self.core_now(), m.wasted, new, reason="missing")
                    self._drain_core()
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
            await self._need_license()
        await self._decrypt_and_check(k, rung, body, audio)
        core.download_done(max(t_done - self.offset, core.now), size, latency, transfer)
        self._drain_core()

    def _media_obj(self, track: Track, k: int, rung: int | None, ot: str) -> _Obj:
        n = track.n_segments
        dur = float(track.durations_s()[k]) if track.kind == "audio" else \
            float(self.plan.segment_plan.durations_s[k])

        def nxt(alt: int):
            return track.segment(k + 1, alt) if k + 1 < n else None

        return _Obj("media", lambda alt: track.segment(k, alt), track.n_alternatives, MAX_MEDIA_BYTES, ot=ot,
                    segment=k, rung=rung, track=track.kind, bitrate_bps=track.rep.bandwidth_bps, duration_s=dur,
                    nxt=nxt)

    async def _audio_parts(self, k: int) -> tuple[list[Body], bytes | None]:
        """The audio segments that go with video segment `k`, and the bytes of any init
        segment fetched for them (a period boundary may need a new one)."""
        track = self.plan.audio
        wanted = self.plan.audio_for[k]
        firsts = {track.init_key(j): j for j in reversed(wanted)}
        init_tasks = [self._init(track, j) for j in firsts.values()]
        out = []
        try:
            for j in wanted:
                try:
                    out.append(await self._fetch(self._media_obj(track, j, None, "a")))
                except _Missing as m:
                    raise PlaybackError(f"audio segment {j + 1} is missing (HTTP 404/410): {m.url}") from None
        except BaseException:
            for t in init_tasks:
                if not t.done():
                    t.cancel()
            raise
        inits = [b for b in await asyncio.gather(*init_tasks) if b]
        return out, (b"".join(inits) if inits else None)

    def _init(self, track: Track, k: int = 0) -> asyncio.Future:
        """The init segment segment `k` of a track needs, fetched once and cached (by its URL
        and range: rungs or periods that share one share the fetch). The returned future
        gives the bytes if this call started the fetch, None if they were cached."""
        key = track.init_key(k)
        t = self._inits.get(key)
        if t is not None and t.done() and (t.cancelled() or t.exception() is not None):
            t = None   # a failed or cancelled fetch is tried again
        if t is None and key is not None and key not in self._init_bytes:
            t = self._inits[key] = asyncio.ensure_future(self._fetch_init(track, k))
            return t
        return asyncio.ensure_future(self._cached_init(t))

    @staticmethod
    async def _cached_init(t: asyncio.Task | None) -> None:
        if t is not None:
            await asyncio.shield(t)
        return None

    async def _fetch_init(self, track: Track, k: int = 0) -> bytes:
        part, _ = track.at(k)

        def where(alt: int):
            init = part.init(alt)
            return init.url, init.byte_range

        try:
            body = await self._fetch(_Obj("init", where, part.n_alternatives, MAX_INIT_BYTES, ot="i",
                                          track=track.kind, bitrate_bps=part.rep.bandwidth_bps))
        except _Missing as m:
            raise PlaybackError(f"init segment of {part.rep.id!r} not found (HTTP 404/410) at {m.url}") from None
        self._init_bytes[track.init_key(k)] = body.data
        return body.data

    def _other_rung(self, rung: int, tried: set[int]) -> int | None:
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
        self._drain_core()
        return r

    # -- license -------------------------------------------------------------------------------------
    async def _acquire_license(self) -> License:
        info = self.plan.drm
        dev = self.device
        client = LicenseClient(self.session, info, self.clock, robustness=dev.drm_robustness if dev else None,
                               hdcp=(dev.hdcp if dev else None),
                               retry=RetryPolicy(self.config.license_attempts, self.config.license_timeout_s,
                                                 self.config.backoff_s * 2, self.config.backoff_max_s,
                                                 seed=self.config.seed),
                               emit=self._emit_cb, prepare=self._license_prepare)
        self._license_client = client
        try:
            lic = await client.acquire()
        except LicenseError as exc:
            self.emit("license_failed", system=info.system, reason=str(exc), final=exc.final, renewal=False)
            raise
        self._apply_license(lic)
        return lic

    def _emit_cb(self, kind: str, **data: Any) -> None:
        if kind == "retry":
            self.counters["retries"] += 1
        self.emit(kind, **data)

    def _license_prepare(self, url: str, headers: dict) -> str:
        if self.cmcd is None:
            return url
        return self.cmcd.apply(url, headers, cmcd_mod.CmcdData(ot="k", sid=self.cmcd.sid, cid=self.cmcd.cid))

    def _apply_license(self, lic: License, renewal: bool = False) -> None:
        """Use a (new or renewed) license: keys for decryption, its policy as a mask."""
        self.license = lic
        if self.decrypt and lic.keys and crypto_available():
            self._decryptor = Decryptor(lic.keys)
        elif self.decrypt and lic.keys and not renewal:
            self.emit("note", message="segments are not decrypted: the optional 'cryptography' package is "
                                      "missing (pip install abrlab[drm])")
        lm = np.array([lic.allows(int(h)) for h in self.plan.heights], dtype=bool)
        self._license_mask = lm
        if self.core is not None:
            new = self._combine(self.plan.mask, lm)
            if self.core.set_mask(new, f"{'renewed ' if renewal else ''}license policy max_height={lic.max_height}"):
                self._drain_core()
        if not renewal and lic.duration_s is not None:
            self._renew_task = self._spawn(self._renew(lic))

    def _combine(self, device_mask: np.ndarray, license_mask: np.ndarray) -> np.ndarray:
        m = device_mask & license_mask
        if not m.any():
            self.emit("note", message="the license policy allows no representation this device plays; "
                                      "the lowest the device allows stays")
            m = np.zeros_like(device_mask)
            m[int(np.flatnonzero(device_mask)[0])] = True
        return m

    async def _renew(self, lic: License) -> None:
        """Renew at `renew_at` of the license duration, retrying until it expires; an
        expired, unrenewed license ends the session."""
        at = lic.acquired_s + self.config.renew_at * lic.duration_s
        expires = lic.expires_s
        tries = 0
        while True:
            await self.clock.sleep(at - self.clock.now())
            try:
                new = await self._license_client.acquire(renewal=True)
            except LicenseError as exc:
                self.emit("license_failed", system=lic.system, reason=str(exc), final=exc.final, renewal=True)
                now = self.clock.now()
                if now >= expires or exc.final:
                    self._fatal = PlaybackError(f"license could not be renewed before it expired at "
                                                f"{expires:.1f} s: {exc}")
                    return
                tries += 1
                at = now + min(self._backoff(tries), max(0.0, (expires - now) / 2))
                continue
            self._apply_license(new, renewal=True)
            lic, tries = new, 0
            at = lic.acquired_s + self.config.renew_at * lic.duration_s if lic.duration_s else math.inf
            expires = lic.expires_s
            if not math.isfinite(at):
                return

    async def _need_license(self) -> License:
        if self._license_task is None:
            self._license_task = asyncio.ensure_future(self._acquire_license())
        return await asyncio.shield(self._license_task)

    async def _license_fallback(self, exc: LicenseError) -> None:
        pres = self.presentation
        try:
            selection = select(pres, self.device, clear_only=True, exclude=self._tried_sets)
        except UnsupportedManifest:
            raise PlaybackError(f"license: {exc}; the manifest has no unprotected representations to fall "
                                "back to") from None
        self.emit("license_fallback", reason=str(exc), adaptation_set=selection.main.id)
        old_core = self.core
        await self._prepare(selection)
        if self.plan.protected:  # pragma: no cover - select(clear_only) excludes protected sets
            raise PlaybackError(f"license: {exc}")
        self._license_task = None
        self._license_mask = None
        if old_core is not None and old_core.in_flight is not None:
            old_core.download_failed(self.core_now(), 0, "license failed")
            self._drain_core()
        self._start_session(first=False)

    # -- decryption and checks --------------------------------------------------------------------------
    async def _decrypt_and_check(self, k: int, rung: int, video: Body, audio: list[Body]) -> None:
        """Decrypt (and check) the segment's parts when protected and a key is at hand; give
        each part to `on_segment`."""
        plan = self.plan
        jobs = [(plan.video[rung], video, k, rung)]
        jobs += [(plan.audio, b, j, None) for b, j in zip(audio, plan.audio_for[k])]
        for track, body, idx, r in jobs:
            data = body.data
            samples = None
            rep = track.rep_at(idx)
            if track.protected_at(idx) and self._decryptor is not None:
                key = track.init_key(idx)
                tc = self._crypto.get(key)
                if tc is None:
                    init = self._init_bytes.get(key)
                    if init is None:
                        await self._init(track, idx)
                        init = self._init_bytes.get(key)
                    if init is not None:
                        tc = self._crypto[key] = track_crypto(init)
                if tc is not None and tc.protected:
                    data = await asyncio.to_thread(self._decryptor.decrypt, tc, data)
                    nal = tc.kind if (rep.codecs or "avc").split(".")[0] in (
                        "avc1", "avc3", "hvc1", "hev1", "encv", "avc") else "unknown"
                    samples = await asyncio.to_thread(verify_media, data, nal)
                    self.counters["decrypted_segments"] += 1
                    self.emit("decrypt", segment=idx, track=track.kind, samples=samples, rung=r)
            if self.on_segment is not None:
                self.on_segment({"segment": idx, "rung": r, "track": track.kind, "rep": rep.id,
                                 "url": body.url, "range": body.byte_range, "decrypted": samples is not None}, data)

    # -- fetching ------------------------------------------------------------------------------------
    def _cmcd(self, obj: _Obj, url: str, rng: tuple[int, int] | None, alt: int) -> cmcd_mod.CmcdData | None:
        if self.cmcd is None:
            return None
        core = self.core
        bl = mtp = tb = None
        su = True
        bs = False
        if core is not None:
            bl = float(core.state.buffer_s[0])
            tp = core.last_throughput_bps
            mtp = tp if np.isfinite(tp) else None
            allowed = np.flatnonzero(core.mask[0])
            tb = float(self.plan.bitrates_bps[allowed[-1]]) if allowed.size else None
            su = (not bool(core.state.playing[0])) or bool(core.state.stalled[0])
            bs = core.stall_count > self._last_stalls   # starved since the previous media request
            if obj.what == "media" and obj.track == self.plan.video[0].kind:
                self._last_stalls = core.stall_count
        nor = nrr = None
        if obj.nxt is not None:
            nx = obj.nxt(alt)
            if nx is not None:
                nurl, nrng = nx
                if nurl != url:
                    nor = cmcd_mod.relative(url, nurl)
                if nrng is not None:
                    nrr = nrng
        return cmcd_mod.CmcdData(ot=obj.ot, sid=self.cmcd.sid, cid=self.cmcd.cid, br_bps=obj.bitrate_bps,
                                 d_s=obj.duration_s, tb_bps=tb, bl_s=bl, mtp_bps=mtp, nor=nor, nrr=nrr, su=su, bs=bs)

    def _backoff(self, n: int) -> float:
        base = min(self.config.backoff_max_s, self.config.backoff_s * (2 ** n))
        return base * (0.5 + 0.5 * self.rng.random())

    async def _fetch(self, obj: _Obj) -> Body:
        """Fetch one object with retries, resume and failover (see the module doc)."""
        cfg = self.config
        st = _State(t_start=self.now())
        n_obj = max(1, obj.n_alts)
        consecutive = 0
        missing: set[int] = set()
        last = "no attempt"
        used: set[int] = set()
        while True:
            order = list(dict.fromkeys(a % n_obj for a in self.edges.order(self.now())))
            order = [a for a in order if a not in missing]
            if not order:
                raise _Missing(obj.where(0)[0], st.wasted + len(st.got))
            alt = order[0]
            used.add(alt)
            url, rng = obj.where(alt)
            if st.got and not st.resumable:
                st.discard()
            st.attempts += 1
            self.counters["requests"] += 1
            try:
                body = await self._once(obj, url, rng, alt, st)
                self.counters["wasted_bytes"] += st.wasted
                body.wasted = st.wasted
                return body
            except _Abandon as a:
                a.wasted = st.wasted + len(st.got)
                raise
            except _Status as s:
                if s.status in (404, 410):
                    missing.add(alt)
                    if len(missing) >= n_obj:
                        raise _Missing(url, st.wasted + len(st.got)) from None
                    nxt = [a for a in order if a not in missing]
                    self.counters["failovers"] += 1
                    self.emit("failover", what=obj.what, from_edge=alt, to_edge=nxt[0] if nxt else None,
                              reason=str(s), until_s=None, url=url, segment=obj.segment)
                    continue
                if s.status not in (408, 429) and s.status < 500:
                    raise PlaybackError(f"{obj.what} {url}: {s}") from None
                last = str(s)
            except _Transient as t:
                last = str(t)
            consecutive += 1
            elapsed = self.now() - st.t_start
            if elapsed >= cfg.max_retry_s:
                what = obj.what if obj.segment is None else f"{obj.track or obj.what} segment {obj.segment + 1}"
                raise PlaybackError(f"{what} ({url}): gave up after {st.attempts} attempts in {elapsed:.1f} s "
                                    f"on {len(used)} edge(s); last error: {last}")
            if consecutive >= cfg.retries_per_edge and n_obj > 1 and self.edges.n > 1:
                new = self.edges.fail(alt, self.now()) % n_obj
                consecutive = 0
                if new != alt:
                    self.counters["failovers"] += 1
                    self.emit("failover", what=obj.what, from_edge=alt, to_edge=new, reason=last,
                              until_s=round(self.edges.bad_until[alt % self.edges.n], 6), url=url,
                              segment=obj.segment)
                    continue
            delay = min(self._backoff(max(0, consecutive - 1)), max(0.0, cfg.max_retry_s - elapsed))
            self.counters["retries"] += 1
            self.emit("retry", what=obj.what, url=url, attempt=st.attempts, reason=last, backoff_s=round(delay, 6),
                      segment=obj.segment, resume_from=len(st.got) if st.resumable else 0)
            await self.clock.sleep(delay)

    async def _once(self, obj: _Obj, url: str, rng: tuple[int, int] | None, alt: int, st: "_State") -> Body:
        """One HTTP attempt. Body bytes go to `st.got` (a resumed attempt asks for the rest);
        raises _Status, _Transient, _Abandon or PlaybackError."""
        import aiohttp
        from yarl import URL

        cfg = self.config
        held = len(st.got)                       # bytes kept from earlier attempts
        start = (rng[0] if rng else 0) + held
        headers: dict[str, str] = {"Accept-Encoding": "identity"}
        if rng is not None or held:
            headers["Range"] = f"bytes={start}-{'' if rng is None else rng[1]}"
            if held and st.etag:
                headers["If-Range"] = st.etag
        req_url = url
        data = self._cmcd(obj, url, rng, alt)
        if data is not None:
            req_url = self.cmcd.apply(url, headers, data)
        t_sent = self.now()
        rec = {"what": obj.what, "url": url, "range": None if rng is None else list(rng), "status": None,
               "bytes": 0, "latency_s": None, "transfer_s": None, "edge": alt, "attempt": st.attempts, "ok": False,
               "error": None, "segment": obj.segment, "rung": obj.rung, "track": obj.track}
        if held:
            rec["resume_from"] = held
        resp = None
        received = 0
        try:
            try:
                async with asyncio.timeout(self.clock.wall(cfg.first_byte_timeout_s)):
                    resp = await self.session.get(URL(req_url, encoded=True), headers=headers, allow_redirects=True)
            except TimeoutError:
                raise _Transient(f"no response within {cfg.first_byte_timeout_s:g} s") from None
            t_first = self.now()
            rec["status"] = resp.status
            rec["latency_s"] = round(t_first - t_sent, 6)
            if resp.status not in (200, 206):
                detail = ""
                try:
                    async with asyncio.timeout(self.clock.wall(cfg.idle_timeout_s)):
                        detail = (await resp.content.read(ERROR_BODY_BYTES)).decode("utf-8", "replace").strip()
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                raise _Status(resp.status, detail.splitlines()[0][:120] if detail else "")
            skip = 0
            if resp.status == 206:
                cr = resp.headers.get("Content-Range", "")
                if _content_range_start(cr) != start:
                    raise _Transient(f"unexpected Content-Range {cr!r} for bytes={start}-")
            elif "Range" in headers:
                # 200 to a range request: the server sends the whole resource (http.server)
                self.counters["ranges_ignored"] += 1
                st.discard()
                skip = rng[0] if rng else 0
            # total length of the object we want, when known
            if rng is not None:
                target = rng[1] - rng[0] + 1
            elif resp.status == 206:
                rest = _content_range_total(resp.headers.get("Content-Range", ""))
                target = None if rest is None else held + rest
            else:
                target = resp.content_length
            length = resp.content_length
            if length is not None and length - skip > obj.cap:
                raise PlaybackError(f"{obj.what} {url}: Content-Length {length} exceeds the limit of {obj.cap} bytes")
            st.resumable = resp.status == 206 or resp.headers.get("Accept-Ranges", "").lower() == "bytes"
            st.etag = resp.headers.get("ETag") or st.etag
            dur = obj.duration_s or 2.0
            total = max(cfg.min_total_timeout_s, cfg.total_timeout_factor * dur + cfg.first_byte_timeout_s)
            deadline = t_sent + total
            last_data = last_check = self.now()
            check = obj.check
            step = min(cfg.idle_timeout_s, cfg.abandon_interval_s) if check else cfg.idle_timeout_s
            try:
                while True:
                    now = self.now()
                    wait = min(step, deadline - now, cfg.idle_timeout_s - (now - last_data))
                    chunk = None
                    try:
                        async with asyncio.timeout(self.clock.wall(max(wait, 1e-4))):
                            chunk = await resp.content.readany()
                    except TimeoutError:
                        now = self.now()
                        if now - last_data >= cfg.idle_timeout_s - 1e-6:
                            raise _Transient(f"no data for {cfg.idle_timeout_s:g} s after {received} bytes") \
                                from None
                        if now >= deadline - 1e-6:
                            raise _Transient(f"not complete after {total:g} s ({received} bytes)") from None
                    if chunk is not None:
                        if not chunk:
                            break
                        received += len(chunk)
                        last_data = self.now()
                        if skip:
                            drop = min(skip, len(chunk))
                            skip -= drop
                            st.wasted += drop
                            chunk = chunk[drop:]
                        st.got += chunk
                        if len(st.got) > obj.cap:
                            raise PlaybackError(f"{obj.what} {url}: more than {obj.cap} bytes")
                        if target is not None and len(st.got) > target or (
                                target is not None and len(st.got) == target and resp.status == 200
                                and rng is not None):
                            st.wasted += len(st.got) - target
                            del st.got[target:]
                            resp.close()  # the rest of a resource we did not ask for
                            break
                    if check is not None and self.now() - last_check >= cfg.abandon_interval_s:
                        last_check = self.now()
                        r = check(float(len(st.got)), self.now() - st.t_start)
                        if r >= 0:
                            resp.close()
                            rec["error"] = f"abandoned for rung {r}"
                            raise _Abandon(r, 0)
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                    ConnectionError) as exc:
                raise _Transient(f"connection lost after {received} bytes ({type(exc).__name__})") from None
            t_done = self.now()
            if target is not None and len(st.got) < target:
                raise _Transient(f"short body: {len(st.got)} of {target} bytes")
            rec.update(ok=True, transfer_s=round(t_done - t_first, 6))
            final = str(resp.url) if resp.history else url
            return Body(bytes(st.got), url, st.t_start, t_first - t_sent, t_done, alt, st.attempts, final_url=final,
                        byte_range=rng)
        except (_Status, _Transient, _Abandon) as exc:
            rec["error"] = rec["error"] or str(exc)
            raise
        except PlaybackError as exc:
            rec["error"] = str(exc)
            raise
        except (aiohttp.ClientError, OSError) as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}".split("\n")[0][:200]
            raise _Transient(rec["error"]) from None
        finally:
            if resp is not None:
                resp.release()
            rec["bytes"] = received
            self.emit("request", **rec)

    # -- results -------------------------------------------------------------------------------------
    def _summary(self, error: str | None = None) -> dict:
        extra = {
            "mode": "http", "url": self.url, "time_scale": self.clock.time_scale, "setup_s": self.offset,
            "wasted_bytes": int(self.core.wasted_bytes) + self.counters["wasted_bytes"],
            "ranges_ignored": self.counters["ranges_ignored"],
            "requests": self.counters["requests"], "retries": self.counters["retries"],
            "failovers": self.counters["failovers"], "abandons": self.counters["abandons"],
            "missing": self.counters["missing"], "decrypted_segments": self.counters["decrypted_segments"],
            "license": None if self.license is None else self.license.to_dict(),
            "cmcd": None if self.cmcd is None else self.cmcd.mode,
            "session_id": None if self.cmcd is None else self.cmcd.sid,
            "complete": error is None and self.core.ended,
        }
        if error is not None:
            extra["error"] = error
        labels = {"abr": self.abr_name, "trace": self.trace_label, "movie": self.url,
                  "device": self.plan.device.name if self.plan.device else "none", "preset": self.preset_name}
        s = self.core.summary(self.qoe_model, labels=labels)
        s.update(extra)
        return json_safe(s)


def json_safe(v: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to Python, NaN/inf to None."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return json_safe(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def _content_range_total(text: str) -> int | None:
    """The complete length in a Content-Range header minus the start: the bytes still to come
    for an open range; None when unknown."""
    t = text.strip().lower()
    if not t.startswith("bytes "):
        return None
    spec, _, total = t[6:].partition("/")
    a, _, b = spec.partition("-")
    if not (a.strip().isdigit() and b.strip().isdigit()):
        return None
    return int(b) - int(a) + 1


def _content_range_start(text: str) -> int | None:
    t = text.strip().lower()
    if not t.startswith("bytes "):
        return None
    spec = t[6:].split("/", 1)[0]
    a, _, _ = spec.partition("-")
    return int(a) if a.strip().isdigit() else None


async def play(url: str, **kwargs: Any) -> dict:
    """Run one session and return its summary (see `HttpPlayer`)."""
    return await HttpPlayer(url, **kwargs).run()
