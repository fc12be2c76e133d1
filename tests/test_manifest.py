"""The DASH manifest layer (player.dash.loading and below): small inline MPDs for every addressing mode and feature.

Expected numbers are computed by hand in the comments next to them.
"""
from __future__ import annotations

import json
import struct
import time

import pytest

from player.dash import xmlsafe
from player.dash.addressing import MAX_SEGMENTS, resolve_sidx
from player.dash.errors import InvalidManifest, ManifestError, ManifestUnavailable, UnsupportedManifest
from player.dash.loading import load_manifest, parse_manifest
from player.dash.model import BaseUrl
from player.dash.segments import InitSegment
from player.dash.values import parse_xs_duration

NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"'
REMOTE = "https://cdn.example/show/manifest.mpd"


def mpd(body: str, attrs: str = 'type="static" mediaPresentationDuration="PT10S"',
        extra_ns: str = "") -> str:
    return f'<?xml version="1.0"?>\n<MPD {NS} {extra_ns} {attrs} minBufferTime="PT2S">{body}</MPD>'


def one_rep(pres):
    (_, _, rep), = list(pres.representations())
    return rep


def video_set(inner: str, rep_attrs: str = 'id="v1" bandwidth="1000000"', rep_inner: str = "",
              as_attrs: str = 'mimeType="video/mp4" codecs="avc1.64001f"') -> str:
    return (f'<AdaptationSet {as_attrs}>{inner}'
            f'<Representation {rep_attrs} width="640" height="360">{rep_inner}</Representation>'
            f'</AdaptationSet>')


def segs(index):
    return [(s.url, s.byte_range, round(s.start_s, 6), round(s.duration_s, 6), s.number)
            for s in index]


# --------------------------------------------------------------------------- addressing


def test_template_number_widths_and_identifiers():
    # 10 s period, 4 s segments (4000/1000): ceil(10/4) = 3 segments; the last is clipped to 2 s.
    tpl = ('<SegmentTemplate timescale="1000" duration="4000" startNumber="5" '
           'media="$RepresentationID$/b$Bandwidth$/seg-$Number%05d$$$.m4s" '
           'initialization="$RepresentationID$/init.mp4"/>')
    pres = parse_manifest(mpd(f'<Period id="p0">{video_set(tpl)}</Period>'), REMOTE)
    rep = one_rep(pres)
    assert rep.addressing == "template" and rep.segment_count == 3
    assert rep.segment_index.init.url == "https://cdn.example/show/v1/init.mp4"
    base = "https://cdn.example/show/v1/b1000000/"
    assert segs(rep.segment_index) == [
        (base + "seg-00005$.m4s", None, 0.0, 4.0, 5),
        (base + "seg-00006$.m4s", None, 4.0, 4.0, 6),
        (base + "seg-00007$.m4s", None, 8.0, 2.0, 7),
    ]
    assert rep.segment_index[-1].number == 7 and rep.segment_index.duration_s == 10.0


def test_template_time_with_duration_and_pto():
    # timescale 90000, d = 180000 (2 s), PTO 900000 (10 s): $Time$ = 900000 + k*180000;
    # presentation times start at the period start. Period 5 s -> 3 segments (2, 2, 1 s).
    tpl = ('<SegmentTemplate timescale="90000" duration="180000" presentationTimeOffset="900000" '
           'media="t$Time$.m4s"/>')
    pres = parse_manifest(mpd(f'<Period duration="PT5S">{video_set(tpl)}</Period>',
                              attrs='type="static"'), REMOTE)
    idx = one_rep(pres).segment_index
    assert [s.url.rsplit("/", 1)[1] for s in idx] == ["t900000.m4s", "t1080000.m4s", "t1260000.m4s"]
    assert [(s.start_s, s.duration_s) for s in idx] == [(0.0, 2.0), (2.0, 2.0), (4.0, 1.0)]
    assert idx.init is None


def test_segment_timeline_t_d_r_and_r_minus_one_to_period_end():
    # timescale 1000, period 16 s:
    #   S t=0 d=2000 r=2  -> 0, 2, 4 (2 s each)
    #   S d=1000          -> 6 (1 s)          (t continues at 6000)
    #   S t=10000 d=3000 r=-1 -> until the period end 16000: ceil(6000/3000) = 2: 10, 13
    tpl = ('<SegmentTemplate timescale="1000" startNumber="1" media="s_$Number$_$Time$.m4s">'
           '<SegmentTimeline><S t="0" d="2000" r="2"/><S d="1000"/><S t="10000" d="3000" r="-1"/>'
           '</SegmentTimeline></SegmentTemplate>')
    pres = parse_manifest(mpd(f'<Period duration="PT16S">{video_set(tpl)}</Period>',
                              attrs='type="static"'), REMOTE)
    idx = one_rep(pres).segment_index
    assert idx.addressing == "timeline" and len(idx) == 6
    assert [(s.start_s, s.duration_s, s.number) for s in idx] == [
        (0.0, 2.0, 1), (2.0, 2.0, 2), (4.0, 2.0, 3), (6.0, 1.0, 4), (10.0, 3.0, 5), (13.0, 3.0, 6)]
    assert idx[4].url == "https://cdn.example/show/s_5_10000.m4s"
    assert idx[-1].url.endswith("s_6_13000.m4s")


def test_segment_timeline_r_minus_one_up_to_next_t_and_pto():
    # S t=1000 d=1000 r=-1 then S t=6000 d=2000: the first repeats to 6000 -> 5 segments
    # (1000..5000), then one of 2 s. PTO 1000 shifts presentation times by -1 s.
    tpl = ('<SegmentTemplate timescale="1000" presentationTimeOffset="1000" media="$Time$.m4s">'
           '<SegmentTimeline><S t="1000" d="1000" r="-1"/><S t="6000" d="2000"/></SegmentTimeline>'
           '</SegmentTemplate>')
    pres = parse_manifest(mpd(f'<Period>{video_set(tpl)}</Period>'), REMOTE)
    idx = one_rep(pres).segment_index
    assert [(s.start_s, s.duration_s) for s in idx] == [
        (0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 1.0), (5.0, 2.0)]
    assert idx[0].number == 1  # startNumber defaults to 1


