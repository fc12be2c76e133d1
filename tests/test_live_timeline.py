"""The live origin's pure parts at a fixed `now`: timeline, availability, MPD, segment rewriting.

Content used throughout (unless a test says otherwise): 4 VoD segments of 2 s (90 kHz
video: 180000 ticks each, 30 frames per second), so the loop lasts 8 s and global segment
j = 4 L + k starts j × 2 s after AST; its $Number$ is j + 1. AST = 1 700 000 000 s
(2023-11-14T22:13:20Z). Every expected number below is worked out by hand in a comment.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, strategies as st

from netem import isobmff
from netem.cenc import Protection
from netem.content import Content, rungs_from_bitrates
from netem.errors import InputError, UsageError
from netem.live.config import LiveConfig, parse_instant, parse_utc_timing
from netem.live.mpd import live_mpd
from netem.live.presentation import LivePresentation
from netem.live.segments import Sample, chunk_groups, fit_samples
from netem.live.timeline import RefTimeline, Schedule, TrackTiming, Window, round_div
from netem.live.utc import http_date, iso_ms
from netem.package import SyntheticPresentation
from player.dash.loading import parse_manifest

AST = 1_700_000_000.0
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def small_content(n: int = 4, seg_s: float = 2.0) -> Content:
    sizes = np.array([[60_000 + 1000 * k, 150_000 + 1000 * k] for k in range(n)])
    return Content(rungs_from_bitrates([300e3, 750e3]), np.full(n, seg_s), sizes, name="small")


def live_of(audio: bool = False, **cfg) -> LivePresentation:
    cfg.setdefault("availability_start_s", AST)
    return LivePresentation(SyntheticPresentation(small_content(), audio=audio), LiveConfig(**cfg))


def mpd_xml(live: LivePresentation, now: float) -> ET.Element:
    return ET.fromstring(live_mpd(live, now, "http://origin.test:8000"))


# -- the looped timeline ---------------------------------------------------------------------
def test_ref_timeline_loops_the_vod_segments():
    ref = RefTimeline(90000, [0, 180000, 360000, 540000], [180000] * 4)
    assert ref.loop_ticks == 720000
    # j = 5 is VoD segment 1 of loop 1: 720000 + 180000
    assert ref.vod_index(5) == (1, 1)
    assert (ref.start(5), ref.end(5)) == (900000, 1080000)
    assert ref.index_at(900000) == 5 and ref.index_at(899999) == 4 and ref.index_at(0) == 0
    assert ref.first_starting_at_or_after(900001) == 6


def test_ref_timeline_with_uneven_segments():
    # VoD segments of 1 s, 3 s, 2 s (timescale 1000): loop 6000
    ref = RefTimeline(1000, [500, 1500, 4500], [1000, 3000, 2000])  # a VoD starting at 0.5 s
    assert ref.rel_starts == [0, 1000, 4000] and ref.loop_ticks == 6000
    assert ref.start(4) == 7000 and ref.end(4) == 10000  # loop 1, segment 1
    assert ref.index_at(9999) == 4 and ref.index_at(10000) == 5
    assert ref.nominal_ticks in (1000, 2000, 3000) and not ref.uniform


@given(st.lists(st.integers(1, 50_000), min_size=1, max_size=12), st.integers(0, 10 ** 12))
def test_index_at_inverts_start(durations, t):
    starts = np.concatenate(([0], np.cumsum(durations)[:-1]))
    ref = RefTimeline(90000, starts, durations)
    j = ref.index_at(t)
    assert ref.start(j) <= t < ref.end(j)
    assert ref.index_at(ref.start(j)) == j
    assert ref.end(j) == ref.start(j + 1)


def test_following_track_rounds_to_its_frames_without_drift():
    ref = RefTimeline(90000, [0, 180000, 360000, 540000], [180000] * 4)
    audio = TrackTiming(ref, 48000, 1024)
    # boundaries at 2 s multiples: 2 s = 93.75 frames -> 94; 4 s = 187.5 -> 188 (halves to even);
    # 10 s = 468.75 -> 469; 12 s = 562.5 -> 562 (even)
    assert [audio.start(j) // 1024 for j in (1, 2, 5, 6)] == [94, 188, 469, 562]
    assert audio.end(5) - audio.start(5) == 93 * 1024
    # loop L ends exactly at L x 8 s x 48000 = L x 375 frames: no drift over many loops
    assert audio.start(4 * 1000) == 1000 * 375 * 1024
    assert audio.index_of_start(469 * 1024) == 5 and audio.index_of_start(469 * 1024 + 1) is None
    assert audio.nominal_duration() == 96000


def test_round_div_halves_to_even():
    assert [round_div(n, 2) for n in (1, 3, 5, -1)] == [0, 2, 2, 0]
    assert round_div(7, 3) == 2 and round_div(8, 3) == 3


# -- availability --------------------------------------------------------------------------------
def test_window_and_status_by_a_fixed_clock():
    ref = RefTimeline(90000, [0, 180000, 360000, 540000], [180000] * 4)
    sch = Schedule(ref, AST, tsbd_s=6.0)
    # at AST + 7: segments ending by 7 s are j = 0, 1, 2 (ends 2, 4, 6 s); none ended by 7 - 6 = 1 s
    assert sch.window(AST + 7.0) == Window(0, 2)
    # at AST + 10: ended by 10 s: j <= 4; ended by 4 s (gone): j = 0, 1
    assert sch.window(AST + 10.0) == Window(2, 4)
    assert [sch.status(j, AST + 10.0) for j in (1, 2, 4, 5)] == ["gone", "ok", "ok", "early"]
    # j = 5 ends at 12 s: available from exactly AST + 12, gone from AST + 12 + 6
    assert sch.availability_start(5) == AST + 12.0 and sch.availability_end(5) == AST + 18.0
    assert sch.status(5, AST + 11.999) == "early" and sch.status(5, AST + 12.0) == "ok"
    assert sch.status(5, AST + 17.999) == "ok" and sch.status(5, AST + 18.0) == "gone"
    # before AST: nothing
    assert sch.window(AST - 5).empty and len(sch.window(AST - 5)) == 0


def test_low_latency_makes_a_segment_available_one_chunk_after_its_start():
    ref = RefTimeline(90000, [0, 180000, 360000, 540000], [180000] * 4)
    sch = Schedule(ref, AST, tsbd_s=6.0, ato_s=1.5)  # 2 s segments, 0.5 s chunks
    # j = 5 spans 10-12 s: available at 12 - 1.5 = 10.5 s
    assert sch.availability_start(5) == AST + 10.5
    assert sch.status(5, AST + 10.49) == "early" and sch.status(5, AST + 10.5) == "ok"


def test_periods_start_at_segment_boundaries():
    ref = RefTimeline(90000, [0, 180000, 360000, 540000], [180000] * 4)
    sch = Schedule(ref, AST, 60.0, period_s=4.0)
    assert [sch.period_of(j) for j in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [sch.period_first(p) for p in range(4)] == [0, 2, 4, 6]
    assert sch.period_start_ticks(2) == 720000
    # uneven: segments 1, 3, 2 s; Periods of 2.5 s start at the first segment at or after p x 2.5 s
    uneven = Schedule(RefTimeline(1000, [0, 1000, 4000], [1000, 3000, 2000]), AST, 60.0, period_s=2.5)
    # starts: 0, 1, 4, 6, 7, 10 s. Period 1 (2.5 s) -> j = 2 (4 s); Period 2 (5 s) -> j = 3 (6 s)
    assert [uneven.period_first(p) for p in (1, 2, 3)] == [2, 3, 5]
    assert uneven.period_of(4) == 2  # starts at 7 s: floor(7 / 2.5) = 2


# -- the MPD ------------------------------------------------------------------------------------
def test_mpd_dynamic_attributes_and_utc_timing():
    live = live_of(time_shift_depth_s=30.0)
    mpd = mpd_xml(live, AST + 10.25)
    assert mpd.get("type") == "dynamic"
    assert mpd.get("availabilityStartTime") == "2023-11-14T22:13:20Z"
    assert mpd.get("publishTime") == "2023-11-14T22:13:20.000Z"  # $Number$, one Period: unchanged since AST
    assert mpd.get("minimumUpdatePeriod") == "PT2S"
    assert mpd.get("timeShiftBufferDepth") == "PT30S"
    assert mpd.get("maxSegmentDuration") == "PT2S"
    assert mpd.get("minBufferTime") == "PT4S"
    assert "mediaPresentationDuration" not in mpd.attrib
    tpl = mpd.find("d:Period/d:AdaptationSet/d:SegmentTemplate", NS)
    assert tpl.get("media") == "$RepresentationID$/$Number$.m4s"
    assert (tpl.get("startNumber"), tpl.get("duration"), tpl.get("timescale")) == ("1", "180000", "90000")
    assert tpl.get("availabilityTimeOffset") is None
    utc = [(u.get("schemeIdUri").split(":")[-2], u.get("value")) for u in mpd.findall("d:UTCTiming", NS)]
    assert utc == [("http-iso", "http://origin.test:8000/utc/iso"),
                   ("http-xsdate", "http://origin.test:8000/utc/xsdate"),
                   ("http-head", "http://origin.test:8000/utc/head"),
                   ("direct", "2023-11-14T22:13:30.250Z")]
    assert mpd.find("d:ServiceDescription", NS) is None
    # UTCTiming comes after the Periods (the schema's order)
    tags = [c.tag.split("}")[1] for c in mpd]
    assert tags.index("UTCTiming") > tags.index("Period")


def test_utc_timing_order_is_configurable():
    live = live_of(utc_timing=parse_utc_timing("direct, http-head"))
    mpd = mpd_xml(live, AST + 3)
    assert [u.get("schemeIdUri") for u in mpd.findall("d:UTCTiming", NS)] == [
        "urn:mpeg:dash:utc:direct:2014", "urn:mpeg:dash:utc:http-head:2014"]
    with pytest.raises(InputError, match="--utc-timing"):
        LiveConfig(utc_timing=("ntp",)).check()


def test_timeline_grows_between_two_refreshes_and_slides():
    live = live_of(addressing="timeline", time_shift_depth_s=60.0)
    s1 = mpd_xml(live, AST + 10.0).findall(".//d:AdaptationSet[@contentType='video']//d:S", NS)
    s2 = mpd_xml(live, AST + 13.0).findall(".//d:AdaptationSet[@contentType='video']//d:S", NS)
    # at 10 s: j = 0..4 listed (t = 0, r = 4); at 13 s: j = 0..5 (r = 5)
    assert [(s.get("t"), s.get("d"), s.get("r")) for s in s1] == [("0", "180000", "4")]
    assert [(s.get("t"), s.get("d"), s.get("r")) for s in s2] == [("0", "180000", "5")]
    # a 6 s buffer at 13 s: gone are segments ending by 7 s (j = 0..2); listed j = 3..5 from t = 6 s
    short = live_of(addressing="timeline", time_shift_depth_s=6.0)
    mpd = mpd_xml(short, AST + 13.0)
    s3 = mpd.findall(".//d:AdaptationSet[@contentType='video']//d:S", NS)
    assert [(s.get("t"), s.get("r")) for s in s3] == [("540000", "2")]
    # publishTime: the newest segment's availability (12 s) or the last removal (j = 2 left at 6 + 6 = 12 s)
    assert mpd.get("publishTime") == "2023-11-14T22:13:32.000Z"


def test_timeline_audio_lists_its_own_frame_rounded_durations():
    live = live_of(audio=True, addressing="timeline")
    mpd = mpd_xml(live, AST + 12.0)  # j = 0..5 listed
    s = mpd.findall(".//d:AdaptationSet[@contentType='audio']//d:S", NS)
    # audio ends in frames: 94, 188, 281, 375, 469, 562 -> durations 94, 94, 93, 94, 94, 93 frames
    got = []
    for e in s:
        got += [int(e.get("d")) // 1024] * (int(e.get("r") or 0) + 1)
    assert got == [94, 94, 93, 94, 94, 93]
    assert s[0].get("t") == "0"


def test_low_latency_mpd_signals_offset_and_service_description():
    live = live_of(chunk_s=0.5, target_latency_s=3.0)
    mpd = mpd_xml(live, AST + 10.5)
    tpl = mpd.find(".//d:SegmentTemplate", NS)
    assert tpl.get("availabilityTimeOffset") == "1.5"  # 2 s segment - 0.5 s chunk
    assert tpl.get("availabilityTimeComplete") == "false"
    lat = mpd.find("d:ServiceDescription/d:Latency", NS)
    assert (lat.get("target"), lat.get("min"), lat.get("max")) == ("3000", "2250", "6000")
    rate = mpd.find("d:ServiceDescription/d:PlaybackRate", NS)
    assert (rate.get("min"), rate.get("max")) == ("0.96", "1.04")
    assert mpd.get("minBufferTime") == "PT1S"


def test_multi_period_mpd_number_addressing():
    live = live_of(period_s=4.0, time_shift_depth_s=60.0)
    mpd = mpd_xml(live, AST + 10.0)  # j = 0..4: starts 0, 2, 4, 6, 8 s -> Periods 0, 0, 1, 1, 2
    periods = mpd.findall("d:Period", NS)
    assert [(p.get("id"), p.get("start")) for p in periods] == [("p0", "PT0S"), ("p1", "PT4S"), ("p2", "PT8S")]
    tpls = [p.find("d:AdaptationSet/d:SegmentTemplate", NS) for p in periods]
    assert [(t.get("startNumber"), t.get("presentationTimeOffset")) for t in tpls] == [
        ("1", "0"), ("3", "360000"), ("5", "720000")]
    # the newest Period's first segment (j = 4, 8-10 s) became available at 10 s
    assert mpd.get("publishTime") == "2023-11-14T22:13:30.000Z"


def test_multi_period_mpd_timeline_splits_the_window():
    live = live_of(addressing="timeline", period_s=4.0, time_shift_depth_s=5.0)
    mpd = mpd_xml(live, AST + 10.0)  # window: ended by 5 s gone (j = 0, 1) -> j = 2..4
    periods = mpd.findall("d:Period", NS)
    assert [p.get("id") for p in periods] == ["p1", "p2"]
    s = [[(e.get("t"), e.get("r")) for e in p.findall(".//d:AdaptationSet[@contentType='video']//d:S", NS)]
         for p in periods]
    assert s == [[("360000", "1")], [("720000", None)]]


def test_timeline_mpd_before_anything_is_available_is_none():
    live = live_of(addressing="timeline")
    assert live_mpd(live, AST + 1.0, "http://x") is None  # the first segment ends at 2 s
    assert live_mpd(live_of(), AST + 1.0, "http://x") is not None  # $Number$ can describe the future


def test_our_manifest_parser_reads_the_live_mpd():
    for cfg in (dict(), dict(addressing="timeline", chunk_s=0.5, period_s=4.0)):
        text = live_mpd(live_of(audio=True, **cfg), AST + 20.3, "http://127.0.0.1:9")
        pres = parse_manifest(text, "http://127.0.0.1:9/manifest.mpd")
        assert pres.type == "dynamic"
        kinds = {a.content_type for a in pres.periods[0].adaptation_sets}
        assert kinds == {"video", "audio"}


# -- content checks ----------------------------------------------------------------------------
def test_number_addressing_drops_a_short_last_segment_and_refuses_uneven_ones():
    c = Content(rungs_from_bitrates([300e3]), np.array([2.0, 2.0, 2.0, 1.0]), np.full((4, 1), 50_000))
    live = LivePresentation(SyntheticPresentation(c), LiveConfig(availability_start_s=AST))
    assert live.n_vod == 3 and live.ref.loop_ticks == 540000
    uneven = Content(rungs_from_bitrates([300e3]), np.array([2.0, 3.0, 2.0]), np.full((3, 1), 50_000))
    with pytest.raises(UsageError, match="timeline"):
        LivePresentation(SyntheticPresentation(uneven), LiveConfig())
    assert LivePresentation(SyntheticPresentation(uneven), LiveConfig(addressing="timeline")).n_vod == 3


@pytest.mark.parametrize("cfg, msg", [
    (dict(chunk_s=2.0), "chunk-duration"),
    (dict(period_s=3.0), "whole number of segments"),
    (dict(period_s=1.0), "shorter than a segment"),
    (dict(time_shift_depth_s=1.0), "time-shift-depth"),
    (dict(period_s=2.0, time_shift_depth_s=3600.0), "Periods"),
    (dict(addressing="list"), "addressing"),
    (dict(too_early_status=400), "too-early-status"),
])
def test_bad_live_settings_name_the_option(cfg, msg):
    with pytest.raises(InputError, match=msg):
        live_of(**cfg)


def test_parse_instant():
    assert parse_instant("1700000000") == AST
    assert parse_instant("2023-11-14T22:13:20Z") == AST
    assert parse_instant("2023-11-14") == AST - (22 * 3600 + 13 * 60 + 20)
    for bad in ("yesterday", "2023-13-01", "2023-11-14T22:13:20+02:00"):
        with pytest.raises(InputError):
            parse_instant(bad)


def test_time_formats():
    assert iso_ms(AST + 0.25) == "2023-11-14T22:13:20.250Z"
    assert iso_ms(AST + 0.9996) == "2023-11-14T22:13:21.000Z"
    assert http_date(AST + 0.9) == "Tue, 14 Nov 2023 22:13:20 GMT"


# -- segment rewriting ----------------------------------------------------------------------------
def _traf(data: bytes):
    boxes = isobmff.parse(data)
    moofs = [b for b in boxes if b.type == "moof"]
    out = []
    for m in moofs:
        tfhd = isobmff.parse_tfhd(m.find("traf/tfhd"))
        run = isobmff.parse_trun(m.find("traf/trun"), tfhd)
        out.append((isobmff.parse_mfhd(m.find("mfhd")), isobmff.parse_tfdt(m.find("traf/tfdt")), run))
    return boxes, out


def test_live_segment_is_the_vod_segment_with_new_tfdt_and_sequence():
    pres = SyntheticPresentation(small_content())
    live = LivePresentation(pres, LiveConfig(availability_start_s=AST))
    lt = live.track("v1")
    seg = live.segment(lt.index, 9)  # loop 2, VoD segment 1: $Number$ 10, starts at 18 s
    data = seg.read(0, seg.size)
    vod = pres.read("v1/2.m4s")
    assert len(data) == len(vod) == 151_000  # the described size (150000 + 1000 x 1)
    boxes, frags = _traf(data)
    assert [b.type for b in boxes] == ["styp", "moof", "mdat"]
    assert [(seq, tfdt) for seq, tfdt, _ in frags] == [(10, 18 * 90000)]
    vboxes, vfrags = _traf(vod)
    assert vfrags[0][2] == frags[0][2]  # same samples
    assert bytes(boxes[2].data) == bytes(vboxes[2].data)  # same payload
    assert seg.read(100, 200) == data[100:200]  # ranges read alike


def test_audio_segment_loses_a_frame_where_the_live_boundaries_say():
    pres = SyntheticPresentation(small_content(), audio=True)
    live = LivePresentation(pres, LiveConfig(availability_start_s=AST))
    lt = live.track("a0")
    # j = 1 (loop 0) is the VoD segment exactly; j = 5 (loop 1, same VoD segment) has 93 frames, not 94
    first = live.segment(lt.index, 1).read(0, 10 ** 9)
    vod = pres.read("a0/2.m4s")
    _, [(seq1, tfdt1, run1)] = _traf(first)
    assert len(first) == len(vod) and (seq1, tfdt1, run1["sample_count"]) == (2, 94 * 1024, 94)
    assert first[-1000:] == vod[-1000:]
    data = live.segment(lt.index, 5).read(0, 10 ** 9)
    _, [(seq, tfdt, run)] = _traf(data)
    assert (seq, tfdt) == (6, 469 * 1024)
    assert run["sample_count"] == 93 and set(run["durations"]) == {1024}


def test_low_latency_segment_is_cmaf_chunks():
    pres = SyntheticPresentation(small_content())
    live = LivePresentation(pres, LiveConfig(availability_start_s=AST, chunk_s=0.5))
    lt = live.track("v0")
    seg = live.segment(lt.index, 5)  # 10-12 s, 60 frames of 3000 ticks -> 4 chunks of 15 frames
    data = seg.read(0, seg.size)
    boxes, frags = _traf(data)
    assert [b.type for b in boxes] == ["styp"] + ["moof", "mdat"] * 4
    assert [tfdt for _, tfdt, _ in frags] == [900000, 945000, 990000, 1035000]
    assert {seq for seq, _, _ in frags} == {6}
    assert [r["sample_count"] for _, _, r in frags] == [15, 15, 15, 15]
    assert seg.chunk_end_ticks == [945000, 990000, 1035000, 1080000]
    assert seg.chunk_ends == [b.end for b in boxes if b.type == "mdat"]
    assert live.chunk_release_s(lt, seg) == [AST + 10.5, AST + 11.0, AST + 11.5, AST + 12.0]
    # the samples' bytes are the VoD segment's, in order
    _, [(_, _, vrun)] = _traf(pres.read("v0/2.m4s"))
    assert [s for _, _, r in frags for s in r["sizes"]] == vrun["sizes"]
    payload = b"".join(bytes(b.data) for b in boxes if b.type == "mdat")
    assert payload == bytes(isobmff.find(isobmff.parse(pres.read("v0/2.m4s")), "mdat").data)


def test_protected_chunks_keep_ivs_and_decrypt():
    pytest.importorskip("cryptography")
    prot = Protection.default()
    pres = SyntheticPresentation(small_content(), protection=prot)
    live = LivePresentation(pres, LiveConfig(availability_start_s=AST, chunk_s=0.5))
    seg = live.segment(live.track("v0").index, 1)  # loop 0, VoD segment 1
    clear = prot.decrypt_segment(seg.read(0, seg.size))
    clear_mdat = b"".join(bytes(b.data) for b in isobmff.parse(clear) if b.type == "mdat")
    vod_clear = pres.read_clear("v0/2.m4s")
    assert clear_mdat == bytes(isobmff.find(isobmff.parse(vod_clear), "mdat").data)


def test_fit_samples_and_chunk_groups_by_hand():
    s = [Sample(offset=10 * i, size=10, duration=d, flags=0) for i, d in enumerate([3, 3, 3, 3])]
    assert [x.duration for x in fit_samples(s, 12)] == [3, 3, 3, 3]
    assert [x.duration for x in fit_samples(s, 10)] == [3, 3, 3, 1]  # the last kept sample shortened
    longer = fit_samples(s, 18)  # two more: copies of the last one
    assert [x.offset for x in longer] == [0, 10, 20, 30, 30, 30]
    # chunks of 5 ticks: close at the first sample end >= 5, >= 10, ...: ends 6, 12 -> [2, 2]
    assert [len(g) for g in chunk_groups(s, 5)] == [2, 2]
    assert [len(g) for g in chunk_groups(s, 4)] == [2, 1, 1]  # ends 6 (>=4), 9 (>=8), 12 (>=12)
    assert [len(g) for g in chunk_groups(s, None)] == [4]
