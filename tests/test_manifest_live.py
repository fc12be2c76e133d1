"""Live (type="dynamic") manifests: the live model, the availability window, `mpd info`.

Small MPDs written by hand; every expected number is worked out in the comment beside it
(epoch seconds from `date -u -d ... +%s`).
"""
from __future__ import annotations

import json
import math

import pytest

from player.cli.main import main
from player.dash.availability import available_segment_numbers
from player.dash.errors import UnsupportedManifest
from player.dash.live import build_live
from player.dash.loading import parse_manifest
from player.dash.playback import select
from player.dash.segments import LiveSegmentTemplate, parse_media_template

NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"'
REMOTE = "https://cdn.example/live/manifest.mpd"
AST = "2024-01-01T00:00:00Z"
AST_S = 1704067200.0                    # date -u -d 2024-01-01T00:00:00Z +%s

LIVE_ATTRS = (f'type="dynamic" availabilityStartTime="{AST}" publishTime="2024-01-01T01:00:00.5Z" '
              'minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT1M30S" '
              'suggestedPresentationDelay="PT6S" maxSegmentDuration="PT2.5S" minBufferTime="PT4S"')
TEMPLATE = ('<SegmentTemplate timescale="90000" duration="180000" startNumber="5" '
            'initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number%05d$.m4s"/>')


def live_mpd(body: str, attrs: str = LIVE_ATTRS, head: str = "") -> str:
    return f'<?xml version="1.0"?><MPD {NS} {attrs}>{head}{body}</MPD>'


def video(inner: str = TEMPLATE, reps: str = '<Representation id="v1" bandwidth="1000000"/>',
          as_attrs: str = 'mimeType="video/mp4"') -> str:
    return f'<AdaptationSet {as_attrs}>{inner}{reps}</AdaptationSet>'


def one_rep(pres):
    (_, _, rep), = list(pres.representations())
    return rep


# ---------------------------------------------------------------------------------------
# the presentation's live timing


def test_live_timing_attributes():
    pres = parse_manifest(live_mpd(f'<Period id="p" start="PT10S">{video()}</Period>'), REMOTE)
    assert pres.is_live and pres.type == "dynamic"
    assert pres.availability_start_time_s == AST_S
    assert pres.publish_time_s == AST_S + 3600.5            # 01:00:00.5 is 3600.5 s later
    assert pres.minimum_update_period_s == 2.0
    assert pres.time_shift_buffer_depth_s == 90.0           # PT1M30S
    assert pres.suggested_presentation_delay_s == 6.0
    assert pres.max_segment_duration_s == 2.5
    assert pres.min_buffer_time_s == 4.0
    assert pres.periods[0].start_s == 10.0 and pres.periods[0].duration_s is None
    assert pres.duration_s is None and pres.notes == ()


@pytest.mark.parametrize("text, epoch_s", [
    ("2024-03-10T12:30:45Z", 1710073845.0),                 # date -u -d 2024-03-10T12:30:45Z +%s
    ("2024-03-10T12:30:45.25+02:30", 1710064845.25),        # = 10:00:45.25 UTC
    ("2024-03-10T12:30:45", 1710073845.0),                  # no zone: UTC, as dash.js reads it
    ("1970-01-01T00:00:12Z", 12.0),
])
def test_availability_start_time_forms(text, epoch_s):
    pres = parse_manifest(live_mpd(f'<Period start="PT0S">{video()}</Period>',
                                   attrs=f'type="dynamic" availabilityStartTime="{text}"'), REMOTE)
    assert pres.availability_start_time_s == epoch_s


@pytest.mark.parametrize("attr", ['availabilityStartTime="2024-02-30T00:00:00Z"',
                                  'availabilityStartTime="place_holder"',
                                  'timeShiftBufferDepth="216"'])
def test_malformed_live_timing_is_dropped_with_a_note(attr):
    # A packager's placeholder or a bare number: the model stays usable, the note says why.
    pres = parse_manifest(live_mpd(f'<Period start="PT0S">{video()}</Period>',
                                   attrs=f'type="dynamic" {attr}'), REMOTE)
    name = attr.split("=")[0]
    assert any(n.startswith(f"MPD@{name}=") and n.endswith(": ignored") for n in pres.notes)
    assert pres.time_shift_buffer_depth_s is None


