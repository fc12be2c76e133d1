"""The emulated edge over loopback: HTTP semantics, path safety, shaping, CMCD log, `abrlab serve`."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from helpers import first_line, run_bounded

from netem.accesslog import parse_cmcd, read as read_log
from netem.edge import EdgeServer, parse_range, Unsatisfiable
from netem.shaper import Capacity
from netem.trace import Trace, constant

REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]


def run(coro, timeout: float = 20.0):
    return run_bounded(coro, timeout)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "v0").mkdir(parents=True)
    (r / "audio").mkdir()
    (r / "manifest.mpd").write_text("<MPD/>\n")
    rng = np.random.default_rng(0)
    (r / "v0" / "1.m4s").write_bytes(rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    (r / "audio" / "1.m4s").write_bytes(b"a" * 1000)
    (r / "index.html").write_text("<html></html>")
    (r / "player.js").write_text("1;")
    (r / ".hidden").write_text("no")
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", r / "escape.txt")
    os.symlink(tmp_path, r / "escape_dir")
    os.symlink(r / "v0" / "1.m4s", r / "inside.m4s")
    return r


async def raw_get(port: int, target: str, extra: str = "") -> tuple[int, bytes]:
    """One request with the target sent byte for byte (no client-side normalisation)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode())
    await writer.drain()
    data = await reader.read(1 << 20)
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


# -- ranges (pure) ---------------------------------------------------------------------------
def test_parse_range():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-", 100) == (90, 100)
    assert parse_range("bytes=90-1000", 100) == (90, 100)
    assert parse_range("bytes=-10", 100) == (90, 100)
    assert parse_range("bytes=-1000", 100) == (0, 100)
    assert parse_range("bytes=0-1,5-9", 100) is None  # several: whole resource
    assert parse_range("items=0-1", 100) is None  # unknown unit: ignored
    # valid range-specs that no byte of a 100-byte resource satisfies: 416
    for bad in ("bytes=100-", "bytes=-0", "bytes=1" + "0" * 30 + "-", "bytes=100-200"):
        with pytest.raises(Unsatisfiable):
            parse_range(bad, 100)
    # not a range-spec (RFC 9110 §14.1.1 grammar: ASCII digits, nothing after; last >= first): ignored, 200 whole
    for invalid in ("bytes=abc", "bytes=0-1;", "bytes=-", "bytes=5-1", "bytes=\u0661-\u0662", "bytes=0-\u0669",
                    "bytes=\uff10-\uff19", "bytes=0x1-2", "bytes=+1-2", "bytes=1-2-3", "bytes=1 - 2", "bytes=="):
        assert parse_range(invalid, 100) is None, invalid


