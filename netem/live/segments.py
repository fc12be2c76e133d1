"""Live media segments made from VoD ones: retimed, renumbered and, for low latency, chunked.

`parse_segment` reads a VoD media segment's boxes (never trusting a size field) into its
fragments and samples — sizes, durations, flags, composition offsets, CENC IVs and
subsamples, and where each sample's bytes lie — reading only the headers (`styp`,
`moof`, the `mdat` header), never the media payload.

`build` makes the live segment j of a track from that: `mfhd` sequence number = the
live `$Number$`, `tfdt` baseMediaDecodeTime = the segment's live media time. The result
is a list of pieces, literal header bytes and byte ranges of the VoD segment, so the
payload is still read lazily and a Range request costs what it asks for.

* When the live segment holds exactly the VoD samples and no chunking is asked, only
  `mfhd` and `tfdt` are patched in place: the live segment is byte for byte the VoD one
  but for those fields (sizes stay those of the content description). A VoD segment
  without `styp` gets one.
* Otherwise the fragments are rewritten with `netem.isobmff.moof`: when the track's live
  segment is longer or shorter than the VoD one (an AAC track following the video
  boundaries gains or loses one 1024-sample frame on some loops; the last sample is
  repeated or samples dropped, the last one shortened if the track has no fixed sample
  duration), when a 32-bit `tfdt` cannot hold the live time, and for low latency: one
  `moof`+`mdat` per CMAF chunk of `chunk_ticks`, a chunk closing at the first sample
  boundary at or after each multiple of `chunk_ticks` (livesim2's rule), the `styp` at
  the start of the first chunk. CENC samples keep their IVs and subsamples (`senc`,
  `saiz`, `saio` are written per chunk), so decryption is unchanged.

Boxes other than `styp`, `moof` and `mdat` (`sidx`, `emsg`, `prft`, `free`) are dropped.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Callable

from netem import isobmff
from netem.errors import BoxError

#: Bytes read at once from the start of a VoD segment (headers are usually inside).
PROBE_BYTES = 16 * 1024
#: A `moof` larger than this is refused (a file cannot make us read without bound).
MAX_MOOF_BYTES = 16 * 1024 * 1024
MAX_STYP_BYTES = 4096
#: Samples in one live segment (a repeated last sample cannot run away).
MAX_SAMPLES = 200_000
STYP = isobmff.styp()

Read = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Sample:
    offset: int  # of its bytes in the VoD segment
    size: int
    duration: int
    flags: int
    cts: int = 0
    iv: bytes | None = None
    subsamples: tuple[tuple[int, int], ...] | None = None


@dataclass
class VodFragment:
    moof_offset: int
    mdat_offset: int
    mdat_header: int
    mdat_size: int
    tfdt: int
    tfdt_version: int
    tfdt_pos: int  # absolute offset of the tfdt value
    mfhd_pos: int  # absolute offset of the mfhd sequence number
    samples: list[Sample]


@dataclass
class VodSegment:
    """A parsed VoD media segment (one track)."""

    size: int
    styp: bytes | None
    track_id: int
    fragments: list[VodFragment]
    subsample_encryption: bool

    @property
    def samples(self) -> list[Sample]:
        return [s for f in self.fragments for s in f.samples]

    @property
    def tfdt(self) -> int:
        return self.fragments[0].tfdt

    @property
    def duration(self) -> int:
        return sum(s.duration for s in self.samples)


class _Prefix:
    """Reads of a VoD segment, served from one probe of its first bytes when they fit."""

    def __init__(self, read: Read, size: int) -> None:
        self.read_fn, self.size = read, size
        self.buf = read(0, min(size, PROBE_BYTES))

    def read(self, a: int, b: int) -> bytes:
        b = min(b, self.size)
        if b <= len(self.buf):
            return self.buf[a:b]
        data = self.read_fn(a, b)
        if len(data) != b - a:
            raise BoxError(f"segment shorter than its boxes say (wanted bytes {a}-{b - 1})")
        return data


def _box_at(src: _Prefix, pos: int, where: str) -> tuple[str, int, int]:
    """(type, size, header size) of the box at `pos`."""
    head = src.read(pos, pos + 16)
    if len(head) < 8:
        raise BoxError(f"{where}: {len(head)} trailing bytes at offset {pos}, too few for a box header")
    size = int.from_bytes(head[:4], "big")
    typ = head[4:8].decode("latin-1")
    hdr = 8
    if size == 1:
        if len(head) < 16:
            raise BoxError(f"{where}: {typ!r} at offset {pos}: truncated largesize")
        size, hdr = int.from_bytes(head[8:16], "big"), 16
    elif size == 0:
        size = src.size - pos
    if size < hdr or pos + size > src.size:
        raise BoxError(f"{where}: {typ!r} at offset {pos}: size {size} does not fit the segment "
                       f"({src.size - pos} bytes left)")
    return typ, size, hdr


def parse_segment(read: Read, size: int, *, iv_size: int = 8, defaults: dict | None = None,
                  where: str = "segment") -> VodSegment:
    """The fragments and samples of a VoD media segment of `size` bytes read by `read(a, b)`.
    `defaults` are the init segment's `trex` defaults (default_sample_duration, …)."""
    src = _Prefix(read, size)
    pos = 0
    styp = None
    frags: list[VodFragment] = []
    pending: tuple | None = None  # a parsed moof waiting for its mdat
    track_id = None
    sub_enc = False
    while pos < size:
        typ, bsize, hdr = _box_at(src, pos, where)
        if typ == "styp" and pos == 0 and bsize <= MAX_STYP_BYTES:
            styp = src.read(0, bsize)
        elif typ == "moof":
            if pending is not None:
                raise BoxError(f"{where}: moof at offset {pos} follows a moof without its mdat")
            if bsize > MAX_MOOF_BYTES:
                raise BoxError(f"{where}: moof of {bsize} bytes at offset {pos} (limit {MAX_MOOF_BYTES})")
            pending = _parse_moof(src.read(pos, pos + bsize), pos, iv_size, defaults or {}, where)
            if track_id is not None and pending[0] != track_id:
                raise BoxError(f"{where}: fragments of several tracks in one segment")
            track_id = pending[0]
            sub_enc = sub_enc or pending[2]
        elif typ == "mdat":
            if pending is None:
                raise BoxError(f"{where}: mdat at offset {pos} without a moof before it")
            _, frag, _ = pending
            frag.mdat_offset, frag.mdat_header, frag.mdat_size = pos, hdr, bsize
            for s in frag.samples:
                if s.offset < pos + hdr or s.offset + s.size > pos + bsize:
                    raise BoxError(f"{where}: a sample at offset {s.offset} lies outside its mdat")
            frags.append(frag)
            pending = None
        pos += bsize
    if pending is not None or not frags:
        raise BoxError(f"{where}: no complete moof+mdat fragment")
    return VodSegment(size, styp, int(track_id), frags, sub_enc)