def test_huge_repeat_is_bounded_by_the_period_and_lazy():
    # r = 1e9 one-second segments in a 10 s period: 10 segments, computed instantly.
    tpl = ('<SegmentTemplate timescale="1" media="$Number$.m4s"><SegmentTimeline>'
           '<S t="0" d="1" r="1000000000"/></SegmentTimeline></SegmentTemplate>')
    t0 = time.perf_counter()
    idx = one_rep(parse_manifest(mpd(f'<Period>{video_set(tpl)}</Period>'), REMOTE)).segment_index
    assert len(idx) == 10 and idx[-1].start_s == 9.0
    # Without a period end the hard cap refuses it, again without allocating anything.
    with pytest.raises(UnsupportedManifest, match=r"^unsupported: more than 1000000 segments"):
        parse_manifest(mpd(f'<Period>{video_set(tpl)}</Period>', attrs='type="static"'), REMOTE)
    assert time.perf_counter() - t0 < 2.0


def test_million_segments_are_lazy():
    # 1,000,000 segments of 1 s in a 1,000,000 s period: allowed (the cap), nothing expanded.
    tpl = '<SegmentTemplate timescale="1" duration="1" media="$Number$.m4s"/>'
    pres = parse_manifest(mpd(f'<Period duration="PT1000000S">{video_set(tpl)}</Period>',
                              attrs='type="static"'), REMOTE)
    idx = one_rep(pres).segment_index
    assert len(idx) == 1_000_000 and idx[999_999].url.endswith("/1000000.m4s")
    assert idx[500_000].start_s == 500_000.0


def test_segment_list_media_range_and_initialization():
    # SegmentList, timescale 10, duration 25 (2.5 s); 4 SegmentURLs in a 10 s period.
    lst = ('<SegmentList timescale="10" duration="25">'
           '<Initialization sourceURL="init.mp4" range="0-99"/>'
           '<SegmentURL media="a.mp4" mediaRange="100-1099"/>'
           '<SegmentURL media="a.mp4" mediaRange="1100-2599"/>'
           '<SegmentURL media="b.mp4"/>'
           '<SegmentURL mediaRange="5000-5999"/>'
           '</SegmentList>')
    pres = parse_manifest(mpd(f'<Period>{video_set("", rep_inner="<BaseURL>v1/all.mp4</BaseURL>" + lst)}'
                              f'</Period>'), REMOTE)
    idx = one_rep(pres).segment_index
    assert idx.addressing == "list"
    assert idx.init == InitSegment("https://cdn.example/show/v1/init.mp4", (0, 99))
    assert segs(idx) == [
        ("https://cdn.example/show/v1/a.mp4", (100, 1099), 0.0, 2.5, 1),
        ("https://cdn.example/show/v1/a.mp4", (1100, 2599), 2.5, 2.5, 2),
        ("https://cdn.example/show/v1/b.mp4", None, 5.0, 2.5, 3),
        ("https://cdn.example/show/v1/all.mp4", (5000, 5999), 7.5, 2.5, 4),  # no @media: BaseURL
    ]
    assert idx[0].size_bytes == 1000


def test_segment_list_with_timeline():
    lst = ('<SegmentList timescale="1000"><SegmentTimeline><S t="0" d="3000" r="1"/><S d="4000"/>'
           '</SegmentTimeline><SegmentURL media="1.ts"/><SegmentURL media="2.ts"/>'
           '<SegmentURL media="3.ts"/></SegmentList>')
    idx = one_rep(parse_manifest(mpd(f'<Period>{video_set(lst)}</Period>'), REMOTE)).segment_index
    assert [(s.url[-4:], s.start_s, s.duration_s) for s in idx] == [
        ("1.ts", 0.0, 3.0), ("2.ts", 3.0, 3.0), ("3.ts", 6.0, 4.0)]


def build_sidx(refs, timescale=1000, ept=0, first_offset=0, version=0):
    if version == 0:
        body = struct.pack(">BBBBIIII", 0, 0, 0, 0, 1, timescale, ept, first_offset)
    else:
        body = struct.pack(">BBBBIIQQ", 1, 0, 0, 0, 1, timescale, ept, first_offset)
    body += struct.pack(">HH", 0, len(refs))
    for size, dur in refs:
        body += struct.pack(">III", size, dur, 1 << 31)
    return struct.pack(">I4s", 8 + len(body), b"sidx") + body


def test_segment_base_index_range_is_pending_then_resolved_from_sidx():
    sb = ('<BaseURL>video.mp4</BaseURL><SegmentBase indexRange="862-931" timescale="1000" '
          'presentationTimeOffset="500"><Initialization range="0-861"/></SegmentBase>')
    pres = parse_manifest(mpd(f'<Period duration="PT9S">{video_set("", rep_inner=sb)}</Period>',
                              attrs='type="static"'), REMOTE)
    rep = one_rep(pres)
    assert rep.segment_index is None and rep.needs_sidx and rep.segment_count is None
    p = rep.pending_sidx
    assert p.url == p.media_url == "https://cdn.example/show/video.mp4"
    assert p.index_range == (862, 931)
    assert p.init == InitSegment("https://cdn.example/show/video.mp4", (0, 861))
    # A version-1 sidx: 8 (box header) + 32 (fields) + 3 * 12 (references) = 76 bytes.
    box = build_sidx([(10000, 4000), (12000, 4000), (9000, 4000)], ept=500, first_offset=0,
                     version=1)
    assert len(box) == 76
    idx = resolve_sidx(rep, box)
    # anchor = 862 + 76 = 938; sizes 10000, 12000, 9000. EPT 500 ms minus PTO 500 ms = 0 s.
    # The 9 s period clips the last segment to 1 s.
    assert idx.addressing == "sidx"
    assert segs(idx) == [
        ("https://cdn.example/show/video.mp4", (938, 10937), 0.0, 4.0, None),
        ("https://cdn.example/show/video.mp4", (10938, 22937), 4.0, 4.0, None),
        ("https://cdn.example/show/video.mp4", (22938, 31937), 8.0, 1.0, None),
    ]
    assert idx.init.byte_range == (0, 861)


