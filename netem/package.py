"""DASH packaging of a content description: real ISO-BMFF of exactly the described sizes.

`SyntheticPresentation(content, addressing, audio, protection, seed)` is a *virtual* presentation:
it knows every file's path and size, and generates any byte range of any file on demand,
deterministically, without touching the disk (the emulated edge serves it from memory);
`write(out_dir)` stores the same bytes as files (`abrlab content make`).

Layout (`v0`…`vN-1` are the video rungs lowest first, `a0` the optional audio track)::

    manifest.mpd
    number    v0/init.mp4  v0/1.m4s v0/2.m4s …          SegmentTemplate $Number$ (startNumber 1)
    timeline  v0/init.mp4  v0/t0.m4s v0/t360000.m4s …   SegmentTemplate + SegmentTimeline, $Time$
    list      v0/init.mp4  v0/1.m4s v0/2.m4s …          SegmentList (one SegmentURL per segment)
    base      v0.mp4                                     SegmentBase: init, sidx, all fragments

Init segments are `ftyp` + `moov` (`mvhd`, one `trak` with an empty sample table whose
sample entry is `avc1`+`avcC` — SPS/PPS made for the rung's size — or `mp4a`+`esds`, and
`mvex`/`trex`). A media segment is `styp` + `moof` (`mfhd` sequence number = segment
number, `traf` with `tfhd` default-base-is-moof, `tfdt` = segment start, `trun` listing
every frame) + `mdat`; in SegmentBase files the fragments are `moof` + `mdat` (no `styp`)
after one `sidx`. Each segment (or fragment) is EXACTLY the size the description gives:
the `mdat` payload is padded to fit. Payload bytes are pseudo-random (PCG64 seeded by
(seed, track kind, rung, segment, 64 KiB block), so any range is generated alone); video
samples are framed as one length-prefixed NAL unit each (IDR first, then P slices) but are
not decodable
video — use `netem.encode` for that.

Timing: video timescale 90000; segment k starts at round(90000 × Σ earlier durations).
Audio (AAC-LC 48 kHz stereo, 1024-sample frames, timescale 48000) segment boundaries are
the video boundaries rounded to whole AAC frames, so audio segments differ from the video
ones by under half a frame (10.7 ms) each, never cumulatively; audio sizes are
bitrate × duration / 8. With `number` and `list`, `@duration` is used when segment k
starts at k × @duration (video: exactly, but for a shorter last segment; audio: within
one AAC frame, @duration being the video's nominal duration in audio ticks) and the
segment count follows from mediaPresentationDuration; otherwise a SegmentTimeline is
added so the MPD stays exact.

Protection (`netem.cenc.Protection`): `encv`/`enca` sample entries with `sinf`
(`frma`, `schm` 'cenc', `schi`/`tenc` with the default KID), `pssh` boxes (ClearKey,
Widevine stub, PlayReady stub) in `moov` and in the MPD, and per fragment
`saiz`/`saio`/`senc` with 8-byte per-sample IVs; the payload is AES-128-CTR encrypted
(video: subsamples keep the NAL length and header clear). Sizes still match exactly.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from netem import isobmff
from netem.cenc import MPD_NAMESPACES, simple_nal_subsample
from netem.content import Content, validate
from netem.errors import InputError

ADDRESSING = ("number", "timeline", "list", "base")
VIDEO_TIMESCALE = 90000
AUDIO_SAMPLE_RATE = 48000
AAC_FRAME = 1024
AUDIO_CODEC = "mp4a.40.2"
DEFAULT_AUDIO_BITRATE_BPS = 128_000.0
MANIFEST = "manifest.mpd"
PROFILE_LIVE = "urn:mpeg:dash:profile:isoff-live:2011"
PROFILE_ON_DEMAND = "urn:mpeg:dash:profile:isoff-on-demand:2011"
PROFILE_FULL = "urn:mpeg:dash:profile:full:2011"
#: A segment must fit a 31-bit `sidx` reference and a 32-bit `mdat`.
MAX_SEGMENT_BYTES = 2 ** 31 - 1
#: Frames (samples) in one segment: a description cannot make us list more in a `trun`.
MAX_SAMPLES_PER_SEGMENT = 100_000
MAX_SIDX_REFERENCES = 0xFFFF
_BLOCK = 1 << 16
_KIND_ID = {"video": 0, "audio": 1}
# Each synthetic video sample is one length-prefixed NAL unit whose header and first
# slice-header bits are real (first_mb_in_slice 0, slice_type I / P, pps 0), so demuxers
# that peek at slice headers see the key frames where the `trun` says they are.
_IDR = b"\x65\x88"
_NON_IDR = b"\x41\x9a"
_NAL_PREFIX = 6


def frame_rate_attr(fps: float) -> str:
    """`frameRate` as DASH writes it: "30", "25", "30000/1001"."""
    for num in (24000, 30000, 60000, 120000):
        if abs(fps - num / 1001) < 5e-4:
            return f"{num}/1001"
    f = Fraction(fps).limit_denominator(1000)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def xs_duration(seconds: float) -> str:
    s = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return f"PT{s or '0'}S"


def content_type(path: str) -> str:
    """The HTTP Content-Type for a presentation path."""
    if path.endswith(".mpd"):
        return "application/dash+xml"
    if path.lstrip("/").startswith("a"):
        return "audio/mp4"
    return "video/mp4"


# ------------------------------------------------------------------------------------------
# tracks
# ------------------------------------------------------------------------------------------
class Track:
    """One Representation: its init segment, its segments' timing and sizes, and bytes.

    `segment_bytes(i, a, b)` returns bytes [a, b) of segment `i` as packaged: with `styp`
    when segments are separate files, without it when they are SegmentBase fragments."""

    rep_id: str
    kind: str  # "video" | "audio"
    info: isobmff.TrackInfo
    bandwidth_bps: int
    frame_rate: float
    starts: np.ndarray  # int64 ticks, per segment
    durations: np.ndarray  # int64 ticks, per segment
    sizes: np.ndarray  # int64 bytes, per segment (= per fragment in SegmentBase files)
    protected: bool = False

    @property
    def timescale(self) -> int:
        return self.info.timescale

    @property
    def n_segments(self) -> int:
        return int(self.sizes.size)

    def init(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def segment_bytes(self, i: int, a: int, b: int, clear: bool = False) -> bytes:  # pragma: no cover
        raise NotImplementedError


class _Layout:
    """The fixed part of one synthetic segment and where its samples lie in the payload."""

    __slots__ = ("header", "offsets", "sizes", "ivs", "clear_bytes", "payload")

    def __init__(self, header: bytes, offsets: np.ndarray, sizes: np.ndarray, ivs, clear_bytes, payload: int):
        self.header, self.offsets, self.sizes = header, offsets, sizes
        self.ivs, self.clear_bytes, self.payload = ivs, clear_bytes, payload


class SyntheticTrack(Track):
    """A track whose fragments are made up to the described sizes (see module doc)."""

    def __init__(self, rep_id: str, kind: str, index: int, info: isobmff.TrackInfo, frame_rate: float,
                 starts: np.ndarray, durations: np.ndarray, sizes: np.ndarray, samples: np.ndarray,
                 *, seed: int, styp: bool, protection=None, where: str = "content"):
        self.rep_id, self.kind, self.index, self.info = rep_id, kind, index, info
        self.frame_rate = frame_rate
        self.bandwidth_bps = info.bitrate_bps
        self.starts = np.asarray(starts, dtype=np.int64)
        self.durations = np.asarray(durations, dtype=np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.frames = np.minimum(np.asarray(samples, dtype=np.int64), np.maximum(self.durations, 1))
        self.seed, self.styp, self.protection = int(seed), styp, protection
        self.protected = protection is not None
        self.min_sample = _NAL_PREFIX + 1 if kind == "video" else 1
        self._styp = isobmff.styp() if styp else b""
        self._init: bytes | None = None
        self.layout = functools.lru_cache(maxsize=256)(self._layout)
        many = np.flatnonzero(self.frames > MAX_SAMPLES_PER_SEGMENT)
        if many.size:
            i = int(many[0])
            raise InputError(f"segment {i} of {rep_id} would hold {self.frames[i]} frames, more than "
                             f"{MAX_SAMPLES_PER_SEGMENT}; is its duration right?", where=where)
        self._check(where)

    # -- sizes ---------------------------------------------------------------------------------
    def _header_len(self, n: int, uniform: bool) -> int:
        durs = [1] * n if uniform else [1] + [2] * (n - 1)
        f = isobmff.Fragment(1, self.info.track_id, 0, [self.min_sample] * n, durs,
                             default_flags=self._default_flags(),
                             ivs=[b"\0" * 8] * n if self.protected else None,
                             subsamples=[[(5, 0)]] * n if self.protected and self.kind == "video" else None)
        return len(self._styp) + len(isobmff.moof(f)) + 8

    def _default_flags(self) -> int:
        return isobmff.SAMPLE_NON_SYNC if self.kind == "video" else isobmff.SAMPLE_SYNC

    def _check(self, where: str) -> None:
        # header(n) <= h0 + per * n (upper bound: per-sample durations present)
        h2, h3 = self._header_len(2, False), self._header_len(3, False)
        self._per = h3 - h2
        self._h0 = h2 - 2 * self._per
        smallest = self._header_len(1, True) + self.min_sample
        big = np.flatnonzero(self.sizes > MAX_SEGMENT_BYTES)
        if big.size:
            i = int(big[0])
            raise InputError(f"segment {i} of {self.rep_id} is {self.sizes[i]} bytes; the limit is "
                             f"{MAX_SEGMENT_BYTES}", where=where)
        small = np.flatnonzero(self.sizes < smallest)
        if small.size:
            i = int(small[0])
            raise InputError(f"segment {i} of {self.rep_id} is {self.sizes[i]} bytes, smaller than the "
                             f"smallest valid fragment ({smallest} bytes)", where=where)

    def init(self) -> bytes:
        if self._init is None:
            p = self.protection
            self._init = isobmff.init_segment(self.info, kid=p.kid if p else None,
                                              pssh_boxes=p.pssh_boxes() if p else ())
        return self._init

    # -- one segment ---------------------------------------------------------------------------
    def _iv_base(self, i: int) -> int:
        h = hashlib.sha256(f"abrlab-iv/{self.seed}/{self.kind}/{self.index}/{i}".encode()).digest()
        return int.from_bytes(h[:8], "big")

    def _layout(self, i: int) -> _Layout:
        size = int(self.sizes[i])
        dur = int(self.durations[i])
        n = int(self.frames[i])
        fit = (size - self._h0) // (self._per + self.min_sample)
        n = max(1, min(n, fit))
        base, rem = divmod(dur, n)
        durs = [base + 1] * rem + [base] * (n - rem)
        ivs = subs = None
        if self.protected:
            b0 = self._iv_base(i)
            ivs = [((b0 + j) % (1 << 64)).to_bytes(8, "big") for j in range(n)]
        # the header does not depend on the sample sizes' values, only on their count
        dummy_subs = [[(0, 0)]] * n if self.protected and self.kind == "video" else None
        probe = isobmff.Fragment(i + 1, self.info.track_id, int(self.starts[i]), [0] * n, durs,
                                 default_flags=self._default_flags(), ivs=ivs, subsamples=dummy_subs)
        head_len = len(self._styp) + len(isobmff.moof(probe)) + 8
        payload = size - head_len
        if payload < n * self.min_sample:  # pragma: no cover - guarded by _check and `fit`
            raise AssertionError("segment too small for its samples")
        sizes = self._sample_sizes(payload, n)
        clear_bytes = None
        if self.protected and self.kind == "video":
            pairs = [simple_nal_subsample(int(s)) for s in sizes]
            clear_bytes = np.array([c for c, _ in pairs], dtype=np.int64)
            subs = [[p] for p in pairs]
        frag = isobmff.Fragment(i + 1, self.info.track_id, int(self.starts[i]), sizes.tolist(), durs,
                                default_flags=self._default_flags(), ivs=ivs, subsamples=subs)
        header = self._styp + isobmff.moof(frag) + isobmff.box_header("mdat", payload)
        assert len(header) == head_len
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        if self.protected and clear_bytes is None:
            clear_bytes = np.zeros(n, dtype=np.int64)
        return _Layout(header, offsets, sizes, ivs, clear_bytes, payload)

    def _sample_sizes(self, payload: int, n: int) -> np.ndarray:
        if self.kind == "video":  # the key frame weighs as much as eight others
            w = np.ones(n)
            w[0] = 8.0
            spare = payload - n * self.min_sample
            sizes = self.min_sample + np.floor(spare * w / w.sum()).astype(np.int64)
            sizes[0] += payload - int(sizes.sum())
            return sizes
        base, rem = divmod(payload, n)
        sizes = np.full(n, base, dtype=np.int64)
        sizes[:rem] += 1
        return sizes

    def _random(self, i: int, a: int, b: int) -> bytearray:
        out = bytearray(b - a)
        k = _KIND_ID[self.kind]
        for blk in range(a // _BLOCK, (b - 1) // _BLOCK + 1):
            g = np.random.Generator(np.random.PCG64([self.seed, k, self.index, i, blk]))
            lo = blk * _BLOCK
            chunk = g.bytes(_BLOCK)
            s, e = max(a, lo), min(b, lo + _BLOCK)
            out[s - a:e - a] = chunk[s - lo:e - lo]
        return out

    def _payload(self, i: int, lay: _Layout, a: int, b: int, clear: bool) -> bytes:
        buf = self._random(i, a, b)
        offs, sizes = lay.offsets, lay.sizes
        j0 = max(0, int(np.searchsorted(offs, a, side="right")) - 1)
        j1 = int(np.searchsorted(offs, b, side="left"))
        if self.kind == "video":
            for j in range(max(0, int(np.searchsorted(offs, a - _NAL_PREFIX, side="right"))), j1):
                o = int(offs[j])
                pre = (int(sizes[j]) - 4).to_bytes(4, "big") + (_IDR if j == 0 else _NON_IDR)
                s, e = max(a, o), min(b, o + _NAL_PREFIX)
                if s < e:
                    buf[s - a:e - a] = pre[s - o:e - o]
        if self.protected and not clear:
            p = self.protection
            for j in range(j0, j1):
                ps = int(offs[j]) + int(lay.clear_bytes[j])
                pe = int(offs[j]) + int(sizes[j])
                s, e = max(a, ps), min(b, pe)
                if s < e:
                    buf[s - a:e - a] = p.keystream_xor(bytes(buf[s - a:e - a]), lay.ivs[j], s - ps)
        return bytes(buf)

    def segment_bytes(self, i: int, a: int = 0, b: int | None = None, clear: bool = False) -> bytes:
        size = int(self.sizes[i])
        b = size if b is None else min(b, size)
        if a >= b:
            return b""
        lay = self.layout(i)
        h = len(lay.header)
        out = lay.header[a:b] if a < h else b""
        if b > h:
            out += self._payload(i, lay, max(a, h) - h, b - h, clear)
        return out


# ------------------------------------------------------------------------------------------
# the presentation
# ------------------------------------------------------------------------------------------
_SEG_RE = re.compile(r"^(?P<rep>[av]\d+)/(?:(?P<init>init\.mp4)|(?P<num>\d+)\.m4s|t(?P<time>\d+)\.m4s)$")
_BASE_RE = re.compile(r"^(?P<rep>[av]\d+)\.mp4$")


def _nominal(starts: np.ndarray, durs: np.ndarray, tol: int, total_s: float, timescale: int,
             hint_s: float | None = None) -> int | None:
    """The `@duration` to write when segment k starts within `tol` ticks of k × @duration
    (and the last one is no longer), and ceil(mediaPresentationDuration / @duration) counts
    exactly these segments — as a player computes it; else None (use a SegmentTimeline).
    Candidates: `hint_s` (the video's nominal duration, for audio), then the mean spacing."""
    n = int(durs.size)
    cands = [int(round(hint_s * timescale))] if hint_s else []
    cands.append(int(durs[0]) if n == 1 else int(round((int(starts[-1]) - int(starts[0])) / (n - 1))))
    k = np.arange(n, dtype=np.int64)
    for d in cands:
        if d <= 0:
            continue
        if np.any(np.abs(starts - starts[0] - k * d) > tol) or int(durs[-1]) > d + tol:
            continue
        if math.ceil(total_s * timescale / d - 1e-6) != n:
            continue
        return d
    return None


def timeline_xml(starts: np.ndarray, durs: np.ndarray, indent: str) -> list[str]:
    """A SegmentTimeline element listing these segments (runs of equal durations as `r`)."""
    lines = [f"{indent}<SegmentTimeline>"]
    i, n = 0, durs.size
    first = True
    while i < n:
        j = i
        while j + 1 < n and durs[j + 1] == durs[i] and starts[j + 1] == starts[j] + durs[j]:
            j += 1
        t = f' t="{int(starts[i])}"' if first or starts[i] != starts[i - 1] + durs[i - 1] else ""
        r = f' r="{j - i}"' if j > i else ""
        lines.append(f'{indent}  <S{t} d="{int(durs[i])}"{r}/>')
        first = False
        i = j + 1
    lines.append(f"{indent}</SegmentTimeline>")
    return lines


class Packaged:
    """A DASH presentation made of `Track`s: the manifest, the file map and byte ranges.

    Subclasses build the tracks (`SyntheticPresentation` from a content description,
    `netem.encode.EncodedPresentation` from real encoder output)."""

    def __init__(self, tracks: Sequence[Track], addressing: str, protection=None, title: str = "abrlab",
                 comment: str = "") -> None:
        if addressing not in ADDRESSING:
            raise InputError(f"addressing must be one of {', '.join(ADDRESSING)}; got {addressing!r}",
                             where="addressing")
        self.addressing = addressing
        self.protection = protection
        self.tracks = list(tracks)
        self.title = title
        self.comment = comment
        self._by_id = {t.rep_id: t for t in self.tracks}
        self._mpd: bytes | None = None
        self._files: dict[str, int] | None = None
        self._base_head: dict[str, bytes] = {}
        self._base_offsets: dict[str, np.ndarray] = {}
        if addressing == "base":
            for t in self.tracks:
                if t.n_segments > MAX_SIDX_REFERENCES:
                    raise InputError(f"SegmentBase addressing indexes at most {MAX_SIDX_REFERENCES} segments "
                                     f"in one sidx; this content has {t.n_segments}", where="addressing")

    # -- naming --------------------------------------------------------------------------------
    def init_path(self, t: Track) -> str:
        return f"{t.rep_id}.mp4" if self.addressing == "base" else f"{t.rep_id}/init.mp4"

    def segment_path(self, t: Track, i: int) -> str:
        """The file holding segment `i` (0-based): for SegmentBase, the one file of the track."""
        if self.addressing == "base":
            return f"{t.rep_id}.mp4"
        if self.addressing == "timeline":
            return f"{t.rep_id}/t{int(t.starts[i])}.m4s"
        return f"{t.rep_id}/{i + 1}.m4s"

    # -- SegmentBase files ---------------------------------------------------------------------
    def _base_header(self, t: Track) -> bytes:
        """init + sidx of a SegmentBase file."""
        h = self._base_head.get(t.rep_id)
        if h is None:
            h = t.init() + isobmff.sidx(t.info.track_id, t.timescale, t.sizes.tolist(), t.durations.tolist(),
                                        int(t.starts[0]), 0)
            self._base_head[t.rep_id] = h
            self._base_offsets[t.rep_id] = len(h) + np.concatenate(([0], np.cumsum(t.sizes))).astype(np.int64)
        return h

    def index_range(self, t: Track) -> tuple[int, int]:
        """(first, last) byte of the `sidx` in a SegmentBase file (inclusive, as the MPD says)."""
        init = len(t.init())
        return init, init + isobmff.sidx_size(t.n_segments) - 1

    # -- the manifest --------------------------------------------------------------------------
    def mpd(self) -> bytes:
        if self._mpd is None:
            self._mpd = self._build_mpd().encode("utf-8")
        return self._mpd

    def duration_s(self) -> float:
        video = [t for t in self.tracks if t.kind == "video"] or self.tracks
        t = video[0]
        return float(int(t.starts[-1]) + int(t.durations[-1]) - int(t.starts[0])) / t.timescale

    def _build_mpd(self) -> str:
        base = self.addressing == "base"
        profile = {"base": PROFILE_ON_DEMAND, "list": PROFILE_FULL}.get(self.addressing, PROFILE_LIVE)
        video = [t for t in self.tracks if t.kind == "video"]
        nominal_s = float(np.median(video[0].durations)) / video[0].timescale if video else 4.0
        ns = ['xmlns="urn:mpeg:dash:schema:mpd:2011"']
        if self.protection is not None:
            ns += [f'xmlns:{k}="{v}"' for k, v in MPD_NAMESPACES.items()]
        out = ['<?xml version="1.0" encoding="UTF-8"?>']
        if self.comment:
            out.append(f"<!-- {escape(self.comment).replace('--', '- -')} -->")
        out.append(f'<MPD {" ".join(ns)} type="static" profiles="{profile}" '
                   f'mediaPresentationDuration="{xs_duration(self.duration_s())}" '
                   f'minBufferTime="{xs_duration(max(1.0, round(2 * nominal_s, 3)))}">')
        out.append(f"  <ProgramInformation><Title>{escape(self.title)}</Title></ProgramInformation>")
        out.append('  <Period id="0" start="PT0S">')
        groups = [("video", video), ("audio", [t for t in self.tracks if t.kind == "audio"])]
        as_id = 0
        for kind, tracks in groups:
            if not tracks:
                continue
            out += self.adaptation_set(as_id, kind, tracks, base)
            as_id += 1
        out.append("  </Period>")
        out.append("</MPD>")
        return "\n".join(out) + "\n"

    def adaptation_set(self, as_id: int, kind: str, tracks: list[Track], base: bool,
                        template: Callable[[Track, str], list[str]] | None = None) -> list[str]:
        """One AdaptationSet's lines. `template(track, indent)` writes the SegmentTemplate
        instead of this presentation's own addressing (the live origin's hook)."""
        i1, i2, i3 = "    ", "      ", "        "
        templated = template is not None or self.addressing in ("number", "timeline")
        template = template or self._template
        attrs = [f'id="{as_id}"', f'contentType="{kind}"', f'mimeType="{kind}/mp4"']
        if base:
            attrs += ['subsegmentAlignment="true"', 'subsegmentStartsWithSAP="1"']
        else:
            attrs += ['segmentAlignment="true"', 'startWithSAP="1"']
        if kind == "video":
            attrs += [f'maxWidth="{max(t.info.width for t in tracks)}"',
                      f'maxHeight="{max(t.info.height for t in tracks)}"',
                      f'maxFrameRate="{frame_rate_attr(max(t.frame_rate for t in tracks))}"', 'par="16:9"'
                      if all(t.info.width * 9 == t.info.height * 16 for t in tracks) else ""]
        else:
            attrs.append('lang="und"')
        lines = [f"{i1}<AdaptationSet {' '.join(a for a in attrs if a)}>"]
        if self.protection is not None:
            lines += self.protection.mpd_content_protection(i2)
        if kind == "audio":
            lines.append(f'{i2}<Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>')
        t0 = tracks[0]
        shared_timing = all(np.array_equal(t.durations, t0.durations) and np.array_equal(t.starts, t0.starts)
                            and t.timescale == t0.timescale for t in tracks)
        if templated and shared_timing:
            lines += template(t0, i2)
        for t in tracks:
            r = [f'id="{t.rep_id}"', f'bandwidth="{int(t.bandwidth_bps)}"', f'codecs="{t.info.codec}"']
            if kind == "video":
                r += [f'width="{t.info.width}"', f'height="{t.info.height}"',
                      f'frameRate="{frame_rate_attr(t.frame_rate)}"', 'sar="1:1"']
            else:
                r += [f'audioSamplingRate="{t.info.sample_rate}"']
            inner: list[str] = []
            if kind == "audio":
                inner.append(f'{i3}<AudioChannelConfiguration '
                             f'schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" '
                             f'value="{t.info.channels}"/>')
            lines_before = lines
            lines = inner
            if base:
                first, last = self.index_range(t)
                lines.append(f"{i3}<BaseURL>{escape(self.init_path(t))}</BaseURL>")
                lines.append(f'{i3}<SegmentBase timescale="{t.timescale}" indexRange="{first}-{last}" '
                             f'indexRangeExact="true">')
                lines.append(f'{i3}  <Initialization range="0-{len(t.init()) - 1}"/>')
                lines.append(f"{i3}</SegmentBase>")
            elif not templated:
                lines += self._segment_list(t, i3)
            elif not shared_timing:
                lines += template(t, i3)
            lines = lines_before
            if inner:
                lines += [f"{i2}<Representation {' '.join(r)}>", *inner, f"{i2}</Representation>"]
            else:
                lines.append(f"{i2}<Representation {' '.join(r)}/>")
        lines.append(f"{i1}</AdaptationSet>")
        return lines

    def _nominal(self, t: Track) -> int | None:
        hint = None
        if t.kind == "audio":
            video = [v for v in self.tracks if v.kind == "video"]
            if video:
                v = video[0]
                d = _nominal(v.starts, v.durations, 0, self.duration_s(), v.timescale)
                hint = d / v.timescale if d else None
        return _nominal(t.starts, t.durations, AAC_FRAME if t.kind == "audio" else 0, self.duration_s(),
                        t.timescale, hint)

    def _template(self, t: Track, ind: str) -> list[str]:
        init = "$RepresentationID$/init.mp4"
        if self.addressing == "timeline":
            head = (f'{ind}<SegmentTemplate timescale="{t.timescale}" initialization="{init}" '
                    f'media="$RepresentationID$/t$Time$.m4s"')
            return [head + ">", *timeline_xml(t.starts, t.durations, ind + "  "), f"{ind}</SegmentTemplate>"]
        head = (f'{ind}<SegmentTemplate timescale="{t.timescale}" initialization="{init}" '
                f'media="$RepresentationID$/$Number$.m4s" startNumber="1"')
        nominal = self._nominal(t)
        pto = f' presentationTimeOffset="{int(t.starts[0])}"' if t.starts[0] else ""
        if nominal is not None:
            return [f'{head} duration="{nominal}"{pto}/>']
        return [head + f"{pto}>", *timeline_xml(t.starts, t.durations, ind + "  "), f"{ind}</SegmentTemplate>"]

    def _segment_list(self, t: Track, ind: str) -> list[str]:
        nominal = self._nominal(t)
        dur = f' duration="{nominal}"' if nominal is not None else ""
        lines = [f'{ind}<SegmentList timescale="{t.timescale}"{dur}>',
                 f'{ind}  <Initialization sourceURL="{escape(self.init_path(t))}"/>']
        if nominal is None:
            lines += timeline_xml(t.starts, t.durations, ind + "  ")
        lines += [f"{ind}  <SegmentURL media={quoteattr(self.segment_path(t, i))}/>" for i in range(t.n_segments)]
        lines.append(f"{ind}</SegmentList>")
        return lines

    # -- files -----------------------------------------------------------------------------------
    def files(self) -> dict[str, int]:
        """Every file of the presentation (relative path → size in bytes), manifest first."""
        if self._files is None:
            files = {MANIFEST: len(self.mpd())}
            for t in self.tracks:
                if self.addressing == "base":
                    files[self.init_path(t)] = len(t.init()) + isobmff.sidx_size(t.n_segments) + int(t.sizes.sum())
                    continue
                files[self.init_path(t)] = len(t.init())
                for i, s in enumerate(t.sizes.tolist()):
                    files[self.segment_path(t, i)] = s
            self._files = files
        return dict(self._files)

    def _resolve(self, path: str):
        """(track, what, index) for a path, or KeyError. what: init | segment | base | mpd."""
        p = path.lstrip("/")
        if p == MANIFEST:
            return None, "mpd", 0
        if self.addressing == "base":
            m = _BASE_RE.match(p)
            if m and m["rep"] in self._by_id:
                return self._by_id[m["rep"]], "base", 0
            raise KeyError(path)
        m = _SEG_RE.match(p)
        t = self._by_id.get(m["rep"]) if m else None
        if t is None:
            raise KeyError(path)
        if m["init"]:
            return t, "init", 0
        if self.addressing == "timeline" and m["time"] is not None:
            s = m["time"]
            if s != str(int(s)):
                raise KeyError(path)
            i = int(np.searchsorted(t.starts, int(s)))
            if i < t.n_segments and int(t.starts[i]) == int(s):
                return t, "segment", i
        elif self.addressing in ("number", "list") and m["num"] is not None:
            s = m["num"]
            if s == str(int(s)) and 1 <= int(s) <= t.n_segments:
                return t, "segment", int(s) - 1
        raise KeyError(path)

    def size(self, path: str) -> int:
        t, what, i = self._resolve(path)
        if what == "mpd":
            return len(self.mpd())
        if what == "init":
            return len(t.init())
        if what == "segment":
            return int(t.sizes[i])
        self._base_header(t)
        return int(self._base_offsets[t.rep_id][-1])

    def read(self, path: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of a file (`end` None or past the end: to the end), made on
        demand. KeyError for a path that is not part of the presentation."""
        return self._read(path, start, end, clear=False)

    def read_clear(self, path: str, start: int = 0, end: int | None = None) -> bytes:
        """As `read`, but media samples unencrypted (what `decrypt_segment` must give back)."""
        return self._read(path, start, end, clear=True)

    def _read(self, path: str, start: int, end: int | None, clear: bool) -> bytes:
        t, what, i = self._resolve(path)
        if start < 0 or (end is not None and end < 0):
            raise ValueError("byte positions must be non-negative")
        if what == "mpd":
            return self.mpd()[start:end]
        if what == "init":
            return t.init()[start:end]
        if what == "segment":
            return t.segment_bytes(i, start, end, clear)
        head = self._base_header(t)
        offs = self._base_offsets[t.rep_id]
        total = int(offs[-1])
        end = total if end is None else min(end, total)
        if start >= end:
            return b""
        parts = [head[start:end]] if start < len(head) else []
        if end > len(head):
            j0 = max(0, int(np.searchsorted(offs, start, side="right")) - 1)
            j1 = int(np.searchsorted(offs, end, side="left"))
            for j in range(j0, min(j1, t.n_segments)):
                o = int(offs[j])
                parts.append(t.segment_bytes(j, max(start, o) - o, min(end, int(offs[j + 1])) - o, clear))
        return b"".join(parts)

    def iter_file(self, path: str, chunk: int = 8 << 20) -> Iterable[bytes]:
        """A file's bytes in chunks of at most `chunk` bytes."""
        size = self.size(path)
        for a in range(0, size, chunk):
            yield self.read(path, a, min(size, a + chunk))

    def write(self, out_dir: str | os.PathLike) -> None:
        """Write every file under `out_dir` (created if needed): the bytes `read` gives."""
        root = Path(out_dir)
        root.mkdir(parents=True, exist_ok=True)
        for path in self.files():
            dest = root / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            with open(tmp, "wb") as fh:
                if self.addressing == "base" and path != MANIFEST:
                    for part in self.iter_file(path):
                        fh.write(part)
                else:
                    fh.write(self.read(path))
            os.replace(tmp, dest)

    def segment_urls(self) -> dict[str, list[tuple[str, tuple[int, int] | None]]]:
        """Per representation: [(path, byte range or None)] of init then media segments, as
        the MPD addresses them (ranges inclusive, SegmentBase only)."""
        out = {}
        for t in self.tracks:
            if self.addressing == "base":
                self._base_header(t)
                offs = self._base_offsets[t.rep_id]
                p = self.init_path(t)
                out[t.rep_id] = [(p, (0, len(t.init()) - 1))] + [
                    (p, (int(offs[i]), int(offs[i + 1]) - 1)) for i in range(t.n_segments)]
            else:
                out[t.rep_id] = [(self.init_path(t), None)] + [(self.segment_path(t, i), None)
                                                               for i in range(t.n_segments)]
        return out


class SyntheticPresentation(Packaged):
    """A content description packaged as DASH, generated on demand (see module doc)."""

    def __init__(self, content: Content, addressing: str = "number", audio: bool = False,
                 protection=None, seed: int = 0, *, audio_bitrate_bps: float | None = None) -> None:
        if addressing not in ADDRESSING:
            raise InputError(f"addressing must be one of {', '.join(ADDRESSING)}; got {addressing!r}",
                             where="addressing")
        self.content = content
        self.seed = int(seed)
        where = content.source or content.name
        styp = addressing != "base"
        durs_s = content.segment_durations_s
        ends = np.rint(np.cumsum(durs_s) * VIDEO_TIMESCALE).astype(np.int64)
        starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
        vdurs = ends - starts
        if np.any(vdurs <= 0):
            raise InputError("a segment is shorter than one tick of the 90 kHz timescale", where=where)
        total_ticks = int(ends[-1])
        tracks: list[Track] = []
        validate(content)  # codec, frame rate, picture size: the same rules as every reader's
        for r, rung in enumerate(content.rungs):
            w, h = int(rung.width) or 640, int(rung.height) or 360
            codec = rung.codec
            info = isobmff.TrackInfo("video", 1, VIDEO_TIMESCALE, codec, w, h,
                                     bitrate_bps=int(round(rung.bitrate_bps)), duration=total_ticks)
            frames = np.maximum(1, np.rint(durs_s * rung.frame_rate)).astype(np.int64)
            tracks.append(SyntheticTrack(f"v{r}", "video", r, info, rung.frame_rate, starts, vdurs,
                                         content.segment_sizes_bytes[:, r], frames, seed=self.seed, styp=styp,
                                         protection=protection, where=where))
        if audio:
            abr = float(audio_bitrate_bps or content.audio_bitrate_bps or DEFAULT_AUDIO_BITRATE_BPS)
            if not (math.isfinite(abr) and 8_000 <= abr <= 1_000_000):
                raise InputError(f"audio bitrate {abr:g} bit/s is out of range (8 kbit/s – 1 Mbit/s)",
                                 where="audio_bitrate_bps")
            fb = np.rint(np.cumsum(durs_s) * AUDIO_SAMPLE_RATE / AAC_FRAME).astype(np.int64)
            fb = np.maximum(fb, np.arange(1, fb.size + 1))
            fb = np.maximum.accumulate(np.maximum(fb, np.concatenate(([0], fb[:-1])) + 1))
            a_ends = fb * AAC_FRAME
            a_starts = np.concatenate(([0], a_ends[:-1]))
            a_durs = a_ends - a_starts
            a_sizes = np.maximum(1, np.rint(abr * a_durs / AUDIO_SAMPLE_RATE / 8.0)).astype(np.int64)
            info = isobmff.TrackInfo("audio", 2, AUDIO_SAMPLE_RATE, AUDIO_CODEC, sample_rate=AUDIO_SAMPLE_RATE,
                                     channels=2, bitrate_bps=int(round(abr)), duration=int(a_ends[-1]))
            tracks.append(SyntheticTrack("a0", "audio", 0, info, 0.0, a_starts, a_durs, a_sizes,
                                         a_durs // AAC_FRAME, seed=self.seed, styp=styp, protection=protection,
                                         where="audio"))
        comment = (f"abrlab synthetic presentation of {content.name!r}: segment sizes as described; "
                   "payload is deterministic filler, not decodable media")
        super().__init__(tracks, addressing, protection, title=content.name, comment=comment)


# ------------------------------------------------------------------------------------------
# ladders from the command line
# ------------------------------------------------------------------------------------------
_RATE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgG]?)\s*(?:bps|b/s|bit/s)?\s*$")


