"""An emulated crowd: N real HTTP players (`player.http.player.HttpPlayer`) and bulk downloads
on one shaped edge, in one process, arriving and leaving over time.

`emulate(group, time_scale=K)` runs the crowd a `player.core.crowd.Bottleneck` describes — its
clients' content, policies, devices, presets, arrival and viewing times, its bulk flows —
for real: an in-process `netem.edge.EdgeServer` on 127.0.0.1 (port 0) serves the content
through the group's trace (every response body shares its one bottleneck), or an edge
elsewhere (`url`: e.g. `abrlab serve` in its own process). Times are the bottleneck's
(trace seconds); at time scale K everything runs K times faster on the wall clock.

* A client arrives at its `start_s` (it then fetches the manifest; its session clock starts
  with the first segment request, as the simulator's does) and leaves `watch_s` session
  seconds later if it has not finished (its task is cancelled: the summary covers what it
  played, `complete` False).
* A bulk flow is a client downloading `/bulk.bin`, an endless object the in-process edge
  serves (1 TiB of zeros), from `start_s` until `stop_s` or until every player has finished.
* Measured as it runs: each player's events (decisions, downloads), the edge's shaped bytes
  (`Shaper.released_bytes`, in-process only) and the bulk flows' bytes, sampled every 50 ms
  of wall time. `EmulatedCrowd.outcome()` turns them into a
  `player.core.crowd_metrics.CrowdOutcome`, the form the simulated crowd's metrics take too;
  `EmulatedCrowd.as_simulated()` is the same crowd for the simulator, with the arrival and
  departure times the emulation actually had.
"""
from __future__ import annotations

import asyncio
import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from netem.edge import EdgeServer, Resource, make_source
from netem.link import Link
from netem.package import SyntheticPresentation
from player.core.crowd import Bottleneck, BulkFlow
from player.core.crowd_metrics import ClientTimeline, CrowdOutcome, time_edges
from player.http.player import HttpConfig, HttpPlayer

BULK_PATH = "bulk.bin"
BULK_BYTES = 1 << 40
BULK_CHUNK_BYTES = 64 * 1024
SAMPLE_WALL_S = 0.05


class CrowdSource:
    """A presentation's files plus `/bulk.bin`, an endless object for bulk downloads."""

    def __init__(self, source) -> None:
        self.inner = make_source(source)
        self.mpd_path = self.inner.mpd_path

    def lookup(self, url_path: str, raw_path: str) -> Resource:
        if url_path.strip("/") == BULK_PATH:
            return Resource(BULK_PATH, BULK_BYTES, '"abrlab-bulk"', "application/octet-stream",
                            lambda start, end: bytes(end - start))
        return self.inner.lookup(url_path, raw_path)


@dataclass
class EmulatedClient:
    """One player of the crowd, on the bottleneck's clock (trace seconds)."""

    index: int
    abr: str
    player: HttpPlayer | None = None
    arrival_s: float = 0.0                # when it arrived (asked for the manifest)
    start_s: float | None = None          # when its session clock started (first segment request)
    end_s: float | None = None            # its last segment arrived, or it left
    left: bool = False
    summary: dict | None = None
    error: str | None = None
    decisions: dict[int, float] = field(default_factory=dict)   # segment -> session time of its decision
    log: list[dict] = field(default_factory=list)                # its events, as JSON dicts

    @property
    def active(self) -> bool:
        return self.start_s is not None and self.end_s is None