def test_resolve_sidx_errors_are_manifest_errors():
    sb = '<BaseURL>v.mp4</BaseURL><SegmentBase indexRange="10-99"/>'
    rep = one_rep(parse_manifest(mpd(f'<Period>{video_set("", rep_inner=sb)}</Period>'), REMOTE))
    with pytest.raises(InvalidManifest, match=r"^invalid: sidx: no sidx box"):
        resolve_sidx(rep, b"\x00\x00\x00\x08moof")
    hier = build_sidx([(100, 1000)])
    hier = hier[:-12] + struct.pack(">III", (1 << 31) | 100, 1000, 0)
    with pytest.raises(UnsupportedManifest, match="hierarchical"):
        resolve_sidx(rep, hier)


def test_segment_base_without_index_is_one_segment():
    sb = '<BaseURL>whole.mp4</BaseURL><SegmentBase><Initialization range="0-99"/></SegmentBase>'
    rep = one_rep(parse_manifest(mpd(f'<Period>{video_set("", rep_inner=sb)}</Period>'), REMOTE))
    idx = rep.segment_index
    assert idx.addressing == "single" and len(idx) == 1
    assert (idx[0].url, idx[0].start_s, idx[0].duration_s) == ("https://cdn.example/show/whole.mp4", 0.0, 10.0)


def test_inheritance_period_adaptation_set_representation():
    # Period: timescale 1000 + duration 2000; AdaptationSet: media + init; Representation:
    # startNumber 0. Period 5 s -> ceil(5/2) = 3 segments numbered 0, 1, 2.
    period_tpl = '<SegmentTemplate timescale="1000" duration="2000"/>'
    as_tpl = '<SegmentTemplate media="$RepresentationID$-$Number$.m4s" initialization="$RepresentationID$-init.mp4"/>'
    rep_tpl = '<SegmentTemplate startNumber="0"/>'
    body = f'<Period duration="PT5S">{period_tpl}{video_set(as_tpl, rep_inner=rep_tpl)}</Period>'
    idx = one_rep(parse_manifest(mpd(body, attrs='type="static"'), REMOTE)).segment_index
    assert [s.url.rsplit("/", 1)[1] for s in idx] == ["v1-0.m4s", "v1-1.m4s", "v1-2.m4s"]
    assert idx.init.url == "https://cdn.example/show/v1-init.mp4"
    assert [s.duration_s for s in idx] == [2.0, 2.0, 1.0]


def test_segment_base_inherited_from_adaptation_set():
    body = ('<Period><AdaptationSet mimeType="audio/mp4"><SegmentBase indexRange="100-199">'
            '<Initialization range="0-99"/></SegmentBase>'
            '<Representation id="a" bandwidth="64000"><BaseURL>a.mp4</BaseURL></Representation>'
            '</AdaptationSet></Period>')
    rep = one_rep(parse_manifest(mpd(body), REMOTE))
    assert rep.pending_sidx.index_range == (100, 199)
    assert rep.pending_sidx.url == "https://cdn.example/show/a.mp4"


# --------------------------------------------------------------------------- BaseURL


def test_base_url_resolution_at_every_level():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    body = ('<BaseURL>https://edge.example/root/</BaseURL>'
            '<Period><BaseURL>p1/</BaseURL>'
            f'<AdaptationSet mimeType="video/mp4"><BaseURL>video/</BaseURL>{tpl}'
            '<Representation id="a" bandwidth="1"><BaseURL>a/</BaseURL></Representation>'
            '<Representation id="b" bandwidth="2"><BaseURL>https://other.example/b/</BaseURL>'
            '</Representation>'
            '<Representation id="c" bandwidth="3"><BaseURL>/abs/c/</BaseURL></Representation>'
            '</AdaptationSet></Period>')
    pres = parse_manifest(mpd(body), REMOTE)
    reps = {r.id: r for _, _, r in pres.representations()}
    assert reps["a"].segment_index[0].url == "https://edge.example/root/p1/video/a/1.m4s"
    assert reps["b"].segment_index[1].url == "https://other.example/b/2.m4s"
    assert reps["c"].segment_index[0].url == "https://edge.example/abs/c/1.m4s"
    assert pres.base_urls[0].url == "https://edge.example/root/"
    assert pres.periods[0].base_urls[0].url == "https://edge.example/root/p1/"


def test_relative_to_manifest_url_and_local_file(tmp_path):
    tpl = '<SegmentTemplate timescale="1" duration="5" media="seg/$Number$.m4s"/>'
    text = mpd(f'<Period>{video_set(tpl)}</Period>')
    assert one_rep(parse_manifest(text, "http://h.example/a/b/x.mpd")).segment_index[0].url == \
        "http://h.example/a/b/seg/1.m4s"
    f = tmp_path / "dir" / "x.mpd"
    f.parent.mkdir()
    f.write_text(text)
    pres = load_manifest(f)
    assert pres.source_url == f.resolve().as_uri()
    assert one_rep(pres).segment_index[0].url == (tmp_path / "dir" / "seg" / "1.m4s").resolve().as_uri()
    # Without a URL, relative stays relative.
    assert one_rep(parse_manifest(text)).segment_index[0].url == "seg/1.m4s"