def _parse_moof(data: bytes, moof_offset: int, iv_size: int, defaults: dict, where: str):
    moof = isobmff.parse(data)[0]
    at = f"{where}: moof at offset {moof_offset}"
    mfhd = moof.find("mfhd")
    trafs = moof.find_all("traf")
    if mfhd is None or len(trafs) != 1:
        raise BoxError(f"{at}: expected one mfhd and one traf")
    traf = trafs[0]
    tfhd_box, tfdt_box = traf.find("tfhd"), traf.find("tfdt")
    truns = traf.find_all("trun")
    if tfhd_box is None or tfdt_box is None or not truns:
        raise BoxError(f"{at}: traf needs tfhd, tfdt and trun")
    tfhd = isobmff.parse_tfhd(tfhd_box)
    if tfhd["flags"] & 0x1:
        raise BoxError(f"{at}: tfhd base-data-offset is not supported (use default-base-is-moof)")
    tfdt_version = tfdt_box.full()[0]
    tfdt = isobmff.parse_tfdt(tfdt_box)
    merged = {**defaults, **{k: v for k, v in tfhd.items() if k.startswith("default_")}}
    senc_box = traf.find("senc")
    ivs = None
    sub_enc = False
    if senc_box is not None:
        sub_enc = bool(senc_box.full()[1] & 2)
        ivs = isobmff.parse_senc(senc_box, iv_size)
    samples: list[Sample] = []
    pos = None
    for trun_box in truns:
        run = isobmff.parse_trun(trun_box, merged)
        if run["data_offset"] is not None:
            pos = moof_offset + run["data_offset"]
        elif pos is None:
            raise BoxError(f"{at}: trun without a data offset")
        for size, dur, flags, cts in zip(run["sizes"], run["durations"], run["flags"], run["cts"]):
            if dur <= 0:
                raise BoxError(f"{at}: a sample of duration 0 (no duration in trun, tfhd or trex)")
            samples.append(Sample(pos, size, dur, flags, cts))
            pos += size
    if ivs is not None:
        if len(ivs) != len(samples):
            raise BoxError(f"{at}: senc lists {len(ivs)} samples, trun {len(samples)}")
        samples = [replace(s, iv=iv, subsamples=tuple(sub) if sub_enc else None) for s, (iv, sub) in zip(samples, ivs)]
    frag = VodFragment(moof_offset, 0, 0, 0, tfdt, tfdt_version,
                       moof_offset + tfdt_box.offset + tfdt_box.header_size + 4,
                       moof_offset + mfhd.offset + mfhd.header_size + 4, samples)
    return int(tfhd["track_id"]), frag, sub_enc


