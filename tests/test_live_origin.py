"""The live origin over loopback: availability by a fixed clock, rewritten segments, chunks held
back until their end, UTCTiming under a clock offset, faults, directory and encoded sources,
and `abrlab serve --live`.

Servers bind 127.0.0.1 port 0 and read a `ManualClock` the test moves, so nothing waits on
real time; every session is bounded (`run_bounded`). Content: 4 VoD segments of 2 s, AST =
1 700 000 000 s; segment j (from 0 at AST) is $Number$ j + 1 and spans [2j, 2j + 2) s.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from helpers import first_line, run_bounded, stop_process

from netem import isobmff
from netem.content import Content, rungs_from_bitrates
from netem.encode import encode_presentation
from netem.errors import InputError
from netem.live.clock import ManualClock, SystemClock
from netem.live.config import LiveConfig
from netem.live.origin import LiveEdge
from netem.live.presentation import LivePresentation
from netem.live.vod import load_directory
from netem.package import SyntheticPresentation
from netem.trace import constant
from player.cli.main import main

AST = 1_700_000_000.0
REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def small_content(n: int = 4, seg_s: float = 2.0) -> Content:
    sizes = np.array([[60_000 + 1000 * k, 150_000 + 1000 * k] for k in range(n)])
    return Content(rungs_from_bitrates([300e3, 750e3]), np.full(n, seg_s), sizes, name="small")


def config(**kw) -> LiveConfig:
    kw.setdefault("availability_start_s", AST)
    return LiveConfig(**kw)


def tfdt_and_number(data: bytes) -> list[tuple[int, int]]:
    return [(isobmff.parse_mfhd(b.find("mfhd")), isobmff.parse_tfdt(b.find("traf/tfdt")))
            for b in isobmff.parse(data) if b.type == "moof"]


async def wait_for_sleeper(clock: ManualClock) -> list[float]:
    """Until the origin waits on the clock (bounded: about 5 s of polling)."""
    for _ in range(1000):
        if clock.waiting:
            return clock.waiting
        await asyncio.sleep(0.005)
    raise AssertionError("the origin never waited on the clock")


# -- availability --------------------------------------------------------------------------------
def test_too_early_gone_and_available_by_a_fixed_clock():
    clock = ManualClock(AST + 10.0)
    pres = SyntheticPresentation(small_content())

    async def main_():
        async with LiveEdge(pres, config=config(time_shift_depth_s=6.0), clock=clock) as edge, \
                aiohttp.ClientSession() as s:
            got = {}
            for n in (2, 3, 5, 6, 7):
                async with s.get(f"{edge.base_url}/v0/{n}.m4s") as r:
                    got[n] = (r.status, r.headers.get("Retry-After"))
            # at 10 s: j = 4 ($Number$ 5) ended at 10 s: available; j = 5 ends at 12 s: 2 s early;
            # j = 6 ends at 14 s: 4 s early; j = 1 ($Number$ 2) ended at 4 s <= 10 - 6: gone
            assert got == {2: (410, None), 3: (200, None), 5: (200, None), 6: (425, "2"), 7: (425, "4")}
            clock.set(AST + 12.0)  # now $Number$ 6 is out, $Number$ 3 (ended 6 s) is gone
            async with s.get(f"{edge.base_url}/v0/6.m4s") as r:
                assert r.status == 200
            async with s.get(f"{edge.base_url}/v0/3.m4s") as r:
                assert r.status == 410
            for bad in ("/v0/0.m4s", "/v9/3.m4s", "/v0/t0.m4s", "/v0/x.m4s", "/../etc/passwd"):
                async with s.get(edge.base_url + bad) as r:
                    assert r.status in (403, 404), bad
            async with s.get(f"{edge.base_url}/v0/init.mp4") as r:  # init segments: always
                assert r.status == 200 and await r.read() == pres.read("v0/init.mp4")

    run_bounded(main_())


def test_too_early_status_404_option():
    async def main_():
        async with LiveEdge(SyntheticPresentation(small_content()), config=config(too_early_status=404),
                            clock=ManualClock(AST + 10.0)) as edge, aiohttp.ClientSession() as s:
            async with s.get(f"{edge.base_url}/v0/6.m4s") as r:
                assert r.status == 404

    run_bounded(main_())


def test_served_segments_carry_live_times_and_numbers():
    pres = SyntheticPresentation(small_content(), audio=True)
    clock = ManualClock(AST + 30.0)

    async def main_():
        async with LiveEdge(pres, config=config(), clock=clock) as number, \
                LiveEdge(pres, config=config(addressing="timeline"), clock=clock) as timeline, \
                aiohttp.ClientSession() as s:
            # j = 9: loop 2, VoD segment 1 -> $Number$ 10, tfdt 18 s = 1 620 000 ticks
            async with s.get(f"{number.base_url}/v1/10.m4s") as r:
                data = await r.read()
                assert r.status == 200 and int(r.headers["Content-Length"]) == len(data) == 151_000
            assert tfdt_and_number(data) == [(10, 1_620_000)]
            async with s.get(f"{timeline.base_url}/v1/t1620000.m4s") as r:
                assert r.status == 200 and await r.read() == data  # the same segment by $Time$
            async with s.get(f"{timeline.base_url}/v1/t1620001.m4s") as r:
                assert r.status == 404
            # audio j = 9: 18 s = 843.75 frames -> 844 x 1024
            async with s.get(f"{number.base_url}/a0/10.m4s") as r:
                assert tfdt_and_number(await r.read()) == [(10, 844 * 1024)]

    run_bounded(main_())


def test_mpd_over_http_grows_and_dates_come_from_the_origin_clock():
    clock = ManualClock(AST + 10.0)

    async def main_():
        async with LiveEdge(SyntheticPresentation(small_content()), config=config(addressing="timeline"), clock=clock) as edge, \
                aiohttp.ClientSession() as s:
            assert edge.url == edge.base_url + "/manifest.mpd"
            async with s.get(edge.url) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "application/dash+xml"
                assert r.headers["Date"] == "Tue, 14 Nov 2023 22:13:30 GMT"
                first = ET.fromstring(await r.read())
            clock.set(AST + 14.0)
            async with s.get(edge.url) as r:
                second = ET.fromstring(await r.read())
            runs = [[(e.get("t"), e.get("r")) for e in m.findall(".//d:AdaptationSet/d:SegmentTemplate//d:S", NS)]
                    for m in (first, second)]
            assert runs == [[("0", "4")], [("0", "6")]]  # j = 0..4, then 0..6
            utc = second.find("d:UTCTiming", NS)
            assert utc.get("value") == edge.base_url + "/utc/iso"

    run_bounded(main_())


def test_timeline_mpd_before_the_first_segment_is_too_early():
    async def main_():
        async with LiveEdge(SyntheticPresentation(small_content()), config=config(addressing="timeline"),
                            clock=ManualClock(AST - 30.0)) as edge, aiohttp.ClientSession() as s:
            async with s.get(edge.url) as r:
                assert r.status == 425 and r.headers["Retry-After"] == "32"  # first segment ends at AST + 2

    run_bounded(main_())


# -- low latency ---------------------------------------------------------------------------------
def test_low_latency_chunks_leave_no_earlier_than_their_end():
    pres = SyntheticPresentation(small_content())
    clock = ManualClock(AST + 10.5)  # j = 5 ($Number$ 6, 10-12 s): its first chunk just ended

    async def main_():
        async with LiveEdge(pres, config=config(chunk_s=0.5), clock=clock, trace=constant(50e6, 60.0)) as edge, \
                aiohttp.ClientSession() as s:
            seg = edge.live.segment(edge.live.track("v0").index, 5)
            assert len(seg.chunk_ends) == 4
            async with s.get(f"{edge.base_url}/v0/6.m4s") as r:
                assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
                assert "Content-Length" not in r.headers
                got = b""
                for c, end in enumerate(seg.chunk_ends):
                    got += await r.content.readexactly(end - len(got))
                    if c + 1 < len(seg.chunk_ends):
                        # the origin holds chunk c + 1 until its end, and has sent nothing of it
                        assert await wait_for_sleeper(clock) == [AST + 11.0 + 0.5 * c]
                        assert r.content.total_bytes == end
                        clock.set(AST + 11.0 + 0.5 * c)
                assert await r.read() == b""
            assert tfdt_and_number(got) == [(6, 900000), (6, 945000), (6, 990000), (6, 1035000)]
            assert got == seg.read(0, seg.size)
            rec = [x for x in edge.records if x["path"] == "/v0/6.m4s"][0]
            assert [c["end"] for c in rec["chunks"]] == seg.chunk_ends
            assert [c["release_s"] for c in rec["chunks"]] == [AST + 10.5, AST + 11.0, AST + 11.5, AST + 12.0]
            assert all(c["at_s"] >= c["release_s"] for c in rec["chunks"])
            assert rec["bytes"] == seg.size and rec["status"] == 200
            # every write within one chunk: the writes' running total passes each chunk's end
            sent = np.cumsum([n for _, n in rec["writes"]])
            assert sent[-1] == seg.size and set(seg.chunk_ends) <= set(sent.tolist())

    run_bounded(main_())


def test_chunk_sizes_are_the_bytes_the_origin_sends_per_chunk():
    live = LivePresentation(SyntheticPresentation(small_content()), config(chunk_s=0.5))
    sizes = live.chunk_sizes_bytes()
    assert sizes.shape == (4, 2, 4)                        # 4 looped segments, 2 rungs, 4 chunks of 0.5 s
    for j in (5, 6, 4 * 1000 + 3):                         # any live segment: the loop's sizes
        for rung in (0, 1):
            seg = live.segment(live.track(f"v{rung}").index, j)
            assert sizes[j % 4, rung].tolist() == np.diff([0] + list(seg.chunk_ends)).tolist()


def test_low_latency_segment_already_complete_is_an_ordinary_response():
    async def main_():
        async with LiveEdge(SyntheticPresentation(small_content()), config=config(chunk_s=0.5),
                            clock=ManualClock(AST + 20.0)) as edge, aiohttp.ClientSession() as s:
            seg = edge.live.segment(edge.live.track("v0").index, 5)
            async with s.get(f"{edge.base_url}/v0/6.m4s", headers={"Range": "bytes=0-99"}) as r:
                assert r.status == 206 and await r.read() == seg.read(0, 100)
            async with s.get(f"{edge.base_url}/v0/6.m4s") as r:
                assert int(r.headers["Content-Length"]) == seg.size
            rec = [x for x in edge.records if x["path"] == "/v0/6.m4s"][-1]
            assert "chunks" not in rec

    run_bounded(main_())


# -- UTCTiming and the clock -------------------------------------------------------------------------
def test_utc_endpoints_answer_the_origin_clock():
    clock = ManualClock(AST + 0.25)

    async def main_():
        async with LiveEdge(SyntheticPresentation(small_content()), config=config(), clock=clock) as edge, \
                aiohttp.ClientSession() as s:
            for path in ("/utc/iso", "/utc/xsdate"):
                async with s.get(edge.base_url + path) as r:
                    assert r.status == 200 and await r.text() == "2023-11-14T22:13:20.250Z"
                    assert r.headers["Access-Control-Allow-Origin"] == "*"
            async with s.head(edge.base_url + "/utc/head") as r:
                assert r.status == 200 and r.headers["Date"] == "Tue, 14 Nov 2023 22:13:20 GMT"

    run_bounded(main_())


def test_clock_offset_moves_availability_and_utc_answers():
    seg_s = 2.0
    behind = SystemClock(offset_s=-3600.0)
    live_now = int(time.time() // seg_s)  # by the machine's clock segment `live_now` (0-based) is in progress

    async def main_():
        async with LiveEdge(SyntheticPresentation(small_content()), config=LiveConfig(time_shift_depth_s=7200.0),
                            clock=behind) as edge, aiohttp.ClientSession() as s:
            async with s.get(f"{edge.base_url}/v0/{live_now - 1}.m4s") as r:  # ended by the machine clock
                assert r.status == 425  # but the origin's clock is an hour behind
            async with s.get(f"{edge.base_url}/v0/{live_now - 1800 - 2}.m4s") as r:  # ended an hour + 2 s ago
                assert r.status == 200
            async with s.get(edge.base_url + "/utc/iso") as r:
                text = await r.text()
            served = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            assert abs(served - (time.time() - 3600.0)) < 30.0

    run_bounded(main_())


def test_system_clock_offset_and_time_scale():
    anchor = time.time() - 100.0
    fast = SystemClock(offset_s=5.0, time_scale=10.0, anchor_s=anchor)
    # 100 s of real time since the anchor are 1000 s on a 10x clock, plus the 5 s offset
    assert abs(fast.now() - (anchor + 1005.0)) < 5.0
    assert abs(SystemClock(offset_s=-60.0).now() - (time.time() - 60.0)) < 5.0
    with pytest.raises(InputError):
        SystemClock(time_scale=0)


def test_live_edge_clock_runs_at_the_time_scale():
    edge = LiveEdge(SyntheticPresentation(small_content()), config=config(), time_scale=8.0, clock_offset_s=2.0)
    assert edge.clock.time_scale == 8.0 and edge.clock.offset_s == 2.0 and edge.time_scale == 8.0


def test_manual_clock_wakes_sleepers_in_order():
    async def main_():
        clock = ManualClock(10.0)
        woke = []

        async def sleeper(t):
            await clock.sleep_until(t)
            woke.append(t)

        tasks = [asyncio.create_task(sleeper(t)) for t in (12.0, 11.0, 10.0)]
        await asyncio.sleep(0)
        assert clock.waiting == [11.0, 12.0]
        clock.set(11.5)
        await asyncio.sleep(0)
        assert woke == [10.0, 11.0]
        clock.advance(1.0)
        await asyncio.gather(*tasks)
        assert woke == [10.0, 11.0, 12.0]
        with pytest.raises(ValueError):
            clock.set(0.0)

    run_bounded(main_())


# -- faults, sources ----------------------------------------------------------------------------------
def test_faults_apply_on_live_paths():
    async def main_():
        async with LiveEdge(SyntheticPresentation(small_content()), config=config(), clock=ManualClock(AST + 10.0),
                            faults=["5xx:path=/v1/*,status=502"]) as edge, aiohttp.ClientSession() as s:
            async with s.get(f"{edge.base_url}/v1/5.m4s") as r:
                assert r.status == 502
            async with s.get(f"{edge.base_url}/v0/5.m4s") as r:
                assert r.status == 200
            assert [x["faults"] for x in edge.records if x["path"] == "/v1/5.m4s"] == [["5xx:path=/v1/*,status=502"]]

    run_bounded(main_())


@pytest.mark.parametrize("addressing", ["number", "timeline", "list", "base"])
def test_content_make_directory_plays_live_like_the_presentation(tmp_path, addressing):
    pres = SyntheticPresentation(small_content(), addressing=addressing, audio=True)
    pres.write(tmp_path / "vod")
    cfg = config(addressing="timeline", chunk_s=0.5)
    from_dir = LivePresentation(load_directory(tmp_path / "vod"), cfg)
    in_memory = LivePresentation(pres, cfg)
    assert [t.rep_id for t in from_dir.tracks] == ["v0", "v1", "a0"]
    assert from_dir.ref.durations == [180000] * 4
    for rep in ("v1", "a0"):
        a, b = from_dir.track(rep), in_memory.track(rep)
        for j in (2, 5, 13):
            sa, sb = from_dir.segment(a.index, j), in_memory.segment(b.index, j)
            assert sa.read(0, sa.size) == sb.read(0, sb.size), (rep, j)


def test_directory_with_a_bad_mpd_is_one_clear_error(tmp_path):
    d = tmp_path / "vod"
    d.mkdir()
    (d / "manifest.mpd").write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><MPD>&a;</MPD>')
    with pytest.raises(InputError, match="refused"):
        load_directory(d)
    (d / "manifest.mpd").write_text('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet '
                                    'contentType="video"><SegmentList><Initialization sourceURL="../../etc/passwd"/>'
                                    '</SegmentList><Representation id="v0" bandwidth="1"/></AdaptationSet></Period>'
                                    '</MPD>')
    with pytest.raises(InputError, match="outside the directory"):
        load_directory(d)


def test_encoded_content_plays_live():
    pytest.importorskip("av")
    c = Content(rungs_from_bitrates([200e3]), np.full(2, 1.0), np.full((2, 1), 25_000), name="tiny")
    pres = encode_presentation(c, audio=True, max_height=64, preset="ultrafast")
    live = LivePresentation(pres, config())
    v, a = live.track("v0"), live.track("a0")
    # j = 3: loop 1, VoD segment 1; video 30 fps at 90 kHz: tfdt 3 s = 270000
    seg = live.segment(v.index, 3)
    data = seg.read(0, seg.size)
    assert tfdt_and_number(data) == [(4, 270000)]
    vod = pres.read("v0/2.m4s")
    assert isobmff.find(isobmff.parse(data), "mdat").data == isobmff.find(isobmff.parse(vod), "mdat").data
    # audio follows: 3 s = 140.625 frames -> 141 x 1024
    assert tfdt_and_number(live.segment(a.index, 3).read(0, 10 ** 9))[0] == (4, 141 * 1024)


# -- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["--low-latency"],
    ["--clock-offset", "5"],
    ["--live", "--chunk-duration", "0.5"],
    ["--live", "--target-latency", "2"],
    ["--live", "--addressing", "list"],
    ["--live", "--low-latency", "--chunk-duration", "4"],
    ["--live", "--period-duration", "3"],
    ["--live", "--time-shift-depth", "-1"],
    ["--live", "--utc-timing", "ntp"],
    ["--live", "--availability-start", "tomorrow"],
])
def test_serve_live_bad_combinations_are_one_line_exit_2(args, capsys):
    assert main(["serve", "--movie", "synthetic"] + args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("abrlab serve: error:"), err


def test_serve_live_prints_the_mpd_url_and_serves_a_dynamic_mpd(tmp_path):
    proc = subprocess.Popen(ABRLAB + ["serve", "--live", "--movie", "synthetic", "--low-latency",
                                      "--chunk-duration", "1", "--period-duration", "8"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = first_line(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/manifest.mpd")

        async def get():
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                return r.status, await r.text()

        status, text = run_bounded(get())
        mpd = ET.fromstring(text)
        assert status == 200 and mpd.get("type") == "dynamic"
        assert mpd.find("d:ServiceDescription", NS) is not None
        assert mpd.find(".//d:SegmentTemplate", NS).get("availabilityTimeOffset") == "3"
        assert all(p.get("id").startswith("p") for p in mpd.findall("d:Period", NS))
    finally:
        stop_process(proc)