@dataclass
class EmulatedCrowd:
    """What an emulated crowd did."""

    group: Bottleneck
    time_scale: float
    clients: list[EmulatedClient]
    bulk_bytes: list[float]
    samples: np.ndarray                   # (m, 3): bottleneck time, edge's shaped bytes, bulk bytes so far
    url: str
    wall_s: float
    in_process_edge: bool
    edge_t0: float = 0.0                  # the event loop's time at the bottleneck's time zero
    sample_log: list = field(default_factory=list)   # samples as they are taken (live views read it)

    def timelines(self, qoe_model: str = "linear") -> list[ClientTimeline]:
        out = []
        for c in self.clients:
            s = c.summary
            if s is None or c.start_s is None:
                continue
            chosen = np.asarray(s.get("chosen", []), dtype=np.int64)
            ladder = np.asarray(self.group.clients[c.index].content.bitrates_bps, dtype=np.float64)
            req = np.array([c.start_s + c.decisions.get(k, math.nan) for k in range(chosen.size)])
            ok = np.isfinite(req)
            out.append(ClientTimeline(c.start_s, c.end_s if c.end_s is not None else c.start_s, req[ok],
                                      ladder[chosen[ok]], s))
        return out

    def outcome(self, qoe_model: str = "linear", step_s: float = 1.0) -> CrowdOutcome:
        """The crowd as `player.core.crowd_metrics` reads it. Delivered bits per bin: the edge's
        shaped bytes (in-process) or the players' own downloads (each spread over its transfer)."""
        tl = self.timelines(qoe_model)
        edges = time_edges(tl, step_s)
        link = Link([self.group.trace])
        cap = link.delivered_bits(np.zeros(edges.size - 1, dtype=np.int64), edges[:-1], edges[1:])
        t, shaped, bulk = (self.samples[:, i] for i in range(3)) if self.samples.size else (np.zeros(1),) * 3
        bulk_bits = np.diff(np.interp(edges, t, bulk * 8.0)) if self.samples.size else np.zeros(edges.size - 1)
        if self.in_process_edge and self.samples.size:
            delivered = np.diff(np.interp(edges, t, shaped * 8.0))
            players = np.maximum(delivered - bulk_bits, 0.0)
        else:
            players = self.player_bits(edges)
            delivered = players + bulk_bits
        mid = 0.5 * (edges[:-1] + edges[1:])
        bulk_on = np.zeros(mid.size)
        for b in self.group.bulk:
            bulk_on += (mid >= b.start_s) & (mid < b.stop_s)
        return CrowdOutcome(tl, edges, cap, delivered, players, bulk_on,
                            extra={"bulk_bytes": list(self.bulk_bytes), "mode": "emulated",
                                   "time_scale": self.time_scale, "wall_s": self.wall_s})

    def player_bits(self, edges: np.ndarray) -> np.ndarray:
        """Bits the players received per bin, from their request events."""
        out = np.zeros(edges.size - 1)
        for c in self.clients:
            p = c.player
            if p is None:
                continue
            base = self.bottleneck_time_of(p)
            for ev in c.log:
                if ev.get("event") != "request" or not ev.get("bytes"):
                    continue
                t1 = base + ev["t_s"]
                t0 = t1 - (ev.get("transfer_s") or 0.0)
                bits = 8.0 * ev["bytes"]
                lo, hi = np.clip([t0, t1], edges[0], edges[-1])
                if hi <= lo:
                    j = min(max(int(np.searchsorted(edges, t1) - 1), 0), out.size - 1)
                    out[j] += bits
                    continue
                overlap = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)
                out += bits * overlap / (hi - lo)
        return out

    def bottleneck_time_of(self, player: HttpPlayer) -> float:
        """The bottleneck time at the player's clock zero."""
        return (player.clock.t0 - self.edge_t0) * self.time_scale

    def request_overhead_s(self) -> float:
        """The session time a request costs here beyond what the link model charges (client
        and server in Python, timers of about a millisecond): per media request, the time
        from the previous segment's arrival to this request less any wait for room or policy
        delay, plus its latency less the trace's; the median over every client's requests."""
        extra = []
        trace = self.group.trace
        for c in self.clients:
            if c.player is None or c.start_s is None:
                continue
            prev = None
            waited = 0.0
            for ev in c.log:
                kind = ev.get("event")
                if kind == "wait" and ev.get("session_t_s") is not None:
                    waited += float(ev.get("seconds") or 0.0)
                elif kind == "download" and ev.get("session_t_s") is not None:
                    sent = ev["session_t_s"] - ev["latency_s"] - ev["transfer_s"]
                    lat = float(trace.latency_at(c.start_s + sent))
                    gap = sent - prev - waited if prev is not None else 0.0
                    extra.append(ev["latency_s"] - lat + max(gap, 0.0))
                    prev, waited = ev["session_t_s"], 0.0
        return max(0.0, float(np.median(extra))) if extra else 0.0

    def as_simulated(self, overhead_s: float = 0.0) -> Bottleneck:
        """The same crowd for the simulator: each client from its measured session start,
        leaving after the session time it actually had if it left early; `overhead_s` added to
        every request's latency (`request_overhead_s`: the cost of a real request)."""
        clients = []
        presets: dict[int, object] = {}
        for c, spec in zip(self.clients, self.group.clients):
            if c.start_s is None:
                continue
            watch = None
            if c.left and c.end_s is not None:
                watch = max(c.end_s - c.start_s, 1e-6)
            preset = spec.preset
            if overhead_s > 0:
                base = spec.resolved_preset()
                if id(base) not in presets:
                    presets[id(base)] = replace(base, link=replace(base.link, overhead_s=base.link.overhead_s
                                                                   + overhead_s))
                preset = presets[id(base)]
            clients.append(replace(spec, start_s=max(c.start_s, 0.0), watch_s=watch, preset=preset))
        return replace(self.group, clients=clients)