# -- the live segment ------------------------------------------------------------------------
class LiveSegment:
    """The bytes of one live segment: literal pieces and ranges of the VoD segment.

    `chunk_ends[c]` is the byte offset where CMAF chunk c ends and `chunk_end_ticks[c]`
    the media time (track ticks) of its last sample's end; a segment that is not chunked
    is one chunk."""

    def __init__(self, pieces: list, read_source: Read, chunk_ends: list[int], chunk_end_ticks: list[int]) -> None:
        self.pieces = pieces
        self._read_source = read_source
        self.offsets = [0]
        for p in pieces:
            self.offsets.append(self.offsets[-1] + (len(p) if isinstance(p, bytes) else p[1] - p[0]))
        self.size = self.offsets[-1]
        self.chunk_ends = chunk_ends
        self.chunk_end_ticks = chunk_end_ticks

    def read(self, a: int, b: int) -> bytes:
        """Bytes [a, b) of the live segment."""
        a, b = max(0, a), min(b, self.size)
        out = []
        for p, lo, hi in zip(self.pieces, self.offsets, self.offsets[1:]):
            if hi <= a or lo >= b:
                continue
            s, e = max(a, lo) - lo, min(b, hi) - lo
            if isinstance(p, bytes):
                out.append(p[s:e])
            else:
                out.append(self._read_source(p[0] + s, p[0] + e))
        return b"".join(out)


def fit_samples(samples: list[Sample], duration: int) -> list[Sample]:
    """The VoD samples filling exactly `duration` ticks: extra ones dropped, the last one
    repeated while short, the last kept one shortened to end on time."""
    if not samples:
        raise BoxError("a VoD segment without samples")
    out: list[Sample] = []
    cum = 0
    while cum < duration:
        if len(out) >= MAX_SAMPLES:
            raise BoxError(f"a live segment would need more than {MAX_SAMPLES} samples")
        s = samples[min(len(out), len(samples) - 1)]
        d = min(s.duration, duration - cum)
        out.append(s if d == s.duration else replace(s, duration=d))
        cum += d
    return out


def chunk_groups(samples: list[Sample], chunk_ticks: int | None) -> list[list[Sample]]:
    """Samples grouped into chunks: each closes at the first sample end at or after the
    next multiple of `chunk_ticks` (None: one group)."""
    if chunk_ticks is None:
        return [list(samples)]
    groups: list[list[Sample]] = [[]]
    cum = 0
    for s in samples:
        groups[-1].append(s)
        cum += s.duration
        if cum >= chunk_ticks * len(groups):
            groups.append([])
    return [g for g in groups if g]


def build(vod: VodSegment, read_source: Read, *, sequence: int, start: int, duration: int,
          chunk_ticks: int | None = None) -> LiveSegment:
    """Live segment starting at media time `start` (track ticks) lasting `duration` ticks,
    numbered `sequence`, from `vod` (whose bytes `read_source` reads)."""
    seq = sequence & 0xFFFFFFFF
    samples = vod.samples
    fitted = fit_samples(samples, duration)
    shift = start - vod.tfdt
    fits32 = all(f.tfdt_version == 1 or 0 <= f.tfdt + shift < 2 ** 32 for f in vod.fragments)
    if chunk_ticks is None and fits32 and fitted == samples:
        return _patched(vod, read_source, seq, shift, start + duration)
    return _rewritten(vod, read_source, fitted, seq, start, chunk_ticks)


