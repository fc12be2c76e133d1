"""Content descriptions: what a presentation is, for simulation and for the emulated edge.

A `Content` is a bitrate ladder (per rung: bitrate, resolution, codec, frame rate), the
duration of every segment, and every segment's size in bytes at every rung. Readers for
Sabre movie JSON, Pensieve `video_size_N` folders and our own JSON/TOML convert units on
read (kbit/s → bit/s, bits → bytes, ms → s); nothing downstream sees the files' units.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netem.errors import InputError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

FORMAT_TAG = "abrlab-content/1"
#: Pensieve's ladder (kbit/s in its source) for `video_size_N` folders with 6 files.
PENSIEVE_BITRATES_BPS = (300e3, 750e3, 1200e3, 1850e3, 2850e3, 4300e3)
PENSIEVE_SEGMENT_S = 4.0
#: Refuse descriptions past this many segment × rung cells (a 10-hour 20-rung ladder of
#: 1 s segments is 720,000): a file cannot make us allocate without bound.
MAX_CELLS = 2_000_000
DEFAULT_CODEC = "avc1.64001f"


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

    def __post_init__(self) -> None:
        where = self.source or self.name
        d = np.asarray(self.segment_durations_s, dtype=np.float64)
        s = np.asarray(self.segment_sizes_bytes)
        if not self.rungs:
            raise InputError("content needs at least one rung", where=where)
        b = np.array([r.bitrate_bps for r in self.rungs], dtype=np.float64)
        if not np.all(np.isfinite(b)) or np.any(b <= 0) or np.any(np.diff(b) <= 0):
            raise InputError("rung bitrates must be positive and strictly increasing (lowest first)", where=where)
        if d.ndim != 1 or d.size == 0:
            raise InputError("content needs at least one segment", where=where)
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise InputError("segment durations must be positive and finite", where=where)
        if s.shape != (d.size, b.size):
            raise InputError(
                f"segment sizes must be {d.size} segments × {b.size} rungs, got shape {s.shape}", where=where)
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise InputError("segment sizes must be positive and finite", where=where)
        object.__setattr__(self, "segment_durations_s", d)
        object.__setattr__(self, "segment_sizes_bytes", np.rint(s).astype(np.int64))

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
        return out


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
    """Read a content description, choosing the format by content (extension as a hint)."""
    p = Path(path)
    where = str(path)
    if p.is_dir():
        return _load_pensieve_dir(p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where=where) from None
    if len(raw) > 256 * 1024 * 1024:
        raise InputError("file larger than 256 MiB; not a content description", where=where)
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        raise InputError("empty file", where=where)
    if p.suffix.lower() == ".toml" or (not text.startswith(("{", "[")) and "=" in text.splitlines()[0]):
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML: {exc}", where=where) from None
        return from_dict(doc, where=where, fmt="abrlab-toml")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", where=where) from None
    if not isinstance(doc, dict):
        raise InputError("expected a JSON object", where=where)
    if "segment_sizes_bits" in doc or "bitrates_kbps" in doc:
        return _from_sabre(doc, where, name=p.stem)
    return from_dict(doc, where=where, fmt="abrlab-json", default_name=p.stem)


def _field(doc: dict, key: str, where: str):
    if key not in doc:
        raise InputError(f"missing field {key!r}", where=where)
    return doc[key]


def _numeric_array(value, key: str, where: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"field {key!r} must be {'a list' if ndim == 1 else 'a list of lists'} of numbers",
                         where=where) from None
    if arr.ndim != ndim:
        raise InputError(f"field {key!r} must be {'a list' if ndim == 1 else 'a rectangular list of lists'} "
                         "of numbers", where=where)
    if arr.size > MAX_CELLS:
        raise InputError(f"field {key!r} has {arr.size} values, more than the limit {MAX_CELLS}", where=where)
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"field {key!r} has a non-positive or non-finite value at index {list(pos)}", where=where)
    return arr


def _from_sabre(doc: dict, where: str, name: str) -> Content:
    seg_ms = _field(doc, "segment_duration_ms", where)
    if not isinstance(seg_ms, (int, float)) or not math.isfinite(seg_ms) or seg_ms <= 0:
        raise InputError("field 'segment_duration_ms' must be a positive number", where=where)
    kbps = _numeric_array(_field(doc, "bitrates_kbps", where), "bitrates_kbps", where, 1)
    bits = _numeric_array(_field(doc, "segment_sizes_bits", where), "segment_sizes_bits", where, 2)
    if bits.shape[1] != kbps.size:
        raise InputError(f"segment_sizes_bits rows have {bits.shape[1]} entries but there are {kbps.size} "
                         "bitrates", where=where)
    n = bits.shape[0]
    return Content(rungs_from_bitrates(kbps * 1000.0), np.full(n, seg_ms / 1000.0), np.rint(bits / 8.0),
                   name=name, source=where, format="sabre-json")


def from_dict(doc: dict, where: str = "content", fmt: str = "abrlab-json", default_name: str = "content") -> Content:
    """Our own format (JSON or TOML): see README, "Content descriptions"."""
    rungs_raw = _field(doc, "rungs", where)
    if not isinstance(rungs_raw, list) or not rungs_raw:
        raise InputError("field 'rungs' must be a non-empty list", where=where)
    rungs = []
    for i, r in enumerate(rungs_raw):
        w = f"{where}: rungs[{i}]"
        if not isinstance(r, dict) or "bitrate_bps" not in r:
            raise InputError("each rung needs at least 'bitrate_bps'", where=w)
        unknown = set(r) - {"bitrate_bps", "width", "height", "codec", "frame_rate"}
        if unknown:
            raise InputError(f"unknown field(s) {', '.join(sorted(unknown))}", where=w)
        try:
            b = float(r["bitrate_bps"])
            dw, dh = default_resolution(b)
            rungs.append(Rung(b, int(r.get("width", dw)), int(r.get("height", dh)),
                              str(r.get("codec", DEFAULT_CODEC)), float(r.get("frame_rate", 30.0))))
        except (TypeError, ValueError):
            raise InputError("bitrate_bps, width, height and frame_rate must be numbers", where=w) from None
    sizes = _numeric_array(_field(doc, "segment_sizes_bytes", where), "segment_sizes_bytes", where, 2)
    if "segment_durations_s" in doc:
        durs = _numeric_array(doc["segment_durations_s"], "segment_durations_s", where, 1)
    else:
        d = _field(doc, "segment_duration_s", where)
        if not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
            raise InputError("field 'segment_duration_s' must be a positive number", where=where)
        durs = np.full(sizes.shape[0], float(d))
    audio = doc.get("audio_bitrate_bps")
    return Content(tuple(rungs), durs, sizes, name=str(doc.get("name", default_name)), source=where, format=fmt,
                   audio_bitrate_bps=float(audio) if audio else None)


def _load_pensieve_dir(p: Path) -> Content:
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
    columns = []
    for i in range(len(idx)):
        f = p / f"video_size_{i}"
        try:
            vals = np.loadtxt(f, dtype=np.float64, ndmin=1)
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot parse sizes: {exc}", where=str(f)) from None
        columns.append(vals)
    n = min(c.size for c in columns)
    sizes = np.stack([c[:n] for c in columns], axis=1)
    meta = p / "ladder.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        bitrates = [float(b) for b in m["bitrates_bps"]]
        seg = float(m.get("segment_duration_s", PENSIEVE_SEGMENT_S))
    elif len(columns) == len(PENSIEVE_BITRATES_BPS):
        bitrates, seg = list(PENSIEVE_BITRATES_BPS), PENSIEVE_SEGMENT_S
    else:
        raise InputError(f"{len(columns)} rungs but no ladder.json naming their bitrates_bps "
                         "(only 6-rung folders default to Pensieve's ladder)", where=where)
    return Content(rungs_from_bitrates(bitrates), np.full(n, seg), sizes, name=p.name, source=where,
                   format="pensieve-dir")


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
        if k in ("rungs", "segment_sizes_bytes"):
            continue
        lines.append(f"{k} = {json.dumps(v)}")
    lines.append("segment_sizes_bytes = [")
    lines += [f"  {json.dumps(row)}," for row in doc["segment_sizes_bytes"]]
    lines.append("]")
    for r in doc["rungs"]:
        lines.append("\n[[rungs]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in r.items()]
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
    return Content(rungs_from_bitrates(b), durs, sizes, name=name or f"synthetic-{b.size}rungs-{seed}",
                   source="synthetic", format="synthetic")
