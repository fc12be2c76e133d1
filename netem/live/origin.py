"""The live origin over HTTP: `LiveSource` answers paths at an instant, `LiveEdge` serves them.

`LiveEdge` is an `netem.edge.EdgeServer` (same shaping, faults, CORS, access log,
licences) whose content is a live presentation read off an injectable clock::

    async with LiveEdge(presentation_or_dir, config=LiveConfig(chunk_s=0.5), trace=trace,
                        clock=ManualClock(t)) as edge:
        edge.url        # http://127.0.0.1:PORT/manifest.mpd
        edge.live       # the LivePresentation (paths, schedule, segments)

Paths:

* ``/manifest.mpd`` — the MPD at the request's instant (`netem.live.mpd`); 425 while a
  SegmentTimeline has nothing to list yet.
* ``/REP/init.mp4`` — always there. ``/REP/N.m4s`` ($Number$) or ``/REP/tT.m4s`` ($Time$):
  before the segment's availability start → 425 Too Early (or 404 with
  ``too_early_status=404``) with ``Retry-After`` (whole seconds, rounded up); once it left
  the time-shift buffer → 410 Gone; a number or time that names no segment → 404.
* Low latency: a segment requested before its last chunk is complete is sent with
  HTTP/1.1 chunked transfer encoding, each CMAF chunk released no earlier than the clock
  time of its last sample's end, then paced by the link like any body (so a client sees
  producer-rate delivery until it catches up with the live edge, link rate otherwise);
  the access-log record lists each chunk's release (``chunks``); Range and validators are
  ignored (200, whole body). A segment already complete is an ordinary response
  (Content-Length, Range, ETag).
* ``/utc/iso``, ``/utc/xsdate`` (``2024-01-01T00:00:00.123Z``) and ``/utc/head`` (a
  ``Date`` header) read the origin's clock. The time written is the middle of the
  request's stay at the origin (the emulated first-byte latency), as a real server
  answering mid round trip would. Every response's ``Date`` header is the origin's clock.
"""
from __future__ import annotations

import hashlib
import math
import re

from netem.edge import EdgeServer, HTTPStatus, NotFound, Progressive, Resource, content_type
from netem.errors import InputError
from netem.live.clock import SystemClock
from netem.live.config import LiveConfig
from netem.live.mpd import live_mpd
from netem.live.presentation import MANIFEST, LivePresentation
from netem.live.utc import PATHS, http_date, iso_ms
from netem.live.vod import load_directory
from netem.package import Packaged

TEXT = "text/plain; charset=utf-8"
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](?::\d{1,5})?$")


def load_vod(source, mpd: str | None = None) -> Packaged:
    """A Packaged presentation from a `Packaged` or a VoD directory."""
    if isinstance(source, Packaged):
        return source
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        return load_directory(source, mpd)
    raise TypeError(f"cannot play {type(source).__name__} live: give a directory or a SyntheticPresentation")


def _etag(*parts) -> str:
    return '"' + hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:20] + '"'


class LiveSource:
    """The live origin's resources at the instant of a request (see the module docstring)."""

    def __init__(self, live: LivePresentation, clock) -> None:
        self.live = live
        self.clock = clock
        self.mpd_path = MANIFEST

    def lookup(self, url_path: str, raw_path: str, base_url: str) -> Resource:
        """The resource for a GET/HEAD of `url_path` now; NotFound or HTTPStatus otherwise."""
        now = self.clock.now()
        path = url_path.lstrip("/")
        for method, p in PATHS.items():
            if url_path == p:
                return self._utc(method, now)
        try:
            target = self.live.resolve(path)
        except KeyError:
            raise NotFound(url_path) from None
        if target.what == "mpd":
            text = live_mpd(self.live, now, base_url)
            if text is None:
                first = self.live.schedule.availability_start(0)
                raise self._too_early(first - now, "no segment is available yet")
            body = text.encode("utf-8")
            return Resource(path, len(body), _etag(hashlib.sha1(body).hexdigest()), content_type(path),
                            lambda a, b: body[a:b])
        lt = target.track
        if target.what == "init":
            init = lt.track.init()
            return Resource(path, len(init), _etag("init", path, len(init)), content_type(path),
                            lambda a, b: init[a:b])
        j = target.j
        sch = self.live.schedule
        status = sch.status(j, now)
        if status == "early":
            raise self._too_early(sch.availability_start(j) - now, "segment not available yet")
        if status == "gone":
            raise HTTPStatus(410, "410 Gone: the segment left the time-shift buffer\n")
        seg = self.live.segment(lt.index, j)
        prog = None
        if self.live.config.low_latency:
            prog = Progressive(seg.chunk_ends, self.live.chunk_release_s(lt, seg), self.clock)
        ctype = "audio/mp4" if lt.track.kind == "audio" else "video/mp4"
        return Resource(path, seg.size, _etag(path, seg.size, sch.ast_s, self.live.config), ctype, seg.read,
                        progressive=prog)

    def _too_early(self, wait_s: float, why: str) -> HTTPStatus:
        status = self.live.config.too_early_status
        text = f"{status} {'Too Early' if status == 425 else 'Not Found'}: {why}\n"
        return HTTPStatus(status, text, {"Retry-After": str(max(1, math.ceil(wait_s)))})

    def _utc(self, method: str, arrival_s: float) -> Resource:
        clock = self.clock
        if method == "http-head":
            return Resource(method, 0, _etag(method, arrival_s), TEXT, lambda a, b: b"")

        def read(a: int, b: int) -> bytes:  # stamped mid-stay: (arrival + departure) / 2
            return iso_ms((arrival_s + clock.now()) / 2).encode()[a:b]

        return Resource(method, len(iso_ms(arrival_s)), _etag(method, arrival_s), TEXT, read)


class LiveEdge(EdgeServer):
    """An emulated edge serving a live presentation (see the module docstring).

    `source`: a `netem.package.Packaged` (Presentation, EncodedPresentation) or a VoD
    directory. `config`: a `LiveConfig`. `clock`: anything with ``now()`` and ``await
    sleep_until(t)`` (default: `SystemClock(clock_offset_s, time_scale)`). Every other
    keyword goes to `EdgeServer` (trace, latency_s, time_scale, faults, access_log, …).
    """

    def __init__(self, source, *, config: LiveConfig | None = None, clock=None, clock_offset_s: float = 0.0,
                 time_scale: float = 1.0, mpd: str | None = None, protection=None, **edge_kwargs) -> None:
        if clock is not None and clock_offset_s:
            raise InputError("give a clock or a clock offset, not both", where="LiveEdge")
        packaged = load_vod(source, mpd)
        self.live = LivePresentation(packaged, config or LiveConfig())
        self.clock = clock if clock is not None else SystemClock(clock_offset_s, time_scale)
        super().__init__(LiveSource(self.live, self.clock), time_scale=time_scale,
                         protection=protection if protection is not None else packaged.protection, **edge_kwargs)

    def _lookup(self, request) -> Resource:
        host = request.host or ""
        base = f"http://{host}" if _HOST.match(host) else self.base_url
        return self.source.lookup(request.path, request.raw_path, base)

    def _headers(self, extra: dict | None = None) -> dict:
        h = super()._headers(extra)
        h["Date"] = http_date(self.clock.now())
        return h
