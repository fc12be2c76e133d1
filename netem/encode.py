"""Real encoded DASH content: H.264 (libx264) and AAC through PyAV, packaged by us.

`encode_presentation(content, ...)` encodes a synthetic moving test pattern (numpy) at
every rung of the ladder — each rung's own width and height (width rounded up to even,
height up to a multiple of 4), or scaled down to `max_height` keeping the aspect ratio —
at the rung's bitrate (x264 CBR with filler data, 1-second VBV buffer, so segment sizes
stay within several percent of bitrate × duration), with an IDR frame forced at every
segment boundary, no B-frames and no scene-cut key frames; and, with `audio=True`, a tone
sweep as AAC-LC 48 kHz stereo. The encoder's packets are packaged by `netem.isobmff` —
not by FFmpeg's `mp4`/`dash` muxers — into exactly the layout `netem.package` uses for
synthetic content (same paths, same MPD writer, same addressing modes, same CENC with
NAL-aware subsamples), so every URL the MPD implies exists by construction (FFmpeg's
dash muxer, by contrast, names the first AAC segment after its primed start time,
`…-1024.m4s`, while its MPD says t="0").

Sizes are whatever the encoder produced, not a description's: `EncodedPresentation.content`
is the content description of the result (real segment sizes, codec strings), for the
simulator. The AAC encoder's priming frame (1024 samples of delay) is kept as the first
frame of the first segment and no edit list trims it, so the tone starts 21.3 ms late.

PyAV (`pip install abrlab[encode]`) is imported only when encoding.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

import numpy as np

from netem import isobmff
from netem.cenc import avc_subsamples
from netem.content import Content, Rung
from netem.errors import InputError
from netem.package import (
    AAC_FRAME,
    ADDRESSING,
    AUDIO_CODEC,
    AUDIO_SAMPLE_RATE,
    DEFAULT_AUDIO_BITRATE_BPS,
    Packaged,
    Track,
)

#: Refuse to encode more than this many video frames in total (all rungs): encoding is slow.
MAX_FRAMES = 2_000_000


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes removed)."""
    out = []
    n = len(data)
    i = data.find(b"\x00\x00\x01")
    while 0 <= i < n:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = n if j < 0 else j
        nal = data[start:end]
        if j >= 0 and nal.endswith(b"\x00"):  # 4-byte start code of the next NAL
            nal = nal.rstrip(b"\x00")
        if nal:
            out.append(nal)
        i = j
    return out


def annexb_to_length_prefixed(data: bytes, drop_types: frozenset = frozenset({7, 8, 9})) -> bytes:
    """Annex B → 4-byte length-prefixed NAL units (dropping SPS/PPS/AUD, which live in avcC)."""
    return b"".join(len(n).to_bytes(4, "big") + n for n in split_annexb(data) if (n[0] & 0x1F) not in drop_types)


def _video_timescale(fps: Fraction) -> tuple[int, int]:
    """(timescale, frame duration in ticks): 90 kHz when a frame is a whole number of ticks."""
    if (90000 * fps.denominator) % fps.numerator == 0:
        return 90000, 90000 * fps.denominator // fps.numerator
    return fps.numerator, fps.denominator


def _fps(rate: float) -> Fraction:
    for num in (24000, 30000, 60000):
        if abs(rate - num / 1001) < 5e-4:
            return Fraction(num, 1001)
    return Fraction(rate).limit_denominator(1000)


