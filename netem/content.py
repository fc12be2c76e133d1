"""Content descriptions: what a presentation is, for simulation and for the emulated edge.

A `Content` is a bitrate ladder (per rung: bitrate, resolution, codec, frame rate), the
duration of every segment, and every segment's size in bytes at every rung. Readers for
Sabre movie JSON, Pensieve `video_size_N` folders and our own JSON/TOML convert units on
read (kbit/s → bit/s, bits → bytes, ms → s); nothing downstream sees the files' units.

What a description may say is checked in one place, here, whoever made it: the numbers in
`Content.__post_init__` (so no sum or conversion can overflow), and the rungs' codec, frame
rate and picture size in `validate`, which every reader and the packager call. Every
command (simulate, compare, play, serve, content make) gets its content through them.
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from netem import isobmff
from netem.errors import InputError
from netem.inputfiles import MAX_FILE_BYTES, parse_json, parse_toml, read_regular_file
from netem.trace import MAX_DURATION_S, MAX_RATE_BPS, format_limit

FORMAT_TAG = "abrlab-content/1"
#: Pensieve's ladder (kbit/s in its source) for `video_size_N` folders with 6 files.
PENSIEVE_BITRATES_BPS = (300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3)
PENSIEVE_SEGMENT_S = 4.0
#: Refuse descriptions past this many segment × rung cells (a 10-hour 20-rung ladder of
#: 1 s segments is 720,000): a file cannot make us allocate without bound.
MAX_CELLS = 2_000_000
DEFAULT_CODEC = "avc1.64001f"

# -- bounds ---------------------------------------------------------------------------------
# A description is refused when a value lies outside these. With MAX_CELLS cells, sizes
# sum to at most 8.6e15 bytes (int64 holds 9.2e18), and a presentation's 90 kHz tick count
# stays below 2^53.

#: Largest segment, bytes: 4 GiB, what an ISO-BMFF box with a 32-bit size can hold, and 30
#: times a 10 s segment of 8K video at 100 Mbit/s (125 MB).
MAX_SEGMENT_BYTES = 2 ** 32
#: Highest frame rate, frames per second: 1000, 8 times the 120 fps of the fastest HEVC and
#: AV1 levels (the packager writes one sample per frame, so it bounds sample tables too).
MAX_FRAME_RATE = 1000.0
#: Widest or tallest picture, pixels: 16,384, the most any H.264/HEVC level allows in one
#: dimension; 0 means "not given" (readers and the packager pick a conventional size).
MAX_PICTURE_SIDE = 16_384
#: A rung's codec: an RFC 6381 string, a four-character code then dot-separated parts of
#: letters, digits, '-' or '_' ("avc1.64001f", "hvc1.1.6.L93.B0", "av01.0.08M.08"). Nothing
#: that could end an XML attribute or add another codec to a `codecs` list.
CODEC_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{3}(\.[A-Za-z0-9_-]+)*\Z")
MAX_CODEC_CHARS = 100
# Rung bitrates and the audio bitrate are rates like a trace's: at most MAX_RATE_BPS.
# The presentation lasts at most MAX_DURATION_S, like a trace's period.
_NUMBER_TYPES = frozenset((int, float))


@dataclass(frozen=True)
class Rung:
    """One representation of the ladder."""

    bitrate_bps: float
    width: int = 0
    height: int = 0
    codec: str = DEFAULT_CODEC
    frame_rate: float = 30.0


@dataclass(frozen=True, eq=False)
class Content:
    """A presentation: rungs lowest-first, per-segment durations and sizes (bytes)."""

    rungs: tuple[Rung, ...]
    segment_durations_s: np.ndarray
    segment_sizes_bytes: np.ndarray  # (segments, rungs) int64
    name: str = "content"
    source: str = ""
    format: str = "memory"
    audio_bitrate_bps: float | None = None
    extra: dict = field(default_factory=dict, repr=False)
    #: how a low-latency origin sends each segment: the bytes of each CMAF chunk (moof + mdat),
    #: (segments, rungs, chunks), for chunks of `chunk_duration_s`; None when not known
    chunk_sizes_bytes: np.ndarray | None = field(default=None, repr=False)
    chunk_duration_s: float | None = None

    def __post_init__(self) -> None:
        """The numbers: shapes, and every value positive, finite and within the bounds above."""
        where = self.source or self.name
        d = np.asarray(self.segment_durations_s, dtype=np.float64)
        s = np.asarray(self.segment_sizes_bytes, dtype=np.float64)
        if not self.rungs:
            raise InputError("content needs at least one rung", where=where)
        b = np.array([r.bitrate_bps for r in self.rungs], dtype=np.float64)
        i = _first_bad(b, MAX_RATE_BPS)
        if i >= 0:
            raise InputError(f"rungs[{i}]: bitrate {float(b[i])!r} bit/s {_problem(b[i], MAX_RATE_BPS, 'bit/s (MAX_RATE_BPS)')}",
                             where=where)
        if np.any(np.diff(b) <= 0):
            raise InputError("rung bitrates must be strictly increasing (lowest first)", where=where)
        if d.ndim != 1 or d.size == 0:
            raise InputError("content needs at least one segment", where=where)
        i = _first_bad(d, MAX_DURATION_S)
        if i >= 0:
            raise InputError(f"segment {i}: duration {float(d[i])!r} s {_problem(d[i], MAX_DURATION_S, 's (MAX_DURATION_S)')}", where=where)
        if not d.sum() <= MAX_DURATION_S:
            raise InputError(f"the segments last {d.sum():g} s, above the limit of {MAX_DURATION_S:g} s "
                             "(MAX_DURATION_S)", where=where)
        if s.shape != (d.size, b.size):
            raise InputError(
                f"segment sizes must be {d.size} segments × {b.size} rungs, got shape {s.shape}", where=where)
        i = _first_bad(s.ravel(), MAX_SEGMENT_BYTES)
        if i >= 0:
            seg, rung = divmod(i, b.size)
            value = float(s[seg, rung])
            raise InputError(f"segment {seg}, rung {rung}: size {value!r} bytes "
                             f"{_problem(value, MAX_SEGMENT_BYTES, 'bytes (MAX_SEGMENT_BYTES)')}", where=where)
        if self.audio_bitrate_bps is not None and _first_bad(np.array([self.audio_bitrate_bps]), MAX_RATE_BPS) >= 0:
            raise InputError(f"audio_bitrate_bps {self.audio_bitrate_bps!r} "
                             f"{_problem(float(self.audio_bitrate_bps), MAX_RATE_BPS, 'bit/s (MAX_RATE_BPS)')}", where=where)
        object.__setattr__(self, "segment_durations_s", d)
        object.__setattr__(self, "segment_sizes_bytes", np.rint(s).astype(np.int64))
        if self.chunk_sizes_bytes is not None:
            c = np.asarray(self.chunk_sizes_bytes, dtype=np.float64)
            if c.ndim != 3 or c.shape[:2] != (d.size, b.size) or c.shape[2] < 1:
                raise InputError(f"chunk sizes must be {d.size} segments × {b.size} rungs × chunks, got shape "
                                 f"{c.shape}", where=f"{where}: chunks.sizes_bytes")
            i = _first_bad(c.ravel(), MAX_SEGMENT_BYTES)
            if i >= 0:
                seg, rest = divmod(i, b.size * c.shape[2])
                rung, chunk = divmod(rest, c.shape[2])
                raise InputError(f"segment {seg}, rung {rung}, chunk {chunk}: size {float(c.ravel()[i])!r} bytes "
                                 f"{_problem(float(c.ravel()[i]), MAX_SEGMENT_BYTES, 'bytes')}",
                                 where=f"{where}: chunks.sizes_bytes")
            cd = self.chunk_duration_s
            if cd is None or not (0 < cd <= float(d.min())):
                raise InputError(f"chunk duration {cd!r} s must be positive and at most a segment "
                                 f"({float(d.min()):g} s)", where=f"{where}: chunks.duration_s")
            object.__setattr__(self, "chunk_sizes_bytes", np.rint(c).astype(np.int64))
            object.__setattr__(self, "chunk_duration_s", float(cd))

    def chunk_layout(self, chunk_s: float | None) -> np.ndarray | None:
        """(segments, rungs, chunks) bytes of each chunk when the description has them for
        chunks of `chunk_s` seconds, else None (the caller models the split)."""
        if self.chunk_sizes_bytes is None or chunk_s is None or abs(self.chunk_duration_s - chunk_s) > 1e-9:
            return None
        return self.chunk_sizes_bytes

    @property
    def bitrates_bps(self) -> np.ndarray:
        return np.array([r.bitrate_bps for r in self.rungs], dtype=np.float64)

    @property
    def n_segments(self) -> int:
        return int(self.segment_durations_s.size)

    @property
    def n_rungs(self) -> int:
        return len(self.rungs)

    @property
    def duration_s(self) -> float:
        return float(self.segment_durations_s.sum())

    @property
    def segment_duration_s(self) -> float:
        """The nominal (most common) segment duration."""
        vals, counts = np.unique(self.segment_durations_s, return_counts=True)
        return float(vals[np.argmax(counts)])

    def truncated(self, max_duration_s: float) -> "Content":
        """The first segments covering at most `max_duration_s` (at least one segment)."""
        n = max(1, int(np.searchsorted(np.cumsum(self.segment_durations_s), max_duration_s + 1e-9, side="right")))
        return Content(self.rungs, self.segment_durations_s[:n], self.segment_sizes_bytes[:n], name=self.name,
                       source=self.source, format=self.format, audio_bitrate_bps=self.audio_bitrate_bps)

    def summary(self) -> dict:
        return {
            "name": self.name, "format": self.format, "segments": self.n_segments,
            "duration_s": self.duration_s, "segment_duration_s": self.segment_duration_s,
            "bitrates_bps": self.bitrates_bps.tolist(),
            "mean_bitrate_bps": (self.segment_sizes_bytes.sum(axis=0) * 8 / self.duration_s).tolist(),
        }

    def to_dict(self) -> dict:
        durs = self.segment_durations_s
        out: dict = {"format": FORMAT_TAG, "name": self.name}
        if np.all(durs == durs[0]):
            out["segment_duration_s"] = float(durs[0])
        else:
            out["segment_durations_s"] = durs.tolist()
        out["rungs"] = [r.__dict__.copy() for r in self.rungs]
        if self.audio_bitrate_bps:
            out["audio_bitrate_bps"] = self.audio_bitrate_bps
        out["segment_sizes_bytes"] = self.segment_sizes_bytes.tolist()
        if self.chunk_sizes_bytes is not None:
            out["chunks"] = {"duration_s": self.chunk_duration_s, "sizes_bytes": self.chunk_sizes_bytes.tolist()}
        return out


def _first_bad(values: np.ndarray, high: float) -> int:
    """Index of the first value outside (0, high] (NaN included), or -1."""
    if values.size and values.min() > 0 and values.max() <= high:
        return -1
    return int(np.argmin((values > 0) & (values <= high)))


def _problem(value: float, high: float, unit: str) -> str:
    if not math.isfinite(value):
        return "is not finite"
    return "is not positive" if value <= 0 else f"is above the limit of {format_limit(high)} {unit}"


def validate(content: Content) -> Content:
    """Check what the numbers alone cannot: each rung's codec (`CODEC_PATTERN`; for avc1 and
    avc3 also the avc1.PPCCLL form the packager needs), frame rate (0, MAX_FRAME_RATE] and
    picture size (0 = not given, or 1..MAX_PICTURE_SIDE). Returns `content` unchanged.

    Every reader calls it, and so does the packager for descriptions built in code, so a
    description is judged the same way by every command.
    """
    where = content.source or content.name
    for i, rung in enumerate(content.rungs):
        codec = rung.codec
        if not (isinstance(codec, str) and len(codec) <= MAX_CODEC_CHARS and CODEC_PATTERN.match(codec)):
            raise InputError(f"{codec!r:.120} is not an RFC 6381 codec string (a four-character code, then "
                             "dot-separated letters, digits, '-' or '_')", where=f"{where}: rungs[{i}].codec")
        if codec.split(".", 1)[0] in ("avc1", "avc3"):
            try:
                isobmff.parse_avc_codec(codec)
            except ValueError as exc:
                raise InputError(str(exc), where=f"{where}: rungs[{i}].codec") from None
        fps = rung.frame_rate
        if not (isinstance(fps, (int, float, np.number)) and not isinstance(fps, bool) and 0 < fps <= MAX_FRAME_RATE):
            raise InputError(f"frame rate {fps!r} is out of range (0, {MAX_FRAME_RATE:g}] frames per second",
                             where=f"{where}: rungs[{i}].frame_rate")
        for name in ("width", "height"):
            v = getattr(rung, name)
            if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= MAX_PICTURE_SIDE):
                raise InputError(f"{name} {v!r} is out of range (0 = not given, else 1 – {MAX_PICTURE_SIDE} pixels)",
                                 where=f"{where}: rungs[{i}].{name}")
    return content


# -- resolution defaults -------------------------------------------------------------------
_LADDER_RES = [(0, 256, 144), (350e3, 426, 240), (700e3, 640, 360), (1.1e6, 854, 480), (2.2e6, 1280, 720),
               (4.5e6, 1920, 1080), (9e6, 2560, 1440), (16e6, 3840, 2160)]


def default_resolution(bitrate_bps: float) -> tuple[int, int]:
    """A conventional resolution for an H.264 rung of this bitrate (for ladders that lack one)."""
    w, h = 256, 144
    for floor, ww, hh in _LADDER_RES:
        if bitrate_bps >= floor:
            w, h = ww, hh
    return w, h


def rungs_from_bitrates(bitrates_bps, codec: str = DEFAULT_CODEC, frame_rate: float = 30.0) -> tuple[Rung, ...]:
    return tuple(Rung(float(b), *default_resolution(float(b)), codec=codec, frame_rate=frame_rate)
                 for b in bitrates_bps)


# -- readers ---------------------------------------------------------------------------------
def load(path: str | Path) -> Content:
    """Read a content description, choosing the format by content (extension as a hint).

    Files are read through `netem.inputfiles` (regular files only, at most MAX_FILE_BYTES,
    JSON nesting bounded); every reader ends in `Content` and `validate`.
    """
    p = Path(path)
    where = str(path)
    if p.is_dir():
        return _load_pensieve_dir(p)
    text = read_regular_file(p, "content description").decode("utf-8", errors="replace").strip()
    if not text:
        raise InputError("empty file", where=where)
    if p.suffix.lower() == ".toml" or (not text.startswith(("{", "[")) and "=" in text.splitlines()[0]):
        return from_dict(parse_toml(text, where), where=where, fmt="abrlab-toml")
    doc = parse_json(text, where)
    if not isinstance(doc, dict):
        raise InputError("expected a JSON object", where=where)
    if "segment_sizes_bits" in doc or "bitrates_kbps" in doc:
        return _from_sabre(doc, where, name=p.stem)
    return from_dict(doc, where=where, fmt="abrlab-json", default_name=p.stem)


def _field(doc: dict, key: str, where: str):
    if key not in doc:
        raise InputError(f"missing field {key!r}", where=where)
    return doc[key]


def _positive_number(value, key: str, where: str, high: float, unit: str) -> float:
    """One number in (0, high]: an int or a float in the file, not a string or a bool."""
    if type(value) not in _NUMBER_TYPES:
        raise InputError(f"field {key!r} must be a positive number, got {value!r:.60}", where=where)
    number = _as_float(value)
    if not (0 < number <= high):
        raise InputError(f"field {key!r}: {value!r:.60} {_problem(number, high, unit)}", where=where)
    return number


def _as_float(value: int | float) -> float:
    """float(value), with integers beyond any float as ±inf (so they fail a bound, not crash)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _numeric_array(value, key: str, where: str, *, high: float, unit: str, width: int | None = None) -> np.ndarray:
    """A list of numbers, or with `width` a list of lists of `width` numbers (one list per
    segment, one number per rung), as float64; every value in (0, high], `high` and `unit`
    in the file's own unit. Errors name the segment (and rung) and the value."""
    rows = width is not None
    if not isinstance(value, list) or not value:
        raise InputError(f"field {key!r} must be a non-empty list of "
                         f"{'lists of numbers (one list per segment)' if rows else 'numbers'}", where=where)
    flat = value
    if rows:
        if not set(map(type, value)) <= {list}:
            i = next(i for i, row in enumerate(value) if type(row) is not list)
            raise InputError(f"field {key!r}: segment {i} is {value[i]!r:.60}, not a list of sizes", where=where)
        lengths = np.fromiter(map(len, value), dtype=np.int64, count=len(value))
        short = np.flatnonzero(lengths != width)
        if short.size:
            i = int(short[0])
            raise InputError(f"field {key!r}: segment {i} has {lengths[i]} size{'' if lengths[i] == 1 else 's'}, "
                             f"expected {width} (one per rung)", where=where)
        if len(value) * width > MAX_CELLS:
            raise InputError(f"field {key!r} has {len(value) * width} values, more than the limit {MAX_CELLS}",
                             where=where)
        flat = list(chain.from_iterable(value))
    elif len(value) > MAX_CELLS:
        raise InputError(f"field {key!r} has {len(value)} values, more than the limit {MAX_CELLS}", where=where)
    cols = width if rows else 1
    if set(map(type, flat)) <= _NUMBER_TYPES:
        try:
            arr = np.fromiter(flat, dtype=np.float64, count=len(flat))
        except OverflowError:  # an integer beyond any float: find it below
            arr = None
        if arr is not None and _first_bad(arr, high) < 0:
            return arr.reshape(-1, cols) if rows else arr
    for i, v in enumerate(flat):  # the error path: name the first bad value
        at = f"segment {i // cols}, rung {i % cols}" if rows else f"[{i}]"
        if type(v) not in _NUMBER_TYPES:
            raise InputError(f"field {key!r}: {at}: expected a number, got {v!r:.60}", where=where)
        number = _as_float(v)
        if not (0 < number <= high):
            shown = repr(v) if len(repr(v)) <= 40 else f"an integer of {len(str(abs(v))):,} digits"
            raise InputError(f"field {key!r}: {at}: {shown} {_problem(number, high, unit)}", where=where)
    raise AssertionError("unreachable")  # pragma: no cover