def test_failover_base_urls_with_dvb_priority_weight_and_service_location():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    body = ('<BaseURL serviceLocation="B" dvb:priority="2" dvb:weight="10">https://b.example/</BaseURL>'
            '<BaseURL serviceLocation="A" dvb:priority="1" dvb:weight="30">https://a.example/</BaseURL>'
            f'<Period>{video_set(tpl, rep_inner="<BaseURL>v/</BaseURL>")}</Period>')
    pres = parse_manifest(mpd(body, extra_ns='xmlns:dvb="urn:dvb:dash:dash-extensions:2014-1"'), REMOTE)
    rep = one_rep(pres)
    assert rep.base_urls == (
        BaseUrl("https://a.example/v/", "A", 1, 30),
        BaseUrl("https://b.example/v/", "B", 2, 10),
    )
    assert rep.segment_index[0].url == "https://a.example/v/1.m4s"
    alt = rep.segment_index.with_base_url(rep.base_urls[1].url)
    assert alt[0].url == "https://b.example/v/1.m4s" and len(alt) == len(rep.segment_index)
    with pytest.raises(InvalidManifest):
        rep.segment_index.with_base_url("file:///etc/")


def test_failover_for_segment_base():
    body = ('<Period><AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="1">'
            '<BaseURL>missing.mp4</BaseURL><BaseURL>a.mp4</BaseURL>'
            '<SegmentBase indexRange="100-199"><Initialization range="0-99"/></SegmentBase>'
            '</Representation></AdaptationSet></Period>')
    rep = one_rep(parse_manifest(mpd(body), REMOTE))
    assert [b.url for b in rep.base_urls] == ["https://cdn.example/show/missing.mp4",
                                              "https://cdn.example/show/a.mp4"]
    alt = rep.pending_sidx.with_base_url(rep.base_urls[1].url)
    assert alt.url == alt.media_url == alt.init.url == "https://cdn.example/show/a.mp4"
    assert alt.index_range == (100, 199) and alt.init.byte_range == (0, 99)


def test_remote_manifest_refuses_non_http_urls():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="file:///etc/passwd?$Number$"/>'
    with pytest.raises(InvalidManifest, match=r"^invalid: URL 'file:///etc/passwd\?1' uses scheme 'file'"):
        parse_manifest(mpd(f'<Period>{video_set(tpl)}</Period>'), REMOTE)
    for base in ("file:///etc/", "ftp://x.example/", "data:text/plain,"):
        vs = video_set(tpl.replace("file:///etc/passwd?", ""))
        body = f'<BaseURL>{base}</BaseURL><Period>{vs}</Period>'
        with pytest.raises(InvalidManifest, match="a remote manifest may reference only http/https"):
            parse_manifest(mpd(body), REMOTE)
    # SegmentList and SegmentBase URLs are checked too.
    lst = '<SegmentList duration="5"><SegmentURL media="file:///x"/></SegmentList>'
    with pytest.raises(InvalidManifest, match="scheme 'file'"):
        parse_manifest(mpd(f'<Period>{video_set(lst)}</Period>'), REMOTE)
    with pytest.raises(InvalidManifest, match="scheme 'file'"):
        fb = '<BaseURL>file:///v.mp4</BaseURL><SegmentBase indexRange="1-2"/>'
        parse_manifest(mpd(f'<Period>{video_set("", rep_inner=fb)}</Period>'), REMOTE)
    # A local manifest may use file:// but not ftp:.
    ok = parse_manifest(mpd(f'<Period>{video_set(tpl)}</Period>'), "file:///tmp/x.mpd")
    assert one_rep(ok).segment_index[0].url.startswith("file:///etc/passwd")
    vs = video_set(tpl.replace("file:///etc/passwd?", ""))
    body = f'<BaseURL>ftp://x.example/</BaseURL><Period>{vs}</Period>'
    with pytest.raises(UnsupportedManifest, match="scheme 'ftp'"):
        parse_manifest(mpd(body), "file:///tmp/x.mpd")


def test_scheme_relative_base_url_in_a_local_manifest_means_https():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    body = f'<BaseURL>//cdn.example/x/</BaseURL><Period>{video_set(tpl)}</Period>'
    assert one_rep(parse_manifest(mpd(body), "file:///tmp/m.mpd")).segment_index[0].url == \
        "https://cdn.example/x/1.m4s"
    assert one_rep(parse_manifest(mpd(body), "http://h/m.mpd")).segment_index[0].url == \
        "http://cdn.example/x/1.m4s"


# --------------------------------------------------------------------------- periods, types


def test_several_periods_offset_by_period_start():
    tpl = '<SegmentTemplate timescale="1" duration="4" media="$Number$.m4s"/>'
    body = (f'<Period id="a" duration="PT6S">{video_set(tpl)}</Period>'
            f'<Period id="b">{video_set(tpl)}</Period>'
            f'<Period id="c" start="PT20S">{video_set(tpl)}</Period>')
    pres = parse_manifest(mpd(body, attrs='type="static" mediaPresentationDuration="PT25S"'), REMOTE)
    # a: 0-6 (6 s); b: starts at 6, lasts until c's start 20 (14 s); c: 20-25 (5 s).
    assert [(p.id, p.start_s, p.duration_s) for p in pres.periods] == [
        ("a", 0.0, 6.0), ("b", 6.0, 14.0), ("c", 20.0, 5.0)]
    starts = [[s.start_s for s in r.segment_index] for _, _, r in pres.representations()]
    assert starts == [[0.0, 4.0], [6.0, 10.0, 14.0, 18.0], [20.0, 24.0]]
    durs = [[s.duration_s for s in r.segment_index] for _, _, r in pres.representations()]
    assert durs == [[4.0, 2.0], [4.0, 4.0, 4.0, 2.0], [4.0, 1.0]]
    assert pres.duration_s == 25.0


