"""Connection protection shared by the edge (`netem.edge`) and the shaping proxy (`netem.proxy`):
no client, however it behaves, can exhaust either server's descriptors or memory.

Every accepted connection goes through a `Guard` (a wrapper around the server's own protocol
factory, so aiohttp's request handler and the proxy's stream protocol are guarded alike):

* **Caps.** At most `Limits.max_connections` connections in total (never more than the
  process's descriptor limit allows: ``(RLIMIT_NOFILE - 448) / descriptors per connection``,
  counted over every guarded server of the process; 448 = three accept bursts of the
  128-connection listen backlog, which asyncio takes before the guard sees them, + 64) and `Limits.max_per_client` from one
  client address. A connection over a cap first makes room by closing the *oldest idle*
  connection (no request in progress) — of the same address at the per-client cap, of the
  address holding the most connections at the total cap — so idle or half-sent
  connections cannot lock a well-behaved client out; only when every connection in the
  way is busy is the new one refused (the edge answers ``503`` with ``Retry-After: 1``;
  the proxy, which cannot know its client's protocol yet, just closes).
* **Timeouts** (wall seconds): a connection with no exchange in progress that stays silent
  for `idle_timeout_s` is closed — whether it never sent anything, or sent nothing after
  its last response; a request head that is still incomplete `header_timeout_s` after its
  first byte gets ``408`` and is closed (the header timeout is not renewed by trickled
  bytes); a connection whose client stops reading — its write buffer over the high-water
  mark for `write_timeout_s` — is dropped (reset).
* **Bounded buffers.** Each transport's write buffer pauses its writer above
  `write_buffer_bytes` (64 KiB); servers wait for `Conn.writable` before each write, so a
  client that does not read holds at most that plus one write (see each server for its
  total per connection). A request head over `max_head_bytes` gets ``431`` and is closed.
* **Quiet logs.** One line (at most 200 characters) per bad request, refusal or dropped
  reader through `RateLimitedLog`: at most 10 lines a second on average (bursts of 20);
  lines over the limit are counted and the count is reported on the next line written.
  Idle connections closed or evicted are not logged.

The guard follows request boundaries on its own (it scans for the end of each request head
and skips ``Content-Length`` bodies), so it needs from the server only `Conn.busy` /
`Conn.done` around the work it does for a connection (the edge: a request handler; the
proxy: bytes it holds). A connection whose bytes do not look like HTTP, or that switches to
an unframed body (``Transfer-Encoding``, ``Upgrade``), is treated as opaque: caps, idle and
write timeouts only.
"""
from __future__ import annotations

import asyncio
import logging
import math
import re
import resource
import socket
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

from netem.errors import InputError

BACKLOG = 128  # the listen backlog, also how many connections one accept burst may take at once
# descriptors kept free: asyncio accepts up to BACKLOG connections in one burst before the guard
# sees them, a second burst may come before those are admitted, and the ones they evict close
# one loop turn later: three bursts, plus 64 for the rest of the process
RESERVE_FDS = 3 * BACKLOG + 64
LINGER_S = 2.0  # after a 408/431, input is read and dropped this long so the client can read the answer
MAX_LINE_CHARS = 200
LOG = logging.getLogger("netem.server")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{0,32}")
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32} ")
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP/1\.[01]")
_DIGITS = re.compile(rb"[0-9]{1,18}")


