"""Fault specs: parsing (and refusing) every kind, then each kind injected by a live edge."""
from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import aiohttp
import pytest

from helpers import run_bounded

from netem.edge import EdgeServer
from netem.errors import InputError
from netem.faults import FaultPlan, parse, parse_all
from netem.trace import constant

SIZE = 200_000


def run(coro, timeout: float = 20.0):
    return run_bounded(coro, timeout)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "v0").mkdir(parents=True)
    (r / "manifest.mpd").write_text("<MPD/>\n")
    (r / "v0" / "1.m4s").write_bytes(bytes(range(256)) * (SIZE // 256) + b"x" * (SIZE % 256))
    return r


# -- parsing -----------------------------------------------------------------------------------
def test_parse_every_kind():
    f = parse("5xx:p=0.25,status=502,path=*.m4s,from=10,to=20,edge=1")
    assert (f.kind, f.p, f.status, f.path, f.start_s, f.end_s, f.edge) == ("5xx", 0.25, 502, "*.m4s", 10, 20, 1)
    assert parse("5xx").status == 503 and parse("5xx").p == 1.0
    assert parse("404:path=v0/*").path == "*/v0/*"
    s = parse("stall:after=100k,for=2.5")
    assert (s.after_bytes, s.duration_s) == (100_000, 2.5)
    assert parse("reset:after=1Mi,p=0.5").after_bytes == 2**20
    assert parse("reset").after_bytes == 0
    assert parse("slow-first-byte:delay=500ms").delay_s == 0.5
    o = parse("outage:from=5,for=3")
    assert (o.start_s, o.end_s) == (5, 8)
    assert parse("outage:from=5,to=6s").end_s == 6
    assert parse("die:at=30").at_s == 30
    lic = parse("license:p=0.5")
    assert lic.path == "/license/*" and lic.status == 500 and lic.fail
    assert not parse("license:delay=2").fail
    assert parse_all(None) == []


@pytest.mark.parametrize("spec, field", [
    ("5xx:p=1.5", "'p'"), ("5xx:status=404", "'status'"), ("5xx:p", "KEY=VALUE"), ("stall:after=1", "'for'"),
    ("stall:after=lots,for=1", "'after'"), ("stall:after=1,for=-1", "'for'"), ("outage:from=5", "'to'"),
    ("outage:from=5,to=4", "'to'"), ("die", "'at'"), ("die:at=nan", "'at'"), ("reset:after=1,colour=red", "'colour'"),
    ("teleport:p=1", "unknown fault kind"), ("5xx:p=0.1,p=0.2", "twice"), ("5xx:edge=-1", "'edge'"),
    ("slow-first-byte:delay=inf", "'delay'"), ("404:path=", "'path'"), ("outage:from=1,to=2,for=1", "'to' or 'for'"),
])
def test_bad_specs_name_the_field(spec, field):
    with pytest.raises(InputError) as e:
        parse(spec)
    assert field in str(e.value) and spec in str(e.value)


def test_plan_is_seeded_and_respects_path_time_and_edge():
    faults = parse_all(["5xx:p=0.5,path=*.m4s", "404:path=*/v1/*,from=10,to=20", "slow-first-byte:delay=1,edge=1"])
    plan1, plan2 = FaultPlan(faults, seed=7), FaultPlan(faults, seed=7)
    s1 = [plan1.decide(f"/v0/{i}.m4s", 0).status for i in range(200)]
    s2 = [plan2.decide(f"/v0/{i}.m4s", 0).status for i in range(200)]
    assert s1 == s2 and 60 < s1.count(503) < 140
    assert s1 != [FaultPlan(faults, seed=8).decide(f"/v0/{i}.m4s", 0).status for i in range(200)]
    assert FaultPlan(faults, seed=7).decide("/manifest.mpd", 0).status is None
    p = FaultPlan(faults, seed=0)
    assert p.decide("/v1/1.mp4", 5).status is None and p.decide("/v1/1.mp4", 15).status == 404
    assert FaultPlan(faults, edge=0).decide("/x", 0).delay_s == 0
    assert FaultPlan(faults, edge=1).decide("/x", 0).delay_s == 1


# -- injected by a live edge (time scale 10: trace seconds pass 10× faster) ---------------------
async def fetch(s, url, **kw):
    t0 = time.monotonic()
    async with s.get(url, **kw) as r:
        first = time.monotonic() - t0
        body = await r.read()
    return r.status, body, first, time.monotonic() - t0


def test_5xx_and_404_faults(root):
    async def main():
        async with EdgeServer(root, faults=["5xx:status=502,path=*.m4s", "404:path=/manifest.mpd,from=0,to=1000"]) \
                as edge, aiohttp.ClientSession() as s:
            st_seg = (await fetch(s, edge.base_url + "/v0/1.m4s"))[0]
            st_mpd = (await fetch(s, edge.url))[0]
            return st_seg, st_mpd, list(edge.records)

    seg, mpd, recs = run(main())
    assert (seg, mpd) == (502, 404)
    assert recs[0]["faults"] == ["5xx:status=502,path=*.m4s"]


def test_probabilistic_5xx_is_reproducible(root):
    async def statuses():
        async with EdgeServer(root, faults=["5xx:p=0.5"], seed=3) as edge, aiohttp.ClientSession() as s:
            return [(await fetch(s, edge.url))[0] for _ in range(30)]

    a, b = run(statuses()), run(statuses())
    assert a == b and set(a) == {200, 503}


def test_stall_mid_body(root):
    async def main():
        async with EdgeServer(root, time_scale=10, faults=["stall:after=50000,for=3"]) as edge, \
                aiohttp.ClientSession() as s:
            return await fetch(s, edge.base_url + "/v0/1.m4s")

    status, body, first, total = run(main())
    assert status == 200 and len(body) == SIZE
    assert first < 0.25 and total >= 0.28  # 3 trace s = 0.3 s wall, after the first bytes


def test_reset_after_bytes(root):
    async def main():
        async with EdgeServer(root, faults=["reset:after=5000"]) as edge, aiohttp.ClientSession() as s:
            got = 0
            with pytest.raises(aiohttp.ClientError):
                async with s.get(edge.base_url + "/v0/1.m4s") as r:
                    async for chunk in r.content.iter_chunked(1024):
                        got += len(chunk)
            ok = (await fetch(s, edge.url))[0]  # the edge keeps serving
            return got, ok, list(edge.records)

    got, ok, recs = run(main())
    assert got <= 5000 and ok == 200
    assert recs[0]["bytes"] == 5000 and recs[0].get("aborted")


def test_slow_first_byte(root):
    async def main():
        async with EdgeServer(root, time_scale=10, faults=["slow-first-byte:delay=2,path=*.mpd"]) as edge, \
                aiohttp.ClientSession() as s:
            slow = await fetch(s, edge.url)
            fast = await fetch(s, edge.base_url + "/v0/1.m4s", headers={"Range": "bytes=0-9"})
            return slow[2], fast[2]

    slow, fast = run(main())
    assert slow >= 0.19 and fast < 0.15


def test_outage_stops_the_link(root):
    # 16 Mbit/s ×10 = 20 MB/s: 200 kB takes 10 ms, but the link is down for trace 0–3 s
    async def main():
        async with EdgeServer(root, trace=constant(16e6, 60.0), time_scale=10,
                              faults=["outage:from=0,to=3"]) as edge, aiohttp.ClientSession() as s:
            status, body, first, total = await fetch(s, edge.base_url + "/v0/1.m4s")
            return status, len(body), total

    status, n, total = run(main())
    assert status == 200 and n == SIZE and total >= 0.27


def test_outage_without_a_trace_still_blocks(root):
    async def main():
        async with EdgeServer(root, time_scale=10, faults=["outage:from=0,for=2"]) as edge, \
                aiohttp.ClientSession() as s:
            return await fetch(s, edge.base_url + "/v0/1.m4s")

    status, body, first, total = run(main())
    assert status == 200 and len(body) == SIZE and total >= 0.18


def test_die_closes_the_edge(root):
    async def main():
        async with EdgeServer(root, time_scale=10, faults=["die:at=2"]) as edge, aiohttp.ClientSession() as s:
            before = (await fetch(s, edge.url))[0]
            deadline = time.monotonic() + 5.0
            after = None
            while time.monotonic() < deadline:  # bounded: the edge dies at 0.2 s wall
                try:
                    await fetch(s, edge.url)
                except aiohttp.ClientError as exc:
                    after = exc
                    break
                await asyncio.sleep(0.02)
            return before, after, edge.now()

    before, after, when = run(main())
    assert before == 200 and isinstance(after, aiohttp.ClientError) and when >= 0.19


def test_license_faults(root):
    async def main():
        body = {"kids": ["AAAAAAAAAAAAAAAAAAAAAA"], "type": "temporary"}
        async with EdgeServer(root, time_scale=10, faults=["license:p=1,status=503,path=*/widevine"]) as edge, \
                aiohttp.ClientSession() as s:
            async with s.post(edge.base_url + "/license/widevine", data=b"\x08\x01") as r:
                failed = r.status
            async with s.post(edge.base_url + "/license/clearkey", json=body) as r:
                unknown = r.status
        async with EdgeServer(root, time_scale=10, faults=["license:delay=2"]) as edge, \
                aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            async with s.post(edge.base_url + "/license/playready", data=b"<challenge/>") as r:
                slow_status = r.status
            slow = time.monotonic() - t0
        return failed, unknown, slow_status, slow

    failed, unknown, slow_status, slow = run(main())
    assert failed == 503 and unknown == 403 and slow_status == 200 and slow >= 0.19


def test_proxy_refuses_http_faults():
    from netem.proxy import ShapingProxy

    with pytest.raises(InputError, match="not supported by the proxy"):
        ShapingProxy(("127.0.0.1", 1), faults=["5xx:p=1"])
    assert math.isinf(parse("5xx").end_s)