def _from_sabre(doc: dict, where: str, name: str) -> Content:
    """Sabre's movie JSON: segment_duration_ms, bitrates_kbps, segment_sizes_bits[segment][rung]."""
    seg_ms = _positive_number(_field(doc, "segment_duration_ms", where), "segment_duration_ms", where,
                              MAX_DURATION_S * 1000, "ms (MAX_DURATION_S)")
    kbps = _numeric_array(_field(doc, "bitrates_kbps", where), "bitrates_kbps", where,
                          high=MAX_RATE_BPS / 1000, unit="kbit/s (MAX_RATE_BPS)")
    bits = _numeric_array(_field(doc, "segment_sizes_bits", where), "segment_sizes_bits", where,
                          high=MAX_SEGMENT_BYTES * 8, unit="bits (MAX_SEGMENT_BYTES)", width=kbps.size)
    n = bits.shape[0]
    return validate(Content(rungs_from_bitrates(kbps * 1000.0), np.full(n, seg_ms / 1000.0), np.rint(bits / 8.0),
                            name=name, source=where, format="sabre-json"))


_RUNG_FIELDS = ("bitrate_bps", "width", "height", "codec", "frame_rate")


def from_dict(doc: dict, where: str = "content", fmt: str = "abrlab-json", default_name: str = "content") -> Content:
    """Our own format (JSON or TOML): see README, "Content descriptions"."""
    rungs_raw = _field(doc, "rungs", where)
    if not isinstance(rungs_raw, list) or not rungs_raw:
        raise InputError("field 'rungs' must be a non-empty list", where=where)
    rungs = [_rung(r, f"{where}: rungs[{i}]") for i, r in enumerate(rungs_raw)]
    sizes = _numeric_array(_field(doc, "segment_sizes_bytes", where), "segment_sizes_bytes", where,
                           high=MAX_SEGMENT_BYTES, unit="bytes (MAX_SEGMENT_BYTES)", width=len(rungs))
    if "segment_durations_s" in doc:
        durs = _numeric_array(doc["segment_durations_s"], "segment_durations_s", where,
                              high=MAX_DURATION_S, unit="s (MAX_DURATION_S)")
    else:
        d = _positive_number(_field(doc, "segment_duration_s", where), "segment_duration_s", where,
                             MAX_DURATION_S, "s (MAX_DURATION_S)")
        durs = np.full(sizes.shape[0], d)
    audio = doc.get("audio_bitrate_bps")
    if audio is not None:
        audio = _positive_number(audio, "audio_bitrate_bps", where, MAX_RATE_BPS, "bit/s (MAX_RATE_BPS)")
    chunk_sizes, chunk_s = _chunks(doc.get("chunks"), where)
    return validate(Content(tuple(rungs), durs, sizes, name=str(doc.get("name", default_name)), source=where,
                            format=fmt, audio_bitrate_bps=audio, chunk_sizes_bytes=chunk_sizes,
                            chunk_duration_s=chunk_s))


