"""Manifest fuzzing: mutated documents never crash the parser — a model or a clear error.

Seeds are the ../shared/mpd corpus (skipped when absent), MPDs abrlab itself writes in
every addressing mode, and hand-written live (type="dynamic") MPDs with the live timing,
UTCTiming, ServiceDescription and low-latency attributes, so live parsing is fuzzed even
without the corpus. Mutations work on the text (byte flips, cuts, duplications) and on
the XML's attribute values (numbers made huge, negative, zero, non-numeric), which is where
parsers of segment indexes usually fall over.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from netem.content import synthetic
from netem.package import SyntheticPresentation
from player.cli.commands.mpd import render_tree
from player.dash.availability import available_segment_numbers
from player.dash.errors import ManifestError
from player.dash.loading import parse_manifest

SHARED_MPD = Path(__file__).resolve().parent.parent.parent / "shared" / "mpd"
ATTR = re.compile(rb'(\w+(?::\w+)?)="([^"]*)"')
NASTY_VALUES = [b"", b"0", b"-1", b"1000000000", b"18446744073709551617", b"1e308", b"NaN", b"-0", b"PT", b"P1Y",
                b"PT-5S", b"abc", b"$Number%0999d$", b"../../etc/passwd", b"file:///etc/passwd", b"%s%s%s",
                b"\xff\xfe", b"&amp;", b"PT0.0000001S", b"99999999999999999999999999"]


def _own_mpds() -> list[bytes]:
    c = synthetic(duration_s=24, segment_duration_s=4, seed=0)
    return [SyntheticPresentation(c, addressing=a).mpd() for a in ("number", "timeline", "list", "base")]


_LIVE_HEAD = (b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" '
              b'availabilityStartTime="2024-01-01T00:00:00Z" publishTime="2024-01-01T01:00:00.5Z" '
              b'minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT30S" '
              b'suggestedPresentationDelay="PT6S" maxSegmentDuration="PT2S" minBufferTime="PT2S">'
              b'<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://t.example/iso"/>'
              b'<UTCTiming schemeIdUri="urn:mpeg:dash:utc:ntp:2014" value="pool.ntp.org"/>'
              b'<ServiceDescription id="0"><Latency target="3500" min="2000" max="6000" referenceId="0"/>'
              b'<PlaybackRate min="0.96" max="1.04"/></ServiceDescription>'
              b'<BaseURL availabilityTimeOffset="0.5">https://cdn.example/live/</BaseURL>')
LIVE_SEEDS = [
    _LIVE_HEAD + b'<Period id="p0" start="PT10S"><AdaptationSet mimeType="video/mp4">'
    b'<SegmentTemplate timescale="90000" duration="180000" startNumber="5" availabilityTimeOffset="1.5" '
    b'availabilityTimeComplete="false" initialization="$RepresentationID$/init.mp4" '
    b'media="$RepresentationID$/$Number%05d$.m4s"/>'
    b'<Representation id="v1" bandwidth="1000000" width="640" height="360"/>'
    b'<Representation id="v2" bandwidth="3000000" width="1280" height="720"><SegmentTemplate '
    b'availabilityTimeOffset="INF"/></Representation></AdaptationSet></Period></MPD>',
    _LIVE_HEAD + b'<Period id="p0" start="PT0S" duration="PT20S"><AdaptationSet mimeType="audio/mp4" '
    b'codecs="mp4a.40.2"><SegmentTemplate timescale="48000" media="a/$Time$.m4s" initialization="a/i.mp4">'
    b'<SegmentTimeline><S t="0" d="96000" r="4"/><S d="95232"/></SegmentTimeline></SegmentTemplate>'
    b'<Representation id="a" bandwidth="64000"/></AdaptationSet></Period>'
    b'<Period id="p1"><AdaptationSet mimeType="video/mp4"><SegmentTemplate timescale="1" duration="2" '
    b'endNumber="100" presentationTimeOffset="7" media="v/$Time$.m4s"/>'
    b'<Representation id="v" bandwidth="500000"/></AdaptationSet></Period></MPD>',
]


def _corpus() -> list[bytes]:
    if not SHARED_MPD.is_dir():
        return []
    return [p.read_bytes() for p in sorted(SHARED_MPD.rglob("*")) if p.suffix in (".mpd", ".xml")]


SEEDS = _own_mpds() + LIVE_SEEDS + _corpus()


def _parse_or_clear_error(doc: bytes) -> None:
    try:
        pres = parse_manifest(doc, url="http://127.0.0.1/x/manifest.mpd")
        # Use the model as `mpd info` and a live player would: JSON, the tree, and the
        # segments available an hour after the availability start time.
        json.dumps(pres.to_dict(), allow_nan=False)
        render_tree(pres)
        ast = pres.availability_start_time_s
        for _, _, rep in pres.representations():
            t = rep.live_template
            if t is not None and ast is not None:
                window = available_segment_numbers(t, ast + 3600.0, availability_start_time_s=ast,
                                                   time_shift_buffer_depth_s=pres.time_shift_buffer_depth_s)
                if window is not None:
                    first, last = window
                    assert last is None or first <= last
                    t.segment(first)
    except ManifestError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.split(":", 1)[0] in ("unsupported", "invalid", "unavailable"), msg


@st.composite
def mutated(draw):
    doc = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["attr", "attr", "flip", "cut", "dup"]))
        if kind == "attr":
            spans = [m.span(2) for m in ATTR.finditer(bytes(doc))]
            if spans:
                a, b = draw(st.sampled_from(spans))
                doc[a:b] = draw(st.one_of(st.sampled_from(NASTY_VALUES), st.binary(max_size=12)))
        elif kind == "flip" and doc:
            i = draw(st.integers(0, len(doc) - 1))
            doc[i] = draw(st.integers(0, 255))
        elif kind == "cut" and doc:
            i = draw(st.integers(0, len(doc) - 1))
            doc[i:i + draw(st.integers(1, 200))] = b""
        elif kind == "dup" and doc:
            i = draw(st.integers(0, len(doc) - 1))
            j = min(len(doc), i + draw(st.integers(1, 400)))
            doc[j:j] = doc[i:j]
    return bytes(doc)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_manifests_give_a_model_or_a_clear_error(doc):
    _parse_or_clear_error(doc)


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_every_seed_document_gives_a_model_or_a_clear_error(index):
    _parse_or_clear_error(SEEDS[index])
