"""A TCP shaping proxy: the edge's bottleneck in front of any origin (asyncio streams).

Every accepted connection gets its own connection to the upstream. Bytes from the origin
to the client go through one shared `Shaper` (the same trace-driven bottleneck, fair among
connections); bytes from the client to the origin are not shaped but are delayed by the
latency (the fixed ``latency_s``, or the trace's own at that moment), so each request
reaches the origin — and its response's first byte the client — that much later.
Faults: ``outage`` (capacity 0 in a window) and ``die`` (stop listening and cut every
connection at a time); HTTP-level faults need `abrlab serve`.

In-process::

    async with ShapingProxy(("127.0.0.1", origin_port), trace=trace, time_scale=10) as px:
        px.address   # ("127.0.0.1", port)
"""
from __future__ import annotations

import asyncio
import math

from netem.errors import InputError
from netem.faults import Fault, FaultPlan, parse as parse_fault
from netem.shaper import Shaper

READ_BYTES = 64 * 1024
READ_AHEAD_CHUNKS = 16  # up to 1 MiB buffered from the origin per connection
PROXY_FAULTS = ("outage", "die")


def parse_hostport(text: str, where: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' → (host, port)."""
    t = text.strip()
    if t.startswith("["):
        host, sep, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = t.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"expected HOST:PORT, got {text!r}", where=where)
    return host, int(port)


class _Conn:
    __slots__ = ("client_w", "up_w", "tasks", "handler")

    def __init__(self, client_w) -> None:
        self.client_w = client_w
        self.up_w = None
        self.tasks: list[asyncio.Task] = []
        self.handler = asyncio.current_task()


class ShapingProxy:
    """Listen on `listen`, forward to `upstream`, shape the downstream direction."""

    def __init__(self, upstream: tuple[str, int], *, listen: tuple[str, int] = ("127.0.0.1", 0), trace=None,
                 latency_s: float | None = None, time_scale: float = 1.0, faults=(), seed: int = 0,
                 quantum_s: float | None = None) -> None:
        k = float(time_scale)
        if not math.isfinite(k) or k <= 0:
            raise InputError(f"time scale must be positive, got {time_scale!r}", where="--time-scale")
        if latency_s is not None and not (math.isfinite(latency_s) and latency_s >= 0):
            raise InputError(f"latency must be non-negative seconds, got {latency_s!r}", where="--latency")
        parsed = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        for f in parsed:
            if f.kind not in PROXY_FAULTS:
                raise InputError(f"fault kind {f.kind!r} is not supported by the proxy (only "
                                 f"{', '.join(PROXY_FAULTS)}; HTTP faults need `abrlab serve`)", where=f"--fault {f.spec!r}")
        self.upstream = upstream
        self.listen = listen
        self.time_scale = k
        self.latency_s = latency_s
        self.plan = FaultPlan(parsed, seed=seed)
        self.shaper = Shaper(trace, time_scale=k, outages=self.plan.outages, latency_s=latency_s,
                             quantum_s=quantum_s) if trace is not None else None
        self.address: tuple[str, int] | None = None
        self.connections = 0
        self.dead = False
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Conn] = set()
        self._loop = None
        self._die_handle = None
        self.t0 = 0.0

    # life cycle ----------------------------------------------------------------------------------
    async def start(self) -> "ShapingProxy":
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.listen[0], self.listen[1])
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], int(sock[1]))
        self.t0 = self._loop.time()
        if self.shaper is not None:
            self.shaper.start(self.t0)
        if self.plan.die_at is not None:
            self._die_handle = self._loop.call_at(self.t0 + self.plan.die_at / self.time_scale, self.die)
        return self

    async def stop(self) -> None:
        if self._die_handle is not None:
            self._die_handle.cancel()
        self.die()
        if self.shaper is not None:
            self.shaper.close()
        conns = list(self._conns)
        for t in [t for c in conns for t in c.tasks]:
            t.cancel()
        handlers = [c.handler for c in conns if c.handler is not None]
        if handlers:
            await asyncio.wait(handlers, timeout=2.0)

    async def __aenter__(self) -> "ShapingProxy":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def die(self) -> None:
        self.dead = True
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            for w in (c.client_w, c.up_w):
                if w is not None and not w.transport.is_closing():
                    w.transport.abort()

    # clocks ----------------------------------------------------------------------------------------
    def trace_time(self) -> float:
        return (self._loop.time() - self.t0) * self.time_scale

    def _latency(self) -> float:
        if self.shaper is not None:
            return self.shaper.request_latency()
        return (self.latency_s or 0.0) / self.time_scale

    # connections ---------------------------------------------------------------------------------
    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.dead:
            client_w.transport.abort()
            return
        conn = _Conn(client_w)
        self._conns.add(conn)
        self.connections += 1
        try:
            try:
                up_r, up_w = await asyncio.open_connection(*self.upstream)
            except OSError:
                client_w.transport.abort()
                return
            conn.up_w = up_w
            up = asyncio.ensure_future(self._upstream(client_r, up_w))
            down = asyncio.ensure_future(self._downstream(up_r, client_w))
            conn.tasks = [up, down]
            await asyncio.gather(up, down, return_exceptions=True)  # both directions to their end
        finally:
            self._conns.discard(conn)
            for w in (client_w, conn.up_w):
                if w is not None:
                    w.close()

    async def _upstream(self, client_r: asyncio.StreamReader, up_w: asyncio.StreamWriter) -> None:
        """Client → origin, each chunk delayed by the latency (order kept)."""
        queue: asyncio.Queue = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if up_w.can_write_eof():
                        up_w.write_eof()
                    return
                up_w.write(data)
                await up_w.drain()

        fwd = asyncio.ensure_future(forward())
        try:
            while True:
                data = await client_r.read(READ_BYTES)
                queue.put_nowait((self._loop.time() + self._latency(), data or None))
                if not data:
                    break
            await fwd
        except (ConnectionError, OSError):
            pass
        finally:
            if not fwd.done():
                fwd.cancel()

    async def _downstream(self, up_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """Origin → client through the shaper, with a bounded read-ahead."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=READ_AHEAD_CHUNKS)
        flow = self.shaper.open(0) if self.shaper is not None else None

        async def reader() -> None:
            while True:
                data = await up_r.read(READ_BYTES)
                if data and flow is not None:
                    flow.add_demand(len(data))
                await queue.put(data)
                if not data:
                    return

        rd = asyncio.ensure_future(reader())
        try:
            while True:
                data = await queue.get()
                if not data:
                    break
                view = memoryview(data)
                off = 0
                while off < len(view):
                    if flow is not None:
                        n = await flow.take(len(view) - off)
                    else:
                        n = len(view) - off
                        end = self.plan.in_outage(self.trace_time())
                        while end is not None:
                            await asyncio.sleep(max(0.001, (end - self.trace_time()) / self.time_scale))
                            end = self.plan.in_outage(self.trace_time())
                    client_w.write(view[off:off + n])
                    off += n
                    await client_w.drain()
            if client_w.can_write_eof():
                client_w.write_eof()
        except (ConnectionError, OSError):
            pass
        finally:
            rd.cancel()
            await asyncio.gather(rd, return_exceptions=True)
            if flow is not None:
                flow.close()
