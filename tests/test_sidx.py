"""netem.isobmff's sidx reader (find_sidx / parse_sidx): boxes built by hand with struct.pack,
versions 0 and 1, as a DASH client meets them in a SegmentBase index range."""
from __future__ import annotations

import struct

import pytest

from netem.errors import BoxError, InputError
from netem.isobmff import SidxError, SidxUnsupported, find_sidx, parse, parse_sidx


def ref(size: int, duration: int, *, rtype: int = 0, sap: bool = True, sap_type: int = 1,
        delta: int = 0) -> bytes:
    return struct.pack(">III", (rtype << 31) | size, duration,
                       (int(sap) << 31) | (sap_type << 28) | delta)


def sidx_box(version: int, refs: list[bytes], *, timescale: int = 1000, ept: int = 0,
             first_offset: int = 0, ref_id: int = 1, count: int | None = None) -> bytes:
    if version == 0:
        body = struct.pack(">BBBBIIII", 0, 0, 0, 0, ref_id, timescale, ept, first_offset)
    else:
        body = struct.pack(">BBBBIIQQ", 1, 0, 0, 0, ref_id, timescale, ept, first_offset)
    body += struct.pack(">HH", 0, len(refs) if count is None else count) + b"".join(refs)
    return struct.pack(">I4s", 8 + len(body), b"sidx") + body


def test_version0_by_hand():
    # 3 references of 1000, 2000, 1500 bytes; 2 s, 2 s, 1 s at timescale 1000.
    box = sidx_box(0, [ref(1000, 2000), ref(2000, 2000), ref(1500, 1000, sap=False)],
                   ept=500, first_offset=10)
    assert len(box) == 8 + 24 + 36 == 68
    s = find_sidx(box, offset=700)          # the box starts at file byte 700
    assert (s.version, s.timescale, s.earliest_presentation_time, s.first_offset) == (0, 1000, 500, 10)
    assert s.box_size == 68 and s.anchor == 768
    assert [r.referenced_size for r in s.references] == [1000, 2000, 1500]
    assert [r.starts_with_sap for r in s.references] == [True, True, False]
    subs = s.subsegments()
    # first byte = anchor + first_offset = 778; then consecutive.
    assert [(x.first_byte, x.last_byte) for x in subs] == [(778, 1777), (1778, 3777), (3778, 5277)]
    assert [(x.start, x.duration) for x in subs] == [(500, 2000), (2500, 2000), (4500, 1000)]
    assert subs[1].size_bytes == 2000


def test_version1_64bit_fields():
    ept = 2 ** 33 + 7
    box = sidx_box(1, [ref(4096, 90000), ref(8192, 45000)], timescale=90000, ept=ept,
                   first_offset=2 ** 32)
    assert len(box) == 8 + 32 + 24
    s = find_sidx(box)
    assert s.version == 1 and s.earliest_presentation_time == ept and s.first_offset == 2 ** 32
    subs = s.subsegments()
    assert subs[0].first_byte == 64 + 2 ** 32
    assert subs[1].start == ept + 90000
    assert subs[1].last_byte == 64 + 2 ** 32 + 4096 + 8192 - 1


def test_skips_leading_boxes_and_sap_fields():
    styp = struct.pack(">I4s4sI", 16, b"styp", b"msdh", 0)
    box = sidx_box(0, [ref(10, 1, sap=True, sap_type=3, delta=12345)])
    s = find_sidx(styp + box, offset=100)
    assert s.box_offset == 116
    r = s.references[0]
    assert (r.sap_type, r.sap_delta_time) == (3, 12345)


def test_hierarchical_is_unsupported():
    s = find_sidx(sidx_box(0, [ref(100, 1000, rtype=1)]))
    with pytest.raises(SidxUnsupported, match="hierarchical"):
        s.subsegments()


@pytest.mark.parametrize("data, match", [
    (b"", "no sidx"),
    (struct.pack(">I4s", 8, b"moof"), "no sidx box"),
    (sidx_box(0, [ref(1, 1)])[:-4], "truncated"),
    (sidx_box(0, [ref(1, 1)], count=60000), "truncated"),   # claims 60,000 references
    (sidx_box(0, [ref(1, 1)], timescale=0), "timescale 0"),
    (struct.pack(">I4s", 4, b"sidx"), "size 4 is smaller than its header"),
    (b"\0\0\0", "too few for a box header"),
])
def test_malformed(data, match):
    with pytest.raises(SidxError, match=match):
        find_sidx(data)


def test_version_2_unsupported():
    box = bytearray(sidx_box(0, [ref(1, 1)]))
    box[8] = 2
    with pytest.raises(SidxUnsupported):
        find_sidx(bytes(box))


def test_errors_belong_to_the_one_hierarchy():
    assert issubclass(SidxUnsupported, SidxError) and issubclass(SidxError, BoxError)
    assert issubclass(SidxError, InputError)


def test_parse_sidx_of_a_parsed_box_matches_find_sidx():
    # The edge's view (a Box from the tree) and the client's (an index range) agree; the
    # box (8 + 24 + 2 x 12 = 56 bytes) starts 16 bytes into the buffer, which starts at file
    # byte 1000: anchor = 1000 + 16 + 56 = 1072.
    styp = struct.pack(">I4s4sI", 16, b"styp", b"msdh", 0)
    box = sidx_box(0, [ref(10, 1), ref(20, 2)])
    tree = parse(styp + box)
    s = parse_sidx(tree[1], offset=1000)
    assert s == find_sidx(styp + box, offset=1000)
    assert s.box_offset == 1016 and s.anchor == 1072
    assert [(x.first_byte, x.last_byte) for x in s.subsegments()] == [(1072, 1081), (1082, 1101)]
