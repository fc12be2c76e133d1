"""A TCP shaping proxy: the edge's bottleneck in front of any origin (asyncio).

Every accepted connection gets its own connection to the upstream, opened when the client
sends its first bytes. Bytes from the origin to the client go through one shared `Shaper`
(the same trace-driven bottleneck, fair among connections); bytes from the client to the
origin are not shaped but are delayed by the latency (the fixed ``latency_s``, or the
trace's own at that moment), so each request reaches the origin — and its response's first
byte the client — that much later. Faults: ``outage`` (capacity 0 in a window) and ``die``
(stop listening and cut every connection at a time); HTTP-level faults need `abrlab serve`.

Connections are guarded by `netem.guard` (`limits`: caps, idle/header/write timeouts,
bounded buffers; a request head over 64 KiB → 431, too slow → 408). The proxy follows no
HTTP beyond that, except to answer ``502 Bad Gateway`` to a client whose request cannot be
forwarded or answered: the origin refuses the connection or does not accept it within 10 s,
or closes or resets it with a request still unanswered. A client that did not speak HTTP
is just closed. Per connection the proxy holds at most its read-ahead of the origin's bytes
(`read_ahead_bytes`: 40 ms of the link's current rate shared by the connections, 64 KiB to
1 MiB each; 128 KiB unshaped) plus one 64 KiB read, the client's write buffer (64 KiB + one
64 KiB write) and `UPLOAD_AHEAD_BYTES` of the client's bytes waiting out the latency; a
client that stops reading is reset after the write timeout. It counts a connection
busy while it holds bytes for it; otherwise the idle timeout runs — also while the origin
is silent before or within a response, as with nginx's ``proxy_read_timeout``.

In-process::

    async with ShapingProxy(("127.0.0.1", origin_port), trace=trace, time_scale=10) as px:
        px.address   # ("127.0.0.1", port)
"""
from __future__ import annotations

import asyncio
import math
from collections import deque

from netem.errors import InputError
from netem.faults import Fault, FaultPlan, parse as parse_fault
from netem.guard import BACKLOG, Conn, Guard, Limits, http_answer
from netem.shaper import Shaper

READ_BYTES = 64 * 1024
READ_AHEAD_S = 0.04  # of the link's current rate read ahead of the shaper, shared by the connections
MAX_READ_AHEAD_BYTES = 1024 * 1024  # per connection
UPLOAD_AHEAD_CHUNKS = 4  # client reads (≤ 64 KiB each) waiting out the latency, per connection
UPLOAD_AHEAD_BYTES = UPLOAD_AHEAD_CHUNKS * READ_BYTES
CONNECT_TIMEOUT_S = 10.0
PROXY_FAULTS = ("outage", "die")
ANSWER_502 = http_answer(502, "Bad Gateway")


def parse_hostport(text: str, where: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' → (host, port)."""
    t = text.strip()
    if t.startswith("["):
        host, sep, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = t.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise InputError(f"expected HOST:PORT, got {text!r}", where=where)
    return host, int(port)


class _Origin(asyncio.BufferedProtocol):
    """The origin side of one proxied connection. Every read lands in the proxy's one
    READ_BYTES buffer (a read never allocates more), is queued for the shaper and counted
    busy on the client's guarded connection; reading pauses while the proxy's read-ahead
    (`ShapingProxy.read_ahead_bytes`) waits."""

    def __init__(self, proxy: "ShapingProxy", conn: Conn, flow) -> None:
        self.proxy, self.conn, self.flow = proxy, conn, flow
        self.chunks: deque[bytes] = deque()
        self.held = 0
        self.eof = False
        self.error: BaseException | None = None
        self.transport = None
        self._reading_paused = False
        self._readable: asyncio.Future | None = None
        self._writable: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=READ_BYTES)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.proxy.read_buffer  # copied out at once in buffer_updated, so one serves all

    def buffer_updated(self, nbytes: int) -> None:
        self.chunks.append(bytes(self.proxy.read_buffer[:nbytes]))
        self.held += nbytes
        self.conn.busy()
        if self.flow is not None:
            self.flow.add_demand(nbytes)
        if self.held >= self.proxy.read_ahead_bytes() and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake("_readable", None)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake("_readable", None)
        return False

    def connection_lost(self, exc) -> None:
        self.eof = True
        self.error = exc
        self._wake("_readable", None)
        self._wake("_writable", exc or ConnectionResetError("origin closed"))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake("_writable", None)

    def _wake(self, name: str, exc: BaseException | None) -> None:
        fut = getattr(self, name)
        setattr(self, name, None)
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    async def read(self) -> bytes:
        """The next chunk (the caller writes it, then calls `conn.done()`), b"" at the end."""
        while not self.chunks:
            if self.eof:
                return b""
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable
        data = self.chunks.popleft()
        self.held -= len(data)
        if self._reading_paused and self.held < self.proxy.read_ahead_bytes() and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("origin closed")
        if self._writable is not None:
            await asyncio.shield(self._writable)