def test_static_manifest_ignores_live_timing():
    # A static MPD's model is what it always was: no live fields, no notes about them.
    tpl = TEMPLATE.replace('startNumber="5" ', "")
    body = f'<Period>{video(tpl)}</Period>'
    pres = parse_manifest(live_mpd(body, attrs='type="static" mediaPresentationDuration="PT4S" '
                                               'timeShiftBufferDepth="garbage" '
                                               f'availabilityStartTime="{AST}"'), REMOTE)
    assert not pres.is_live and pres.notes == ()
    assert pres.availability_start_time_s is None and pres.time_shift_buffer_depth_s is None
    assert "live" not in pres.to_dict() and one_rep(pres).segment_count == 2   # 4 s / 2 s


def test_utc_timing_sources_in_document_order():
    head = ''.join(f'<UTCTiming schemeIdUri="urn:mpeg:dash:utc:{m}:2014" value="{v}"/>' for m, v in (
        ("http-xsdate", "https://time.example/xsdate"), ("ntp", "pool.ntp.org"),
        ("http-head", "https://time.example/"), ("direct", "2024-01-01T00:00:01Z"),
        ("sntp", "time.example"), ("http-iso", "https://time.example/iso")))
    head += '<UTCTiming schemeIdUri="urn:example:clock" value="x"/>'
    pres = parse_manifest(live_mpd(f'<Period start="PT0S">{video()}</Period>', head=head), REMOTE)
    assert [(u.method, u.supported) for u in pres.utc_timings] == [
        ("http-xsdate", True), ("ntp", False), ("http-head", True), ("direct", True),
        ("sntp", False), ("http-iso", True), (None, False)]
    assert pres.utc_timings[0].value == "https://time.example/xsdate"
    assert pres.utc_timings[-1].scheme_id_uri == "urn:example:clock"


def test_service_description_in_seconds():
    head = ('<ServiceDescription id="7"><Scope schemeIdUri="urn:dvb:dash:lowlatency:scope:2019"/>'
            '<Latency target="3500" min="2000" max="6000" referenceId="0"/>'
            '<PlaybackRate min="0.96" max="1.04"/></ServiceDescription>'
            '<ServiceDescription><Latency target="soon"/></ServiceDescription>')
    pres = parse_manifest(live_mpd(f'<Period start="PT0S">{video()}</Period>', head=head), REMOTE)
    sd, bad = pres.service_descriptions
    assert sd.id == "7" and sd.scopes == ("urn:dvb:dash:lowlatency:scope:2019",)
    assert (sd.latency_target_s, sd.latency_min_s, sd.latency_max_s) == (3.5, 2.0, 6.0)   # ms / 1000
    assert sd.latency_reference_id == 0
    assert (sd.playback_rate_min, sd.playback_rate_max) == (0.96, 1.04)
    assert bad.latency_target_s is None and any("Latency@target='soon'" in n for n in pres.notes)


# ---------------------------------------------------------------------------------------
# low-latency attributes, inherited


def test_availability_time_offset_and_complete_are_inherited_and_added_to_the_base_url():
    # Period: BaseURL ATO 0.5. AdaptationSet: SegmentTemplate ATO 1.5, ATC false.
    # v1 inherits the template: 1.5 + 0.5 = 2.0, complete false.
    # v2 overrides ATO with INF (INF + 0.5 = INF) and ATC with true.
    # v3 has its own BaseURL (ATO 0.25, ATC false) and a template saying ATO 1: 1.25.
    # Audio set: no segment-level values; its BaseURL's (0.5, inherited from the Period) apply.
    tpl = TEMPLATE.replace("/>", ' availabilityTimeOffset="1.5" availabilityTimeComplete="false"/>')
    reps = ('<Representation id="v1" bandwidth="1000000"/>'
            '<Representation id="v2" bandwidth="2000000"><SegmentTemplate availabilityTimeOffset="INF" '
            'availabilityTimeComplete="true"/></Representation>'
            '<Representation id="v3" bandwidth="3000000"><BaseURL availabilityTimeOffset="0.25" '
            'availabilityTimeComplete="false">v3/</BaseURL><SegmentTemplate availabilityTimeOffset="1"/>'
            '</Representation>')
    audio = video(TEMPLATE, '<Representation id="a" bandwidth="64000"/>', 'mimeType="audio/mp4"')
    body = (f'<Period start="PT0S"><BaseURL availabilityTimeOffset="0.5">https://cdn.example/p/</BaseURL>'
            f'{video(tpl, reps)}{audio}</Period>')
    pres = parse_manifest(live_mpd(body), REMOTE)
    got = {r.id: (r.availability_time_offset_s, r.availability_time_complete)
           for _, _, r in pres.representations()}
    assert got == {"v1": (2.0, False), "v2": (math.inf, True), "v3": (1.25, False), "a": (0.5, None)}
    by_id = {r.id: r for _, _, r in pres.representations()}
    assert by_id["v1"].live_template.availability_time_offset_s == 2.0
    assert by_id["v3"].live_template.segment(5).url == "https://cdn.example/p/v3/v3/00005.m4s"
    # JSON has no infinity: "INF", as the MPD writes it.
    doc = pres.to_dict()
    reps_json = {r["id"]: r for a in doc["periods"][0]["adaptation_sets"] for r in a["representations"]}
    assert reps_json["v2"]["availability_time_offset_s"] == "INF"
    json.dumps(doc, allow_nan=False)


