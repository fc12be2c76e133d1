"""`netem.guard` without sockets: request framing, deadlines, caps and eviction, the log limit.

A fake clock and fake transports stand in for the event loop; the servers' use of the guard
over real loopback connections is in tests/test_server_limits.py.
"""
from __future__ import annotations

import math

import pytest

from netem import guard as guard_mod
from netem.errors import InputError
from netem.guard import ANSWER_408, ANSWER_431, ANSWER_503, Guard, Limits, RateLimitedLog

LIMITS = Limits(max_connections=4, max_per_client=2, idle_timeout_s=10.0, header_timeout_s=3.0,
                write_timeout_s=5.0, max_head_bytes=1000)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Timers:
    """timer(when, callback) that only records; tests fire deadlines by hand."""

    def __init__(self) -> None:
        self.armed: list[tuple[float, object]] = []

    def __call__(self, when, callback):
        entry = [when, callback, False]
        self.armed.append(entry)

        class Handle:
            def cancel(self_inner) -> None:
                entry[2] = True

        return Handle()


def fire_due(g: Guard, now: float) -> None:
    """Run the guard's timers due by `now` (once each)."""
    for entry in list(g._timer.armed):
        if entry[0] <= now and not entry[2]:
            entry[2] = True
            entry[1]()


class Transport:
    def __init__(self, ip: str = "10.0.0.1", port: int = 1000) -> None:
        self.peer = (ip, port)
        self.written = bytearray()
        self.closed = self.aborted = self.eof = False
        self.limits = None

    def get_extra_info(self, name, default=None):
        return self.peer if name == "peername" else default

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self.limits = (high, low)

    def is_closing(self) -> bool:
        return self.closed or self.aborted


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, fmt, *args) -> None:
        self.lines.append(fmt % args)


def make_guard(limits: Limits = LIMITS, **kw):
    clock = Clock()
    lines = Lines()
    g = Guard(limits, clock=clock, timer=Timers(), log=RateLimitedLog(lines, clock=clock), **kw)
    return g, clock, lines


@pytest.fixture(autouse=True)
def plenty_of_descriptors(monkeypatch):
    monkeypatch.setattr(guard_mod, "FDS", guard_mod._FdBudget())
    monkeypatch.setattr(guard_mod._FdBudget, "limit", staticmethod(lambda: 10_000))


# -- framing ----------------------------------------------------------------------------------
def test_heads_bodies_and_pipelining_are_followed():
    g, clock, _ = make_guard()
    c = g.admit(Transport())
    assert c.received(b"GET /a HTTP/1.1\r\nHost: x\r")  # terminator split across reads
    assert c.head is not None and c.requests == 0
    assert c.received(b"\n\r\n")
    assert c.requests == 1 and c.spoke_http and c.head is None
    # a body of 9 bytes that contains an end-of-head sequence, then the next request in the same read
    assert c.received(b"POST /license/clearkey HTTP/1.1\r\nContent-Length: 9\r\n\r\nab\r\n\r\ncdGET /b HTTP/1.1\r\n\r\n")
    assert c.requests == 3 and c.body_left == 0 and not c.opaque
    # bare LF line ends are heads too
    assert c.received(b"GET /c HTTP/1.1\nHost: x\n\n")
    assert c.requests == 4


def test_what_the_guard_cannot_frame_is_opaque():
    cases = {
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03": "TLS hello",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n": "chunked body",
        b"GET / HTTP/1.1\r\nContent-Length: \xd9\xa1\r\n\r\n": "non-ASCII digit length",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n": "upgrade",
        b"HELLO THERE\r\n\r\n": "not a request line",
    }
    for data, what in cases.items():
        g, _, _ = make_guard()
        c = g.admit(Transport())
        c.received(data)
        assert c.opaque, what
        assert c.deadline()[1] == "idle", what  # an opaque connection still idles out