def reset(transport) -> None:
    """Close with a TCP RST (SO_LINGER 0): the kernel drops what is still queued for the peer,
    instead of keeping an orphaned socket that a peer not reading could hold for minutes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def http_answer(status: int, reason: str, extra: str = "") -> bytes:
    """A whole HTTP/1.1 response that closes the connection (for answers written by hand)."""
    body = f"{status} {reason}\n".encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra}\r\n").encode() + body


ANSWER_408 = http_answer(408, "Request Timeout")
ANSWER_431 = http_answer(431, "Request Header Fields Too Large")
ANSWER_503 = http_answer(503, "Service Unavailable", "Retry-After: 1\r\n")


@dataclass(frozen=True)
class Limits:
    """What one server allows each connection and all of them (sizes in bytes, times in wall
    seconds: these protect the machine, so they do not follow ``--time-scale``)."""

    max_connections: int = 1024
    max_per_client: int = 256
    idle_timeout_s: float = 75.0
    header_timeout_s: float = 10.0
    write_timeout_s: float = 30.0
    max_head_bytes: int = 64 * 1024
    write_buffer_bytes: int = 64 * 1024

    def check(self, names: dict[str, str] | None = None) -> "Limits":
        """Self, or `InputError` naming the first bad field (as `names` calls it, e.g. an option)."""
        names = names or {}
        for name in ("max_connections", "max_per_client", "max_head_bytes", "write_buffer_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 10**9:
                raise InputError(f"must be a whole number in 1..1e9, got {v!r}", where=names.get(name, name))
        for name in ("idle_timeout_s", "header_timeout_s", "write_timeout_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and 0 < v <= 86400):
                raise InputError(f"must be seconds in (0, 86400], got {v!r}", where=names.get(name, name))
        return self

    def with_(self, names: dict[str, str] | None = None, **changes) -> "Limits":
        """A checked copy with some fields changed (None values keep the field)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).check(names)


class RateLimitedLog:
    """One line per event through `logger` (WARNING), at most `rate_per_s` lines a second on
    average with bursts of `burst` (a token bucket on `clock`); lines over the limit are
    dropped and counted, and the count rides on the next line written."""

    def __init__(self, logger: logging.Logger = LOG, *, rate_per_s: float = 10.0, burst: int = 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.rate_per_s, self.burst, self.clock = logger, float(rate_per_s), int(burst), clock
        self._tokens = float(burst)
        self._at = clock()
        self.written = 0
        self.suppressed = 0  # over the limit since the last line written

    def line(self, text: str) -> bool:
        """Write one line (True) unless over the rate (False, counted)."""
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        if self.suppressed:
            text = f"{text} ({self.suppressed} more lines suppressed)"
            self.suppressed = 0
        self.written += 1
        text = " ".join(text.split())
        self.logger.warning("%s", text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS - 1] + "…")
        return True


class _FdBudget:
    """Descriptors held by guarded connections in this process, against its soft limit."""

    def __init__(self) -> None:
        self.held = 0

    @staticmethod
    def limit() -> int:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return (2**31 if soft == resource.RLIM_INFINITY else soft) - RESERVE_FDS


FDS = _FdBudget()