# -- HTTP semantics ----------------------------------------------------------------------------
def test_content_types_lengths_ranges_etag_cors(root):
    async def main():
        async with EdgeServer(root) as edge, aiohttp.ClientSession() as s:
            assert edge.url == f"{edge.base_url}/manifest.mpd"
            async with s.get(edge.url) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "application/dash+xml"
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                assert "Content-Range" in r.headers["Access-Control-Expose-Headers"]
            seg = edge.base_url + "/v0/1.m4s"
            full = (root / "v0" / "1.m4s").read_bytes()
            async with s.get(seg) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
                assert r.headers["Accept-Ranges"] == "bytes" and int(r.headers["Content-Length"]) == len(full)
                assert await r.read() == full
                etag = r.headers["ETag"]
            async with s.get(edge.base_url + "/audio/1.m4s") as r:
                assert r.headers["Content-Type"] == "audio/mp4"
            async with s.get(edge.base_url + "/player.js") as r:
                assert r.headers["Content-Type"].startswith("text/javascript")
            async with s.get(edge.base_url + "/") as r:  # a directory serves its index.html
                assert r.headers["Content-Type"].startswith("text/html")
            async with s.get(seg, headers={"Range": "bytes=1000-1999"}) as r:
                assert r.status == 206 and r.headers["Content-Range"] == f"bytes 1000-1999/{len(full)}"
                assert await r.read() == full[1000:2000]
            async with s.get(seg, headers={"Range": "bytes=-100"}) as r:
                assert r.status == 206 and await r.read() == full[-100:]
            async with s.get(seg, headers={"Range": f"bytes={len(full)}-"}) as r:
                assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(full)}"
            async with s.get(seg, headers={"Range": "bytes=99999999999999999999999-"}) as r:
                assert r.status == 416
            async with s.get(seg, headers={"Range": "bytes=0-9,20-29"}) as r:
                assert r.status == 200 and len(await r.read()) == len(full)
            async with s.get(seg, headers={"Range": "bytes=0-9", "If-Range": '"other"'}) as r:
                assert r.status == 200
            async with s.get(seg, headers={"Range": "bytes=0-9", "If-Range": etag}) as r:
                assert r.status == 206
            async with s.get(seg, headers={"If-None-Match": etag}) as r:
                assert r.status == 304
            async with s.head(seg) as r:
                assert r.status == 200 and int(r.headers["Content-Length"]) == len(full)
            async with s.options(seg, headers={"Origin": "http://x", "Access-Control-Request-Method": "GET",
                                               "Access-Control-Request-Headers": "range"}) as r:
                assert r.status == 204 and "Range" in r.headers["Access-Control-Allow-Headers"]
                assert r.headers["Access-Control-Allow-Origin"] == "*"
            for method in ("PUT", "DELETE", "PATCH", "TRACE"):
                async with s.request(method, seg) as r:
                    assert r.status == 405 and "GET" in r.headers["Allow"]
            async with s.get(edge.base_url + "/license/clearkey") as r:
                assert r.status == 405
            # huge headers are refused, and the server keeps serving
            async with s.get(seg, headers={"X-Big": "a" * 20000}) as r:
                assert r.status in (400, 431)
        return True

    assert run(main())


def test_no_traversal_no_listing_no_hidden_files(root):
    async def main():
        async with EdgeServer(root) as edge:
            port = edge.port
            refused = [
                "/../secret.txt", "/v0/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/%2e%2e/secret.txt",
                "/v0/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%252e%252e/secret.txt",
                "/escape.txt", "/escape_dir/secret.txt", "//etc/passwd", "/%2fetc%2fpasswd", "/etc/passwd",
                "/.hidden", "/v0/", "/v0", "/..%5csecret.txt", "/a%00b",
            ]
            out = {}
            for target in refused:
                status, data = await raw_get(port, target)
                out[target] = status
                assert b"top secret" not in data and b"root:" not in data, target
            ok, _ = await raw_get(port, "/inside.m4s")  # a symlink inside the root is fine
            return out, ok

    out, ok = run(main())
    assert all(s in (400, 403, 404) for s in out.values()), out
    assert ok == 200


def test_shaped_download_takes_the_capacity_time(root):
    # 2 Mbit/s for 1 s then 6 Mbit/s, 10× faster; with 50 ms (trace) latency
    tr = Trace(np.array([0.0, 1.0]), np.array([2e6, 6e6]), 2.0)
    size = (root / "v0" / "1.m4s").stat().st_size

    async def main():
        async with EdgeServer(root, trace=tr, time_scale=10, latency_s=0.05) as edge, \
                aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            start_trace = edge.trace_time()
            async with s.get(edge.base_url + "/v0/1.m4s") as r:
                body = await r.read()
            return time.monotonic() - t0, len(body), start_trace

    took, n, t_start = run(main())
    cap = Capacity(tr.scaled(10))
    expected = 0.005 + (cap.time_at(cap.bytes_at(t_start / 10 + 0.005) + size) - (t_start / 10 + 0.005))
    assert n == size
    assert took == pytest.approx(expected, rel=0.3)