def test_non_numeric_availability_time_offset_is_ignored():
    tpl = TEMPLATE.replace("/>", ' availabilityTimeOffset="NaN"/>')
    pres = parse_manifest(live_mpd(f'<Period start="PT0S">{video(tpl)}</Period>'), REMOTE)
    assert one_rep(pres).availability_time_offset_s is None
    assert any("availabilityTimeOffset='NaN'" in n for n in pres.notes)


# ---------------------------------------------------------------------------------------
# the live template and its availability window


def test_live_template_is_not_expanded():
    pres = parse_manifest(live_mpd(f'<Period id="p" start="PT10S">{video()}</Period>'), REMOTE)
    rep = one_rep(pres)
    t = rep.live_template
    assert rep.segment_index is None and rep.segment_count is None and rep.addressing == "live-template"
    assert (t.start_number, t.duration, t.timescale, t.duration_s) == (5, 180000, 90000, 2.0)
    assert (t.period_start_s, t.period_end_s, t.end_number) == (10.0, None, None)
    assert t.init.url == "https://cdn.example/live/v1/init.mp4"
    # number 7 is index 2: starts 10 + 2 x 2 = 14 s on the presentation timeline.
    seg = t.segment(7)
    assert (seg.url, seg.start_s, seg.duration_s, seg.number) == (
        "https://cdn.example/live/v1/00007.m4s", 14.0, 2.0, 7)
    with pytest.raises(IndexError):
        t.segment(4)


def test_live_time_template_with_offset_and_period_end():
    # $Time$ = PTO + index x duration: 7 + 2 x 2 = 11 for number 3 (index 2). The period is
    # 5 s long, so the third segment (4-6 s) is clipped to 1 s.
    tpl = ('<SegmentTemplate timescale="1" duration="2" presentationTimeOffset="7" '
           'media="t/$Time$.m4s"/>')
    pres = parse_manifest(live_mpd(f'<Period start="PT0S" duration="PT5S">{video(tpl)}</Period>'),
                          REMOTE)
    t = one_rep(pres).live_template
    assert t.period_end_s == 5.0
    seg = t.segment(3)
    assert (seg.url.rsplit("/", 1)[1], seg.start_s, seg.duration_s) == ("11.m4s", 4.0, 1.0)


def template(duration: int = 2, timescale: int = 1, start_number: int = 1, period_start_s: float = 0.0,
             period_end_s: float | None = None, end_number: int | None = None,
             ato: float = 0.0) -> LiveSegmentTemplate:
    return LiveSegmentTemplate(base_url="https://cdn.example/", timescale=timescale, duration=duration,
                               template=parse_media_template("$Number$.m4s", "media", "", "v", 1),
                               start_number=start_number, period_start_s=period_start_s,
                               period_end_s=period_end_s, end_number=end_number,
                               availability_time_offset_s=ato)


T0 = 1000.0     # availabilityStartTime of the window cases


