"""A VoD DASH directory on disk as a `netem.package.Packaged`, for the live origin.

`load_directory(root)` reads what ``abrlab content make`` writes (synthetic or
``--encode``d, any addressing): the static MPD (one Period; parsed with defusedxml, so no
entity expansion), each Representation's attributes, its init segment and its media
segments — SegmentTemplate with $Number$ or a SegmentTimeline ($RepresentationID$,
$Number$, $Time$, $Bandwidth$, with ``%0Nd`` widths), SegmentList, or SegmentBase (one
file indexed by its `sidx`). Every file is read through `netem.edge.DirectorySource`,
so an MPD cannot name a file outside the directory. Segment timing comes from the
segments themselves (`tfdt` and sample durations), not from the MPD.

A protected directory is served only when its key is the documented default
(`netem.cenc.Protection.default`): the live MPD and the licence server need the key.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException
import numpy as np

from netem import isobmff
from netem.cenc import Protection
from netem.edge import DirectorySource, Forbidden, NotFound
from netem.errors import InputError, UsageError
from netem.live.segments import parse_init, parse_segment
from netem.package import Packaged, Track

#: Media segments one directory may list (all representations together).
MAX_SEGMENTS = 200_000
_TEMPLATE = re.compile(r"\$(RepresentationID|Number|Time|Bandwidth)(?:%0(\d{1,2})d)?\$|\$\$")
_XS_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
                          r"(?:(\d+(?:\.\d+)?)S)?)?$")
_VIDEO_CODECS = ("avc", "hev", "hvc", "vp0", "vp8", "vp9", "av01", "dvh")
_AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "opus", "flac", "ac-4")


class FileTrack(Track):
    """A Representation whose init and media segments are (ranges of) files."""

    def __init__(self, rep_id: str, kind: str, info: isobmff.TrackInfo, frame_rate: float,
                 init: bytes, files: list[tuple[str, int, int]], starts, durations, read) -> None:
        self.rep_id, self.kind, self.info, self.frame_rate = rep_id, kind, info, frame_rate
        self.bandwidth_bps = info.bitrate_bps
        self._init, self._files, self._read = init, files, read
        self.starts = np.asarray(starts, dtype=np.int64)
        self.durations = np.asarray(durations, dtype=np.int64)
        self.sizes = np.array([f[2] for f in files], dtype=np.int64)

    def init(self) -> bytes:
        return self._init

    def segment_bytes(self, i: int, a: int = 0, b: int | None = None, clear: bool = False) -> bytes:
        path, offset, size = self._files[i]
        b = size if b is None else min(b, size)
        return self._read(path, offset + a, offset + b) if a < b else b""


class DirectoryPresentation(Packaged):
    """The tracks of a VoD directory (see `load_directory`)."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kids(el, name: str) -> list:
    return [c for c in el if _local(c.tag) == name]


def _kid(*els, name: str):
    """The first `name` child of the most specific element that has one (Representation
    over AdaptationSet), as DASH inherits segment information."""
    for el in els:
        found = _kids(el, name)
        if found:
            return found[0]
    return None


def xs_seconds(text: str | None, where: str) -> float | None:
    """An xs:duration without years or months ("PT1H2M3.5S", "P1DT2S") in seconds."""
    if text is None:
        return None
    m = _XS_DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise InputError(f"{text!r} is not a duration such as PT1M30S", where=where)
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def expand(template: str, rep_id: str, bandwidth: int, number: int | None = None, time: int | None = None) -> str:
    """A SegmentTemplate URL with its identifiers substituted."""
    values = {"RepresentationID": rep_id, "Bandwidth": bandwidth, "Number": number, "Time": time}

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        v = values[m.group(1)]
        if v is None:
            raise InputError(f"template {template!r} uses ${m.group(1)}$ where it has no value", where="MPD")
        return f"{v:0{int(m.group(2))}d}" if m.group(2) and not isinstance(v, str) else str(v)

    return _TEMPLATE.sub(sub, template)


class _Files:
    """Reads of files inside the directory only."""

    def __init__(self, source: DirectorySource) -> None:
        self.source = source

    def resource(self, path: str):
        if "://" in path or path.startswith("/"):
            raise InputError(f"segment URL {path!r} is not relative to the directory", where="MPD")
        url = "/" + path.split("?", 1)[0]
        try:
            return self.source.lookup(url, url)
        except (NotFound, Forbidden):
            raise InputError(f"the MPD names {path!r}, which is missing or outside the directory",
                             where=str(self.source.root)) from None

    def size(self, path: str) -> int:
        r = self.resource(path)
        r.close()
        return r.size

    def read(self, path: str, a: int, b: int) -> bytes:
        r = self.resource(path)
        try:
            return r.read(a, b)
        finally:
            r.close()