class _Proxied:
    """One client connection and its origin connection."""

    def __init__(self, proxy: "ShapingProxy", conn: Conn, client_r: asyncio.StreamReader,
                 client_w: asyncio.StreamWriter) -> None:
        self.proxy, self.conn, self.client_r, self.client_w = proxy, conn, client_r, client_w
        self.origin: _Origin | None = None
        self.flow = None
        self.tasks: list[asyncio.Future] = []
        self.answered = 0  # conn.requests when the last byte went to the client

    async def run(self) -> None:
        first = await self.client_r.read(READ_BYTES)
        if not first or self.proxy.dead:
            return
        if not await self._connect():
            await self._bad_gateway()
            return
        up = asyncio.ensure_future(self._upstream(first))
        down = asyncio.ensure_future(self._downstream())
        gone = asyncio.ensure_future(self._client_gone())
        self.tasks = [up, down, gone]
        await asyncio.wait([down, gone], return_when=asyncio.FIRST_COMPLETED)
        if down.done() and not down.cancelled() and down.exception() is not None:
            raise down.exception()

    async def _client_gone(self) -> None:
        """Returns when the client's connection is closed (by the client or the guard)."""
        try:
            await self.client_w.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def _connect(self) -> bool:
        px = self.proxy
        self.flow = px.shaper.open(0) if px.shaper is not None else None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, self.origin = await asyncio.get_running_loop().create_connection(
                    lambda: _Origin(px, self.conn, self.flow), *px.upstream)
            return True
        except (OSError, TimeoutError) as exc:
            why = "no answer in 10 s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            px.guard.log.line(f"proxy: origin {px.upstream[0]}:{px.upstream[1]} unreachable: {why}")
            return False

    async def _bad_gateway(self) -> None:
        """Answer 502 once the client's request head is in (an HTTP client only)."""
        conn = self.conn
        while conn.requests == 0 and not conn.opaque and not conn.closed:
            if not await self.client_r.read(READ_BYTES):
                break
        if conn.requests and not conn.closed:
            self.client_w.write(ANSWER_502)

    async def _upstream(self, first: bytes) -> None:
        """Client → origin, each read delayed by the latency (order kept, bounded)."""
        px, conn = self.proxy, self.conn
        queue: asyncio.Queue = asyncio.Queue(maxsize=UPLOAD_AHEAD_CHUNKS)
        fwd = asyncio.ensure_future(self._forward(queue))
        self.tasks.append(fwd)
        data = first
        try:
            while True:
                conn.busy()
                await queue.put((px.loop.time() + px.latency(), data))
                if not data:
                    break
                data = await self.client_r.read(READ_BYTES)
        except (ConnectionError, OSError):
            pass

    async def _forward(self, queue: asyncio.Queue) -> None:
        origin, limits = self.origin, self.proxy.guard.limits
        try:
            while True:
                due, data = await queue.get()
                try:
                    wait = due - self.proxy.loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        if origin.transport.can_write_eof() and not origin.transport.is_closing():
                            origin.transport.write_eof()
                        return
                    origin.transport.write(data)
                    async with asyncio.timeout(limits.write_timeout_s):
                        await origin.drain()
                finally:
                    self.conn.done()
        except (ConnectionError, OSError, TimeoutError):
            origin.transport.abort()  # gone or not reading: the downstream side ends the connection

    async def _downstream(self) -> None:
        """Origin → client through the shaper; 502 if the origin ends with a request unanswered."""
        px, conn, origin, w = self.proxy, self.conn, self.origin, self.client_w
        while True:
            data = await origin.read()
            if not data:
                break
            try:
                view = memoryview(data)
                off = 0
                while off < len(view):
                    room = conn.writable()
                    if room is not None:
                        await room
                    if self.flow is not None:
                        n = await self.flow.take(min(len(view) - off, READ_BYTES))
                    else:
                        n = len(view) - off
                        await px.wait_outage()
                    w.write(view[off:off + n])
                    off += n
                    self.answered = conn.requests
            finally:
                conn.done()
        if conn.spoke_http and conn.requests > self.answered and not conn.closed:
            px.guard.log.line(f"proxy: origin {px.upstream[0]}:{px.upstream[1]} closed with a request "
                              f"from {conn.client} unanswered")
            w.write(ANSWER_502)

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.flow is not None:
            self.flow.close()
        if self.origin is not None and self.origin.transport is not None:
            self.origin.transport.abort()
        if not self.conn.closed and not self.client_w.transport.is_closing():  # else the guard ends it
            self.proxy.guard.close_transport(self.client_w.transport)