class _Pattern:
    """A moving test pattern in YUV 4:2:0: scrolling checkerboard with texture, a
    bouncing box, and chroma that drifts over time. Frames are slices of precomputed
    planes, so a frame costs a copy."""

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        self.w, self.h = width, height
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:height + 64, 0:width + 64]
        board = ((xx // 32 + yy // 32) % 2) * 120 + 50
        texture = rng.integers(0, 48, size=board.shape)
        self.y = (board + texture).astype(np.uint8)
        cy, cx = np.mgrid[0:height // 2, 0:width // 2]
        self.u = (128 + 60 * np.sin(cx / max(1, width / 2) * 2 * np.pi)).astype(np.uint8)
        self.v = (128 + 60 * np.cos(cy / max(1, height / 2) * 2 * np.pi)).astype(np.uint8)

    def frame(self, i: int) -> np.ndarray:
        w, h = self.w, self.h
        ox, oy = (3 * i) % 64, (2 * i) % 64
        y = self.y[oy:oy + h, ox:ox + w].copy()
        bw, bh = max(2, w // 6), max(2, h // 6)
        px = int((w - bw) * (0.5 + 0.5 * math.sin(i / 23.0)))
        py = int((h - bh) * (0.5 + 0.5 * math.sin(i / 17.0)))
        y[py:py + bh, px:px + bw] = 235
        shift = (i // 2) % (w // 2 or 1)
        u = np.roll(self.u, shift, axis=1)
        return np.concatenate([y, u.reshape(-1, w), self.v.reshape(-1, w)])


class EncodedTrack(Track):
    """A track held in memory as real encoded fragments (`moof`+`mdat` each)."""

    def __init__(self, rep_id: str, kind: str, info: isobmff.TrackInfo, frame_rate: float, bandwidth_bps: int,
                 starts, durations, fragments: list[bytes], clear_fragments: list[bytes] | None, *, styp: bool,
                 protection=None) -> None:
        self.rep_id, self.kind, self.info = rep_id, kind, info
        self.frame_rate, self.bandwidth_bps = frame_rate, bandwidth_bps
        self.starts = np.asarray(starts, dtype=np.int64)
        self.durations = np.asarray(durations, dtype=np.int64)
        self.protection = protection
        self.protected = protection is not None
        prefix = isobmff.styp() if styp else b""
        self._segs = [prefix + f for f in fragments]
        self._clear = [prefix + f for f in clear_fragments] if clear_fragments is not None else self._segs
        self.sizes = np.array([len(s) for s in self._segs], dtype=np.int64)
        p = protection
        self._init = isobmff.init_segment(info, kid=p.kid if p else None, pssh_boxes=p.pssh_boxes() if p else ())

    def init(self) -> bytes:
        return self._init

    def segment_bytes(self, i: int, a: int = 0, b: int | None = None, clear: bool = False) -> bytes:
        return (self._clear if clear else self._segs)[i][a:b]


def _fragment(seq: int, track_id: int, tfdt: int, samples: list[bytes], durs: list[int], flags: list[int] | None,
              protection, ivs: list[bytes] | None, video: bool) -> tuple[bytes, bytes]:
    """(fragment, clear fragment): `moof` + `mdat`, encrypted when `protection`."""
    subs = None
    data = samples
    if protection is not None:
        subs = [avc_subsamples(s) for s in samples] if video else None
        data = [protection.crypt_sample(s, iv, sub if video else None)
                for s, iv, sub in zip(samples, ivs, subs or [None] * len(samples))]
    f = isobmff.Fragment(seq, track_id, tfdt, [len(s) for s in samples], durs, sample_flags=flags,
                         default_flags=isobmff.SAMPLE_NON_SYNC if video else isobmff.SAMPLE_SYNC,
                         ivs=ivs, subsamples=subs)
    moof = isobmff.moof(f)
    payload = b"".join(data)
    out = moof + isobmff.box_header("mdat", len(payload)) + payload
    if protection is None:
        return out, out
    # the clear twin has the same boxes (same senc), only the samples differ
    return out, moof + isobmff.box_header("mdat", len(payload)) + b"".join(samples)


def _ivs(rep: int, seg: int, n: int, kind: int) -> list[bytes]:
    import hashlib

    b0 = int.from_bytes(hashlib.sha256(f"abrlab-enc-iv/{kind}/{rep}/{seg}".encode()).digest()[:8], "big")
    return [((b0 + j) % (1 << 64)).to_bytes(8, "big") for j in range(n)]


def _encode_video(r: int, rung: Rung, seg_ends_s: np.ndarray, *, max_height: int | None, preset: str,
                  protection, styp: bool, seed: int) -> EncodedTrack:
    import av

    w, h = int(rung.width) or 640, int(rung.height) or 360
    if max_height and h > max_height:
        w, h = round(w * max_height / h), max_height
    w, h = max(16, w + (w & 1)), max(16, -(-h // 4) * 4)  # 4:2:0 planes: even width, height a multiple of 4
    fps = _fps(rung.frame_rate)
    timescale, frame_ticks = _video_timescale(fps)
    bounds = [0] + [int(round(e * fps)) for e in seg_ends_s]
    bounds = sorted(set(bounds))
    n_frames = bounds[-1]
    if n_frames < 1:
        raise InputError("content too short to encode a single frame", where="--duration")
    seg_frames = max(b - a for a, b in zip(bounds, bounds[1:]))
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = w, h, "yuv420p"
    cc.time_base = 1 / fps
    cc.framerate = fps
    rate = int(round(rung.bitrate_bps))
    cc.bit_rate = rate
    cc.gop_size = seg_frames
    cc.max_b_frames = 0
    cc.flags = cc.flags | av.codec.context.Flags.global_header
    cc.options = {"preset": preset, "forced-idr": "1", "maxrate": str(rate),
                  "bufsize": str(int(rate)),
                  "x264-params": f"scenecut=0:keyint={seg_frames}:min-keyint=1:nal-hrd=cbr:force-cfr=1"}
    cc.open()
    nals = split_annexb(bytes(cc.extradata or b""))
    sps = tuple(n for n in nals if n[0] & 0x1F == 7)
    pps = tuple(n for n in nals if n[0] & 0x1F == 8)
    if not sps or not pps:  # pragma: no cover - libx264 always gives them with GLOBAL_HEADER
        raise RuntimeError("libx264 returned no SPS/PPS in its extradata")
    keyset = set(bounds[:-1])
    pattern = _Pattern(w, h, seed)
    packets: list[tuple[int, bool, bytes]] = []

    def take(pk_list) -> None:
        for p in pk_list:
            packets.append((int(p.pts), bool(p.is_keyframe), annexb_to_length_prefixed(bytes(p))))

    for i in range(n_frames):
        frame = av.VideoFrame.from_ndarray(pattern.frame(i), format="yuv420p")
        frame.pts = i
        if i in keyset:
            frame.pict_type = av.video.frame.PictureType.I
        take(cc.encode(frame))
    take(cc.encode(None))
    packets.sort()
    if len(packets) != n_frames:  # pragma: no cover
        raise RuntimeError(f"libx264 returned {len(packets)} packets for {n_frames} frames")
    codec = "avc1.%02x%02x%02x" % (sps[0][1], sps[0][2], sps[0][3])
    info = isobmff.TrackInfo("video", 1, timescale, codec, w, h, bitrate_bps=rate, sps=sps, pps=pps,
                             duration=n_frames * frame_ticks)
    frags, clears, starts, durs = [], [], [], []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        seg = packets[a:b]
        if not seg[0][1]:  # pragma: no cover - forced IDR
            raise RuntimeError(f"segment {k} of rung {r} does not start with a key frame")
        samples = [p[2] for p in seg]
        flags = [isobmff.SAMPLE_SYNC if p[1] else isobmff.SAMPLE_NON_SYNC for p in seg]
        ivs = _ivs(r, k, len(samples), 0) if protection else None
        f, c = _fragment(k + 1, 1, a * frame_ticks, samples, [frame_ticks] * len(samples), flags, protection, ivs,
                         True)
        frags.append(f)
        clears.append(c)
        starts.append(a * frame_ticks)
        durs.append((b - a) * frame_ticks)
    return EncodedTrack(f"v{r}", "video", info, float(fps), rate, starts, durs, frags,
                        clears if protection else None, styp=styp, protection=protection)


def _encode_audio(seg_ends_s: np.ndarray, bitrate_bps: float, *, protection, styp: bool) -> EncodedTrack:
    import av

    sr = AUDIO_SAMPLE_RATE
    cc = av.CodecContext.create("aac", "w")
    cc.sample_rate = sr
    cc.layout = "stereo"
    cc.format = "fltp"
    cc.bit_rate = int(round(bitrate_bps))
    cc.time_base = Fraction(1, sr)
    cc.flags = cc.flags | av.codec.context.Flags.global_header
    cc.open()
    asc = bytes(cc.extradata or b"") or isobmff.audio_specific_config(sr, 2)
    fb = [int(round(e * sr / AAC_FRAME)) for e in seg_ends_s]
    fb = [max(v, i + 1) for i, v in enumerate(fb)]
    for i in range(1, len(fb)):
        fb[i] = max(fb[i], fb[i - 1] + 1)
    n_in = fb[-1]
    packets: list[bytes] = []
    t = np.arange(AAC_FRAME) / sr
    phase = 0.0
    for i in range(n_in):
        f0 = 330.0 + 220.0 * (0.5 + 0.5 * math.sin(2 * math.pi * i * AAC_FRAME / sr / 5.0))
        x = 0.3 * np.sin(phase + 2 * math.pi * f0 * t)
        phase = (phase + 2 * math.pi * f0 * AAC_FRAME / sr) % (2 * math.pi)
        pcm = np.stack([x, 0.8 * x]).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="stereo")
        frame.sample_rate = sr
        frame.pts = i * AAC_FRAME
        packets += [bytes(p) for p in cc.encode(frame)]
    packets += [bytes(p) for p in cc.encode(None)]
    # packet m decodes at m × 1024 (the encoder's priming frame is packet 0); the last
    # segment takes whatever the encoder flushed beyond the input
    bounds = [0] + fb[:-1] + [len(packets)]
    info = isobmff.TrackInfo("audio", 2, sr, AUDIO_CODEC, sample_rate=sr, channels=2,
                             bitrate_bps=int(round(bitrate_bps)), asc=asc, duration=len(packets) * AAC_FRAME)
    frags, clears, starts, durs = [], [], [], []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        samples = packets[a:b]
        ivs = _ivs(0, k, len(samples), 1) if protection else None
        f, c = _fragment(k + 1, 2, a * AAC_FRAME, samples, [AAC_FRAME] * len(samples), None, protection, ivs, False)
        frags.append(f)
        clears.append(c)
        starts.append(a * AAC_FRAME)
        durs.append((b - a) * AAC_FRAME)
    return EncodedTrack("a0", "audio", info, 0.0, int(round(bitrate_bps)), starts, durs, frags,
                        clears if protection else None, styp=styp, protection=protection)


class EncodedPresentation(Packaged):
    """Real H.264/AAC content, packaged like `netem.package.SyntheticPresentation` (same API)."""

    def __init__(self, tracks, addressing: str, protection, title: str, content: Content) -> None:
        super().__init__(tracks, addressing, protection, title=title,
                         comment=f"abrlab encoded presentation {title!r}: H.264 (libx264) test pattern"
                                 + (" and AAC tone" if any(t.kind == "audio" for t in tracks) else ""))
        self.content = content


def encode_presentation(content: Content, addressing: str = "number", audio: bool = False, protection=None,
                        *, audio_bitrate_bps: float | None = None, max_height: int | None = None,
                        preset: str = "veryfast", seed: int = 0,
                        progress: Callable[[str], None] | None = None) -> EncodedPresentation:
    """Encode `content`'s ladder (its segment durations and rungs; its sizes are targets
    only) and package it. Returns a presentation held in memory."""
    try:
        import av  # noqa: F401
    except ImportError:  # pragma: no cover
        raise InputError("--encode needs PyAV: pip install 'abrlab[encode]'") from None

    if addressing not in ADDRESSING:
        raise InputError(f"addressing must be one of {', '.join(ADDRESSING)}; got {addressing!r}", where="addressing")
    ends = np.cumsum(content.segment_durations_s)
    total_frames = sum(int(round(content.duration_s * r.frame_rate)) for r in content.rungs)
    if total_frames > MAX_FRAMES:
        raise InputError(f"encoding would need {total_frames} frames (limit {MAX_FRAMES}); "
                         "use a shorter --duration or --max-duration", where="--encode")
    styp = addressing != "base"
    tracks: list[Track] = []
    for r, rung in enumerate(content.rungs):
        if progress:
            progress(f"encoding video rung {r} ({rung.bitrate_bps / 1e3:g} kbit/s)")
        tracks.append(_encode_video(r, rung, ends, max_height=max_height, preset=preset, protection=protection,
                                    styp=styp, seed=seed))
    abr = None
    if audio:
        abr = float(audio_bitrate_bps or content.audio_bitrate_bps or DEFAULT_AUDIO_BITRATE_BPS)
        if progress:
            progress(f"encoding audio ({abr / 1e3:g} kbit/s AAC)")
        tracks.append(_encode_audio(ends, abr, protection=protection, styp=styp))
    video = [t for t in tracks if t.kind == "video"]
    # a video rung's segments may differ in count from the description when segments are
    # shorter than a frame; every rung shares the same frame-rounded boundaries otherwise
    n = min(t.n_segments for t in video)
    durs = video[0].durations[:n] / video[0].timescale
    sizes = np.stack([t.sizes[:n] for t in video], axis=1)
    rungs = tuple(Rung(float(t.bandwidth_bps), t.info.width, t.info.height, t.info.codec, t.frame_rate)
                  for t in video)
    desc = Content(rungs, durs, sizes, name=f"{content.name}-encoded", source="encoded", format="encoded",
                   audio_bitrate_bps=abr)
    return EncodedPresentation(tracks, addressing, protection, f"{content.name} (encoded)", desc)
