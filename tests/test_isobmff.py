"""The ISO-BMFF writer and parser: boxes round-trip, and malformed data is refused cleanly."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netem import isobmff as bm


def test_box_and_full_box_layout():
    b = bm.box("free", b"abc")
    assert b == struct.pack(">I", 11) + b"free" + b"abc"
    fb = bm.full_box("mfhd", 0, 0, struct.pack(">I", 7))
    (box,) = bm.parse(fb)
    assert (box.type, box.size, box.header_size) == ("mfhd", 16, 8)
    assert bm.parse_mfhd(box) == 7
    with pytest.raises(ValueError):
        bm.box("toolong", b"")


def test_largesize_header():
    h = bm.box_header("mdat", 2 ** 32)
    assert len(h) == 16 and h[:4] == b"\0\0\0\1" and int.from_bytes(h[8:], "big") == 2 ** 32 + 16
    assert bm.mdat_header_size(100) == 8 and bm.mdat_header_size(2 ** 32) == 16
    # a small largesize box parses
    data = struct.pack(">I", 1) + b"free" + struct.pack(">Q", 20) + b"xxxx"
    (box,) = bm.parse(data)
    assert (box.size, box.header_size, bytes(box.data)) == (20, 16, b"xxxx")


@pytest.mark.parametrize("data,msg", [
    (b"\0\0\0\x10moov\0\0", "is truncated: it declares 16 bytes and runs past"),
    (b"\0\0\0\x04free", "smaller than its header"),
    (b"\0\0\0\x08fre", "too few"),
    (b"\0\0\0\x01free\0\0", "truncated largesize"),
])
def test_malformed_boxes_raise_box_error(data, msg):
    with pytest.raises(bm.BoxError, match=msg):
        bm.parse(data)


def test_nesting_limit():
    data = bm.box("free", b"")
    for _ in range(bm.MAX_DEPTH + 3):
        data = bm.box("moov", data)
    with pytest.raises(bm.BoxError, match="nested deeper"):
        bm.parse(data)


@given(st.binary(max_size=300))
def test_parser_never_crashes_on_garbage(data):
    try:
        boxes = bm.parse(data)
    except bm.BoxError:
        return
    for b in boxes:
        assert b.offset + b.size <= len(data)


def test_size_zero_means_to_the_end():
    data = bm.box("ftyp", b"isom\0\0\0\0") + b"\0\0\0\0mdat" + b"payload"
    boxes = bm.parse(data)
    assert [b.type for b in boxes] == ["ftyp", "mdat"] and boxes[1].end == len(data)


def test_h264_parameter_sets_have_no_start_code_emulation():
    for w, h in [(256, 144), (426, 240), (1920, 1080), (3840, 2160), (2, 2)]:
        sps, pps = bm.h264_parameter_sets(100, 0, 31, w, h)
        assert sps[0] == 0x67 and pps[0] == 0x68 and sps[1:4] == bytes([100, 0, 31])
        for nal in (sps, pps):
            for i in range(len(nal) - 2):
                assert not (nal[i] == 0 and nal[i + 1] == 0 and nal[i + 2] <= 3)


def test_parse_avc_codec():
    assert bm.parse_avc_codec("avc1.64001f") == (0x64, 0, 0x1F)
    assert bm.parse_avc_codec("avc3.42E01E") == (0x42, 0xE0, 0x1E)
    for bad in ("avc1", "avc1.6400", "hvc1.1.6.L93", "avc1.zzzzzz"):
        with pytest.raises(ValueError):
            bm.parse_avc_codec(bad)


def test_init_segment_structure_video_and_audio():
    v = bm.init_segment(bm.TrackInfo("video", 1, 90000, "avc1.64001f", 640, 360, bitrate_bps=750000))
    boxes = bm.parse(v)
    assert [b.type for b in boxes] == ["ftyp", "moov"]
    for path in ("moov/mvhd", "moov/trak/tkhd", "moov/trak/mdia/mdhd", "moov/trak/mdia/hdlr",
                 "moov/trak/mdia/minf/vmhd", "moov/trak/mdia/minf/dinf/dref",
                 "moov/trak/mdia/minf/stbl/stsd/avc1/avcC", "moov/trak/mdia/minf/stbl/stts",
                 "moov/trak/mdia/minf/stbl/stsz", "moov/trak/mdia/minf/stbl/stco", "moov/mvex/trex"):
        assert bm.find(boxes, path) is not None, path
    mdhd = bm.find(boxes, "moov/trak/mdia/mdhd")
    assert int.from_bytes(mdhd.data[12:16], "big") == 90000  # v0: flags, creation, modification, timescale
    a = bm.init_segment(bm.TrackInfo("audio", 2, 48000, "mp4a.40.2", sample_rate=48000, channels=2,
                                     bitrate_bps=128000))
    boxes = bm.parse(a)
    assert bm.find(boxes, "moov/trak/mdia/minf/stbl/stsd/mp4a/esds") is not None
    assert bm.find(boxes, "moov/trak/mdia/minf/smhd") is not None
    trex = bm.find(boxes, "moov/mvex/trex")
    assert int.from_bytes(trex.data[4:8], "big") == 2


def test_protected_init_has_encv_sinf_tenc_and_pssh():
    kid = bytes(range(16))
    psshs = [bm.pssh(b"\x10" * 16, b"", kids=[kid]), bm.pssh(b"\x20" * 16, b"data")]
    v = bm.init_segment(bm.TrackInfo("video", 1, 90000, "avc1.64001f", 640, 360), kid=kid, pssh_boxes=psshs)
    boxes = bm.parse(v)
    enc = bm.find(boxes, "moov/trak/mdia/minf/stbl/stsd/encv")
    assert enc is not None and enc.find("avcC") is not None
    assert bytes(enc.find("sinf/frma").data) == b"avc1"
    assert bytes(enc.find("sinf/schm").data[4:8]) == b"cenc"
    tenc = bm.parse_tenc(enc.find("sinf/schi/tenc"))
    assert tenc == {"version": 0, "is_protected": 1, "iv_size": 8, "kid": kid}
    got = [bm.parse_pssh(b) for b in bm.find_all(boxes, "moov/pssh")]
    assert got[0] == {"version": 1, "system_id": b"\x10" * 16, "kids": [kid], "data": b""}
    assert got[1] == {"version": 0, "system_id": b"\x20" * 16, "kids": [], "data": b"data"}


@given(
    sizes=st.lists(st.integers(1, 10 ** 6), min_size=1, max_size=40),
    dur=st.integers(1, 10 ** 5),
    varied=st.booleans(),
    tfdt=st.integers(0, 2 ** 40),
    seq=st.integers(1, 2 ** 31),
    enc=st.sampled_from(["none", "full", "sub"]),
)
def test_moof_round_trip(sizes, dur, varied, tfdt, seq, enc):
    n = len(sizes)
    durs = [dur + (i % 3 if varied else 0) for i in range(n)]
    ivs = [i.to_bytes(8, "big") for i in range(n)] if enc != "none" else None
    subs = [[(min(5, s), s - min(5, s))] for s in sizes] if enc == "sub" else None
    f = bm.Fragment(seq, 1, tfdt, sizes, durs, ivs=ivs, subsamples=subs)
    moof = bm.moof(f)
    data = moof + bm.box_header("mdat", sum(sizes)) + bytes(sum(sizes))
    boxes = bm.parse(data)
    assert [b.type for b in boxes] == ["moof", "mdat"]
    m = boxes[0]
    assert bm.parse_mfhd(m.find("mfhd")) == seq
    traf = m.find("traf")
    tfhd = bm.parse_tfhd(traf.find("tfhd"))
    assert tfhd["track_id"] == 1 and tfhd["default_base_is_moof"]
    assert bm.parse_tfdt(traf.find("tfdt")) == tfdt
    trun = bm.parse_trun(traf.find("trun"), tfhd)
    assert trun["sizes"] == sizes and trun["durations"] == durs
    assert trun["data_offset"] == len(moof) + 8  # first byte of the mdat payload, from the moof
    assert trun["flags"][0] == bm.SAMPLE_SYNC
    assert all(x == bm.SAMPLE_NON_SYNC for x in trun["flags"][1:])
    if enc != "none":
        senc = bm.parse_senc(traf.find("senc"), 8)
        assert [iv for iv, _ in senc] == ivs
        assert [s for _, s in senc] == (subs if enc == "sub" else [[] for _ in range(n)])
        saiz = bm.parse_saiz(traf.find("saiz"))
        assert saiz["sample_count"] == n
        (off,) = bm.parse_saio(traf.find("saio"))
        # saio points (from the moof's first byte) at the first IV inside senc
        assert data[off:off + 8] == ivs[0]
        assert sum(saiz["sizes"]) == traf.find("senc").size - 16


def test_moof_explicit_flags_and_cts():
    f = bm.Fragment(1, 1, 0, [10, 20, 30], [5, 5, 5], sample_flags=[bm.SAMPLE_SYNC, bm.SAMPLE_NON_SYNC, bm.SAMPLE_SYNC],
                    cts_offsets=[0, 10, -5])
    (m,) = bm.parse(bm.moof(f))
    tfhd = bm.parse_tfhd(m.find("traf/tfhd"))
    trun = bm.parse_trun(m.find("traf/trun"), tfhd)
    assert trun["flags"] == [bm.SAMPLE_SYNC, bm.SAMPLE_NON_SYNC, bm.SAMPLE_SYNC]
    assert trun["cts"] == [0, 10, -5]


@given(st.lists(st.tuples(st.integers(1, 2 ** 31 - 1), st.integers(1, 2 ** 32 - 1)), min_size=1, max_size=50),
       st.integers(0, 2 ** 40))
def test_sidx_round_trip(refs, ept):
    sizes, durs = [r[0] for r in refs], [r[1] for r in refs]
    raw = bm.sidx(1, 90000, sizes, durs, ept)
    assert len(raw) == bm.sidx_size(len(refs))
    s = bm.parse_sidx(bm.parse(raw)[0])
    assert s.timescale == 90000 and s.earliest_presentation_time == ept and s.first_offset == 0
    assert [r.referenced_size for r in s.references] == sizes
    assert [r.subsegment_duration for r in s.references] == durs
    assert all(r.starts_with_sap and r.sap_type == 1 and r.reference_type == 0
               for r in s.references)
    assert bm.find_sidx(raw) == s


def test_sidx_reference_count_limit():
    with pytest.raises(ValueError):
        bm.sidx(1, 1, [1] * 70000, [1] * 70000)