def test_concurrent_downloads_share_the_link(root):
    async def main():
        async with EdgeServer(root, trace=constant(8e6, 60.0), time_scale=2) as edge, \
                aiohttp.ClientSession() as s:
            ends = []

            async def one():
                async with s.get(edge.base_url + "/v0/1.m4s") as r:
                    await r.read()
                ends.append(time.monotonic())

            t0 = time.monotonic()
            await asyncio.gather(*(one() for _ in range(4)))
            return [e - t0 for e in ends]

    ends = run(main())
    expected = 4 * 300_000 * 8 / 16e6  # 0.6 s for all four together
    assert max(ends) == pytest.approx(expected, rel=0.25)
    assert min(ends) >= 0.8 * max(ends)  # fair: nobody finishes far ahead


def test_cmcd_keys_land_in_the_access_log(root, tmp_path):
    log_path = tmp_path / "access.jsonl"

    async def main():
        async with EdgeServer(root, access_log=str(log_path), index=3) as edge, aiohttp.ClientSession() as s:
            q = 'br=3200,bl=21300,ot=v,sid="6e2f-11",nor="..%2F300kbps%2Ftrack.m4v",bs,su'
            async with s.get(edge.base_url + "/v0/1.m4s?CMCD=" + aiohttp.helpers.quote(q, safe=""),
                             headers={"Range": "bytes=0-99"}) as r:
                await r.read()
            async with s.get(edge.base_url + "/v0/1.m4s", headers={
                    "CMCD-Request": "bl=1200,mtp=25400", "CMCD-Object": "br=800,d=4004,ot=v",
                    "CMCD-Status": "rtp=15000", "CMCD-Session": 'sid="abc",sf=d,st=v,v=1'}) as r:
                await r.read()

    run(main())
    recs = read_log(log_path)
    assert len(recs) == 2
    a, b = recs
    assert a["edge"] == 3 and a["method"] == "GET" and a["path"] == "/v0/1.m4s"
    assert a["range"] == "bytes=0-99" and a["status"] == 206 and a["bytes"] == 100
    assert a["duration_s"] >= 0 and "time" in a
    assert a["cmcd"]["br"] == 3200 and a["cmcd"]["sid"] == "6e2f-11" and a["cmcd"]["bs"] is True
    assert a["cmcd"]["ot"] == "v"
    assert b["cmcd"] == {"bl": 1200, "mtp": 25400, "br": 800, "d": 4004, "ot": "v", "rtp": 15000,
                         "sid": "abc", "sf": "d", "st": "v", "v": 1}


def test_parse_cmcd_edge_cases():
    assert parse_cmcd('a=1,b="x,y",c,d=2.5,e=?0,f=tok') == {"a": 1, "b": "x,y", "c": True, "d": 2.5, "e": False,
                                                            "f": "tok"}
    assert parse_cmcd('sid="a\\"b"') == {"sid": 'a"b'}
    assert parse_cmcd('x="unterminated,y=1') == {}
    assert parse_cmcd("=1,good=2,bad=@@") == {"good": 2}
    assert parse_cmcd("") == {}


def test_several_edges_and_a_virtual_presentation():
    pytest.importorskip("netem.package")
    from netem.content import synthetic
    from netem.edge import EdgeGroup
    from netem.package import SyntheticPresentation

    pres = SyntheticPresentation(synthetic(duration_s=8.0), addressing="number")

    async def main():
        edges = [EdgeServer(pres, index=i, trace=constant(50e6, 10.0), time_scale=10) for i in range(2)]
        async with EdgeGroup(edges) as g, aiohttp.ClientSession() as s:
            assert len(set(g.urls)) == 2
            path, size = next((p, n) for p, n in sorted(pres.files().items()) if p.endswith(".m4s"))
            for e in edges:
                async with s.get(e.url) as r:
                    assert r.status == 200 and r.headers["Content-Type"] == "application/dash+xml"
                    assert await r.read() == pres.mpd()
                async with s.get(f"{e.base_url}/{path}", headers={"Range": "bytes=8-15"}) as r:
                    assert r.status == 206 and await r.read() == pres.read(path, 8, 16)
                assert (await raw_get(e.port, "/nope.m4s"))[0] == 404
            return True

    assert run(main())