@pytest.mark.parametrize("tpl, now, tsbd, expected", [
    # 2 s segments from #1, period at AST. 9 s after AST: index i is complete at (i + 1) x 2,
    # so indexes 0..3 (ends 2, 4, 6, 8 <= 9) are out and index 4 (ends 10) is not: #1..#4.
    (template(), T0 + 9.0, None, (1, 4)),
    # Exactly at a boundary: index 4 ends at 10 <= 10: #5 is available.
    (template(), T0 + 10.0, None, (1, 5)),
    # Time-shift buffer 4 s: index i stays until (i + 2) x 2 + 4 > 9, i.e. i > 0.5: from #2.
    (template(), T0 + 9.0, 4.0, (2, 4)),
    # Nothing complete yet 1.9 s after AST, and before AST.
    (template(), T0 + 1.9, None, None),
    (template(), T0 - 50.0, 30.0, None),
    # availabilityTimeOffset 1.5 at 7 s: index i from (i + 1) x 2 - 1.5 <= 7, i <= 3.25: #1..#4.
    (template(ato=1.5), T0 + 7.0, None, (1, 4)),
    # 90 kHz, 180000 ticks (2 s), startNumber 0, period 10 s after AST, 15 s after AST:
    # 5 s into the period, indexes 0 and 1 are complete (2, 4 <= 5): #0..#1.
    (template(180000, 90000, start_number=0, period_start_s=10.0), T0 + 15.0, None, (0, 1)),
    # A 6 s period (3 segments) long gone from the live edge but within a 100 s buffer: #1..#3.
    (template(period_end_s=6.0), T0 + 50.0, 100.0, (1, 3)),
    # ...and once even its last segment left the 10 s buffer ((2 + 2) x 2 + 10 = 18 < 50): none.
    (template(period_end_s=6.0), T0 + 50.0, 10.0, None),
    # @endNumber 3 bounds the list as a period end would.
    (template(end_number=3), T0 + 50.0, None, (1, 3)),
    # An infinite offset: everything in the period is available; an open period has no last.
    (template(ato=math.inf, period_end_s=6.0), T0 + 0.5, None, (1, 3)),
    (template(ato=math.inf), T0 + 0.5, None, (1, None)),
    # ...but the time-shift buffer still removes old segments (the offset moves only the start):
    # index i stays while (i + 2) x 2 + 10 > 100, i > 43: from #45.
    (template(ato=math.inf), T0 + 100.0, 10.0, (45, None)),
])
def test_available_segment_numbers_by_hand(tpl, now, tsbd, expected):
    assert available_segment_numbers(tpl, now, availability_start_time_s=T0,
                                     time_shift_buffer_depth_s=tsbd) == expected


def test_available_segment_numbers_of_a_parsed_manifest():
    # AST + 10 s period start, 2 s segments from #5, ATO 0 and a 90 s buffer; at AST + 60 s the
    # period is 50 s old: last index floor(50 / 2) - 1 = 24 (#29), first floor((50 - 90) / 2) - 1 < 0: #5.
    pres = parse_manifest(live_mpd(f'<Period start="PT10S">{video()}</Period>'), REMOTE)
    t = one_rep(pres).live_template
    assert available_segment_numbers(t, AST_S + 60.0, availability_start_time_s=pres.availability_start_time_s,
                                     time_shift_buffer_depth_s=pres.time_shift_buffer_depth_s) == (5, 29)
    # An hour later: last floor(3650 / 2) - 1 = 1824 (#1829); first floor((3650 - 90) / 2) - 1 = 1779 (#1784).
    assert available_segment_numbers(t, AST_S + 3660.0, availability_start_time_s=AST_S,
                                     time_shift_buffer_depth_s=90.0) == (1784, 1829)


# ---------------------------------------------------------------------------------------
# what stays unsupported, and where


def test_live_timeline_expands_and_open_ended_repeat_is_noted():
    tl = ('<SegmentTemplate timescale="10" media="$Time$.m4s"><SegmentTimeline>'
          '<S t="100" d="20" r="2"/><S d="10"/></SegmentTimeline></SegmentTemplate>')
    pres = parse_manifest(live_mpd(f'<Period start="PT0S">{video(tl)}</Period>'), REMOTE)
    idx = one_rep(pres).segment_index
    # t = 100, 120, 140 (2 s each at timescale 10), then 160 (1 s): starts 10, 12, 14, 16 s.
    assert [(s.start_s, s.duration_s) for s in idx] == [(10.0, 2.0), (12.0, 2.0), (14.0, 2.0), (16.0, 1.0)]
    open_ended = tl.replace('<S d="10"/>', '<S d="10" r="-1"/>')
    rep = one_rep(parse_manifest(live_mpd(f'<Period start="PT0S">{video(open_ended)}</Period>'), REMOTE))
    assert rep.segment_index is None and rep.note.startswith("live: SegmentTimeline S[2]@r=-1 repeats up to the live edge")


def test_live_period_with_unknown_start():
    # Period 2 has no @start and period 1 no @duration: its start is not known yet.
    body = f'<Period id="a" start="PT0S">{video()}</Period><Period id="b">{video()}</Period>'
    pres = parse_manifest(live_mpd(body), REMOTE)
    assert [p.start_s for p in pres.periods] == [0.0, None]
    rep = pres.periods[1].adaptation_sets[0].representations[0]
    assert rep.live_template is None and "start is not known" in rep.note