def test_text_and_image_sets_are_kept_but_ignored():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    body = (f'<Period>{video_set(tpl)}'
            f'<AdaptationSet contentType="text" mimeType="application/mp4" codecs="wvtt" lang="en">{tpl}'
            '<Representation id="t" bandwidth="500"/></AdaptationSet>'
            '<AdaptationSet mimeType="image/jpeg"><SegmentTemplate media="$Number$.jpg" duration="10"/>'
            '<Representation id="img" bandwidth="1000"/></AdaptationSet>'
            '<AdaptationSet mimeType="text/vtt"><Representation id="sub" bandwidth="1">'
            '<BaseURL>sub.vtt</BaseURL></Representation></AdaptationSet>'
            '</Period>')
    p = parse_manifest(mpd(body), REMOTE).periods[0]
    kinds = [(a.content_type, a.ignored) for a in p.adaptation_sets]
    assert kinds == [("video", False), ("text", True), ("image", True), ("text", True)]
    assert "ignored" in p.adaptation_sets[1].note
    assert [a.content_type for a in p.playable()] == ["video"]
    assert p.adaptation_sets[3].representations[0].segment_index[0].url.endswith("/sub.vtt")


def test_trick_play_set_is_ignored():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    trick = video_set(tpl + '<EssentialProperty schemeIdUri="http://dashif.org/guidelines/trickmode" value="1"/>',
                      rep_attrs='id="trick" bandwidth="100000"')
    p = parse_manifest(mpd(f'<Period>{video_set(tpl)}{trick}</Period>'), REMOTE).periods[0]
    assert [a.ignored for a in p.adaptation_sets] == [False, True]
    assert "trick" in p.adaptation_sets[1].note


def test_dynamic_parses_into_a_live_template_but_is_not_played():
    tpl = '<SegmentTemplate timescale="1" duration="2" media="$Number$.m4s"/>'
    text = mpd(f'<Period start="PT0S">{video_set(tpl)}</Period>',
               attrs='type="dynamic" availabilityStartTime="2020-01-01T00:00:00Z"')
    pres = parse_manifest(text, REMOTE)
    rep = one_rep(pres)
    assert pres.is_live and rep.segment_index is None and rep.note is None
    assert rep.addressing == "live-template" and rep.live_template.start_number == 1
    with pytest.raises(UnsupportedManifest) as exc:
        pres.require_static()
    assert str(exc.value).startswith("unsupported: live playback: ")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("text, cls, match", [
    ("not xml at all", InvalidManifest, r"^invalid: not well-formed XML"),
    ("<MPD><Period>", InvalidManifest, r"^invalid: not well-formed XML"),
    (f'<Period {NS}/>', InvalidManifest, r"^invalid: the root element is <Period>, not <MPD>"),
    (f'<MPD {NS} type="list"><Period/></MPD>', UnsupportedManifest, r"^unsupported: list MPDs"),
    (f'<MPD {NS} type="sometimes"><Period/></MPD>', InvalidManifest, r"^invalid: MPD@type='sometimes'"),
    (f'<MPD {NS}/>', InvalidManifest, r"^invalid: the MPD has no Period"),
    (f'<MPD {NS} xmlns:xlink="http://www.w3.org/1999/xlink"><Period xlink:href="http://x/p.xml"/></MPD>',
     UnsupportedManifest, r"^unsupported: remote elements \(xlink:href on <Period>\)"),
    (f'<MPD {NS} mediaPresentationDuration="ten seconds"><Period/></MPD>', InvalidManifest,
     r"^invalid: MPD@mediaPresentationDuration='ten seconds' is not an xs:duration"),
])
def test_unsupported_and_invalid_documents(text, cls, match):
    with pytest.raises(cls, match=match) as exc:
        parse_manifest(text, REMOTE)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("inner, rep_attrs, match", [
    ('<SegmentTemplate duration="2" media="$Nmber$.m4s"/>', 'id="v" bandwidth="1"', r"unknown identifier \$Nmber\$"),
    ('<SegmentTemplate duration="2" media="$Number.m4s"/>', 'id="v" bandwidth="1"', "unterminated"),
    ('<SegmentTemplate duration="2" media="$Number%0999d$"/>', 'id="v" bandwidth="1"', "unreasonable"),
    ('<SegmentTemplate duration="0" media="$Number$"/>', 'id="v" bandwidth="1"', "@duration must be > 0"),
    ('<SegmentTemplate media="$Number$"/>', 'id="v" bandwidth="1"', "neither @duration nor a SegmentTimeline"),
    ('<SegmentTemplate duration="2" media="$Number$"/>', 'id="v"', "no positive @bandwidth"),
    ('<SegmentTemplate duration="2" media="$RepresentationID$/$Number$"/>', 'bandwidth="1"', r"no @id"),
    ('<SegmentTemplate duration="2.5" media="$Number$"/>', 'id="v" bandwidth="1"',
     r"SegmentTemplate@duration='2.5' is not an integer "
     r"\(at /MPD/Period\[@id='p'\]/AdaptationSet/SegmentTemplate\)"),
    ('<SegmentTemplate media="$Number$"><SegmentTimeline><S d="0"/></SegmentTimeline></SegmentTemplate>',
     'id="v" bandwidth="1"', r"S\[1\] needs @d > 0"),
    ('<SegmentTemplate media="$Number$"><SegmentTimeline><S d="1" r="-2"/></SegmentTimeline></SegmentTemplate>',
     'id="v" bandwidth="1"', r"@r=-2"),
    ('<SegmentList duration="2"><SegmentURL media="a" mediaRange="9-3"/></SegmentList>',
     'id="v" bandwidth="1"', "ends before it starts"),
])
def test_invalid_representations_name_where(inner, rep_attrs, match):
    with pytest.raises(InvalidManifest, match=match) as exc:
        parse_manifest(mpd(f'<Period id="p">{video_set(inner, rep_attrs=rep_attrs)}</Period>'), REMOTE)
    assert str(exc.value).startswith("invalid: ")


def test_representation_without_id_is_named_by_position_when_harmless():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    vs = video_set(tpl, rep_attrs='bandwidth="5"')
    rep = one_rep(parse_manifest(mpd(f'<Period>{vs}</Period>'), REMOTE))
    assert rep.id == "#1" and "no @id" in rep.note