def _chunks(raw, where: str) -> tuple[np.ndarray | None, float | None]:
    """The optional "chunks" object: {"duration_s": chunk seconds, "sizes_bytes": per segment,
    per rung, each chunk's bytes}; Content checks the shape and the values."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict) or set(raw) != {"duration_s", "sizes_bytes"}:
        raise InputError("field 'chunks' must be an object with 'duration_s' and 'sizes_bytes'", where=where)
    d = _positive_number(raw["duration_s"], "chunks.duration_s", where, MAX_DURATION_S, "s (MAX_DURATION_S)")
    try:
        sizes = np.asarray(raw["sizes_bytes"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("field 'chunks.sizes_bytes' must be a list (segments) of lists (rungs) of lists of "
                         "numbers (chunks), all of one shape", where=where) from None
    return sizes, d


def _rung(raw, where: str) -> Rung:
    """One rung of our format; absent width and height get `default_resolution`'s."""
    if not isinstance(raw, dict) or "bitrate_bps" not in raw:
        raise InputError("each rung needs at least 'bitrate_bps'", where=where)
    unknown = set(raw) - set(_RUNG_FIELDS)
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(sorted(unknown))}", where=where)
    b = _positive_number(raw["bitrate_bps"], "bitrate_bps", where, MAX_RATE_BPS, "bit/s (MAX_RATE_BPS)")
    dw, dh = default_resolution(b)
    picture = []
    for key, default in (("width", dw), ("height", dh)):
        v = raw.get(key, default)
        if type(v) not in _NUMBER_TYPES or not (0 <= v <= MAX_PICTURE_SIDE) or v != int(v):
            raise InputError(f"field {key!r} must be a whole number of pixels, 0 – {MAX_PICTURE_SIDE}, "
                             f"got {v!r:.60}", where=where)
        picture.append(int(v))
    codec = raw.get("codec", DEFAULT_CODEC)
    if not isinstance(codec, str):
        raise InputError(f"field 'codec' must be a string, got {codec!r:.60}", where=where)
    fps = _positive_number(raw.get("frame_rate", 30.0), "frame_rate", where, MAX_FRAME_RATE, "frames per second")
    return Rung(b, picture[0], picture[1], codec, fps)