def load_directory(root: str | Path, mpd: str | None = None) -> DirectoryPresentation:
    """The VoD presentation in `root` (its MPD found as `abrlab serve` finds it)."""
    source = DirectorySource(root, mpd)
    if source.mpd_path is None:
        raise InputError("no .mpd file in the directory", where=str(root))
    files = _Files(source)
    where = f"{root}/{source.mpd_path}"
    try:
        doc = DET.fromstring(files.read(source.mpd_path, 0, 16 * 1024 * 1024))
    except DET.ParseError as exc:
        raise InputError(f"not XML: {exc}", where=where) from None
    except DefusedXmlException as exc:  # entity declarations, DTDs, external references
        raise InputError(f"XML refused: {type(exc).__name__}", where=where) from None
    if _local(doc.tag) != "MPD":
        raise InputError("the root element is not MPD", where=where)
    if (doc.get("type") or "static") != "static":
        raise UsageError("the directory's MPD is already live (type=dynamic)", where=where)
    periods = _kids(doc, "Period")
    if len(periods) != 1:
        raise UsageError(f"a live loop is made from a one-Period VoD MPD; this one has {len(periods)}", where=where)
    total_s = xs_seconds(doc.get("mediaPresentationDuration") or periods[0].get("duration"),
                         f"{where}: mediaPresentationDuration")
    base = _mpd_dir(source.mpd_path)
    tracks: list[Track] = []
    budget = [MAX_SEGMENTS]
    kids = []
    for a in _kids(periods[0], "AdaptationSet"):
        for r in _kids(a, "Representation"):
            tracks.append(_track(a, r, base, files, total_s, budget, where))
            kids.append(_kid_of(tracks[-1]))
    if not tracks:
        raise InputError("the MPD has no Representation", where=where)
    protection = _protection(kids, where)
    title = (doc.findtext("{*}ProgramInformation/{*}Title") or Path(root).name).strip()
    return DirectoryPresentation(tracks, "number", protection, title=title,
                                 comment=f"abrlab live loop of the VoD directory {Path(root).name!r}")


def _mpd_dir(mpd_path: str) -> str:
    head = mpd_path.rsplit("/", 1)[0] if "/" in mpd_path else ""
    return head + "/" if head else ""


def _kid_of(t: FileTrack) -> bytes | None:
    return parse_init(t.init(), where=f"{t.rep_id}/init").kid


def _protection(kids: list[bytes | None], where: str):
    found = {k for k in kids if k is not None}
    if not found:
        return None
    default = Protection.default()
    if found != {default.kid} or None in kids:
        raise UsageError("a protected directory is served live only with the default ClearKey key "
                         "(content make --protect clearkey without --key/--kid); serve the content "
                         "description with --movie --protect clearkey instead", where=where)
    return default


def _kind(a, r, codecs: str) -> str:
    kind = a.get("contentType") or (r.get("mimeType") or a.get("mimeType") or "").split("/", 1)[0]
    if kind in ("video", "audio"):
        return kind
    c = codecs.lower()
    if c.startswith(_VIDEO_CODECS):
        return "video"
    if c.startswith(_AUDIO_CODECS):
        return "audio"
    raise UsageError(f"only video and audio adaptation sets can be looped live (found {kind or codecs!r})")


def _int(el, name: str, where: str, default: int | None = None) -> int | None:
    v = el.get(name) if el is not None else None
    if v is None:
        return default
    if not re.fullmatch(r"\d{1,19}", v.strip()):
        raise InputError(f"@{name}={v!r} is not a non-negative integer", where=where)
    return int(v)


def _frame_rate(text: str | None) -> float:
    if not text:
        return 0.0
    num, _, den = text.partition("/")
    try:
        v = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def _track(a, r, base: str, files: _Files, total_s: float | None, budget: list[int], where: str) -> FileTrack:
    rep_id = r.get("id") or ""
    at = f"{where}: Representation {rep_id!r}"
    bandwidth = _int(r, "bandwidth", at, 0) or 0
    codecs = r.get("codecs") or a.get("codecs") or ""
    kind = _kind(a, r, codecs)
    tpl, lst = _kid(r, a, name="SegmentTemplate"), _kid(r, a, name="SegmentList")
    sbase = _kid(r, a, name="SegmentBase")
    if tpl is not None:
        init_path, media = _template_files(tpl, rep_id, bandwidth, files, base, total_s, budget, at)
    elif lst is not None:
        init_path, media = _list_files(lst, files, base, budget, at)
    elif sbase is not None:
        init_path, media = _base_files(r, sbase, files, base, at)
    else:
        raise UsageError("no SegmentTemplate, SegmentList or SegmentBase", where=at)
    init = files.read(init_path[0], init_path[1], init_path[1] + init_path[2])
    info0 = parse_init(init, where=f"{at} init")
    starts, durs = [], []
    for k, (path, offset, size) in enumerate(media):
        seg = parse_segment(lambda x, y, p=path, o=offset: files.read(p, o + x, o + y), size, iv_size=info0.iv_size,
                            defaults=info0.defaults, where=f"{at} segment {k}")
        starts.append(seg.tfdt)
        durs.append(seg.duration)
    info = isobmff.TrackInfo(kind, info0.track_id, info0.timescale, codecs,
                             width=_int(r, "width", at, 0) or _int(a, "maxWidth", at, 0) or 0,
                             height=_int(r, "height", at, 0) or _int(a, "maxHeight", at, 0) or 0,
                             sample_rate=_int(r, "audioSamplingRate", at) or _int(a, "audioSamplingRate", at)
                             or info0.timescale,
                             channels=_channels(r, a), bitrate_bps=bandwidth)
    fps = _frame_rate(r.get("frameRate") or a.get("frameRate") or a.get("maxFrameRate"))
    return FileTrack(rep_id, kind, info, fps, init, media, starts, durs, files.read)


