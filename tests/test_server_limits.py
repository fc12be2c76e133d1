"""The edge and the proxy against hostile clients, over loopback (port 0, bounded waits).

Each scenario runs against both servers (the proxy in front of an edge): connections that
send nothing, half a request, or nothing after a response are closed within the (short,
test-configured) timeouts; a client that does not read is reset and holds a bounded amount
of the server's memory; caps make room by closing idle connections, so a well-behaved
client is still served while hostile ones are held open.
"""
from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import sys
import tracemalloc
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from helpers import first_line, run_bounded, stop_process

from netem.edge import EdgeServer
from netem.guard import Limits
from netem.proxy import ShapingProxy

MPD = b"<MPD/>\n"
BIG = 256 * 2**20
SHORT = Limits(idle_timeout_s=0.4, header_timeout_s=0.4, write_timeout_s=0.4)
SERVERS = ["edge", "proxy"]


class Endless:
    """A virtual presentation: a manifest, a 5-byte file and a 256 MiB one of zeros."""

    def files(self) -> dict[str, int]:
        return {"manifest.mpd": len(MPD), "small.txt": 5, "big.bin": BIG}

    def read(self, path: str, start: int = 0, end: int | None = None) -> bytes:
        data = {"manifest.mpd": MPD, "small.txt": b"hello"}.get(path)
        if data is not None:
            return data[start:end]
        return bytes((BIG if end is None else end) - start)


@asynccontextmanager
async def serving(kind: str, limits: Limits):
    """(port, guard) of an edge, or of a proxy in front of an edge."""
    if kind == "edge":
        async with EdgeServer(Endless(), limits=limits) as edge:
            yield edge.port, edge.guard
    else:
        async with EdgeServer(Endless()) as origin, \
                ShapingProxy(("127.0.0.1", origin.port), limits=limits) as px:
            yield px.address[1], px.guard