class Conn:
    """One guarded connection: its request framing, its deadlines and its bookkeeping."""

    __slots__ = ("guard", "transport", "client", "busy_count", "head", "head_since", "body_left", "opaque",
                 "spoke_http", "last_active", "paused_since", "closed", "timer", "timer_at", "waiters",
                 "requests")

    def __init__(self, guard: "Guard", transport, client: str, now: float) -> None:
        self.guard = guard
        self.transport = transport
        self.client = client
        self.busy_count = 0
        self.head: bytearray | None = None  # the request head arriving
        self.head_since: float | None = None
        self.body_left = 0  # request body bytes still to pass before the next head
        self.opaque = False
        self.spoke_http = False
        self.last_active = now
        self.paused_since: float | None = None
        self.closed = False
        self.timer = None
        self.timer_at: float | None = None
        self.waiters: list[asyncio.Future] = []
        self.requests = 0  # complete request heads seen

    # what the server tells the guard --------------------------------------------------------
    def busy(self) -> None:
        """The server is working for this connection (no idle timeout meanwhile)."""
        self.busy_count += 1

    def done(self) -> None:
        """One piece of work is over; with none left, the idle clock starts now."""
        self.busy_count = max(0, self.busy_count - 1)
        if self.busy_count == 0:
            self.last_active = self.guard.now()
            self.guard.arm(self)

    @property
    def idle(self) -> bool:
        """No request in progress and nothing waiting to be written: a candidate for eviction
        and for the idle timeout."""
        return self.busy_count == 0 and self.body_left == 0 and self.paused_since is None

    def writable(self) -> asyncio.Future | None:
        """None when the write buffer has room; else a future done when it has (or raising
        ConnectionResetError if the connection is dropped first)."""
        if self.closed:
            raise ConnectionResetError("connection closed by the guard")
        if self.paused_since is None:
            return None
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        return fut

    # what the transport tells the guard ----------------------------------------------------
    def received(self, data: bytes) -> bool:
        """Follow request framing; False when the guard closed the connection (431)."""
        now = self.guard.now()
        self.last_active = now
        i, n = 0, len(data)
        while i < n and not self.opaque:
            if self.body_left:
                take = min(self.body_left, n - i)
                self.body_left -= take
                i += take
                continue
            if self.busy_count and self.head is None:
                break  # a pipelined request while one is served: the server takes it from here
            if self.head is None:
                self.head, self.head_since = bytearray(), now
                self.guard.arm(self)
            old = len(self.head)
            self.head += data[i:]
            end = self._end_of_head(max(0, old - 3))
            if (end if end >= 0 else len(self.head)) > self.guard.limits.max_head_bytes:
                self.guard.reject(self, ANSWER_431, "request head over "
                                  f"{self.guard.limits.max_head_bytes} bytes", "too_large")
                return False
            if end < 0:
                if not self.spoke_http:
                    self._check_http()
                break
            i = n - (len(self.head) - end)
            head = bytes(self.head[:end])
            self.head, self.head_since = None, None
            self._head_done(head)
        return True

    def _end_of_head(self, start: int) -> int:
        h = self.head
        a, b = h.find(b"\r\n\r\n", start), h.find(b"\n\n", start)
        ends = [x + 4 for x in (a,) if x >= 0] + [x + 2 for x in (b,) if x >= 0]
        return min(ends) if ends else -1

    def _check_http(self) -> None:
        """The first bytes of the first request decide whether this is HTTP at all: a method
        token (at most 32 characters) and a space."""
        first = bytes(self.head.lstrip(b"\r\n")[:33])
        if not (_METHOD.match(first) if b" " in first else _TOKEN.fullmatch(first)):
            self.opaque = True
            self.head = self.head_since = None

    def _head_done(self, head: bytes) -> None:
        lines = head.lstrip(b"\r\n").split(b"\n")
        if not _REQUEST_LINE.fullmatch(lines[0].rstrip(b"\r")):
            self.opaque = True
            return
        self.spoke_http = True
        self.requests += 1
        if lines[0].startswith(b"CONNECT "):
            self.opaque = True  # a tunnel from here on
            return
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                v = value.strip()
                if not _DIGITS.fullmatch(v):
                    self.opaque = True  # the server refuses it; we stop framing
                    return
                self.body_left = int(v)
            elif name in (b"transfer-encoding", b"upgrade"):
                self.opaque = True
                return

    def pause(self) -> None:
        self.paused_since = self.guard.now()
        self.guard.arm(self)

    def resume(self) -> None:
        self.paused_since = None
        self.last_active = self.guard.now()
        self._wake(None)

    def _wake(self, exc: BaseException | None) -> None:
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if not w.done():
                if exc is None:
                    w.set_result(None)
                else:
                    w.set_exception(exc)

    # deadlines ------------------------------------------------------------------------------
    def deadline(self) -> tuple[float, str]:
        """The earliest (time, kind) at which this connection times out (inf when none)."""
        lim = self.guard.limits
        out = (math.inf, "")
        if self.paused_since is not None:
            out = min(out, (self.paused_since + lim.write_timeout_s, "write"))
        if self.head_since is not None:
            out = min(out, (self.head_since + lim.header_timeout_s, "header"))
        elif self.busy_count == 0 and self.paused_since is None:  # also while a body trickles in
            out = min(out, (self.last_active + lim.idle_timeout_s, "idle"))
        return out

    def expire(self, now: float) -> str | None:
        """Act on a deadline that has passed (the kind), or None if none has."""
        when, kind = self.deadline()
        if now < when:
            return None
        if kind == "write":
            self.guard.drop(self, f"client did not read for {self.guard.limits.write_timeout_s:g} s",
                            "write_timeouts")
        elif kind == "header":
            self.guard.reject(self, ANSWER_408 if self.spoke_http or self._looks_http() else b"",
                              f"request head incomplete after {self.guard.limits.header_timeout_s:g} s",
                              "header_timeouts")
        else:
            self.guard.close(self, "idle_timeouts")
        return kind

    def _looks_http(self) -> bool:
        return self.head is not None and bool(_METHOD.match(bytes(self.head.lstrip(b"\r\n")[:33])))