def test_string_adaptation_set_id_is_kept():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    vs = video_set(tpl, as_attrs='id="video-main" mimeType="video/mp4"')
    pres = parse_manifest(mpd(f'<Period>{vs}</Period>'), REMOTE)
    assert pres.periods[0].adaptation_sets[0].id == "video-main"


# --------------------------------------------------------------------------- mpegdash gaps


def test_boolean_false_is_false():
    from mpegdash.parser import MPEGDASHParser

    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    vs = video_set(tpl, as_attrs='mimeType="video/mp4" segmentAlignment="false" '
                               'bitstreamSwitching="false" subsegmentAlignment="true"')
    text = mpd(f'<Period>{vs}</Period>')
    raw = MPEGDASHParser.parse(text).periods[0].adaptation_sets[0]
    assert raw.segment_alignment is True           # the mpegdash 0.4.1 gap: bool("false")
    a = parse_manifest(text, REMOTE).periods[0].adaptation_sets[0]
    assert a.segment_alignment is False and a.bitstream_switching is False
    assert a.subsegment_alignment is True


KID = "9eb4050d-e44b-4802-932e-27d75083e266"
PSSH = "AAAANHBzc2gAAAAA7e+LqXnWSs6jyCfc1R0h7QAAABQIARIQnrQFDeRLSAKTLifXUIPiZg=="


def test_content_protection_any_prefix_levels_and_license_urls():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="$Number$.m4s"/>'
    body = (
        # MPD level (DASH 5th edition)
        '<ContentProtection schemeIdUri="urn:uuid:1077EFEC-C0B2-4D02-ACE3-3C1E52E2FB4B" value="ClearKey1.0">'
        '<clearkey:Laurl Lic_type="EME-1.0">https://ck.example/license</clearkey:Laurl></ContentProtection>'
        '<Period>'
        # Period level, prefix "foo" bound to the cenc namespace (mpegdash only knows "cenc:")
        f'<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc" foo:default_KID="{KID.upper()}"/>'
        '<ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed">'
        f'<foo:pssh>\n  {PSSH}\n</foo:pssh><dashif:Laurl>https://wv.example/lic</dashif:Laurl></ContentProtection>'
        f'<AdaptationSet mimeType="video/mp4">{tpl}'
        '<ContentProtection schemeIdUri="urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95" value="MSPR 2.0">'
        '<ms:laurl licenseUrl="https://pr.example/rightsmanager.asmx"/></ContentProtection>'
        '<Representation id="v" bandwidth="1"/></AdaptationSet></Period>')
    ns = ('xmlns:foo="urn:mpeg:cenc:2013" xmlns:dashif="https://dashif.org/CPS" '
          'xmlns:clearkey="http://dashif.org/guidelines/clearKey" xmlns:ms="urn:microsoft"')
    pres = parse_manifest(mpd(body, extra_ns=ns), REMOTE)
    (ck,) = pres.protection
    assert (ck.system_id, ck.system_name, ck.license_url) == (
        "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b", "clearkey", "https://ck.example/license")
    cenc, wv, _ = pres.periods[0].protection
    assert cenc.default_kid == KID and cenc.system_id is None and cenc.system_name == "cenc"
    assert wv.pssh == PSSH and wv.license_url == "https://wv.example/lic" and wv.system_name == "widevine"
    rep = one_rep(pres)
    names = [cp.system_name for cp in rep.protection]
    assert names == ["playready", "cenc", "widevine", "clearkey"]      # own, Period, MPD
    assert rep.protection[0].license_url == "https://pr.example/rightsmanager.asmx"
    assert rep.default_kid == KID
    assert len(pres.all_protection()) == 4


def test_undeclared_prefix_is_declared_with_a_note():
    body = ('<Period><AdaptationSet mimeType="video/mp4">'
            '<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc" '
            f'cenc:default_KID="{KID}"/><ContentProtection schemeIdUri="urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95">'
            f'<cenc:pssh>{PSSH}</cenc:pssh><mspr:pro>AAAA</mspr:pro></ContentProtection>'
            '<SegmentTemplate duration="5" media="$Number$"/><Representation id="v" bandwidth="1"/>'
            '</AdaptationSet></Period>')
    pres = parse_manifest(mpd(body), REMOTE)
    assert any("cenc, mspr" in n for n in pres.notes)
    rep = one_rep(pres)
    assert rep.default_kid == KID and rep.protection[1].pssh == PSSH


def test_bad_pssh_and_kid_are_invalid():
    for cp in (f'<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" cenc:default_KID="xyz"/>',
               '<ContentProtection schemeIdUri="urn:uuid:x"/>',
               '<ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed">'
               '<cenc:pssh>***</cenc:pssh></ContentProtection>'):
        body = f'<Period><AdaptationSet mimeType="video/mp4">{cp}<Representation id="v" bandwidth="1"/></AdaptationSet></Period>'
        with pytest.raises(InvalidManifest):
            parse_manifest(mpd(body, extra_ns='xmlns:cenc="urn:mpeg:cenc:2013"'), REMOTE)


# --------------------------------------------------------------------------- hostile input


BOMB = """<?xml version="1.0"?>
<!DOCTYPE MPD [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
]>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><BaseURL>&e;</BaseURL></Period></MPD>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE MPD [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><BaseURL>&x;</BaseURL></Period></MPD>"""

XXE_PARAM = """<?xml version="1.0"?>
<!DOCTYPE MPD [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period/></MPD>"""


@pytest.mark.parametrize("text", [BOMB, XXE, XXE_PARAM])
def test_entity_bombs_and_external_entities_are_refused(text):
    t0 = time.perf_counter()
    with pytest.raises(InvalidManifest, match=r"^invalid: XML entity declaration refused") as exc:
        parse_manifest(text, REMOTE)
    assert "\n" not in str(exc.value) and time.perf_counter() - t0 < 1.0