def _patched(vod: VodSegment, read_source: Read, seq: int, shift: int, end_ticks: int) -> LiveSegment:
    pieces: list = [vod.styp or STYP]
    for f in vod.fragments:
        head = bytearray(read_source(f.moof_offset, f.mdat_offset + f.mdat_header))
        m = f.mfhd_pos - f.moof_offset
        head[m:m + 4] = struct.pack(">I", seq)
        t = f.tfdt_pos - f.moof_offset
        if f.tfdt_version == 1:
            head[t:t + 8] = struct.pack(">Q", f.tfdt + shift)
        else:
            head[t:t + 4] = struct.pack(">I", f.tfdt + shift)
        pieces += [bytes(head), (f.mdat_offset + f.mdat_header, f.mdat_offset + f.mdat_size)]
    seg = LiveSegment(pieces, read_source, [], [end_ticks])
    seg.chunk_ends = [seg.size]
    return seg


def _rewritten(vod: VodSegment, read_source: Read, samples: list[Sample], seq: int, start: int,
               chunk_ticks: int | None) -> LiveSegment:
    pieces: list = [vod.styp or STYP]
    ends: list[int] = []
    end_ticks: list[int] = []
    size = len(pieces[0])
    t = start
    for group in chunk_groups(samples, chunk_ticks):
        frag = isobmff.Fragment(
            seq, vod.track_id, t, [s.size for s in group], [s.duration for s in group],
            sample_flags=[s.flags for s in group], cts_offsets=[s.cts for s in group],
            ivs=[s.iv for s in group] if group[0].iv is not None else None,
            subsamples=[list(s.subsamples or ()) for s in group] if vod.subsample_encryption else None)
        payload = sum(s.size for s in group)
        head = isobmff.moof(frag) + isobmff.box_header("mdat", payload)
        pieces.append(head)
        ranges: list[list[int]] = []
        for s in group:
            if ranges and ranges[-1][1] == s.offset:
                ranges[-1][1] += s.size
            else:
                ranges.append([s.offset, s.offset + s.size])
        pieces += [(a, b) for a, b in ranges]
        size += len(head) + payload
        t += sum(s.duration for s in group)
        ends.append(size)
        end_ticks.append(t)
    return LiveSegment(pieces, read_source, ends, end_ticks)


# -- init segments -------------------------------------------------------------------------------
@dataclass(frozen=True)
class InitInfo:
    """What parsing media segments needs from an init segment."""

    track_id: int
    timescale: int
    iv_size: int  # per-sample IV bytes (8 when the track is not protected)
    defaults: dict  # trex default_sample_duration / _size / _flags
    kid: bytes | None  # the tenc default KID of a protected track


def parse_init(data: bytes, where: str = "init segment") -> InitInfo:
    """Track ID, media timescale, `trex` defaults and CENC `tenc` of an init segment."""
    top = isobmff.parse(data)
    traks = isobmff.find_all(top, "moov/trak")
    if len(traks) != 1:
        raise BoxError(f"{where}: expected one trak in moov, found {len(traks)}")
    tkhd, mdhd = traks[0].find("tkhd"), traks[0].find("mdia/mdhd")
    if tkhd is None or mdhd is None:
        raise BoxError(f"{where}: trak needs tkhd and mdia/mdhd")

    def field(b: isobmff.Box, v0: int, v1: int) -> int:
        v, _, d = b.full()
        at = v1 if v == 1 else v0
        if len(d) < at + 4:
            raise BoxError(f"{where}: {b.type} too short")
        return int.from_bytes(d[at:at + 4], "big")

    track_id, timescale = field(tkhd, 8, 16), field(mdhd, 8, 16)
    if timescale <= 0:
        raise BoxError(f"{where}: mdhd timescale is 0")
    defaults: dict = {}
    trex = isobmff.find(top, "moov/mvex/trex")
    if trex is not None:
        _, _, d = trex.full()
        if len(d) >= 20:
            dur, size, flags = struct.unpack(">III", bytes(d[8:20]))
            defaults = {"default_sample_duration": dur, "default_sample_size": size, "default_sample_flags": flags}
    iv_size, kid = 8, None
    stsd = traks[0].find("mdia/minf/stbl/stsd")
    for entry in (stsd.children if stsd is not None else []):
        tenc = entry.find("sinf/schi/tenc")
        if tenc is not None:
            t = isobmff.parse_tenc(tenc)
            if not t["iv_size"]:
                raise BoxError(f"{where}: constant-IV protection (no per-sample IVs) is not supported")
            iv_size, kid = int(t["iv_size"]), t["kid"]
    return InitInfo(track_id, timescale, iv_size, defaults, kid)