def _load_pensieve_dir(p: Path) -> Content:
    """Pensieve's `video_size_N` files (one size in bytes per line), plus an optional
    `ladder.json` ({"bitrates_bps": [...], "segment_duration_s": 4}). Together the files may
    hold at most MAX_FILE_BYTES."""
    files = sorted(p.glob("video_size_*"), key=lambda f: f.name)
    where = str(p)
    if not files:
        raise InputError("directory has no video_size_N files (Pensieve format)", where=where)
    idx = []
    for f in files:
        try:
            idx.append(int(f.name.rsplit("_", 1)[1]))
        except ValueError:
            raise InputError(f"unexpected file name {f.name!r}; expected video_size_N", where=where) from None
    if sorted(idx) != list(range(len(idx))):
        raise InputError(f"video_size files must be numbered 0..{len(idx) - 1}", where=where)
    columns, total = [], 0
    for i in range(len(idx)):
        f = p / f"video_size_{i}"
        data = read_regular_file(f, "video_size file")
        total += len(data)
        if total > MAX_FILE_BYTES:
            raise InputError(f"the video_size files hold more than the limit of {MAX_FILE_BYTES // 2 ** 20} MiB",
                             where=where)
        try:
            vals = np.loadtxt(io.BytesIO(data), dtype=np.float64, ndmin=1)
        except ValueError as exc:
            raise InputError(f"cannot parse sizes: {exc}", where=str(f)) from None
        if vals.ndim != 1 or vals.size == 0:
            raise InputError("expected one size in bytes per line", where=str(f))
        columns.append(vals)
    n = min(c.size for c in columns)
    sizes = np.stack([c[:n] for c in columns], axis=1)
    meta = p / "ladder.json"
    if meta.exists():
        ladder_where = str(meta)
        m = parse_json(read_regular_file(meta, "ladder file"), ladder_where)
        if not isinstance(m, dict):
            raise InputError("expected a JSON object with bitrates_bps", where=ladder_where)
        bitrates = _numeric_array(_field(m, "bitrates_bps", ladder_where), "bitrates_bps", ladder_where,
                                  high=MAX_RATE_BPS, unit="bit/s (MAX_RATE_BPS)")
        if bitrates.size != len(columns):
            raise InputError(f"{bitrates.size} bitrates for {len(columns)} video_size files", where=ladder_where)
        seg = _positive_number(m.get("segment_duration_s", PENSIEVE_SEGMENT_S), "segment_duration_s",
                               ladder_where, MAX_DURATION_S, "s (MAX_DURATION_S)")
    elif len(columns) == len(PENSIEVE_BITRATES_BPS):
        bitrates, seg = list(PENSIEVE_BITRATES_BPS), PENSIEVE_SEGMENT_S
    else:
        raise InputError(f"{len(columns)} rungs but no ladder.json naming their bitrates_bps "
                         "(only 6-rung folders default to Pensieve's ladder)", where=where)
    return validate(Content(rungs_from_bitrates(bitrates), np.full(n, seg), sizes, name=p.name, source=where,
                            format="pensieve-dir"))