def test_size_and_element_limits(monkeypatch):
    text = mpd('<Period>' + '<AdaptationSet/>' * 50 + '</Period>')
    monkeypatch.setattr(xmlsafe, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(UnsupportedManifest, match=r"larger than 100 bytes"):
        parse_manifest(text, REMOTE)
    with pytest.raises(UnsupportedManifest, match=r"larger than 100 bytes"):
        parse_manifest(text.encode(), REMOTE)
    monkeypatch.setattr(xmlsafe, "MAX_MANIFEST_BYTES", 1 << 20)
    monkeypatch.setattr(xmlsafe, "MAX_ELEMENTS", 20)
    with pytest.raises(UnsupportedManifest, match=r"more than 20 XML elements"):
        parse_manifest(text, REMOTE)
    monkeypatch.setattr(xmlsafe, "MAX_ELEMENTS", 1000)
    monkeypatch.setattr(xmlsafe, "MAX_ATTRIBUTES", 50)
    many = f'<MPD {NS}><Period ' + " ".join(f'a{i}="1"' for i in range(60)) + "/></MPD>"
    with pytest.raises(UnsupportedManifest, match=r"more than 50 XML attributes"):
        parse_manifest(many, REMOTE)
    deep = f'<MPD {NS}>' + "<x>" * 100 + "</x>" * 100 + "</MPD>"
    monkeypatch.setattr(xmlsafe, "MAX_ELEMENTS", 1000)
    with pytest.raises(UnsupportedManifest, match="deeper than 64"):
        parse_manifest(deep, REMOTE)


def test_encodings():
    tpl = '<SegmentTemplate timescale="1" duration="5" media="é$Number$.m4s"/>'
    text = mpd(f'<Period>{video_set(tpl)}</Period>').replace('<?xml version="1.0"?>',
                                                             '<?xml version="1.0" encoding="ISO-8859-1"?>')
    rep = one_rep(parse_manifest(text.encode("latin-1"), REMOTE))
    assert rep.segment_index[0].url.endswith("/é1.m4s")
    with pytest.raises(InvalidManifest, match="not valid utf-8"):
        parse_manifest(b'<MPD \xff\xfe\xfa/>', REMOTE)


def test_xs_duration():
    assert parse_xs_duration("PT1H2M3.5S") == 3723.5
    assert parse_xs_duration("P1DT1S") == 86401
    assert parse_xs_duration("PT0H12M14.000S") == 734.0
    assert parse_xs_duration("PT1M00s") == 60.0        # tolerated, as dash.js does
    for bad in ("P", "PT", "1S", "PT-5S", "P1S"):
        with pytest.raises(InvalidManifest):
            parse_xs_duration(bad)


# --------------------------------------------------------------------------- fetch, CLI


def test_the_dash_layer_reads_local_files_only():
    """Fetching is the player's (`player.http.manifests`, tests/test_fetcher.py): here an
    http(s) URL is refused with one line saying where to go."""
    with pytest.raises(UnsupportedManifest, match="not a local file"):
        load_manifest("http://127.0.0.1:9/x.mpd")


def test_load_manifest_missing_file(tmp_path):
    with pytest.raises(ManifestUnavailable, match="^unavailable: cannot read"):
        load_manifest(tmp_path / "nope.mpd")


def test_cli_mpd_info_tree_json_and_errors(tmp_path, capsys):
    from player.cli.main import main

    tpl = '<SegmentTemplate timescale="1" duration="4" media="$RepresentationID$/$Number$.m4s"/>'
    f = tmp_path / "ok.mpd"
    f.write_text(mpd(f'<Period id="p0">{video_set(tpl)}'
                     '<AdaptationSet mimeType="audio/mp4" lang="fr"><SegmentBase indexRange="10-20"/>'
                     '<Representation id="a1" bandwidth="64000" codecs="mp4a.40.2"><BaseURL>a.mp4</BaseURL>'
                     '</Representation></AdaptationSet></Period>'))
    assert main(["mpd", "info", str(f)]) == 0
    out = capsys.readouterr().out
    assert "Period 1 'p0'" in out and "v1" in out and "640x360" in out and "3 segments" in out
    assert "sidx to fetch" in out

    assert main(["mpd", "info", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["type"] == "static" and doc["duration_s"] == 10.0 and doc["protection"] == []
    assert "live" not in doc            # a VoD manifest's JSON has no live part
    reps = [r for a in doc["periods"][0]["adaptation_sets"] for r in a["representations"]]
    assert [(r["id"], r["bandwidth"], r["width"], r["height"], r["codecs"], r["segments"]) for r in reps] == [
        ("v1", 1000000, 640, 360, "avc1.64001f", 3), ("a1", 64000, None, None, "mp4a.40.2", None)]

    bomb = tmp_path / "bomb.mpd"
    bomb.write_text(BOMB)
    for path, first in ((bomb, "invalid: XML entity declaration refused"),
                        (tmp_path / "missing.mpd", "unavailable: cannot read")):
        assert main(["mpd", "info", str(path), "--json"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(first)


def test_errors_are_input_errors_with_one_line():
    err = InvalidManifest("bad\nthing", where="Period 'x'")
    assert str(err) == "invalid: bad thing (at Period 'x')"
    assert isinstance(err, ManifestError) and isinstance(err, ValueError)


def test_segment_cap_for_template_duration():
    # 1,000,001 one-second segments: one more than MAX_SEGMENTS.
    tpl = '<SegmentTemplate timescale="1" duration="1" media="$Number$.m4s"/>'
    with pytest.raises(UnsupportedManifest, match="more than 1000000 segments"):
        parse_manifest(mpd(f'<Period duration="PT1000001S">{video_set(tpl)}</Period>',
                           attrs='type="static"'), REMOTE)


# --------------------------------------------------------------------------- property


from hypothesis import given, strategies as st  # noqa: E402

NASTY = st.sampled_from(["", "0", "1", "-1", "-2", "7", "1000", "90000", "1.5", "abc", "1e3",
                         "99999999999999999999", "1000000000", "4294967297"])
DURS = st.sampled_from(["PT10S", "PT0S", "PT1.5S", "P1D", "PT", "10", "-PT1S", "PT1M00s", None])


@given(timescale=NASTY, duration=NASTY, start_number=NASTY, t=NASTY, d=NASTY, r=NASTY,
       use_timeline=st.booleans(), period_dur=DURS, mpd_dur=DURS,
       media=st.sampled_from(["$Number$.m4s", "$Time$", "$Number%03d$", "$Bogus$", "a$", "x",
                              "file:///x/$Number$", "//h/$Number$"]),
       remote=st.booleans())
def test_property_any_attribute_values_give_a_model_or_one_line_error(
        timescale, duration, start_number, t, d, r, use_timeline, period_dur, mpd_dur, media, remote):
    def a(name, v):
        return f' {name}="{v}"' if v is not None else ""

    timeline = f'<SegmentTimeline><S{a("t", t)}{a("d", d)}{a("r", r)}/><S{a("d", d)}/></SegmentTimeline>' \
        if use_timeline else ""
    tpl = (f'<SegmentTemplate{a("timescale", timescale)}{a("duration", duration)}'
           f'{a("startNumber", start_number)} media="{media}">{timeline}</SegmentTemplate>')
    text = mpd(f'<Period{a("duration", period_dur)}>{video_set(tpl)}</Period>',
               attrs='type="static"' + a("mediaPresentationDuration", mpd_dur))
    try:
        pres = parse_manifest(text, REMOTE if remote else "file:///tmp/m.mpd")
    except ManifestError as exc:
        assert str(exc).startswith(("invalid: ", "unsupported: ")) and "\n" not in str(exc)
        return
    idx = one_rep(pres).segment_index
    assert 0 <= len(idx) <= MAX_SEGMENTS
    if len(idx):
        first, last = idx[0], idx[-1]
        assert first.duration_s >= 0 and last.duration_s >= 0
        assert last.start_s >= first.start_s
        if remote:
            assert first.url.startswith(("http://", "https://"))


# ---------------------------------------------------------------------------------------
# values that used to fail late (a 404, or one segment played): refused at parse time

RID = 'id="v" bandwidth="1"'
WHERE = r"\(at Period 'p' > AdaptationSet #1 > Representation 'v'\)$"


@pytest.mark.parametrize("inner, match", [
    # timescale 0 was read as 1: 2 ticks became 2 s and the timing was wrong, not refused.
    ('<SegmentTemplate timescale="0" duration="2" media="$Number$.m4s"/>',
     r"^invalid: SegmentTemplate@timescale=0 must be > 0 " + WHERE),
    ('<SegmentList timescale="0" duration="2"><SegmentURL media="a.m4s"/></SegmentList>',
     r"^invalid: SegmentList@timescale=0 must be > 0 " + WHERE),
    ('<SegmentBase timescale="0" indexRange="10-99"/>',
     r"^invalid: SegmentBase@timescale=0 must be > 0 " + WHERE),
    # an S whose @t goes back before the previous segment (segments at 0 and 2 s, then 1 s).
    ('<SegmentTemplate timescale="1" media="$Time$.m4s"><SegmentTimeline>'
     '<S t="0" d="2" r="1"/><S t="1" d="2"/></SegmentTimeline></SegmentTemplate>',
     r"^invalid: SegmentTimeline S\[2\]@t=1 goes backwards: the previous segment starts at 2 "
     + WHERE),
    ('<SegmentTemplate timescale="1" media="$Time$.m4s"><SegmentTimeline>'
     '<S t="8" d="2"/><S t="0" d="2"/></SegmentTimeline></SegmentTemplate>',
     r"^invalid: SegmentTimeline S\[2\]@t=0 goes backwards: the previous segment starts at 8 "
     + WHERE),
    # a negative start number gave URLs such as -5.m4s (404s).
    ('<SegmentTemplate timescale="1" duration="2" startNumber="-5" media="$Number$.m4s"/>',
     r"^invalid: SegmentTemplate@startNumber=-5 must be >= 0 " + WHERE),
    ('<SegmentList duration="2" startNumber="-1"><SegmentURL media="a.m4s"/></SegmentList>',
     r"^invalid: SegmentList@startNumber=-1 must be >= 0 " + WHERE),
])
def test_refused_at_parse_with_the_element_path(inner, match):
    with pytest.raises(InvalidManifest, match=match):
        parse_manifest(mpd(f'<Period id="p">{video_set(inner, rep_attrs=RID)}</Period>'), REMOTE)


def test_timeline_that_touches_overlaps_a_little_or_leaves_a_gap_is_kept():
    # @t equal to the previous end (0-4, 4-6), a small overlap (5 < 6, as packagers round,
    # e.g. shaka-player's car_segmenttemplate.mpd) and a gap (then 10-12) are all kept.
    tpl = ('<SegmentTemplate timescale="1" media="$Time$.m4s"><SegmentTimeline>'
           '<S t="0" d="2" r="1"/><S t="4" d="2"/><S t="5" d="1"/><S t="10" d="2"/>'
           '</SegmentTimeline></SegmentTemplate>')
    text = mpd(f'<Period id="p">{video_set(tpl, rep_attrs=RID)}</Period>',
               attrs='type="static" mediaPresentationDuration="PT12S"')
    idx = one_rep(parse_manifest(text, REMOTE)).segment_index
    assert [(s.start_s, s.url.rsplit("/", 1)[1]) for s in idx] == [
        (0.0, "0.m4s"), (2.0, "2.m4s"), (4.0, "4.m4s"), (5.0, "5.m4s"), (10.0, "10.m4s")]


def test_start_number_zero_is_valid():
    tpl = '<SegmentTemplate timescale="1" duration="5" startNumber="0" media="$Number$.m4s"/>'
    idx = one_rep(parse_manifest(mpd(f'<Period>{video_set(tpl)}</Period>'), REMOTE)).segment_index
    assert [s.url.rsplit("/", 1)[1] for s in idx] == ["0.m4s", "1.m4s"]   # 10 s / 5 s
