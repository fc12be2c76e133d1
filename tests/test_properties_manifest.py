"""Manifest fuzzing: mutated documents never crash the parser — a model or a clear error.

Seeds are the ../shared/mpd corpus (skipped when absent) and MPDs abrlab itself writes in
every addressing mode. Mutations work on the text (byte flips, cuts, duplications) and on
the XML's attribute values (numbers made huge, negative, zero, non-numeric), which is where
parsers of segment indexes usually fall over.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from netem.content import synthetic
from netem.package import SyntheticPresentation
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


def _corpus() -> list[bytes]:
    if not SHARED_MPD.is_dir():
        return []
    return [p.read_bytes() for p in sorted(SHARED_MPD.rglob("*")) if p.suffix in (".mpd", ".xml")]


SEEDS = _own_mpds() + _corpus()


def _parse_or_clear_error(doc: bytes) -> None:
    try:
        parse_manifest(doc, url="http://127.0.0.1/x/manifest.mpd")
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