# -- writers -----------------------------------------------------------------------------
def save(content: Content, path: str | Path) -> None:
    """Write our own JSON format (or TOML when the path ends in .toml)."""
    p = Path(path)
    doc = content.to_dict()
    if p.suffix.lower() == ".toml":
        p.write_text(_to_toml(doc))
    else:
        p.write_text(json.dumps(doc, indent=1) + "\n")


def _to_toml(doc: dict) -> str:
    lines = []
    for k, v in doc.items():
        if k in ("rungs", "segment_sizes_bytes", "chunks"):
            continue
        lines.append(f"{k} = {json.dumps(v)}")
    lines.append("segment_sizes_bytes = [")
    lines += [f"  {json.dumps(row)}," for row in doc["segment_sizes_bytes"]]
    lines.append("]")
    for r in doc["rungs"]:
        lines.append("\n[[rungs]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in r.items()]
    if "chunks" in doc:
        lines += ["\n[chunks]", f"duration_s = {json.dumps(doc['chunks']['duration_s'])}", "sizes_bytes = ["]
        lines += [f"  {json.dumps(seg)}," for seg in doc["chunks"]["sizes_bytes"]]
        lines.append("]")
    return "\n".join(lines) + "\n"


# -- synthetic ---------------------------------------------------------------------------
def synthetic(bitrates_bps=(300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3), duration_s: float = 120.0,
              segment_duration_s: float = 4.0, seed: int = 0, complexity_sigma: float = 0.25,
              complexity_corr: float = 0.8, rung_sigma: float = 0.05, name: str | None = None) -> Content:
    """Realistic VBR sizes: a scene-complexity factor shared by every rung (lognormal AR(1)
    with correlation `complexity_corr` between consecutive segments and spread
    `complexity_sigma`), times a small per-rung variation (`rung_sigma`), normalised so each
    rung's mean bitrate is its nominal bitrate."""
    b = np.asarray(bitrates_bps, dtype=np.float64)
    if duration_s <= 0 or segment_duration_s <= 0:
        raise InputError("duration and segment duration must be positive")
    n = max(1, int(math.ceil(duration_s / segment_duration_s - 1e-9)))
    if n * b.size > MAX_CELLS:
        raise InputError(f"{n} segments × {b.size} rungs is more than the limit {MAX_CELLS}")
    rng = np.random.default_rng(seed)
    z = np.empty(n)
    z[0] = rng.standard_normal()
    innov = rng.standard_normal(n) * math.sqrt(1 - complexity_corr ** 2)
    for k in range(1, n):  # AR(1): one short loop at generation time, not on any hot path
        z[k] = complexity_corr * z[k - 1] + innov[k]
    complexity = np.exp(complexity_sigma * z)
    per_rung = np.exp(rung_sigma * rng.standard_normal((n, b.size)))
    factor = complexity[:, None] * per_rung
    factor /= factor.mean(axis=0, keepdims=True)
    durs = np.full(n, float(segment_duration_s))
    last = duration_s - segment_duration_s * (n - 1)
    if last > 1e-9:
        durs[-1] = last
    sizes = np.maximum(1, np.rint(b[None, :] * durs[:, None] / 8.0 * factor))
    return validate(Content(rungs_from_bitrates(b), durs, sizes, name=name or f"synthetic-{b.size}rungs-{seed}",
                            source="synthetic", format="synthetic"))