# -- the command -------------------------------------------------------------------------------


def test_serve_prints_url_first_and_exits_cleanly_on_sigterm(root, tmp_path):
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(ABRLAB + ["serve", str(root), "--rate", "8e6", "--time-scale", "10", "--edges", "2",
                                      "--access-log", str(log)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = first_line(proc)
        second = first_line(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/manifest.mpd")
        assert second.endswith("/manifest.mpd") and second != url

        async def fetch():
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                return r.status, await r.read()

        assert run(fetch()) == (200, b"<MPD/>\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = read_log(log)
    assert rec and rec[0]["path"] == "/manifest.mpd" and rec[0]["status"] == 200


def test_serve_bad_input_is_one_line_exit_2(root, capsys):
    from player.cli.main import main

    for args in (["--fault", "5xx:p=2"], ["--fault", "stall:after=10"], ["--time-scale", "0"],
                 ["--fault", "teleport"], ["--latency", "-1"], ["--license-policy", "nope"]):
        assert main(["serve", str(root)] + args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
    assert main(["serve", str(root / "nope")]) == 2
    # and through the real console entry point
    p = subprocess.run(ABRLAB + ["serve", str(root), "--fault", "5xx:p=2"], cwd=REPO, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "'p'" in p.stderr


def test_serve_refuses_a_directory_without_an_mpd(tmp_path):
    (tmp_path / "v0").mkdir()
    (tmp_path / "v0" / "1.m4s").write_bytes(b"x")
    for extra in ([], ["--mpd", "v0/none.mpd"], ["--mpd", "../escape.mpd"]):
        p = subprocess.run(ABRLAB + ["serve", str(tmp_path)] + extra, cwd=REPO, capture_output=True, text=True,
                           timeout=30)  # before: it served (no exit), and printed http://…/ as the MPD URL
        assert p.returncode == 2 and p.stdout == "", (extra, p.stdout)
        assert len(p.stderr.strip().splitlines()) == 1 and str(tmp_path) in p.stderr, (extra, p.stderr)


def _stderr_line(proc) -> str:
    class Err:  # first_line reads .stdout
        stdout = proc.stderr
        kill = proc.kill

    return first_line(Err)


def test_serve_rate_takes_the_suffixes_of_the_other_rate_options(root):
    proc = subprocess.Popen(ABRLAB + ["serve", str(root), "--rate", "20M"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert first_line(proc).endswith("/manifest.mpd")
        assert "shaped by constant-2e+07bps" in _stderr_line(proc)
    finally:
        proc.kill()
        proc.wait(timeout=15)


def test_serve_limit_options_are_checked(root, capsys):
    from player.cli.main import main

    for opt, bad in (("--idle-timeout", "0"), ("--header-timeout", "nan"), ("--write-timeout", "-1"),
                     ("--max-connections", "0"), ("--max-per-client", "0")):
        assert main(["serve", str(root), opt, bad]) == 2, opt
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and opt in err, (opt, err)


def test_bad_requests_log_one_short_line_each_not_a_traceback(root):
    # malformed requests of ~33 bytes; before: a 491-byte traceback on stderr for each
    bad = [b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"\x00\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\n",
           b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\xd9\xa1\r\n\r\n"]
    n = 60
    proc = subprocess.Popen(ABRLAB + ["serve", str(root)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        url = first_line(proc)
        port = int(url.split(":")[2].split("/")[0])

        async def send_all():
            answers = []
            for i in range(n):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(bad[i % len(bad)])
                answers.append(await reader.read())
                writer.close()
            return answers

        answers = run(send_all())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(a.split(b" ", 2)[1] == b"400" for a in answers)
    lines = err.splitlines()
    assert "Traceback" not in err
    bad_lines = [line for line in lines if "bad request from 127.0.0.1" in line]
    assert 1 <= len(bad_lines) <= n and len(lines) <= n + 2  # two start-up lines
    assert all(len(line) <= 200 for line in lines), max(lines, key=len)
