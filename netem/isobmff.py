"""A small ISO-BMFF (MP4) writer and parser: enough for DASH init and media segments.

Writing: `box`/`full_box` plus builders for the boxes a fragmented-MP4 DASH
presentation needs — `ftyp`/`styp`, an init segment (`moov` with `mvhd`, one `trak`
with an empty sample table, `mvex`/`trex`, optional `pssh`), media fragments
(`moof` with `mfhd`/`traf`/`tfhd`/`tfdt`/`trun`, optional CENC `saiz`/`saio`/`senc`),
`sidx` and `mdat` headers. Sample entries: `avc1`/`avc3` with a real `avcC` (SPS/PPS
generated for the rung's width and height when no encoder supplied them), `mp4a` with
an `esds`, and their `encv`/`enca` forms wrapped with `sinf` for CENC.

Parsing: `parse(data)` returns a `Box` tree (containers and sample entries are opened;
everything else keeps its payload), and `parse_*` decode the full boxes tests and
clients need (`mfhd`, `tfhd`, `tfdt`, `trun`, `sidx`, `pssh`, `tenc`, `senc`, `saiz`,
`saio`). `iter_boxes` is the one box walker and `parse_sidx` the one `sidx` reader, for
the edge and the player alike: `find_sidx(index_range_bytes, offset=...)` gives the
`Sidx` a DASH client needs for SegmentBase addressing, with absolute byte ranges. The
parser never trusts a size field: a box that claims more bytes than are there, a size
below its header, or nesting deeper than `MAX_DEPTH` raises `BoxError` (`SidxError` for
an index that cannot be read, `SidxUnsupported` for one beyond this code).

Sizes are bytes; times are ticks of the track's timescale.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from netem.errors import BoxError


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------
def _fourcc(t: str | bytes) -> bytes:
    b = t.encode("latin-1") if isinstance(t, str) else bytes(t)
    if len(b) != 4:
        raise ValueError(f"box type must be 4 characters, got {t!r}")
    return b


def box(fourcc: str | bytes, *parts: bytes) -> bytes:
    """A box: 32-bit size (64-bit `largesize` when needed), type, payload parts."""
    payload = b"".join(parts)
    size = 8 + len(payload)
    if size < 2 ** 32:
        return struct.pack(">I", size) + _fourcc(fourcc) + payload
    return struct.pack(">I", 1) + _fourcc(fourcc) + struct.pack(">Q", size + 8) + payload


def full_box(fourcc: str | bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(fourcc, struct.pack(">I", (version << 24) | (flags & 0xFFFFFF)), *parts)


def box_header(fourcc: str | bytes, payload_size: int) -> bytes:
    """Just the header of a box whose payload of `payload_size` bytes follows (for `mdat`)."""
    if payload_size + 8 < 2 ** 32:
        return struct.pack(">I", payload_size + 8) + _fourcc(fourcc)
    return struct.pack(">I", 1) + _fourcc(fourcc) + struct.pack(">Q", payload_size + 16)


def mdat_header_size(payload_size: int) -> int:
    return 8 if payload_size + 8 < 2 ** 32 else 16


def ftyp(major: str = "iso6", minor: int = 0, compatible: Sequence[str] = ("iso6", "dash", "mp41")) -> bytes:
    return box("ftyp", _fourcc(major), struct.pack(">I", minor), *(_fourcc(c) for c in compatible))


def styp(major: str = "msdh", minor: int = 0, compatible: Sequence[str] = ("msdh", "msix")) -> bytes:
    return box("styp", _fourcc(major), struct.pack(">I", minor), *(_fourcc(c) for c in compatible))


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def mvhd(timescale: int = 1000, duration: int = 0, next_track_id: int = 2) -> bytes:
    return full_box("mvhd", 0, 0, struct.pack(">IIIIIH", 0, 0, timescale, duration, 0x00010000, 0x0100),
                    b"\0" * 10, _MATRIX, b"\0" * 24, struct.pack(">I", next_track_id))


def tkhd(track_id: int, width: int = 0, height: int = 0, audio: bool = False) -> bytes:
    return full_box("tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track_id, 0, 0), b"\0" * 8,
                    struct.pack(">hhhH", 0, 0, 0x0100 if audio else 0, 0), _MATRIX,
                    struct.pack(">II", (width & 0xFFFF) << 16, (height & 0xFFFF) << 16))


def _language(code: str = "und") -> int:
    c = (code + "und")[:3]
    return ((ord(c[0]) - 0x60) << 10) | ((ord(c[1]) - 0x60) << 5) | (ord(c[2]) - 0x60)


def mdhd(timescale: int, duration: int = 0, language: str = "und") -> bytes:
    return full_box("mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, _language(language), 0))


def hdlr(handler: str, name: str) -> bytes:
    return full_box("hdlr", 0, 0, struct.pack(">I", 0), _fourcc(handler), b"\0" * 12, name.encode() + b"\0")


def dinf() -> bytes:
    return box("dinf", full_box("dref", 0, 0, struct.pack(">I", 1), full_box("url ", 0, 1)))


def elst(media_time: int, segment_duration: int = 0) -> bytes:
    return box("edts", full_box("elst", 0, 0, struct.pack(">IIiHH", 1, segment_duration, media_time, 1, 0)))


def stbl(sample_entry: bytes) -> bytes:
    return box("stbl",
               full_box("stsd", 0, 0, struct.pack(">I", 1), sample_entry),
               full_box("stts", 0, 0, struct.pack(">I", 0)),
               full_box("stsc", 0, 0, struct.pack(">I", 0)),
               full_box("stsz", 0, 0, struct.pack(">II", 0, 0)),
               full_box("stco", 0, 0, struct.pack(">I", 0)))


# -- H.264 parameter sets ---------------------------------------------------------------------
class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, v: int) -> None:
        self.bits += [(v >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, v: int) -> None:
        v += 1
        n = v.bit_length()
        self.u(n - 1, 0)
        self.u(n, v)

    def se(self, v: int) -> None:
        self.ue(2 * v - 1 if v > 0 else -2 * v)

    def rbsp(self) -> bytes:
        bits = self.bits + [1]
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def _emulation_prevention(rbsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_parameter_sets(profile: int, constraints: int, level: int, width: int, height: int) -> tuple[bytes, bytes]:
    """A minimal, valid SPS and PPS (NAL units without start codes) for a progressive
    4:2:0 8-bit stream of this size (odd sizes are rounded up to even)."""
    width, height = max(2, width + (width & 1)), max(2, height + (height & 1))
    mbw, mbh = -(-width // 16), -(-height // 16)
    s = _Bits()
    s.u(8, profile)
    s.u(8, constraints)
    s.u(8, level)
    s.ue(0)  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        s.ue(1)  # chroma_format_idc 4:2:0
        s.ue(0)
        s.ue(0)  # bit depths 8
        s.u(1, 0)
        s.u(1, 0)  # no scaling matrices
    s.ue(0)  # log2_max_frame_num_minus4
    s.ue(2)  # pic_order_cnt_type
    s.ue(1)  # max_num_ref_frames
    s.u(1, 0)
    s.ue(mbw - 1)
    s.ue(mbh - 1)
    s.u(1, 1)  # frame_mbs_only
    s.u(1, 1)  # direct_8x8_inference
    crop_r, crop_b = (mbw * 16 - width) // 2, (mbh * 16 - height) // 2
    if crop_r or crop_b:
        s.u(1, 1)
        s.ue(0)
        s.ue(crop_r)
        s.ue(0)
        s.ue(crop_b)
    else:
        s.u(1, 0)
    s.u(1, 0)  # no VUI
    p = _Bits()
    p.ue(0)
    p.ue(0)
    p.u(1, 1 if profile in _HIGH_PROFILES or profile == 77 else 0)  # CABAC for main/high
    p.u(1, 0)
    p.ue(0)
    p.ue(0)
    p.ue(0)
    p.u(1, 0)
    p.u(2, 0)
    p.se(0)
    p.se(0)
    p.se(0)
    p.u(1, 1)
    p.u(1, 0)
    p.u(1, 0)
    return b"\x67" + _emulation_prevention(s.rbsp()), b"\x68" + _emulation_prevention(p.rbsp())


def avcc(sps: Sequence[bytes], pps: Sequence[bytes]) -> bytes:
    """An `avcC` (AVCDecoderConfigurationRecord) box from SPS and PPS NAL units."""
    first = sps[0]
    profile, compat, level = first[1], first[2], first[3]
    out = bytearray([1, profile, compat, level, 0xFF, 0xE0 | len(sps)])
    for s in sps:
        out += struct.pack(">H", len(s)) + s
    out.append(len(pps))
    for p in pps:
        out += struct.pack(">H", len(p)) + p
    if profile in (100, 110, 122, 144):
        out += bytes([0xFC | 1, 0xF8, 0xF8, 0])  # 4:2:0, 8-bit luma and chroma, no SPS ext
    return box("avcC", bytes(out))


def visual_sample_entry(fourcc: str, width: int, height: int, *children: bytes) -> bytes:
    return box(fourcc, b"\0" * 6, struct.pack(">H", 1), b"\0" * 16,
               struct.pack(">HHIIIH", width, height, 0x00480000, 0x00480000, 0, 1), b"\0" * 32,
               struct.pack(">Hh", 0x0018, -1), *children)


def _descriptor(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    size = bytes([0x80 | ((n >> 21) & 0x7F), 0x80 | ((n >> 14) & 0x7F), 0x80 | ((n >> 7) & 0x7F), n & 0x7F])
    return bytes([tag]) + size + payload


def audio_specific_config(sample_rate: int = 48000, channels: int = 2, object_type: int = 2) -> bytes:
    rates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]
    idx = rates.index(sample_rate) if sample_rate in rates else 3
    v = (object_type << 11) | (idx << 7) | (channels << 3)
    return struct.pack(">H", v)


def esds(asc: bytes, bitrate_bps: int, track_id: int = 0) -> bytes:
    dec_specific = _descriptor(0x05, asc)
    b = min(int(bitrate_bps), 2 ** 32 - 1)
    dcd = _descriptor(0x04, bytes([0x40, 0x15]) + (6144).to_bytes(3, "big") + struct.pack(">II", b, b)
                      + dec_specific)
    es = _descriptor(0x03, struct.pack(">HB", track_id, 0) + dcd + _descriptor(0x06, b"\x02"))
    return full_box("esds", 0, 0, es)


def audio_sample_entry(fourcc: str, sample_rate: int, channels: int, *children: bytes) -> bytes:
    return box(fourcc, b"\0" * 6, struct.pack(">H", 1), b"\0" * 8,
               struct.pack(">HHHHI", channels, 16, 0, 0, (sample_rate & 0xFFFF) << 16), *children)


# -- CENC ---------------------------------------------------------------------------------------
def sinf(original_format: str, kid: bytes, iv_size: int = 8, scheme: str = "cenc") -> bytes:
    tenc = full_box("tenc", 0, 0, bytes([0, 0, 1, iv_size]), kid)
    return box("sinf", box("frma", _fourcc(original_format)),
               full_box("schm", 0, 0, _fourcc(scheme), struct.pack(">I", 0x00010000)),
               box("schi", tenc))


def pssh(system_id: bytes, data: bytes = b"", kids: Sequence[bytes] | None = None) -> bytes:
    """A `pssh` box: version 1 when `kids` is given (KIDs listed in the box), else version 0."""
    if len(system_id) != 16:
        raise ValueError("system ID must be 16 bytes")
    if kids is not None:
        return full_box("pssh", 1, 0, system_id, struct.pack(">I", len(kids)), *kids,
                        struct.pack(">I", len(data)), data)
    return full_box("pssh", 0, 0, system_id, struct.pack(">I", len(data)), data)


# -- init segment ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackInfo:
    """What an init segment says about one track (one Representation)."""

    kind: str  # "video" | "audio"
    track_id: int
    timescale: int
    codec: str  # RFC 6381, e.g. "avc1.64001f", "mp4a.40.2"
    width: int = 0
    height: int = 0
    sample_rate: int = 48000
    channels: int = 2
    bitrate_bps: int = 0
    sps: tuple[bytes, ...] = ()
    pps: tuple[bytes, ...] = ()
    asc: bytes = b""
    duration: int = 0  # total, in `timescale` ticks (for mehd); 0 = unknown


def parse_avc_codec(codec: str) -> tuple[int, int, int]:
    """(profile_idc, constraint flags, level_idc) from "avc1.PPCCLL"."""
    try:
        head, tail = codec.split(".", 1)
        if head not in ("avc1", "avc3") or len(tail) != 6:
            raise ValueError
        v = bytes.fromhex(tail)
    except ValueError:
        raise ValueError(f"codec {codec!r} is not of the form avc1.PPCCLL (hex profile, constraints, level)") from None
    return v[0], v[1], v[2]


def _btrt(bitrate_bps: int) -> bytes:
    b = min(int(bitrate_bps), 2 ** 32 - 1)
    return box("btrt", struct.pack(">III", 0, b, b))


def sample_entry(t: TrackInfo, kid: bytes | None = None, iv_size: int = 8) -> bytes:
    fourcc = t.codec.split(".", 1)[0][:4].ljust(4)
    if t.kind == "video":
        children: list[bytes] = []
        if fourcc in ("avc1", "avc3"):
            sps, pps = t.sps, t.pps
            if not sps:
                s, p = h264_parameter_sets(*parse_avc_codec(t.codec), t.width, t.height)
                sps, pps = (s,), (p,)
            children.append(avcc(sps, pps))
        if t.bitrate_bps:
            children.append(_btrt(t.bitrate_bps))
        if kid is not None:
            children.append(sinf(fourcc, kid, iv_size))
            fourcc = "encv"
        return visual_sample_entry(fourcc, t.width, t.height, *children)
    asc = t.asc or audio_specific_config(t.sample_rate, t.channels)
    children = [esds(asc, t.bitrate_bps, t.track_id)]
    if t.bitrate_bps:
        children.append(_btrt(t.bitrate_bps))
    if kid is not None:
        children.append(sinf(fourcc, kid, iv_size))
        fourcc = "enca"
    return audio_sample_entry(fourcc, t.sample_rate, t.channels, *children)


def init_segment(t: TrackInfo, *, kid: bytes | None = None, pssh_boxes: Iterable[bytes] = (),
                 iv_size: int = 8, brands: Sequence[str] = ("iso6", "dash", "mp41"),
                 edit_media_time: int | None = None) -> bytes:
    """`ftyp` + `moov` for one fragmented track. `kid` makes the sample entry `encv`/`enca`
    with `sinf`/`tenc`; `pssh_boxes` go at the end of `moov`."""
    video = t.kind == "video"
    media_header = full_box("vmhd", 0, 1, b"\0" * 8) if video else full_box("smhd", 0, 0, b"\0" * 4)
    minf = box("minf", media_header, dinf(), stbl(sample_entry(t, kid, iv_size)))
    mdia = box("mdia", mdhd(t.timescale), hdlr("vide" if video else "soun",
                                               "VideoHandler" if video else "SoundHandler"), minf)
    edts = elst(edit_media_time) if edit_media_time is not None else b""
    trak = box("trak", tkhd(t.track_id, t.width if video else 0, t.height if video else 0, audio=not video),
               edts, mdia)
    mehd = full_box("mehd", 0, 0, struct.pack(">I", round(t.duration * 1000 / t.timescale))) if t.duration else b""
    mvex = box("mvex", mehd, full_box("trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, 0, 0, 0)))
    moov = box("moov", mvhd(1000, 0, t.track_id + 1), trak, mvex, *pssh_boxes)
    return ftyp(brands[0], 0, brands) + moov


# -- fragments ----------------------------------------------------------------------------------
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_DEFAULT_DURATION = 0x000008
TFHD_DEFAULT_SIZE = 0x000010
TFHD_DEFAULT_FLAGS = 0x000020
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_FLAGS = 0x000004
TRUN_DURATION = 0x000100
TRUN_SIZE = 0x000200
TRUN_FLAGS = 0x000400
TRUN_CTS = 0x000800

SAMPLE_SYNC = 0x02000000  # sample_depends_on = 2 (independent), is_non_sync = 0
SAMPLE_NON_SYNC = 0x01010000  # sample_depends_on = 1, is_non_sync = 1


@dataclass
class Fragment:
    """The samples of one `moof`+`mdat` pair (sizes in bytes, durations in ticks)."""

    sequence_number: int
    track_id: int
    base_media_decode_time: int
    sample_sizes: Sequence[int]
    sample_durations: Sequence[int]
    sample_flags: Sequence[int] | None = None  # per sample; None = first sync, rest `default_flags`
    default_flags: int = SAMPLE_NON_SYNC
    cts_offsets: Sequence[int] | None = None
    # CENC: one IV per sample and, optionally, per-sample (clear, protected) subsample lists
    ivs: Sequence[bytes] | None = None
    subsamples: Sequence[Sequence[tuple[int, int]]] | None = None


def moof(f: Fragment) -> bytes:
    """The `moof` box for `f`, with the `trun` data offset pointing just past an
    `mdat` header that immediately follows it."""
    n = len(f.sample_sizes)
    durs = list(f.sample_durations)
    uniform = n > 0 and all(d == durs[0] for d in durs)
    tf_flags = TFHD_DEFAULT_BASE_IS_MOOF
    tf_fields = b""
    if uniform:
        tf_flags |= TFHD_DEFAULT_DURATION
        tf_fields += struct.pack(">I", durs[0])
    flags = list(f.sample_flags) if f.sample_flags is not None else None
    per_sample_flags = False
    if flags is None or n == 0:
        default_flags, first_flags = f.default_flags, SAMPLE_SYNC if flags is None else f.default_flags
    elif n == 1 or all(x == flags[1] for x in flags[1:]):
        default_flags, first_flags = (flags[1] if n > 1 else flags[0]), flags[0]
    else:
        per_sample_flags = True
        default_flags = first_flags = f.default_flags
    tf_flags |= TFHD_DEFAULT_FLAGS
    tf_fields += struct.pack(">I", default_flags)
    tfhd = full_box("tfhd", 0, tf_flags, struct.pack(">I", f.track_id), tf_fields)
    tfdt = full_box("tfdt", 1, 0, struct.pack(">Q", f.base_media_decode_time))
    tr_flags = TRUN_DATA_OFFSET | TRUN_SIZE
    if not uniform:
        tr_flags |= TRUN_DURATION
    if per_sample_flags:
        tr_flags |= TRUN_FLAGS
    elif first_flags != default_flags:
        tr_flags |= TRUN_FIRST_FLAGS
    has_cts = f.cts_offsets is not None and any(f.cts_offsets)
    if has_cts:
        tr_flags |= TRUN_CTS

    def trun(data_offset: int) -> bytes:
        head = struct.pack(">Ii", n, data_offset)
        if tr_flags & TRUN_FIRST_FLAGS:
            head += struct.pack(">I", first_flags)
        fmt = ">" + ("I" if tr_flags & TRUN_DURATION else "") + "I" + ("I" if tr_flags & TRUN_FLAGS else "") \
              + ("i" if has_cts else "")
        rows = []
        for i in range(n):
            vals = []
            if tr_flags & TRUN_DURATION:
                vals.append(durs[i])
            vals.append(f.sample_sizes[i])
            if tr_flags & TRUN_FLAGS:
                vals.append(f.sample_flags[i])  # type: ignore[index]
            if has_cts:
                vals.append(f.cts_offsets[i])  # type: ignore[index]
            rows.append(struct.pack(fmt, *vals))
        return full_box("trun", 1 if has_cts else 0, tr_flags, head, b"".join(rows))

    mfhd = full_box("mfhd", 0, 0, struct.pack(">I", f.sequence_number))
    trun0 = trun(0)
    traf_rest = b""
    if f.ivs is not None:
        if f.subsamples is not None:
            entries = [iv + struct.pack(">H", len(sub)) + b"".join(struct.pack(">HI", c, p) for c, p in sub)
                       for iv, sub in zip(f.ivs, f.subsamples)]
        else:
            entries = [bytes(iv) for iv in f.ivs]
        senc = full_box("senc", 0, 2 if f.subsamples is not None else 0, struct.pack(">I", n), *entries)
        sizes = [len(e) for e in entries]
        if sizes and all(s == sizes[0] for s in sizes):
            saiz = full_box("saiz", 0, 0, struct.pack(">BI", sizes[0], n))
        else:
            saiz = full_box("saiz", 0, 0, struct.pack(">BI", 0, n), bytes(sizes))
        # traf layout: tfhd tfdt trun saiz saio(20 bytes) senc; saio points at senc's first IV
        senc_offset = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + len(trun0) + len(saiz) + 20 + 16
        saio = full_box("saio", 0, 0, struct.pack(">II", 1, senc_offset))
        traf_rest = saiz + saio + senc
    moof_size = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + len(trun0) + len(traf_rest)
    data_len = sum(f.sample_sizes)
    trun_final = trun(moof_size + mdat_header_size(data_len))
    out = box("moof", mfhd, box("traf", tfhd, tfdt, trun_final, traf_rest))
    assert len(out) == moof_size
    return out


def sidx(reference_id: int, timescale: int, sizes: Sequence[int], durations: Sequence[int],
         earliest_presentation_time: int = 0, first_offset: int = 0) -> bytes:
    """A version-1 `sidx` indexing `len(sizes)` subsegments that each start with a SAP."""
    if len(sizes) > 0xFFFF:
        raise ValueError(f"sidx can index at most 65535 subsegments, got {len(sizes)}")
    refs = b"".join(struct.pack(">III", s & 0x7FFFFFFF, d, 0x90000000) for s, d in zip(sizes, durations))
    return full_box("sidx", 1, 0, struct.pack(">IIQQHH", reference_id, timescale, earliest_presentation_time,
                                                first_offset, 0, len(sizes)), refs)


def sidx_size(n_refs: int) -> int:
    return 12 + 28 + 12 * n_refs


# ------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------
MAX_DEPTH = 16
CONTAINERS = {"moov", "trak", "mdia", "minf", "dinf", "stbl", "mvex", "moof", "traf", "sinf", "schi", "edts",
              "mfra", "udta", "meta_", "dref_"}
#: Bytes of fixed fields before child boxes, for boxes whose children follow some fields.
_CHILD_OFFSET = {"stsd": 8, "dref": 8, "avc1": 78, "avc3": 78, "encv": 78, "hvc1": 78, "hev1": 78,
                 "mp4a": 28, "enca": 28}


@dataclass
class Box:
    type: str
    offset: int  # of the box's first byte in the parsed buffer
    size: int
    header_size: int
    data: memoryview = field(repr=False)  # the payload (after the header)
    children: list["Box"] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.offset + self.size

    def find(self, path: str) -> "Box | None":
        return find(self.children, path)

    def find_all(self, path: str) -> list["Box"]:
        return find_all(self.children, path)

    def full(self) -> tuple[int, int, memoryview]:
        """(version, flags, rest) of a full box."""
        if len(self.data) < 4:
            raise BoxError(f"{self.type} at {self.offset}: too short for a full box")
        v = int.from_bytes(self.data[:4], "big")
        return v >> 24, v & 0xFFFFFF, self.data[4:]


def iter_boxes(data: bytes | memoryview, offset: int = 0, end: int | None = None,
               base: int = 0) -> Iterator[tuple[str, int, int, int]]:
    """Yield (type, offset, size, header_size) of consecutive boxes in data[offset:end].

    `base` is the file offset of data[0], used only in error messages."""
    mv = memoryview(data)
    end = len(mv) if end is None else end
    pos = offset
    while pos < end:
        if end - pos < 8:
            raise BoxError(f"{end - pos} trailing bytes at offset {base + pos}, too few for a box header")
        size = int.from_bytes(mv[pos:pos + 4], "big")
        typ = bytes(mv[pos + 4:pos + 8]).decode("latin-1")
        hdr = 8
        if size == 1:
            if end - pos < 16:
                raise BoxError(f"{typ!r} at offset {base + pos}: truncated largesize")
            size = int.from_bytes(mv[pos + 8:pos + 16], "big")
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr:
            raise BoxError(f"{typ!r} at offset {base + pos}: size {size} is smaller than its header")
        if pos + size > end:
            raise BoxError(f"{typ!r} at offset {base + pos} is truncated: it declares {size} bytes and runs "
                           f"past the end of its parent ({end - pos} bytes left)")
        yield typ, pos, size, hdr
        pos += size


def parse(data: bytes | memoryview, offset: int = 0, end: int | None = None, _depth: int = 0,
          _base: int = 0) -> list[Box]:
    """The box tree of data[offset:end]; offsets are relative to `data`."""
    if _depth > MAX_DEPTH:
        raise BoxError(f"boxes nested deeper than {MAX_DEPTH} at offset {offset}")
    mv = memoryview(data)
    out = []
    for typ, pos, size, hdr in iter_boxes(mv, offset, end, _base):
        b = Box(typ, pos, size, hdr, mv[pos + hdr:pos + size])
        child_start = None
        if typ in CONTAINERS:
            child_start = pos + hdr
        elif typ in _CHILD_OFFSET and size - hdr >= _CHILD_OFFSET[typ]:
            child_start = pos + hdr + _CHILD_OFFSET[typ]
        if child_start is not None:
            b.children = parse(mv, child_start, pos + size, _depth + 1, _base)
        out.append(b)
    return out


def find_all(boxes: Sequence[Box], path: str) -> list[Box]:
    """All boxes along a slash-separated path of types, e.g. "moof/traf/trun"."""
    head, _, rest = path.partition("/")
    hits = [b for b in boxes if b.type == head]
    if not rest:
        return hits
    return [x for b in hits for x in find_all(b.children, rest)]


def find(boxes: Sequence[Box], path: str) -> Box | None:
    hits = find_all(boxes, path)
    return hits[0] if hits else None


def _need(b: Box, data: memoryview, n: int) -> None:
    if len(data) < n:
        raise BoxError(f"{b.type} at offset {b.offset}: payload of {len(data)} bytes, need {n}")


def parse_mfhd(b: Box) -> int:
    _, _, d = b.full()
    _need(b, d, 4)
    return int.from_bytes(d[:4], "big")


def parse_tfdt(b: Box) -> int:
    v, _, d = b.full()
    n = 8 if v == 1 else 4
    _need(b, d, n)
    return int.from_bytes(d[:n], "big")


def parse_tfhd(b: Box) -> dict:
    _, flags, d = b.full()
    _need(b, d, 4)
    out: dict = {"flags": flags, "track_id": int.from_bytes(d[:4], "big")}
    pos = 4
    for bit, name, n in ((0x1, "base_data_offset", 8), (0x2, "sample_description_index", 4),
                         (0x8, "default_sample_duration", 4), (0x10, "default_sample_size", 4),
                         (0x20, "default_sample_flags", 4)):
        if flags & bit:
            _need(b, d, pos + n)
            out[name] = int.from_bytes(d[pos:pos + n], "big")
            pos += n
    out["default_base_is_moof"] = bool(flags & TFHD_DEFAULT_BASE_IS_MOOF)
    return out


def parse_trun(b: Box, tfhd: dict | None = None) -> dict:
    """{'data_offset', 'sizes', 'durations', 'flags', 'cts'} (lists; defaults from `tfhd`)."""
    v, flags, d = b.full()
    _need(b, d, 4)
    n = int.from_bytes(d[:4], "big")
    pos = 4
    data_offset = None
    first_flags = None
    if flags & TRUN_DATA_OFFSET:
        _need(b, d, pos + 4)
        data_offset = int.from_bytes(d[pos:pos + 4], "big", signed=True)
        pos += 4
    if flags & TRUN_FIRST_FLAGS:
        _need(b, d, pos + 4)
        first_flags = int.from_bytes(d[pos:pos + 4], "big")
        pos += 4
    fields = [f for f in (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS) if flags & f]
    _need(b, d, pos + 4 * len(fields) * n)
    tfhd = tfhd or {}
    cols: dict[int, list[int]] = {f: [] for f in fields}
    for i in range(n):
        for f in fields:
            cols[f].append(int.from_bytes(d[pos:pos + 4], "big", signed=(f == TRUN_CTS and v == 1)))
            pos += 4
    dflt_flags = tfhd.get("default_sample_flags", 0)
    sample_flags = cols.get(TRUN_FLAGS) or [dflt_flags] * n
    if first_flags is not None and n:
        sample_flags[0] = first_flags
    return {
        "sample_count": n,
        "data_offset": data_offset,
        "durations": cols.get(TRUN_DURATION) or [tfhd.get("default_sample_duration", 0)] * n,
        "sizes": cols.get(TRUN_SIZE) or [tfhd.get("default_sample_size", 0)] * n,
        "flags": sample_flags,
        "cts": cols.get(TRUN_CTS) or [0] * n,
    }


class SidxError(BoxError):
    """Bytes that are not a well-formed `sidx` box (truncated, wrong box, zero timescale...)."""


class SidxUnsupported(SidxError):
    """A well-formed `sidx` this code does not handle (hierarchical indexes, version > 1)."""


@dataclass(frozen=True)
class SidxReference:
    """One entry of a `sidx`, as written (sizes in bytes, durations in `Sidx.timescale` ticks)."""

    reference_type: int          # 0: media, 1: another sidx (hierarchical index)
    referenced_size: int         # bytes
    subsegment_duration: int     # ticks
    starts_with_sap: bool
    sap_type: int
    sap_delta_time: int


@dataclass(frozen=True)
class Subsegment:
    """A media subsegment located in the file: inclusive byte range and timing in ticks."""

    first_byte: int
    last_byte: int               # inclusive, as in an HTTP Range header
    start: int                   # earliest presentation time, ticks
    duration: int                # ticks

    @property
    def size_bytes(self) -> int:
        return self.last_byte - self.first_byte + 1


@dataclass(frozen=True)
class Sidx:
    """A parsed `sidx` (ISO/IEC 14496-12, 8.16.3); offsets are absolute file offsets."""

    version: int
    reference_id: int
    timescale: int               # ticks per second
    earliest_presentation_time: int
    first_offset: int            # bytes from the anchor to the first referenced byte
    references: tuple[SidxReference, ...]
    box_offset: int              # file offset of the box's first byte
    box_size: int                # bytes, header included

    @property
    def anchor(self) -> int:
        """File offset of the first byte after the box: offsets in the box count from here."""
        return self.box_offset + self.box_size

    def subsegments(self) -> list[Subsegment]:
        """Media subsegments in order; raises `SidxUnsupported` for hierarchical indexes."""
        out: list[Subsegment] = []
        pos = self.anchor + self.first_offset
        t = self.earliest_presentation_time
        for i, ref in enumerate(self.references):
            if ref.reference_type == 1:
                raise SidxUnsupported(
                    f"hierarchical sidx (reference {i} points to another sidx) is not supported")
            if ref.referenced_size <= 0:
                raise SidxError(f"sidx reference {i} has referenced_size 0")
            out.append(Subsegment(pos, pos + ref.referenced_size - 1, t, ref.subsegment_duration))
            pos += ref.referenced_size
            t += ref.subsegment_duration
        return out


def parse_sidx(b: Box, *, offset: int = 0) -> Sidx:
    """Decode a `sidx` box. `offset` is the file offset of the buffer `b` was parsed from,
    so that `Sidx.anchor` and the subsegment byte ranges are absolute file offsets.

    Untrusted input: the reference count (16 bits: at most 65,535) is checked against the
    bytes present, so a box that claims more references than it holds is an error, never
    an over-read or a large allocation."""
    d = b.data
    box_offset = offset + b.offset

    def need(n: int, what: str) -> None:
        if len(d) < n:
            raise SidxError(f"sidx box at byte {box_offset} is truncated ({what})")

    need(4, "version/flags")
    version = d[0]
    if version > 1:
        raise SidxUnsupported(f"sidx version {version} is not supported (0 and 1 are)")
    fields = ">IIII" if version == 0 else ">IIQQ"
    pos = 4 + struct.calcsize(fields)
    need(pos + 4, "header")
    ref_id, timescale, ept, first_offset = struct.unpack_from(fields, d, 4)
    (count,) = struct.unpack_from(">H", d, pos + 2)
    pos += 4
    if timescale == 0:
        raise SidxError(f"sidx box at byte {box_offset} has timescale 0")
    need(pos + 12 * count, f"{count} references declared")
    refs = []
    for i in range(count):
        a, duration, c = struct.unpack_from(">III", d, pos + 12 * i)
        refs.append(SidxReference(reference_type=a >> 31, referenced_size=a & 0x7FFFFFFF,
                                  subsegment_duration=duration, starts_with_sap=bool(c >> 31),
                                  sap_type=(c >> 28) & 0x7, sap_delta_time=c & 0x0FFFFFFF))
    return Sidx(version=version, reference_id=ref_id, timescale=timescale,
                earliest_presentation_time=ept, first_offset=first_offset,
                references=tuple(refs), box_offset=box_offset, box_size=b.size)


def find_sidx(data: bytes | bytearray | memoryview, *, offset: int = 0) -> Sidx:
    """The first `sidx` among the top-level boxes of `data` (e.g. a DASH index range).

    `offset` is the file offset of `data[0]`. Boxes before the `sidx` (e.g. `styp`) are
    skipped and nothing after it is read; a malformed or missing box raises `SidxError`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("find_sidx expects bytes")
    if offset < 0:
        raise ValueError("offset must be >= 0")
    mv = memoryview(data)
    try:
        for typ, pos, size, hdr in iter_boxes(mv, base=offset):
            if typ == "sidx":
                return parse_sidx(Box(typ, pos, size, hdr, mv[pos + hdr:pos + size]), offset=offset)
    except SidxError:
        raise
    except BoxError as exc:
        raise SidxError(f"looking for a sidx box: {exc}") from None
    raise SidxError(f"no sidx box in {len(mv)} bytes")