async def raw_socket(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
    """A connected socket the event loop does not read (so nothing is buffered on our side)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def connect(port: int, source: str = "127.0.0.1"):
    return await asyncio.open_connection(sock=await raw_socket(port, source))


async def non_reader(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A client that asks for the 256 MiB body and never reads a byte (4 KiB receive buffer)."""
    sock = await raw_socket(port, source, rcvbuf=4096)
    await asyncio.get_running_loop().sock_sendall(sock, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


async def read_to_end(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> bytes:
    """Everything until the server closes (fails the test after `timeout_s`)."""
    async with asyncio.timeout(timeout_s):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b"<reset>"


async def get(port: int, path: str = "/small.txt", source: str = "127.0.0.1") -> bytes:
    """One well-behaved request (Connection: close): the whole response."""
    reader, writer = await connect(port, source)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await read_to_end(reader)
    writer.close()
    return data


def run(coro, timeout: float = 30.0):
    return run_bounded(coro, timeout)


# -- the three kinds of idle connection ----------------------------------------------------------
@pytest.mark.parametrize("kind", SERVERS)
def test_a_connection_that_sends_nothing_is_closed(kind):
    async def main():
        async with serving(kind, SHORT) as (port, guard):
            reader, writer = await connect(port)
            data = await read_to_end(reader)
            writer.close()
            return data, guard.stats["idle_timeouts"]

    assert run(main()) == (b"", 1)


@pytest.mark.parametrize("kind", SERVERS)
def test_half_a_request_gets_408_even_when_trickled(kind):
    async def main():
        async with serving(kind, SHORT) as (port, guard):
            reader, writer = await connect(port)
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n")

            async def trickle():  # one header byte every 50 ms: the header timeout is not renewed
                for _ in range(200):
                    await asyncio.sleep(0.05)
                    writer.write(b"X")

            t = asyncio.ensure_future(trickle())
            data = await read_to_end(reader)
            t.cancel()
            writer.close()
            return data, guard.stats["header_timeouts"]

    data, n = run(main())
    assert data.startswith(b"HTTP/1.1 408 ") and n == 1


@pytest.mark.parametrize("kind", SERVERS)
def test_nothing_after_a_response_is_closed(kind):
    async def main():
        async with serving(kind, SHORT) as (port, guard):
            reader, writer = await connect(port)
            writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive
            data = await read_to_end(reader)
            writer.close()
            return data, guard.stats["idle_timeouts"]

    data, n = run(main())
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nhello") and n == 1


# -- clients that do not read -------------------------------------------------------------------------
async def hung_up(sock: socket.socket, timeout_s: float = 10.0) -> bool:
    """Whether the server closes or resets `sock` within `timeout_s`, reading nothing."""
    p = select.poll()
    p.register(sock.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    for _ in range(int(timeout_s / 0.05)):
        if p.poll(0):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("kind", SERVERS)
def test_a_client_that_does_not_read_is_reset(kind):
    async def main():
        async with serving(kind, SHORT) as (port, guard):
            sock = await non_reader(port)
            gone = await hung_up(sock)
            sock.close()
            return gone, guard.stats["write_timeouts"]

    assert run(main()) == (True, 1)


async def settled_memory(timeout_s: float = 15.0) -> int:
    """Traced memory once it stops growing (three readings 0.1 s apart within 1 %)."""
    last = []
    for _ in range(int(timeout_s / 0.1)):
        await asyncio.sleep(0.1)
        last = (last + [tracemalloc.get_traced_memory()[0]])[-3:]
        if len(last) == 3 and max(last) - min(last) <= 0.01 * max(last):
            break
    return last[-1]


async def memory_per_reader(port: int, n: int) -> float:
    """Bytes of this process's memory held per client that asks for a large body and never reads."""
    assert (await get(port)).endswith(b"hello")  # warm up once
    base = await settled_memory()
    clients = [await non_reader(port) for _ in range(n)]
    held = await settled_memory()
    for sock in clients:
        sock.close()
    return (held - base) / n


N_READERS = 12


def test_edge_memory_per_non_reading_client_is_bounded():
    # bound by hand: a 64 KiB read, 64 KiB write buffer + one 64 KiB write, plus aiohttp's
    # request and parser objects (well under 64 KiB) = 256 KiB (before the guard: ~0.5 MiB)
    async def main():
        tracemalloc.start()
        try:
            async with EdgeServer(Endless(), limits=Limits(write_timeout_s=60.0)) as edge:
                return await memory_per_reader(edge.port, N_READERS)
        finally:
            tracemalloc.stop()

    per_client = run(main(), 60.0)
    assert 0 < per_client < 256 * 1024, per_client


@pytest.fixture()
def http_server_origin(tmp_path: Path):
    """python -m http.server in its own process (its memory is not ours), one sparse big file."""
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(BIG)
    (tmp_path / "small.txt").write_text("hello")
    proc = subprocess.Popen([sys.executable, "-u", "-c", (
        "import functools, http.server, sys\n"
        "h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n"
        "h.log_message = lambda *a: None\n"
        "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), h)\n"
        "print(s.server_address[1], flush=True)\n"
        "s.serve_forever()\n"), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        yield int(first_line(proc))
    finally:
        stop_process(proc)


def test_proxy_memory_per_non_reading_client_is_bounded(http_server_origin):
    # bound by hand (unshaped): 128 KiB read ahead + one 64 KiB read, 64 KiB write buffer +
    # one 64 KiB write, plus small objects (under 64 KiB) = 384 KiB (before the guard: ~1.4 MiB)
    async def main():
        tracemalloc.start()
        try:
            async with ShapingProxy(("127.0.0.1", http_server_origin), limits=Limits(write_timeout_s=60.0)) as px:
                return await memory_per_reader(px.address[1], N_READERS)
        finally:
            tracemalloc.stop()

    per_client = run(main(), 60.0)
    assert 0 < per_client < 384 * 1024, per_client


# -- caps ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SERVERS)
def test_idle_connections_from_the_same_address_make_room(kind):
    limits = Limits(max_connections=64, max_per_client=8)

    async def main():
        async with serving(kind, limits) as (port, guard):
            hostile = [await connect(port) for _ in range(8)]  # the per-client cap, all idle
            hostile[5][1].write(b"GET / HTTP/1.1\r\n")  # and some half-sent
            hostile[6][1].write(b"GET / HTTP/1.1\r\n")
            await asyncio.sleep(0)
            served = await get(port)  # from the same address
            oldest = await read_to_end(hostile[0][0])  # closed to make room
            for _, w in hostile:
                w.close()
            return served, oldest, guard.stats["evicted"]

    served, oldest, evicted = run(main())
    assert served.startswith(b"HTTP/1.1 200 ") and served.endswith(b"hello")
    assert oldest == b"" and evicted == 1


@pytest.mark.parametrize("kind", SERVERS)
def test_busy_connections_over_the_cap_refuse_newcomers_from_that_address_only(kind):
    limits = Limits(max_connections=64, max_per_client=3, write_timeout_s=30.0)

    async def main():
        async with serving(kind, limits) as (port, guard):
            busy = [await non_reader(port, "127.0.0.2") for _ in range(3)]  # busy, never evicted
            for _ in range(100):  # bounded: until the server holds them as busy
                if sum(not c.idle for c in guard.by_transport.values()) == 3:
                    break
                await asyncio.sleep(0.02)
            refused = await get(port, source="127.0.0.2")
            other = await get(port, source="127.0.0.3")
            for sock in busy:
                sock.close()
            return refused, other, guard.stats["refused"]

    refused, other, n = run(main())
    # the edge says 503; the proxy, which cannot know its client's protocol yet, just closes
    assert refused.startswith(b"HTTP/1.1 503 ") if kind == "edge" else refused in (b"", b"<reset>")
    assert other.startswith(b"HTTP/1.1 200 ") and n == 1


@pytest.mark.parametrize("kind", SERVERS)
def test_a_well_behaved_client_is_served_among_hundreds_of_hostile_connections(kind):
    limits = Limits(max_connections=300, max_per_client=100)

    async def main():
        async with serving(kind, limits) as (port, guard):
            hostile = []
            for i in range(400):  # idle and half-sent, from four addresses: over both caps
                reader, writer = await connect(port, f"127.0.0.{2 + i % 4}")
                if i % 2:
                    writer.write(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                hostile.append(writer)
            await asyncio.sleep(0)
            answers = [await get(port) for _ in range(5)]
            held = guard.open_connections
            for w in hostile:
                w.transport.abort()
            return answers, held, guard.stats

    answers, held, stats = run(main(), 60.0)
    assert all(a.startswith(b"HTTP/1.1 200 ") and a.endswith(b"hello") for a in answers)
    assert held <= 300 and stats["evicted"] >= 100


# -- the proxy: errors close everything, and say 502 ----------------------------------------------------
def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_proxy_oversized_requests_get_431_and_leak_no_descriptor():
    async def main():
        async with EdgeServer(Endless()) as origin, ShapingProxy(("127.0.0.1", origin.port)) as px:
            port = px.address[1]
            assert (await get(port)).endswith(b"hello")
            base = open_descriptors()
            answers = []
            for _ in range(40):
                reader, writer = await connect(port)
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**20 + b"\r\n\r\n")
                answers.append(await read_to_end(reader))
                writer.close()
            for _ in range(100):  # bounded: until every socket of those requests is closed
                if open_descriptors() <= base:
                    break
                await asyncio.sleep(0.05)
            return answers, base, open_descriptors(), px.guard.open_connections

    answers, base, after, still_open = run(main(), 60.0)
    assert all(a.startswith(b"HTTP/1.1 431 ") or a == b"<reset>" for a in answers)
    assert sum(a.startswith(b"HTTP/1.1 431 ") for a in answers) >= 30
    assert after <= base and still_open == 0


def test_proxy_answers_502_when_the_origin_is_down():
    async def main():
        async with ShapingProxy(("127.0.0.1", 9)) as px:  # the discard port: refused
            port = px.address[1]
            http = await get(port)
            reader, writer = await connect(port)  # a client that does not speak HTTP
            writer.write(b"\x16\x03\x01\x00\x05hello")
            other = await read_to_end(reader)
            writer.close()
            return http, other

    http, other = run(main())
    assert http.startswith(b"HTTP/1.1 502 ")
    assert other in (b"", b"<reset>")


def test_proxy_answers_502_when_the_origin_hangs_up_on_a_request():
    async def origin_that_hangs_up(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def main():
        server = await asyncio.start_server(origin_that_hangs_up, "127.0.0.1", 0)
        try:
            async with ShapingProxy(("127.0.0.1", server.sockets[0].getsockname()[1])) as px:
                return await get(px.address[1])
        finally:
            server.close()

    assert run(main()).startswith(b"HTTP/1.1 502 ")


# -- a server at its descriptor limit ----------------------------------------------------------------------
FD_LIMIT = 600


def _low_fd_limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


@pytest.fixture()
def movie_dir(tmp_path: Path) -> Path:
    (tmp_path / "manifest.mpd").write_bytes(MPD)
    (tmp_path / "small.txt").write_text("hello")
    return tmp_path


@pytest.mark.parametrize("kind", SERVERS)
def test_idle_connections_cannot_exhaust_the_descriptors(kind, movie_dir):
    """The server runs with a 600-descriptor limit; 1,200 idle connections are opened (before the
    guard: it ran out of descriptors, stopped serving and wrote a traceback per failed accept)."""
    cli = [sys.executable, "-m", "player.cli"]
    repo = Path(__file__).resolve().parent.parent
    procs = []
    try:
        edge = subprocess.Popen(cli + ["serve", str(movie_dir)], cwd=repo, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=_low_fd_limit if kind == "edge" else None)
        procs.append(edge)
        port = int(first_line(edge).split(":")[2].split("/")[0])
        if kind == "proxy":
            proxy = subprocess.Popen(cli + ["proxy", "--upstream", f"127.0.0.1:{port}"], cwd=repo,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=_low_fd_limit)
            procs.append(proxy)
            port = int(first_line(proxy).rsplit(":", 1)[1])

        async def siege():
            hostile = [await raw_socket(port, f"127.0.0.{2 + i % 4}") for i in range(2 * FD_LIMIT)]
            try:
                return await asyncio.wait_for(get(port), 10.0)
            finally:
                for sock in hostile:
                    sock.close()

        answer = run(siege(), 60.0)
    finally:
        errs = []
        for p in procs:
            p.terminate()
            errs.append(p.communicate(timeout=15)[1])
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")
    err = "".join(errs)
    assert "Traceback" not in err and len(err) < 20_000, err[-2000:]


# -- a server that dies ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SERVERS)
def test_a_connection_accepted_as_the_server_dies_is_closed_not_leaked(kind):
    """asyncio attaches an accepted connection to its server one loop turn after accepting it;
    a plain `Server.close()` in that window leaks the socket, and its client waits forever (a
    request hung after a ``die`` fault). The dying server must close that connection too."""

    async def main():
        loop = asyncio.get_running_loop()
        async with EdgeServer(Endless()) as origin:
            server = EdgeServer(Endless()) if kind == "edge" else ShapingProxy(("127.0.0.1", origin.port))
            async with server:
                port = server.port if kind == "edge" else server.address[1]
                client = socket.create_connection(("127.0.0.1", port))  # in the accept queue now
                client.setblocking(False)
                client.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                # due now: on the next turn the listener's accept runs first (I/O before timers), then the death
                loop.call_at(loop.time(), server.die)
                try:
                    got = await asyncio.wait_for(loop.sock_recv(client, 1), 5.0)  # a bound, not a sleep
                except ConnectionResetError:
                    got = b""
                finally:
                    client.close()
                return got, server.guard.stats["accepted"]

    got, accepted = run(main())
    assert got == b""  # closed, where the leaked connection would time out (TimeoutError)
    assert accepted == 0
