"""The emulated edge server: aiohttp serving a directory or a virtual `SyntheticPresentation`, with
every response body paced by one trace-driven bottleneck (`netem.shaper`), injected faults
(`netem.faults`), license endpoints (`netem.license_server`) and a JSON-lines access log
with the client's CMCD keys (`netem.accesslog`).

In-process use (tests, the HTTP driver)::

    async with EdgeServer(root_or_presentation, trace=trace, latency_s=0.05, time_scale=10,
                          faults=["5xx:p=0.1"], seed=1) as edge:
        edge.url        # the MPD URL; edge.base_url is "http://127.0.0.1:PORT"
        edge.records    # access-log records so far (dicts)

HTTP behaviour:

* GET/HEAD/OPTIONS on content; POST only on ``/license/{clearkey,widevine,playready}``
  (bodies up to 128 KiB, else 413); anything else is 405 with ``Allow``. A malformed
  request, or a request line or header field over 8190 bytes (or more than 128 fields), is
  refused by aiohttp's parser with 400 and one rate-limited log line, never a traceback.
* Connections are guarded by `netem.guard` (`limits`): caps in total and per client
  address (the oldest idle connection makes room; 503 when none can), idle, header and
  write timeouts (408 for a request head too slow to arrive), a request head over 64 KiB →
  431, bounded write buffers. A client that does not read holds at most `chunk_bytes`
  (64 KiB) + 64 KiB of write buffer + one 64 KiB write of the edge's memory, and is reset
  after the write timeout.
* Paths are resolved inside the root only: ``..``/``.`` segments (also percent-encoded),
  hidden (dot) files, NUL or backslash → 403; a symlink leading out of the root → 403;
  missing → 404. No directory listings (a directory serves its ``index.html`` or 404).
* ``Range`` with one valid ``bytes=`` range → 206 with ``Content-Range``; a valid range that
  cannot be satisfied (first byte at or past the end, a suffix of 0, more than 18 digits)
  → 416 with ``Content-Range: bytes */SIZE``; an invalid range (not ``FIRST-[LAST]`` or
  ``-SUFFIX`` in ASCII digits, trailing garbage, last < first) or another unit → ignored,
  200 with the whole resource (RFC 9110 §14.2); several ranges → 200 whole (we never send
  ``multipart/byteranges``). ``If-Range`` with a different ETag → 200 whole.
  ``If-None-Match`` matching the strong ETag → 304.
* CORS: ``Access-Control-Allow-Origin: *``, the length/range/ETag headers exposed, OPTIONS
  preflight answered 204.
* Time scale: every response carries ``X-Abrlab-Time-Scale: K`` (`TIME_SCALE_HEADER`), the
  edge's ``time_scale``; `abrlab play` adopts it unless told another one.
* Latency: each response waits (the fixed ``latency_s`` or the trace's own latency at that
  time, plus ``slow-first-byte`` faults) before its headers; the body then goes through the
  shaper (headers are not shaped). Every duration is in trace seconds and divided by
  ``time_scale`` on the wall clock.
* Hooks for the live origin (`netem.live.origin.LiveEdge`): a source may answer a status of
  its own (`HTTPStatus`: 425, 410), `_lookup` may read more of the request than its path,
  and a `Resource` still being produced (`Progressive`) is sent with chunked transfer
  encoding, each piece once its release time has come on the source's clock.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import mimetypes
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from netem.accesslog import AccessLog, cmcd_from_request
from netem.errors import InputError
from netem.faults import Decision, Fault, FaultPlan, parse as parse_fault
from netem.guard import ANSWER_503, BACKLOG, Guard, Limits, reset
from netem.license_server import LicenseServer, load_policy
from netem.shaper import Shaper

CHUNK_BYTES = 64 * 1024  # bytes read from a resource at a time
WRITE_BYTES = 64 * 1024  # bytes handed to the transport at a time
MAX_LOGGED_WRITES = 512  # writes of a produced-as-sent body logged in its record (``rec["writes"]``)
MAX_REQUEST_BODY_BYTES = 128 * 1024
MAX_RECORDS = 100_000
CONTENT_METHODS = ("GET", "HEAD", "OPTIONS")
_TYPES = {
    ".mpd": "application/dash+xml", ".m4s": "video/mp4", ".mp4": "video/mp4", ".m4v": "video/mp4",
    ".m4a": "audio/mp4", ".cmfv": "video/mp4", ".cmfa": "audio/mp4", ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".json": "application/json", ".css": "text/css; charset=utf-8",
    ".m3u8": "application/vnd.apple.mpegurl", ".txt": "text/plain; charset=utf-8", ".xml": "application/xml",
    ".vtt": "text/vtt", ".ts": "video/mp2t",
}
#: the response header that announces the edge's time scale (trace seconds per wall second)
TIME_SCALE_HEADER = "X-Abrlab-Time-Scale"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": ("Content-Length, Content-Range, Content-Type, ETag, Accept-Ranges, Date, "
                                      + TIME_SCALE_HEADER),
    "Timing-Allow-Origin": "*",
}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",
    "Access-Control-Allow-Headers": ("Range, Content-Type, If-Range, If-None-Match, CMCD-Request, CMCD-Object, "
                                     "CMCD-Status, CMCD-Session, X-Robustness, X-HDCP"),
    "Access-Control-Max-Age": "600",
}


def parse_time_scale(value: str | None) -> float | None:
    """The time scale a `TIME_SCALE_HEADER` value announces (None: absent or not a positive number)."""
    try:
        k = float(value) if value else math.nan
    except ValueError:
        return None
    return k if math.isfinite(k) and k > 0 else None


def content_type(path: str) -> str:
    """Content-Type by extension; MP4 family is audio/mp4 when the path says audio."""
    ext = os.path.splitext(path)[1].lower()
    t = _TYPES.get(ext)
    if t is None:
        t = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if t == "video/mp4" and "audio" in path.lower():
        t = "audio/mp4"
    return t


# -- sources ----------------------------------------------------------------------------------
class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class HTTPStatus(Exception):
    """A source's answer other than the resource: `status` with a short text and headers
    (the live origin's 425 Too Early and 410 Gone)."""

    def __init__(self, status: int, text: str | None = None, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status, self.text, self.headers = status, text, headers


@dataclass
class Progressive:
    """A body released piece by piece (live low-latency chunks): bytes up to `ends[c]`
    may leave once `clock.now() >= release_s[c]` (`clock` has `now()` and `sleep_until`)."""

    ends: list[int]
    release_s: list[float]
    clock: object

    def pending(self) -> bool:
        return bool(self.release_s) and self.release_s[-1] > self.clock.now()


@dataclass
class Resource:
    key: str
    size: int
    etag: str
    content_type: str
    read: Callable[[int, int], bytes]  # (start, end exclusive) -> bytes
    last_modified: float | None = None
    close: Callable[[], None] = lambda: None
    progressive: Progressive | None = None


def _segments(url_path: str, raw_path: str) -> list[str]:
    """URL path → safe segments, or Forbidden for traversal tricks."""
    if "\x00" in url_path or "\\" in url_path:
        raise Forbidden(url_path)
    # the raw path, decoded repeatedly, must not hide dot segments either
    raw = raw_path.split("?", 1)[0]
    for _ in range(3):
        dec = unquote(raw)
        if dec == raw:
            break
        raw = dec
    for text in (url_path, raw):
        for seg in text.split("/"):
            if seg in (".", "..") or "\\" in seg or "\x00" in seg:
                raise Forbidden(url_path)
    parts = [s for s in url_path.split("/") if s]
    for seg in parts:
        if seg.startswith("."):
            raise Forbidden(url_path)
    return parts


class DirectorySource:
    """Files under `root`; nothing outside it (symlinks resolved and checked)."""

    def __init__(self, root: str | Path, mpd: str | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError("not a directory", where=str(root))
        self.real_root = self.root.resolve()
        self.mpd_path = mpd if mpd is not None else self._find_mpd()

    def _find_mpd(self) -> str | None:
        if (self.root / "manifest.mpd").is_file():
            return "manifest.mpd"
        top = sorted(p.name for p in self.root.glob("*.mpd") if p.is_file())
        if top:
            return top[0]
        for depth in ("*/*.mpd", "*/*/*.mpd"):
            found = sorted(str(p.relative_to(self.root)).replace(os.sep, "/") for p in self.root.glob(depth))
            if found:
                return found[0]
        return None

    def lookup(self, url_path: str, raw_path: str) -> Resource:
        parts = _segments(url_path, raw_path)
        cand = self.real_root.joinpath(*parts) if parts else self.real_root
        try:
            real = cand.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(url_path) from None
        except (OSError, RuntimeError):  # loops, permissions
            raise Forbidden(url_path) from None
        if real != self.real_root and self.real_root not in real.parents:
            raise Forbidden(url_path)
        if real.is_dir():
            real = real / "index.html"
            if not real.is_file():
                raise NotFound(url_path)
        if not real.is_file():
            raise NotFound(url_path)
        st = real.stat()
        holder: dict = {}

        def read(start: int, end: int) -> bytes:
            fh = holder.get("fh")
            if fh is None:
                fh = holder["fh"] = open(real, "rb")
            fh.seek(start)
            return fh.read(end - start)

        def close() -> None:
            fh = holder.pop("fh", None)
            if fh is not None:
                fh.close()

        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        ctype = content_type(str(real.relative_to(self.real_root)))
        return Resource(str(real), st.st_size, etag, ctype, read, st.st_mtime, close)


class PresentationSource:
    """A virtual `netem.package.SyntheticPresentation` (or anything with `files()` and `read()`)."""

    def __init__(self, presentation) -> None:
        self.presentation = presentation
        self.files = dict(presentation.files())
        self.mpd_path = "manifest.mpd" if "manifest.mpd" in self.files else next(
            (p for p in sorted(self.files) if p.endswith(".mpd")), None)
        digest = hashlib.sha1()
        if self.mpd_path:
            digest.update(presentation.read(self.mpd_path))
        self._salt = digest.hexdigest()

    def lookup(self, url_path: str, raw_path: str) -> Resource:
        parts = _segments(url_path, raw_path)
        key = "/".join(parts)
        if key not in self.files:
            raise NotFound(url_path)
        size = int(self.files[key])
        etag = '"' + hashlib.sha1(f"{self._salt}:{key}:{size}".encode()).hexdigest()[:20] + '"'
        pres = self.presentation
        return Resource(key, size, etag, content_type(key), lambda a, b: pres.read(key, a, b))


def make_source(source, mpd: str | None = None):
    if isinstance(source, (DirectorySource, PresentationSource)) or (
            hasattr(source, "lookup") and hasattr(source, "mpd_path")):
        return source
    if isinstance(source, (str, Path)):
        return DirectorySource(source, mpd)
    if hasattr(source, "files") and hasattr(source, "read"):
        return PresentationSource(source)
    raise TypeError(f"cannot serve {type(source).__name__}: give a directory or a SyntheticPresentation")


# -- ranges -----------------------------------------------------------------------------------
class Unsatisfiable(Exception):
    pass


# ASCII digits only: `\d`, `str.isdigit` and `int()` also take other scripts' digits ("١")
_RANGE = re.compile(r"[ \t]*([0-9]*)-([0-9]*)[ \t]*")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range (start, end exclusive), None for "serve it all" (no Range, another
    unit, several ranges, an invalid range: RFC 9110 §14.2 lets us ignore those), or
    Unsatisfiable for a valid range outside the resource."""
    if header is None:
        return None
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None  # unknown unit: ignore (RFC 9110 §14.2)
    if "," in spec:
        return None  # several ranges: we answer 200 with the whole resource
    m = _RANGE.fullmatch(spec)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # not a range-spec (bytes=abc, bytes=0-1;, bytes=-): ignore
    first, last = m.group(1), m.group(2)
    if len(first) > 18 or len(last) > 18:
        raise Unsatisfiable(header)  # beyond any resource we could hold
    if first:
        a = int(first)
        if last and int(last) < a:
            return None  # last < first: an invalid range-spec, ignored
        b = int(last) if last else size - 1
        if a >= size:
            raise Unsatisfiable(header)
        return a, min(b, size - 1) + 1
    n = int(last)  # suffix: the last n bytes
    if n == 0 or size == 0:
        raise Unsatisfiable(header)
    return max(0, size - n), size


class _Gate:
    """Unshaped body writer that still honours outage windows."""

    def __init__(self, edge: "EdgeServer") -> None:
        self.edge = edge

    async def take(self, want: int) -> int:
        while True:
            end = self.edge.plan.in_outage(self.edge.trace_time())
            if end is None:
                return want
            await asyncio.sleep(max(0.001, (end - self.edge.trace_time()) / self.edge.time_scale))

    def close(self) -> None:
        pass


# -- the edge -----------------------------------------------------------------------------------
class EdgeServer:
    """One emulated edge: `await start()` / `await stop()` or ``async with``.

    `source`: a directory path or a SyntheticPresentation. `trace` (None = unshaped), `latency_s`
    (trace seconds, None = the trace's own), `time_scale`, `faults` (specs or `Fault`s),
    `seed`, `index` (this edge's number in logs and ``edge=`` faults), `access_log` (a path,
    a stream or an `AccessLog`), `protection` (a `netem.cenc.Protection`, a list of them or a
    {kid: key} dict; default: the presentation's own), `license_policy`, `limits` (a
    `netem.guard.Limits`: connection caps and timeouts; default `Limits()`).
    """

    def __init__(self, source, *, trace=None, latency_s: float | None = None, time_scale: float = 1.0,
                 faults=(), seed: int = 0, index: int = 0, host: str = "127.0.0.1", port: int = 0,
                 access_log=None, protection=None, license_policy=None, license_latency_s: float = 0.0,
                 license_failure_p: float = 0.0, mpd: str | None = None, quantum_s: float | None = None,
                 chunk_bytes: int = CHUNK_BYTES, limits: Limits | None = None) -> None:
        self.source = make_source(source, mpd)
        k = float(time_scale)
        if not math.isfinite(k) or k <= 0:
            raise InputError(f"time scale must be positive, got {time_scale!r}", where="--time-scale")
        if latency_s is not None and not (math.isfinite(latency_s) and latency_s >= 0):
            raise InputError(f"latency must be non-negative seconds, got {latency_s!r}", where="--latency")
        self.time_scale = k
        self.latency_s = latency_s
        self.index = index
        self.host, self._port = host, port
        parsed = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        self.plan = FaultPlan(parsed, seed=seed, edge=index)
        self.shaper = Shaper(trace, time_scale=k, outages=self.plan.outages, latency_s=latency_s,
                             quantum_s=quantum_s) if trace is not None else None
        if protection is None and isinstance(self.source, PresentationSource):
            protection = getattr(self.source.presentation, "protection", None)
        policy = license_policy if (license_policy is None or not isinstance(license_policy, str)) else \
            load_policy(license_policy)
        self.license = LicenseServer(protection, policy=policy, latency_s=license_latency_s,
                                     failure_p=license_failure_p, seed=seed * 1000 + index)
        if isinstance(access_log, AccessLog) or access_log is None:
            self._log, self._own_log = access_log, False
        else:
            self._log, self._own_log = AccessLog(access_log), True
        self.chunk_bytes = int(chunk_bytes)
        self.guard = Guard(limits, name=f"edge {index}", refusal=ANSWER_503)
        self.records: deque[dict] = deque(maxlen=MAX_RECORDS)
        self.t0 = 0.0
        self.dead = False
        self._runner = None
        self._server: asyncio.AbstractServer | None = None
        self._loop = None
        self._die_handle = None
        self._transports: set = set()

    # life cycle ---------------------------------------------------------------------------
    async def start(self) -> "EdgeServer":
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=MAX_REQUEST_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # the guard closes idle connections; aiohttp's own keep-alive timer only as a backstop
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False,
                                     logger=_AiohttpLog(self.guard),
                                     keepalive_timeout=self.guard.limits.idle_timeout_s + 1.0)
        await self._runner.setup()
        try:
            self._server = await self._loop.create_server(self.guard.factory(self._runner.server), self.host,
                                                          self._port, backlog=BACKLOG)
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.t0 = self._loop.time()
        if self.shaper is not None:
            self.shaper.start(self.t0)
        if self.plan.die_at is not None:
            self._die_handle = self._loop.call_at(self.t0 + self.plan.die_at / self.time_scale, self.die)
        return self

    def restart_clock(self) -> bool:
        """Start the trace again from its beginning now, and the faults' clock with it (``abrlab
        play`` replays the trace from its session's start, after the manifest). Only between
        bodies: with a body in flight nothing changes and it returns False."""
        t0 = self._loop.time()
        if self.shaper is not None and not self.shaper.restart(t0):
            return False
        self.t0 = t0
        if self._die_handle is not None and not self.dead:
            self._die_handle.cancel()
            self._die_handle = self._loop.call_at(self.t0 + self.plan.die_at / self.time_scale, self.die)
        return True

    async def stop(self) -> None:
        if self._die_handle is not None:
            self._die_handle.cancel()
        self.die()
        await asyncio.sleep(0)  # the listener closes after the accepts already under way (`close_listener`)
        if self.shaper is not None:
            self.shaper.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_log and self._log is not None:
            self._log.close()

    async def __aenter__(self) -> "EdgeServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def die(self) -> None:
        """Stop answering: close the listening socket and every open connection."""
        if self.dead:
            return
        self.dead = True
        conns = []
        if self._runner is not None and self._runner.server is not None:
            conns = [getattr(c, "transport", None) for c in self._runner.server.connections]
        for tr in list(self._transports) + conns:
            if tr is not None and not tr.is_closing():
                tr.abort()
        self.guard.shut_down(self._server)

    # clocks and addresses -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The MPD URL (or the root URL when there is no MPD)."""
        mpd = self.source.mpd_path
        return f"{self.base_url}/{mpd}" if mpd else f"{self.base_url}/"

    def now(self) -> float:
        return self._loop.time() - self.t0

    def trace_time(self) -> float:
        return self.now() * self.time_scale

    def _latency(self) -> float:
        """Wall seconds before a response's first byte."""
        if self.shaper is not None:
            return self.shaper.request_latency()
        return (self.latency_s or 0.0) / self.time_scale

    # handling ---------------------------------------------------------------------------------
    async def _handle(self, request):
        from aiohttp import web

        t_start = self._loop.time()
        rec = {
            "time": round(time.time(), 6), "t_s": round((t_start - self.t0) * self.time_scale, 6),
            "edge": self.index, "method": request.method, "path": request.path,
            "range": request.headers.get("Range"), "status": 0, "bytes": 0, "duration_s": 0.0,
            "cmcd": cmcd_from_request(request.query.get("CMCD"), request.headers),
        }
        tr = request.transport
        conn = self.guard.of(tr)
        if tr is not None:
            self._transports.add(tr)
        if conn is not None:
            conn.busy()
        try:
            return await self._respond(request, rec)
        except ConnectionError:  # the client went away, or the edge died: quietly close
            rec["aborted"] = True
            if tr is not None and not tr.is_closing():
                tr.abort()
            resp = rec.pop("_resp", None)
            return resp if resp is not None else web.Response(status=503)
        except asyncio.CancelledError:
            rec["aborted"] = True
            raise
        finally:
            if conn is not None:
                conn.done()
            rec.pop("_resp", None)
            if tr is not None:
                self._transports.discard(tr)
            rec["duration_s"] = round(self._loop.time() - t_start, 6)
            self.records.append(rec)
            if self._log is not None:
                self._log.write(rec)

    def _headers(self, extra: dict | None = None) -> dict:
        """Every response's headers: CORS and the time scale (`TIME_SCALE_HEADER`), so a
        player learns what pace the link runs at, and `extra`."""
        h = {**CORS_HEADERS, TIME_SCALE_HEADER: repr(self.time_scale)}
        if extra:
            h.update(extra)
        return h

    def _error(self, status: int, rec: dict, text: str | None = None, extra: dict | None = None):
        from aiohttp import web

        rec["status"] = status
        body = (text or f"{status}\n").encode()
        rec["bytes"] = len(body)
        return web.Response(status=status, body=body, content_type="text/plain", headers=self._headers(extra))

    async def _respond(self, request, rec: dict):
        from aiohttp import web

        method = request.method
        path = request.path
        if self.dead:
            raise ConnectionResetError("edge is dead")
        if method == "OPTIONS":
            rec["status"] = 204
            return web.Response(status=204, headers=self._headers(PREFLIGHT_HEADERS))
        if path.startswith("/license/"):
            if method != "POST":
                return self._error(405, rec, extra={"Allow": "POST, OPTIONS"})
            d = self.plan.decide_license(path, self.trace_time())
            if d.applied:
                rec["faults"] = d.applied
            resp = await self.license.aiohttp_handler(request, path[len("/license/"):], extra_delay_s=d.delay_s,
                                                      fail_status=d.status, time_scale=self.time_scale)
            resp.headers.update(self._headers())
            rec["status"] = resp.status
            rec["bytes"] = len(resp.body or b"")
            return resp
        if method not in ("GET", "HEAD"):
            return self._error(405, rec, extra={"Allow": "GET, HEAD, OPTIONS"})
        try:
            res = self._lookup(request)
        except Forbidden:
            return self._error(403, rec)
        except NotFound:
            return self._error(404, rec)
        except HTTPStatus as st:
            return self._error(st.status, rec, st.text, st.headers)
        try:
            return await self._serve(request, res, rec)
        finally:
            res.close()

    def _lookup(self, request) -> Resource:
        """The resource a GET/HEAD names (a subclass may answer from more of the request)."""
        return self.source.lookup(request.path, request.raw_path)

    async def _serve(self, request, res: Resource, rec: dict):
        from aiohttp import web

        decision: Decision = self.plan.decide(request.path, self.trace_time())
        if decision.applied:
            rec["faults"] = decision.applied
        wait = self._latency() + decision.delay_s / self.time_scale
        if wait > 0:
            await asyncio.sleep(wait)
        if self.dead:
            raise ConnectionResetError("edge is dead")
        if decision.status is not None:
            return self._error(decision.status, rec, f"injected fault: {decision.status}\n")
        headers = self._headers({"ETag": res.etag, "Accept-Ranges": "bytes", "Content-Type": res.content_type,
                                 "Cache-Control": "no-cache"})
        if res.last_modified is not None:
            headers["Last-Modified"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(res.last_modified))
        chunked = res.progressive is not None and res.progressive.pending()
        if chunked:  # still being produced: chunked transfer, whole body, no validators
            return await self._serve_chunked(request, res, rec, headers, decision)
        inm = request.headers.get("If-None-Match")
        if inm and (inm.strip() == "*" or res.etag in [t.strip() for t in inm.split(",")]):
            rec["status"] = 304
            headers.pop("Content-Type", None)
            return web.Response(status=304, headers=headers)
        range_header = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if range_header is not None and if_range is not None and if_range.strip() != res.etag:
            range_header = None
        try:
            rng = parse_range(range_header, res.size)
        except Unsatisfiable:
            return self._error(416, rec, extra={"Content-Range": f"bytes */{res.size}"})
        if rng is None:
            status, start, end = 200, 0, res.size
        else:
            status, (start, end) = 206, rng
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{res.size}"
        length = end - start
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = length
        rec["status"] = status
        rec["_resp"] = resp
        await resp.prepare(request)
        if request.method == "HEAD" or length == 0:
            await resp.write_eof()
            return resp
        return await self._send(request, resp, res, start, end, decision, rec)

    async def _serve_chunked(self, request, res: Resource, rec: dict, headers: dict, decision: Decision):
        """A body still being produced: HTTP/1.1 chunked transfer, each piece sent once released."""
        from aiohttp import web

        headers.pop("Accept-Ranges", None)
        resp = web.StreamResponse(status=200, headers=headers)
        resp.enable_chunked_encoding()
        rec["status"] = 200
        rec["_resp"] = resp
        await resp.prepare(request)
        if request.method == "HEAD":
            await resp.write_eof()
            return resp
        return await self._send(request, resp, res, 0, res.size, decision, rec, res.progressive)

    async def _send(self, request, resp, res: Resource, start: int, end: int, decision: Decision, rec: dict,
                    prog: Progressive | None = None):
        progress = [0]
        try:
            sent = await self._body(request, resp, res, start, end, decision, progress, rec, prog)
        finally:
            rec["bytes"] = progress[0]
        if sent < end - start:
            rec["aborted"] = True
            return resp
        await resp.write_eof()
        return resp

    async def _body(self, request, resp, res: Resource, start: int, end: int, d: Decision,
                    progress: list[int], rec: dict, prog: Progressive | None = None) -> int:
        """Write [start, end) through the shaper; returns bytes written (also kept in progress[0]).

        With `prog` (the whole body of a resource still being produced), each piece first
        waits for its release time on `prog.clock` (logged in ``rec["chunks"]``: byte end,
        release time, the clock when it left; each write in ``rec["writes"]``); the link then carries it at the trace's rate
        like any body. Each write is at most WRITE_BYTES and waits until the guard says the
        client's write buffer has room (a client that stops reading is reset after the write
        timeout), so the bytes held for one client stay bounded."""
        conn = self.guard.of(request.transport)
        flow = self.shaper.open(0 if prog is not None else end - start) if self.shaper is not None else _Gate(self)
        released = end if prog is None else 0  # bytes that may leave now
        writes = rec.setdefault("writes", []) if prog is not None else None   # [clock s, bytes] per write
        sent = 0
        stall_at = d.stall_after if d.stall_after is not None else -1
        reset_at = d.reset_after if d.reset_after is not None else -1
        pos = start
        try:
            if reset_at == 0:
                await self._reset(request)
                return 0
            while pos < end:
                if pos == released:
                    released = await self._release(prog, released, rec)
                data = res.read(pos, min(released, pos + self.chunk_bytes))
                if not data:  # the file shrank under us: cut the connection
                    request.transport.abort()
                    return sent
                view = memoryview(data)
                off = 0
                while off < len(view):
                    limit = min(len(view) - off, WRITE_BYTES)
                    for mark in (stall_at, reset_at):
                        if sent < mark < sent + limit:
                            limit = mark - sent
                    room = conn.writable() if conn is not None else None
                    if room is not None:
                        await room
                    n = await flow.take(limit)
                    if self.dead:
                        raise ConnectionResetError("edge is dead")
                    if writes is not None and len(writes) < MAX_LOGGED_WRITES:
                        writes.append([round(prog.clock.now(), 6), n])
                    await resp.write(view[off:off + n])
                    off += n
                    sent += n
                    progress[0] = sent
                    if sent == stall_at:
                        stall_at = -1
                        await asyncio.sleep(d.stall_s / self.time_scale)
                    if sent == reset_at:
                        await self._reset(request)
                        return sent
                pos += len(data)
            return sent
        finally:
            flow.close()

    async def _release(self, prog: Progressive, released: int, rec: dict) -> int:
        """Wait until the piece starting at byte `released` may leave; returns its end."""
        log = rec.setdefault("chunks", [])
        c = prog.ends.index(released) + 1 if released else 0
        await prog.clock.sleep_until(prog.release_s[c])
        if self.dead:
            raise ConnectionResetError("edge is dead")
        log.append({"end": prog.ends[c], "release_s": round(prog.release_s[c], 6), "at_s": round(prog.clock.now(), 6)})
        return prog.ends[c]

    async def _reset(self, request) -> None:
        """Send a TCP RST after the bytes written so far have left."""
        tr = request.transport
        if tr is None:
            return
        for _ in range(200):  # let the kernel take what we wrote (bounded)
            if tr.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.001)
        reset(tr)


class _AiohttpLog:
    """aiohttp's server logger reduced to one rate-limited line per bad request (aiohttp
    would write a traceback for each): the guard's `RateLimitedLog`."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def _line(self, msg, *args, exc_info=None, **_kw) -> None:
        text = str(msg) % args if args else str(msg)
        if text.startswith("Error handling request from "):
            text = "bad request from " + text[len("Error handling request from "):]
        exc = exc_info if isinstance(exc_info, BaseException) else (sys.exc_info()[1] if exc_info else None)
        if exc is not None:
            text = f"{text}: {getattr(exc, 'message', None) or exc}"
        self.guard.log.line(f"{self.guard.name}: {text}")

    def debug(self, msg, *args, exc_info=None, **kw) -> None:
        if exc_info:  # aiohttp logs a first request with a bad method at debug level: a bad request too
            self._line(msg, *args, exc_info=exc_info, **kw)

    info = debug
    warning = error = exception = critical = _line


# -- several edges -------------------------------------------------------------------------------
class EdgeGroup:
    """N edges started together (``abrlab serve --edges N``)."""

    def __init__(self, edges: list[EdgeServer]) -> None:
        self.edges = edges

    async def __aenter__(self) -> "EdgeGroup":
        started = []
        try:
            for e in self.edges:
                started.append(await e.start())
        except BaseException:
            for e in started:
                await e.stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        for e in self.edges:
            await e.stop()

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self.edges]