def parse_pssh(b: Box) -> dict:
    v, _, d = b.full()
    _need(b, d, 20)
    system_id = bytes(d[:16])
    pos = 16
    kids = []
    if v > 0:
        cnt = int.from_bytes(d[pos:pos + 4], "big")
        pos += 4
        _need(b, d, pos + 16 * cnt + 4)
        kids = [bytes(d[pos + 16 * i:pos + 16 * i + 16]) for i in range(cnt)]
        pos += 16 * cnt
    _need(b, d, pos + 4)
    n = int.from_bytes(d[pos:pos + 4], "big")
    _need(b, d, pos + 4 + n)
    return {"version": v, "system_id": system_id, "kids": kids, "data": bytes(d[pos + 4:pos + 4 + n])}


def parse_tenc(b: Box) -> dict:
    v, _, d = b.full()
    _need(b, d, 20)
    return {"version": v, "is_protected": d[2], "iv_size": d[3], "kid": bytes(d[4:20])}


def parse_senc(b: Box, iv_size: int = 8) -> list[tuple[bytes, list[tuple[int, int]]]]:
    """[(iv, [(clear, protected), ...]), ...] per sample (empty list: whole sample protected)."""
    _, flags, d = b.full()
    _need(b, d, 4)
    n = int.from_bytes(d[:4], "big")
    pos = 4
    out = []
    for _ in range(n):
        _need(b, d, pos + iv_size)
        iv = bytes(d[pos:pos + iv_size])
        pos += iv_size
        subs = []
        if flags & 2:
            _need(b, d, pos + 2)
            cnt = int.from_bytes(d[pos:pos + 2], "big")
            pos += 2
            _need(b, d, pos + 6 * cnt)
            for _ in range(cnt):
                c, p = struct.unpack(">HI", d[pos:pos + 6])
                subs.append((c, p))
                pos += 6
        out.append((iv, subs))
    return out


def parse_saiz(b: Box) -> dict:
    _, flags, d = b.full()
    pos = 8 if flags & 1 else 0
    _need(b, d, pos + 5)
    default, n = d[pos], int.from_bytes(d[pos + 1:pos + 5], "big")
    sizes = [default] * n if default else list(d[pos + 5:pos + 5 + n])
    return {"default_size": default, "sample_count": n, "sizes": sizes}


def parse_saio(b: Box) -> list[int]:
    v, flags, d = b.full()
    pos = 8 if flags & 1 else 0
    _need(b, d, pos + 4)
    n = int.from_bytes(d[pos:pos + 4], "big")
    w = 8 if v == 1 else 4
    _need(b, d, pos + 4 + w * n)
    return [int.from_bytes(d[pos + 4 + w * i:pos + 4 + w * (i + 1)], "big") for i in range(n)]