class ShapingProxy:
    """Listen on `listen`, forward to `upstream`, shape the downstream direction."""

    def __init__(self, upstream: tuple[str, int], *, listen: tuple[str, int] = ("127.0.0.1", 0), trace=None,
                 latency_s: float | None = None, time_scale: float = 1.0, faults=(), seed: int = 0,
                 quantum_s: float | None = None, limits: Limits | None = None) -> None:
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
        # a client costs two descriptors (its own and the origin's); over the caps: just closed
        self.guard = Guard(limits, name="proxy", fds_per_connection=2)
        self.read_buffer = bytearray(READ_BYTES)
        self.address: tuple[str, int] | None = None
        self.connections = 0
        self.dead = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Proxied] = set()
        self._handlers: set[asyncio.Task] = set()
        self._die_handle = None
        self.t0 = 0.0

    # life cycle ----------------------------------------------------------------------------------
    async def start(self) -> "ShapingProxy":
        self.loop = asyncio.get_running_loop()

        def stream_protocol() -> asyncio.StreamReaderProtocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=READ_BYTES), self._accept)

        self._server = await self.loop.create_server(self.guard.factory(stream_protocol), self.listen[0],
                                                     self.listen[1], backlog=BACKLOG)
        sock = self._server.sockets[0].getsockname()
        self.address = (sock[0], int(sock[1]))
        self.t0 = self.loop.time()
        if self.shaper is not None:
            self.shaper.start(self.t0)
        if self.plan.die_at is not None:
            self._die_handle = self.loop.call_at(self.t0 + self.plan.die_at / self.time_scale, self.die)
        return self

    async def stop(self) -> None:
        if self._die_handle is not None:
            self._die_handle.cancel()
        self.die()
        await asyncio.sleep(0)  # the listener closes after the accepts already under way (`close_listener`)
        if self.shaper is not None:
            self.shaper.close()
        for c in list(self._conns):
            c.close()  # ends each connection's handler (cancelling a handler would log a traceback)
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait(handlers, timeout=2.0)

    async def __aenter__(self) -> "ShapingProxy":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def die(self) -> None:
        if self.dead:
            return
        self.dead = True
        for c in list(self._conns):
            if c.origin is not None and c.origin.transport is not None:
                c.origin.transport.abort()
        self.guard.shut_down(self._server)

    # clocks ----------------------------------------------------------------------------------------
    def trace_time(self) -> float:
        return (self.loop.time() - self.t0) * self.time_scale

    def latency(self) -> float:
        """Wall seconds the client's bytes wait before they go on to the origin."""
        if self.shaper is not None:
            return self.shaper.request_latency()
        return (self.latency_s or 0.0) / self.time_scale

    def read_ahead_bytes(self) -> int:
        """Origin bytes one connection may hold ahead of the shaper: READ_AHEAD_S of the link's
        current rate (enough to ride out the origin's hiccups) shared by the open connections,
        at least one read, at most MAX_READ_AHEAD_BYTES; unshaped, two reads."""
        if self.shaper is None:
            return 2 * READ_BYTES
        rate_bytes_per_s = self.shaper.capacity.rate_at(self.shaper.now()) / 8.0
        share = rate_bytes_per_s * READ_AHEAD_S / max(1, len(self._conns))
        return int(min(MAX_READ_AHEAD_BYTES, max(READ_BYTES, share)))

    async def wait_outage(self) -> None:
        """Unshaped: wait out an outage window, if one is on."""
        end = self.plan.in_outage(self.trace_time())
        while end is not None:
            await asyncio.sleep(max(0.001, (end - self.trace_time()) / self.time_scale))
            end = self.plan.in_outage(self.trace_time())

    # connections ---------------------------------------------------------------------------------
    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        conn = self.guard.of(client_w.transport)
        if conn is None or self.dead:
            client_w.transport.abort()
            return
        task = asyncio.current_task()
        self._handlers.add(task)
        self.connections += 1
        pc = _Proxied(self, conn, client_r, client_w)
        self._conns.add(pc)
        try:
            await pc.run()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client or the origin went away: nothing to say
        except Exception as exc:  # never a traceback per connection: one rate-limited line
            self.guard.log.line(f"proxy: connection from {conn.client} failed: {type(exc).__name__}: {exc}")
        finally:
            self._conns.discard(pc)
            self._handlers.discard(task)
            pc.close()