def test_a_head_over_the_limit_gets_431_and_is_closed():
    g, _, lines = make_guard()
    tr = Transport()
    c = g.admit(tr)
    assert c.received(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 500 + b"\r\n")
    assert not c.received(b"Y: " + b"b" * 600)  # 1,120 bytes, no end: over max_head_bytes=1000
    assert tr.written == ANSWER_431 and tr.eof and not tr.closed  # lingering: input still read
    assert g.stats["too_large"] == 1 and g.open_connections == 0
    g2, _, _ = make_guard()
    tr2 = Transport()
    c2 = g2.admit(tr2)  # a whole head over the limit in one read, end included
    assert not c2.received(b"GET / HTTP/1.1\r\nX: " + b"a" * 1000 + b"\r\n\r\n")
    assert tr2.written == ANSWER_431 and c2.requests == 0
    fire_due(g, guard_mod.LINGER_S - 0.01)
    assert not tr.closed
    fire_due(g, guard_mod.LINGER_S)
    assert tr.closed
    assert len(lines.lines) == 1 and "request head over 1000 bytes" in lines.lines[0]


# -- deadlines -----------------------------------------------------------------------------------
def test_idle_connection_times_out_after_idle_timeout():
    g, clock, lines = make_guard()
    tr = Transport()
    c = g.admit(tr)
    assert c.deadline() == (10.0, "idle")
    clock.t = 9.99
    assert c.expire(clock.t) is None and not tr.closed
    clock.t = 10.0
    assert c.expire(clock.t) == "idle"
    assert tr.closed and not tr.written and g.stats["idle_timeouts"] == 1 and g.open_connections == 0
    assert lines.lines == []  # idle closes are not logged


def test_a_peer_gone_before_its_408_is_just_aborted():
    class Reset(Transport):
        def write_eof(self) -> None:
            raise OSError(107, "Transport endpoint is not connected")

    g, clock, _ = make_guard()
    tr = Reset()
    c = g.admit(tr)
    c.received(b"GET / HTTP/1.1\r\n")
    clock.t = 3.0
    assert c.expire(3.0) == "header"
    assert tr.aborted and g.open_connections == 0


def test_header_timeout_is_not_renewed_by_trickled_bytes():
    g, clock, _ = make_guard()
    tr = Transport()
    c = g.admit(tr)
    clock.t = 1.0
    c.received(b"GET / HTTP/1.1\r\n")
    for t in (1.5, 2.0, 2.5, 3.0, 3.5):  # one header byte every half second
        clock.t = t
        c.received(b"X")
        assert c.expire(t) is None
    assert c.deadline() == (4.0, "header")  # first byte at 1.0 + 3.0
    clock.t = 4.0
    assert c.expire(4.0) == "header"
    assert tr.written == ANSWER_408 and tr.eof and g.stats["header_timeouts"] == 1
    fire_due(g, 4.0 + guard_mod.LINGER_S)
    assert tr.closed


def test_busy_connections_do_not_idle_but_stalled_readers_are_reset():
    g, clock, _ = make_guard()
    tr = Transport()
    c = g.admit(tr)
    c.received(b"GET /big HTTP/1.1\r\n\r\n")
    c.busy()
    assert c.deadline() == (math.inf, "")
    clock.t = 100.0
    assert c.expire(100.0) is None
    c.pause()  # the client's write buffer went over the high-water mark
    assert c.deadline() == (105.0, "write")
    clock.t = 104.0
    c.resume()  # it read some
    assert c.deadline() == (math.inf, "")
    clock.t = 110.0
    c.pause()
    clock.t = 115.0
    assert c.expire(115.0) == "write"
    assert tr.aborted and g.stats["write_timeouts"] == 1
    c.done()  # the server finishes after the guard dropped it: nothing breaks


def test_a_body_that_stops_arriving_idles_out_but_is_not_evicted():
    g, clock, _ = make_guard()
    tr = Transport()
    c = g.admit(tr)
    c.received(b"POST /license/clearkey HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\nab")
    assert c.body_left == 999999999999999997 and not c.idle  # a request in progress: not evicted
    clock.t = 5.0
    c.received(b"c")
    assert c.deadline() == (15.0, "idle")  # but silence for the idle timeout still ends it
    clock.t = 15.0
    assert c.expire(15.0) == "idle" and tr.closed


def test_done_starts_the_idle_clock():
    g, clock, _ = make_guard()
    c = g.admit(Transport())
    c.received(b"GET / HTTP/1.1\r\n\r\n")
    c.busy()
    clock.t = 50.0
    c.done()
    assert c.deadline() == (60.0, "idle")


def test_timer_is_armed_for_the_earliest_deadline():
    g, clock, _ = make_guard()
    c = g.admit(Transport())
    timers = g._timer.armed
    assert [t[0] for t in timers] == [10.0]  # idle
    clock.t = 2.0
    c.received(b"GET")  # a head starts: its deadline (5.0) is earlier
    assert timers[-1][0] == 5.0 and timers[0][2]  # re-armed, the idle timer cancelled