def parse_bitrate(text: str, where: str = "bitrate") -> float:
    """"300k", "1.2M", "4300000", "750kbps" → bits per second (k = 10³, M = 10⁶, G = 10⁹)."""
    m = _RATE_RE.match(str(text))
    if not m:
        raise InputError(f"{text!r} is not a bitrate (examples: 300k, 1.2M, 4300000)", where=where)
    v = float(m[1]) * {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}[m[2].lower()]
    if not (math.isfinite(v) and 1e3 <= v <= 1e10):
        raise InputError(f"bitrate {text!r} is out of range (1 kbit/s – 10 Gbit/s)", where=where)
    return v


def parse_ladder(text: str, where: str = "--ladder") -> list[float]:
    """"300k,750k,1.2M" → sorted bitrates in bit/s; duplicates and empty items are errors."""
    items = [s.strip() for s in str(text).split(",")]
    if not text or not text.strip() or any(not s for s in items):
        raise InputError(f"expected comma-separated bitrates such as 300k,750k,1.2M; got {text!r}", where=where)
    rates = [parse_bitrate(s, where=f"{where} item {i + 1}") for i, s in enumerate(items)]
    if len(set(rates)) != len(rates):
        raise InputError(f"the ladder lists a bitrate twice: {text!r}", where=where)
    if len(rates) > 64:
        raise InputError(f"{len(rates)} rungs; at most 64", where=where)
    return sorted(rates)