async def emulate(group: Bottleneck, *, time_scale: float = 1.0, url: str | None = None,
                  on_event: Callable[[int, dict], Any] | None = None, seed: int = 0,
                  stop: asyncio.Event | None = None, on_start: Callable[["EmulatedCrowd"], Any] | None = None,
                  work_dir: str | None = None) -> EmulatedCrowd:
    """Run the crowd for real (see the module doc). `on_event(i, event)` sees every event of
    client i; `stop` (set by a key or a signal) ends every session early."""
    group.validate()
    k = float(time_scale)
    if url is not None:
        return await _run(group, k, url, None, on_event, seed, stop, on_start)
    content = group.clients[0].content
    with tempfile.TemporaryDirectory(prefix="abrlab-crowd-", dir=work_dir) as tmp:
        SyntheticPresentation(content).write(Path(tmp))
        async with EdgeServer(CrowdSource(tmp), trace=group.trace, time_scale=k, seed=seed) as edge:
            return await _run(group, k, edge.url, edge, on_event, seed, stop, on_start)


async def _run(group: Bottleneck, k: float, url: str, edge: EdgeServer | None, on_event, seed: int,
               stop: asyncio.Event | None, on_start) -> EmulatedCrowd:
    import aiohttp

    loop = asyncio.get_running_loop()
    t0 = edge.t0 if edge is not None else loop.time()
    clients = [EmulatedClient(i, c.abr) for i, c in enumerate(group.clients)]
    bulk_bytes = [0.0] * len(group.bulk)
    crowd = EmulatedCrowd(group, k, clients, bulk_bytes, np.zeros((0, 3)), url, 0.0, edge is not None)
    samples = crowd.sample_log
    crowd.edge_t0 = t0
    wall0 = time.monotonic()
    if on_start is not None:
        on_start(crowd)

    def now_s() -> float:
        return (loop.time() - t0) * k

    async def sleep_until(t_s: float) -> None:
        delay = (t_s - now_s()) / k
        if delay > 0:
            await asyncio.sleep(delay)

    async def one(c: EmulatedClient) -> None:
        spec = group.clients[c.index]
        await sleep_until(spec.start_s)
        c.arrival_s = now_s()
        preset = spec.preset if isinstance(spec.preset, str) else spec.preset.name
        player = HttpPlayer(url, abr=spec.abr, abr_params=dict(spec.abr_params), preset=preset, device=spec.device,
                            time_scale=k, trace_label=group.trace.source or group.trace.name,
                            config=HttpConfig(seed=seed * 1000 + c.index))
        c.player = player

        def listen(event) -> None:
            ev = event.as_dict()
            c.log.append(ev)
            kind = ev["event"]
            if kind == "session_start" and c.start_s is None:
                c.start_s = crowd.bottleneck_time_of(player) + player.offset
            elif kind == "decision" and ev.get("session_t_s") is not None:
                c.decisions.setdefault(int(ev["segment"]), float(ev["session_t_s"]))
            elif kind == "end" and c.end_s is None:
                last = [e for e in c.log if e["event"] == "download"]
                c.end_s = crowd.bottleneck_time_of(player) + (last[-1]["t_s"] if last else ev["t_s"])
            if on_event is not None:
                on_event(c.index, ev)

        player.add_listener(listen)
        task = asyncio.ensure_future(player.run())
        try:
            if spec.watch_s is None:
                await task
            else:
                await _leave_after(task, c, spec.watch_s, now_s, k)
        except asyncio.CancelledError:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            raise
        except Exception as exc:  # a player that failed is reported, the crowd goes on
            c.error = str(exc).split("\n")[0]
        finally:
            c.summary = player.summary
            if c.end_s is None:
                c.end_s = now_s()
                c.left = True

    async def bulk(j: int, b: BulkFlow, session) -> None:
        await sleep_until(b.start_s)
        base = url.rsplit("/", 1)[0]
        while not all_done.is_set() and now_s() < b.stop_s:
            try:
                async with session.get(f"{base}/{BULK_PATH}") as resp:
                    async for chunk in resp.content.iter_chunked(BULK_CHUNK_BYTES):
                        bulk_bytes[j] += len(chunk)
                        if now_s() >= b.stop_s or all_done.is_set():
                            return
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.05 / k)

    async def sampler() -> None:
        while not all_done.is_set():
            shaped = float(edge.shaper.released_bytes) if edge is not None and edge.shaper is not None else 0.0
            samples.append((now_s(), shaped, float(sum(bulk_bytes))))
            await asyncio.sleep(SAMPLE_WALL_S)

    all_done = asyncio.Event()
    tasks = [asyncio.ensure_future(one(c)) for c in clients]
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    aux: list[asyncio.Task] = [asyncio.ensure_future(sampler())]
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        aux += [asyncio.ensure_future(bulk(j, b, session)) for j, b in enumerate(group.bulk)]
        try:
            pending = set(tasks)
            while pending:
                waiting = pending | ({stopper} if stopper is not None else set())
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                pending -= done
                if stopper is not None and stopper in done:
                    for t in pending:
                        t.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
        finally:
            all_done.set()
            for t in tasks:
                if not t.done():
                    t.cancel()
            if stopper is not None:
                stopper.cancel()
            await asyncio.gather(*tasks, *aux, *([stopper] if stopper is not None else []), return_exceptions=True)
    shaped = float(edge.shaper.released_bytes) if edge is not None and edge.shaper is not None else 0.0
    samples.append((now_s(), shaped, float(sum(bulk_bytes))))
    crowd.samples = np.array(samples, dtype=np.float64)
    crowd.wall_s = time.monotonic() - wall0
    return crowd


async def _leave_after(task: asyncio.Task, c: EmulatedClient, watch_s: float, now_s, k: float) -> None:
    """Wait for the session; cancel it `watch_s` session seconds after it started."""
    while not task.done():
        if c.start_s is None:
            await asyncio.wait({task}, timeout=0.02 / k)
            continue
        left = (c.start_s + watch_s - now_s()) / k
        if left <= 0:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            c.end_s = now_s()
            c.left = True
            return
        await asyncio.wait({task}, timeout=left)
    task.result()