# -- caps -------------------------------------------------------------------------------------------
def test_per_client_cap_evicts_the_oldest_idle_connection():
    g, _, _ = make_guard()
    a1, a2, a3 = Transport(port=1), Transport(port=2), Transport(port=3)
    c1, c2 = g.admit(a1), g.admit(a2)
    c3 = g.admit(a3)
    assert c3 is not None and a1.closed and not a2.closed
    assert g.stats["evicted"] == 1 and g.open_connections == 2


def test_per_client_cap_refuses_when_all_are_busy():
    g, _, lines = make_guard(refusal=ANSWER_503)
    c1, c2 = g.admit(Transport(port=1)), g.admit(Transport(port=2))
    c1.busy()
    c2.received(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n")  # body still coming: not idle
    t3 = Transport(port=3)
    assert g.admit(t3) is None
    assert t3.written == ANSWER_503 and t3.closed and g.stats["refused"] == 1
    assert "refused a connection from 10.0.0.1" in lines.lines[0]
    # another address is still welcome
    assert g.admit(Transport("10.0.0.2")) is not None


def test_total_cap_evicts_from_the_client_holding_most():
    g, _, _ = make_guard()
    a = [Transport("10.0.0.1", p) for p in (1, 2)]
    b = [Transport("10.0.0.2", 1)]
    c = [Transport("10.0.0.3", 1)]
    for tr in a + b + c:
        g.admit(tr)
    assert g.open_connections == 4  # the total cap
    d = Transport("10.0.0.4", 1)
    assert g.admit(d) is not None
    assert a[0].closed and not (a[1].closed or b[0].closed or c[0].closed)


def test_descriptor_budget_caps_the_total(monkeypatch):
    monkeypatch.setattr(guard_mod._FdBudget, "limit", staticmethod(lambda: 5))
    g, _, _ = make_guard(Limits(max_connections=100, max_per_client=100), fds_per_connection=2)
    conns = [g.admit(Transport(port=p)) for p in range(2)]
    for c in conns:
        c.busy()
    assert g.admit(Transport(port=3)) is None  # 2 connections x 2 descriptors = 4 of 5: no room for 2 more
    g.release(conns[0])
    assert g.admit(Transport(port=9)) is not None and guard_mod.FDS.held == 4


def test_write_buffer_limits_are_set():
    g, _, _ = make_guard()
    tr = Transport()
    g.admit(tr)
    assert tr.limits == (LIMITS.write_buffer_bytes, LIMITS.write_buffer_bytes // 4)


def test_limits_are_checked():
    for bad in ({"max_connections": 0}, {"idle_timeout_s": 0}, {"header_timeout_s": math.inf},
                {"write_timeout_s": -1}, {"max_per_client": 2.5}, {"idle_timeout_s": True}):
        with pytest.raises(InputError):
            Limits().with_(**bad)
    with pytest.raises(InputError, match="--idle-timeout"):
        Limits().with_({"idle_timeout_s": "--idle-timeout"}, idle_timeout_s=float("nan"))
    assert Limits().with_(idle_timeout_s=None).idle_timeout_s == Limits().idle_timeout_s


# -- the log ------------------------------------------------------------------------------------------
def test_log_is_rate_limited_and_counts_what_it_drops():
    clock = Clock()
    out = Lines()
    log = RateLimitedLog(out, rate_per_s=10.0, burst=20, clock=clock)
    written = [log.line(f"bad {i}") for i in range(100)]  # 100 at once: the burst passes
    assert sum(written) == 20 and out.lines[-1] == "bad 19"
    clock.t = 1.0  # one second refills 10 lines
    assert sum(log.line(f"later {i}") for i in range(50)) == 10
    assert out.lines[20] == "later 0 (80 more lines suppressed)"
    assert len(out.lines) == 30
    clock.t = 1000.0  # a long quiet spell refills only up to the burst
    assert sum(log.line("x") for _ in range(30)) == 20


def test_log_lines_are_one_short_line():
    clock = Clock()
    out = Lines()
    log = RateLimitedLog(out, clock=clock)
    log.line("bad request:\n  Invalid method\n\n    b'\\x00\\x01'\n      ^" + "z" * 1000)
    assert "\n" not in out.lines[0] and len(out.lines[0]) == guard_mod.MAX_LINE_CHARS