def _channels(r, a) -> int:
    el = _kid(r, a, name="AudioChannelConfiguration")
    v = el.get("value") if el is not None else None
    return int(v) if v and v.isdigit() and 0 < int(v) <= 64 else 2


def _whole(files: _Files, path: str) -> tuple[str, int, int]:
    return path, 0, files.size(path)


def _template_files(tpl, rep_id: str, bandwidth: int, files: _Files, base: str, total_s: float | None,
                    budget: list[int], at: str):
    init_t, media_t = tpl.get("initialization"), tpl.get("media")
    if not init_t or not media_t:
        raise UsageError("SegmentTemplate needs @initialization and @media", where=at)
    timescale = _int(tpl, "timescale", at, 1) or 1
    number = _int(tpl, "startNumber", at, 1)
    timeline = _kid(tpl, name="SegmentTimeline")
    entries: list[tuple[int, int]] = []  # (number, time)
    if timeline is not None:
        t = 0
        for s in _kids(timeline, "S"):
            t = _int(s, "t", at, t)
            d = _int(s, "d", at)
            r = int(s.get("r") or 0)
            if not d:
                raise InputError("S@d missing or 0", where=at)
            if r < 0:
                if total_s is None:
                    raise InputError("S@r=-1 without a presentation duration", where=at)
                r = math.ceil((total_s * timescale - t) / d) - 1
            if r + 1 > budget[0]:
                raise InputError(f"more than {MAX_SEGMENTS} segments", where=at)
            budget[0] -= r + 1
            for _ in range(r + 1):
                entries.append((number, t))
                number += 1
                t += d
    else:
        d = _int(tpl, "duration", at)
        if not d or total_s is None:
            raise UsageError("SegmentTemplate needs a SegmentTimeline, or @duration and a presentation duration",
                             where=at)
        n = math.ceil(total_s * timescale / d - 1e-6)
        if n > budget[0]:
            raise InputError(f"more than {MAX_SEGMENTS} segments", where=at)
        budget[0] -= n
        entries = [(number + i, None) for i in range(n)]
    init = _whole(files, base + expand(init_t, rep_id, bandwidth))
    media = [_whole(files, base + expand(media_t, rep_id, bandwidth, num, t)) for num, t in entries]
    return init, media


def _list_files(lst, files: _Files, base: str, budget: list[int], at: str):
    init_el = _kid(lst, name="Initialization")
    if init_el is None or not init_el.get("sourceURL"):
        raise UsageError("SegmentList needs Initialization@sourceURL", where=at)
    urls = _kids(lst, "SegmentURL")
    if len(urls) > budget[0]:
        raise InputError(f"more than {MAX_SEGMENTS} segments", where=at)
    budget[0] -= len(urls)
    if any(u.get("mediaRange") or not u.get("media") for u in urls):
        raise UsageError("SegmentURL needs @media and no @mediaRange", where=at)
    return _whole(files, base + init_el.get("sourceURL")), [_whole(files, base + u.get("media")) for u in urls]


def _base_files(r, sbase, files: _Files, base: str, at: str):
    url_el = _kid(r, name="BaseURL")
    init_el = _kid(sbase, name="Initialization")
    index = sbase.get("indexRange")
    if url_el is None or not (url_el.text or "").strip() or init_el is None or not index:
        raise UsageError("SegmentBase needs a BaseURL, Initialization@range and @indexRange", where=at)
    path = base + url_el.text.strip()
    (i0, i1), (x0, x1) = _range(init_el.get("range"), at), _range(index, at)
    boxes = isobmff.parse(files.read(path, x0, x1 + 1))
    sidx = isobmff.find(boxes, "sidx")
    if sidx is None:
        raise InputError("indexRange does not hold a sidx", where=at)
    try:
        subsegments = isobmff.parse_sidx(sidx, offset=x0).subsegments()
    except isobmff.SidxUnsupported:
        raise UsageError("hierarchical sidx (references to sidx) is not supported", where=at) from None
    media = [(path, s.first_byte, s.size_bytes) for s in subsegments]
    return (path, i0, i1 + 1 - i0), media


def _range(text: str | None, at: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,15})-(\d{1,15})\s*", text or "")
    if not m or int(m[2]) < int(m[1]):
        raise InputError(f"byte range {text!r} is not FIRST-LAST", where=at)
    return int(m[1]), int(m[2])