def test_malformed_live_representation_is_refused_as_in_a_static_one():
    tpl = TEMPLATE.replace('timescale="90000"', 'timescale="0"')
    with pytest.raises(Exception, match=r"^invalid: SegmentTemplate@timescale=0 must be > 0"):
        parse_manifest(live_mpd(f'<Period start="PT0S">{video(tpl)}</Period>'), REMOTE)


def test_select_takes_the_live_edges_period_and_the_plan_knows_every_period():
    """A live MPD plays from its last Period (the live edge's); the plan keeps the earlier
    ones of the window, segment numbers going on from each Period's start."""
    later = video(TEMPLATE.replace('startNumber="5"', 'startNumber="15"'))
    body = f'<Period id="a" start="PT0S">{video()}</Period><Period id="b" start="PT20S">{later}</Period>'
    pres = parse_manifest(live_mpd(body), REMOTE)
    sel = select(pres)
    assert [c.period.id for c in sel.periods] == ["b"]
    plan = build_live(sel)
    track = plan.video[0]
    assert [p for p, _, _ in track.periods] == [0.0, 20.0]
    assert track.number(3) == 5 + 3 and track.number(10) == 15     # segment 10 starts Period b at 20 s
    assert plan.facts.segment_duration_s == 2.0 and plan.facts.chunk_s is None


def test_a_live_segment_timeline_is_refused_in_one_line():
    tl = ('<SegmentTemplate timescale="1" media="v/$Time$.m4s"><SegmentTimeline><S t="0" d="2" r="3"/>'
          '</SegmentTimeline></SegmentTemplate>')
    pres = parse_manifest(live_mpd(f'<Period start="PT0S">{video(tl)}</Period>'), REMOTE)
    with pytest.raises(UnsupportedManifest) as exc:
        build_live(select(pres))
    msg = str(exc.value)
    assert msg.startswith("unsupported: live representation ") and "SegmentTimeline" in msg and "\n" not in msg


# ---------------------------------------------------------------------------------------
# abrlab mpd info


def test_mpd_info_live_json_and_tree(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")          # one tree line per item, whatever the terminal
    head = ('<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://time.example/iso"/>'
            '<UTCTiming schemeIdUri="urn:mpeg:dash:utc:ntp:2014" value="pool.ntp.org"/>'
            '<ServiceDescription id="0"><Latency target="3500" min="2000" max="6000"/>'
            '<PlaybackRate min="0.96" max="1.04"/></ServiceDescription>')
    tpl = TEMPLATE.replace("/>", ' availabilityTimeOffset="1.5" availabilityTimeComplete="false"/>')
    f = tmp_path / "live.mpd"
    f.write_text(live_mpd(f'<Period id="p" start="PT10S">{video(tpl)}</Period>', head=head))
    assert main(["mpd", "info", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    live = doc["live"]
    assert doc["type"] == "dynamic"
    assert live["availability_start_time"] == "2024-01-01T00:00:00Z"
    assert live["availability_start_time_s"] == AST_S
    assert live["publish_time"] == "2024-01-01T01:00:00.5Z"
    assert (live["suggested_presentation_delay_s"], live["minimum_update_period_s"],
            live["time_shift_buffer_depth_s"]) == (6.0, 2.0, 90.0)
    assert [(u["method"], u["supported"]) for u in live["utc_timing"]] == [("http-iso", True), ("ntp", False)]
    assert live["service_descriptions"][0]["latency_target_s"] == 3.5
    rep = doc["periods"][0]["adaptation_sets"][0]["representations"][0]
    assert (rep["availability_time_offset_s"], rep["availability_time_complete"]) == (1.5, False)
    assert rep["addressing"] == "live-template" and rep["live_template"]["start_number"] == 5
    assert doc["periods"][0]["start_s"] == 10.0

    assert main(["mpd", "info", str(f)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("MPD dynamic", "availability start: 2024-01-01T00:00:00Z (1704067200.000 s since the epoch)",
                 "publish time: 2024-01-01T01:00:00.5Z", "suggested delay: 6.000 s",
                 "refresh (minimumUpdatePeriod): 2.000 s", "time-shift depth: 90.000 s",
                 "timing source: http-iso https://time.example/iso",
                 "timing source: ntp pool.ntp.org (not supported)",
                 "latency target 3.500 s", "playback rate max 1.04",
                 "live: from #5, 2.000 s each", "availabilityTimeOffset 1.500 s",
                 "availabilityTimeComplete false"):
        assert text in out, text
