"""The TCP shaping proxy in front of an http.server origin (threads, loopback, port 0)."""
from __future__ import annotations

import asyncio
import functools
import signal
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import pytest

from helpers import first_line, run_bounded

from netem.errors import InputError
from netem.proxy import ShapingProxy, parse_hostport
from netem.trace import constant

REPO = Path(__file__).resolve().parent.parent
SIZE = 1_000_000


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture()
def origin(tmp_path: Path):
    (tmp_path / "big.bin").write_bytes(b"\x5a" * SIZE)
    (tmp_path / "small.txt").write_text("hello")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def run(coro, timeout: float = 20.0):
    return run_bounded(coro, timeout)


async def timed_get(url: str) -> tuple[int, int, float]:
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        body = await r.read()
    return r.status, len(body), time.monotonic() - t0


def test_parse_hostport():
    assert parse_hostport("127.0.0.1:8080", "x") == ("127.0.0.1", 8080)
    assert parse_hostport("[::1]:0", "x") == ("::1", 0)
    for bad in ("nohost", ":80", "h:99999", "h:port"):
        with pytest.raises(InputError):
            parse_hostport(bad, "--listen")


def test_proxy_shapes_an_http_server_origin(origin):
    # 4 Mbit/s ×10 = 5 MB/s: 1 MB in 0.2 s (+ 20 ms trace latency / 10)
    async def main():
        async with ShapingProxy(("127.0.0.1", origin), trace=constant(4e6, 60.0), time_scale=10,
                                latency_s=0.02) as px:
            base = f"http://127.0.0.1:{px.address[1]}"
            small = await timed_get(base + "/small.txt")
            big = await timed_get(base + "/big.bin")
            return small, big, px.connections

    (s_status, s_len, _), (status, n, took), conns = run(main())
    assert (s_status, s_len) == (200, 5)
    assert status == 200 and n == SIZE and conns == 2
    assert took == pytest.approx(0.2 + 0.002, rel=0.3)


def test_proxy_shares_among_connections(origin):
    async def main():
        async with ShapingProxy(("127.0.0.1", origin), trace=constant(8e6, 60.0), time_scale=2) as px:
            base = f"http://127.0.0.1:{px.address[1]}"
            t0 = time.monotonic()
            res = await asyncio.gather(*(timed_get(base + "/big.bin") for _ in range(3)))
            return res, time.monotonic() - t0

    res, total = run(main())
    assert all(r[0] == 200 and r[1] == SIZE for r in res)
    assert total == pytest.approx(3 * SIZE * 8 / 16e6, rel=0.25)  # 1.5 s together
    assert min(r[2] for r in res) >= 0.8 * max(r[2] for r in res)


def test_proxy_outage_and_die(origin):
    async def main():
        async with ShapingProxy(("127.0.0.1", origin), trace=constant(80e6, 60.0), time_scale=10,
                                faults=["outage:from=0,to=3", "die:at=6"]) as px:
            base = f"http://127.0.0.1:{px.address[1]}"
            first = await timed_get(base + "/big.bin")  # waits out the outage (0.3 s wall)
            deadline = time.monotonic() + 5.0
            err = None
            while time.monotonic() < deadline:  # bounded: dies at 0.6 s wall
                try:
                    await timed_get(base + "/small.txt")
                except aiohttp.ClientError as exc:
                    err = exc
                    break
                await asyncio.sleep(0.02)
            return first, err

    (status, n, took), err = run(main())
    assert status == 200 and n == SIZE and took >= 0.27
    assert isinstance(err, aiohttp.ClientError)




def test_proxy_command_prints_address_and_exits_on_sigterm(origin):
    proc = subprocess.Popen([sys.executable, "-m", "player.cli", "proxy", "--upstream", f"127.0.0.1:{origin}",
                             "--rate", "80e6", "--latency", "0.01"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        addr = first_line(proc)
        host, port = parse_hostport(addr, "stdout")
        assert host == "127.0.0.1" and port > 0
        status, n, _ = run(timed_get(f"http://{addr}/small.txt"))
        assert (status, n) == (200, 5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_proxy_command_bad_input(capsys):
    from player.cli.main import main

    for args in (["--upstream", "nowhere"], ["--upstream", "127.0.0.1:1", "--fault", "5xx:p=1"],
                 ["--upstream", "127.0.0.1:1", "--fault", "outage:from=3"], ["--upstream", "127.0.0.1:1",
                                                                             "--listen", "127.0.0.1:x"]):
        assert main(["proxy"] + args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)


def test_proxy_help_offers_only_what_the_proxy_does(capsys):
    from player.cli.main import main

    with pytest.raises(SystemExit):
        main(["proxy", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "repeat to give each edge" not in out and "one file" in out  # one link, one trace
    assert "outage:from=T" in out and "die:at=T" in out
    for http_fault in ("5xx:p=", "404:path=", "stall:after=", "reset:after=", "slow-first-byte:delay=", "license:p="):
        assert http_fault not in out, http_fault
    assert "--seed" not in out  # the proxy's faults draw no probabilities
    for args in (["--trace", "a.json", "--trace", "b.json"], ["--fault", "stall:after=1,for=1"]):
        assert main(["proxy", "--upstream", "127.0.0.1:1"] + args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)


def test_proxy_rate_takes_suffixes(origin):
    proc = subprocess.Popen([sys.executable, "-m", "player.cli", "proxy", "--upstream", f"127.0.0.1:{origin}",
                             "--rate", "80M"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        addr = first_line(proc)
        status, n, _ = run(timed_get(f"http://{addr}/small.txt"))
        assert (status, n) == (200, 5)
    finally:
        proc.kill()
        proc.wait(timeout=15)