def close_listener(server: asyncio.AbstractServer) -> None:
    """Stop a server accepting, without leaking a connection it has just accepted.

    asyncio accepts a connection in one callback and attaches it to its server in a task's
    first step, one loop turn later. `Server.close()` in between makes that step fail
    (``Server._attach`` asserts the server is open; CPython 3.11) and the failure is swallowed:
    the accepted socket is never closed and its client waits for an answer forever — a request
    hung after a ``die`` fault. So the listening sockets stop being read now (no new accepts)
    and are closed one turn later, after the attach steps already queued (``call_soon`` runs in
    order); the guard, shut by then, resets what they attach. Call from the loop's thread."""
    loop = asyncio.get_running_loop()
    for sock in server.sockets:
        loop.remove_reader(sock.fileno())
    loop.call_soon(server.close)


class Guard:
    """Admission, deadlines and bookkeeping of one server's connections (see the module).

    `fds_per_connection`: descriptors a connection may cost (the proxy: 2). `refusal`: bytes
    written to a connection refused over the caps before it is closed (the edge: a 503).
    `name` prefixes log lines. `clock` and `timer` (``timer(when, callback) -> handle``)
    default to the running loop's.
    """

    def __init__(self, limits: Limits | None = None, *, name: str = "server", fds_per_connection: int = 1,
                 refusal: bytes = b"", log: RateLimitedLog | None = None, clock: Callable[[], float] | None = None,
                 timer: Callable | None = None) -> None:
        self.limits = (limits or Limits()).check()
        self.name = name
        self.fds_per_connection = int(fds_per_connection)
        self.refusal = refusal
        self.log = log if log is not None else RateLimitedLog()
        self._clock = clock
        self._timer = timer
        self.by_client: dict[str, OrderedDict[Conn, None]] = {}
        self.by_transport: dict[object, Conn] = {}
        self.stats = {"accepted": 0, "refused": 0, "evicted": 0, "idle_timeouts": 0, "header_timeouts": 0,
                      "write_timeouts": 0, "too_large": 0}
        self.shut = False  # after `shut_down`: every connection still arriving is reset

    # clocks -------------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def arm(self, conn: Conn) -> None:
        """Make sure conn's timer fires no later than its deadline."""
        when, _ = conn.deadline()
        if conn.closed or when == math.inf or (conn.timer_at is not None and conn.timer_at <= when):
            return
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer_at = when
        schedule = self._timer or asyncio.get_running_loop().call_at
        conn.timer = schedule(when, lambda: self._fire(conn))

    def _fire(self, conn: Conn) -> None:
        conn.timer = conn.timer_at = None
        if not conn.closed and conn.expire(self.now()) is None:
            self.arm(conn)

    # admission ------------------------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return len(self.by_transport)

    def of(self, transport) -> Conn | None:
        """The guarded connection of a transport (None once it is gone)."""
        return self.by_transport.get(transport)

    def admit(self, transport) -> Conn | None:
        """A new connection: its `Conn`, or None when refused (and already closed)."""
        if self.shut:
            reset(transport)
            return None
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else str(peer)
        mine = self.by_client.get(client)
        if mine is not None and len(mine) >= self.limits.max_per_client and not self._evict(mine):
            return self._refuse(transport, client, f"{len(mine)} connections from it")
        total_cap = min(self.limits.max_connections, self.open_connections + (FDS.limit() - FDS.held)
                        // self.fds_per_connection)
        if self.open_connections >= total_cap and not self._evict_anyone():
            return self._refuse(transport, client, f"{self.open_connections} connections open")
        conn = Conn(self, transport, client, self.now())
        self.by_client.setdefault(client, OrderedDict())[conn] = None
        self.by_transport[transport] = conn
        FDS.held += self.fds_per_connection
        self.stats["accepted"] += 1
        try:
            transport.set_write_buffer_limits(high=self.limits.write_buffer_bytes,
                                              low=self.limits.write_buffer_bytes // 4)
        except (AttributeError, NotImplementedError):  # pragma: no cover - not a socket transport
            pass
        self.arm(conn)
        return conn

    def _refuse(self, transport, client: str, why: str) -> None:
        self.stats["refused"] += 1
        self.log.line(f"{self.name}: refused a connection from {client}: {why}")
        if self.refusal:
            transport.write(self.refusal)
        self.close_transport(transport)
        return None

    def _evict(self, conns: OrderedDict) -> bool:
        for c in conns:  # oldest first
            if c.idle:
                self.close(c, "evicted")
                return True
        return False

    def _evict_anyone(self) -> bool:
        for client in sorted(self.by_client, key=lambda k: -len(self.by_client[k])):
            if self._evict(self.by_client[client]):
                return True
        return False

    # endings ------------------------------------------------------------------------------------------
    def release(self, conn: Conn) -> None:
        """Forget a connection (its transport is gone or going); idempotent."""
        if self.by_transport.pop(conn.transport, None) is None:
            return
        FDS.held -= self.fds_per_connection
        mine = self.by_client.get(conn.client)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self.by_client[conn.client]
        conn.closed = True
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = conn.timer_at = None
        conn._wake(ConnectionResetError("connection closed"))

    def close(self, conn: Conn, stat: str) -> None:
        """Close quietly (idle, evicted)."""
        self.stats[stat] += 1
        self.release(conn)
        self.close_transport(conn.transport)

    def reject(self, conn: Conn, answer: bytes, why: str, stat: str) -> None:
        """A bad request: one log line, `answer` (if any), then a lingering close: our side is
        shut after the answer, and what the client still sends is read and dropped for
        LINGER_S, so the answer is not lost to a reset while it is still sending."""
        self.stats[stat] += 1
        self.log.line(f"{self.name}: bad request from {conn.client}: {why}")
        self.release(conn)
        tr = conn.transport
        try:
            if answer:
                tr.write(answer)
            if tr.can_write_eof() and not tr.is_closing():
                tr.write_eof()
                schedule = self._timer or asyncio.get_running_loop().call_at
                schedule(self.now() + LINGER_S, lambda: self.close_transport(tr))
                return
        except OSError:  # the peer is already gone (a reset the transport has not seen yet)
            tr.abort()
            return
        self.close_transport(tr)

    def close_transport(self, transport) -> None:
        """Close after what is buffered has gone out — but reset it if the peer has not
        taken it within the write timeout (a close never waits on a client forever)."""
        transport.close()
        if transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(self.limits.write_timeout_s, reset, transport)

    def drop(self, conn: Conn, why: str, stat: str) -> None:
        """Reset a connection that will not take what it asked for."""
        self.stats[stat] += 1
        self.log.line(f"{self.name}: dropped {conn.client}: {why}")
        self.release(conn)
        reset(conn.transport)

    def close_all(self) -> None:
        for conn in list(self.by_transport.values()):
            self.release(conn)
            conn.transport.abort()

    def shut_down(self, server: asyncio.AbstractServer | None) -> None:
        """The server is gone (a ``die`` fault, or stopped): stop listening (`close_listener`),
        close every connection, and reset any that the listener had accepted but not yet
        handed over."""
        self.shut = True
        if server is not None:
            close_listener(server)
        self.close_all()

    # the protocol wrapper --------------------------------------------------------------------------
    def factory(self, inner_factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` that guards `inner_factory`'s protocols."""
        return lambda: _Guarded(self, inner_factory)


class _Guarded(asyncio.Protocol):
    """Admits the connection, then passes every event to the server's own protocol (created
    only once admitted), telling the guard what it saw on the way."""

    __slots__ = ("_guard", "_factory", "_inner", "_conn")

    def __init__(self, guard: Guard, inner_factory) -> None:
        self._guard, self._factory = guard, inner_factory
        self._inner = None
        self._conn: Conn | None = None

    def connection_made(self, transport) -> None:
        self._conn = self._guard.admit(transport)
        if self._conn is None:
            return
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            return
        if conn.received(data):
            self._inner.data_received(data)

    def eof_received(self):
        return self._inner.eof_received() if self._inner is not None and not self._conn.closed else None

    def connection_lost(self, exc) -> None:
        if self._conn is not None:
            self._guard.release(self._conn)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._conn is not None:
            self._conn.pause()
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._conn is not None:
            self._conn.resume()
        if self._inner is not None:
            self._inner.resume_writing()
