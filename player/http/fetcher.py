"""One fetcher for every object the player asks for: manifests, segments, init segments,
segment indexes and licences, with one retry policy (`player.http.config.RetryPolicy`).

`Fetcher.fetch(resource)` returns a `Body` or raises:

* `NotFound` — 404/410 on every BaseURL alternative (the caller may try another rung; its
  `status` says which: a live segment that left the time-shift buffer answers 410);
* `TooEarly` — 425 (RFC 8470): a live segment not available yet, with the server's
  ``Retry-After`` (seconds, when it gives one); not retried here, the live driver waits;
* `Abandoned` — the resource's abandonment hook chose another rung mid-download;
* `FetchFailed` (a `PlaybackError`) — given up, `kind` saying why: "budget" (the retry
  budget ran out on failures worth retrying), or one retrying cannot help (`permanent`):
  "status" (a 4xx other than 404/408/410/429), "redirect" (a loop, more than
  ``max_redirects`` hops, or a redirect to a non-HTTP scheme such as file://),
  "unreachable" (a `fail_fast` resource — the manifest before anything played — whose
  server cannot be reached on any alternative: connection refused, unknown host),
  "bad_body" / "too_large" (every alternative answered, ``per_edge`` times each, with a
  body the resource's `check` refuses — garbage, an empty body, a box that runs past the
  body — or one over its size limit).

What it does between the first attempt and that answer:

* timeouts (presentation seconds, `HttpConfig`): a first-byte timeout, an idle timeout (no
  body bytes), and a whole-attempt timeout of ``total_timeout_factor`` × the object's
  duration (at least ``min_total_timeout_s``), or the policy's ``attempt_timeout_s``;
* redirects are followed by hand: at most ``max_redirects`` hops, http and https only, a
  loop refused at the first repeated URL (303, and 301/302 after a POST, become a GET);
* 5xx, 408, 429, timeouts, resets, short bodies and refused connections (except on a
  `fail_fast` resource) are retried with the policy's backoff; after ``per_edge``
  consecutive failures on one alternative (edge) it fails over to the next, which `Edges`
  then prefers, avoiding the failed one for ``failover_penalty_s``; 404/410 moves to the
  next alternative at once;
* the retry budget (``max_retry_s``, presentation seconds) bounds the whole fetch: an
  object is given up at most that long after its first request (or when its first attempt
  ends, if that is later — a slow first download is not cut short): retries run inside it,
  their timeouts end where it ends, and no retry starts whose backoff would outlast it. The
  error says the attempts, the seconds and the budget;
* a partial body is resumed with a Range request (``If-Range`` on the ETag) when the server
  accepts ranges; a server that ignores ``Range`` (``python -m http.server``) is handled: the
  body is read up to the range's end and cut, the bytes before it counted as wasted;
* every body is limited to the resource's `max_bytes` (a Content-Length over it is refused
  unread; a body that grows past it is cut off, never held beyond it); over the limit is a
  bad body (below), and when every alternative sends one, FetchFailed kind "too_large";
* a complete body is checked (`Resource.check`, e.g. `player.http.media.check_media`); a
  body it refuses is a failed download: thrown away (counted as wasted), retried, and after
  ``per_edge`` such bodies from one alternative that alternative is dropped for this
  object (and the edge penalised) in favour of the next;
* measurement: ``latency_s`` = request sent → response headers of the attempt that
  delivered; ``t_sent`` is the first attempt's, so retries make a fetch measure slow;
* abandonment: every ``abandon_interval_s`` of a download the resource's `abandon_check`
  is asked (bytes so far, seconds since the first attempt); a rung aborts the response;
* progress: after each read the resource's `on_data` sees the body so far and the time
  (a low-latency driver finds its CMAF chunks in it as they arrive).

Each attempt is reported as a `Request` event, each wait as `Retry`, each change of
alternative as `Failover` (`emit`, typed events of `player.core.events`);
`decorate(resource, url, byte_range, alt, headers)` may add to a request (CMCD) and
returns the URL to send.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
from yarl import URL

from netem.edge import TIME_SCALE_HEADER, parse_time_scale
from netem.errors import PlaybackError
from player.core.events import Event, Failover, Request, Retry
from player.http.clock import Clock
from player.http.config import HttpConfig, RetryPolicy

ByteRange = tuple[int, int]                    # first and last byte, inclusive
Location = tuple[str, ByteRange | None]        # a URL and, for part of a resource, its byte range
ERROR_BODY_BYTES = 4096                        # of an error response, read for its first line
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
USER_AGENT = "abrlab-player/0.1"
READ_BYTES = 256 * 1024                        # the most one read of a body takes


# ---------------------------------------------------------------------------------------
# what the fetcher is asked for and what it answers


@dataclass
class Resource:
    """What to fetch: `locate(alt)` gives its URL and byte range on BaseURL alternative `alt`."""

    what: str                                   # manifest | init | index | media | license
    locate: Callable[[int], Location]
    n_alternatives: int = 1
    max_bytes: int = 16 * 1024 * 1024
    object_type: str = "o"                      # CMCD object type (m, v, a, i, k, o)
    segment: int | None = None
    rung: int | None = None
    track: str | None = None
    bitrate_bps: float | None = None
    duration_s: float | None = None
    locate_next: Callable[[int], Location | None] | None = None   # the next object (CMCD nor/nrr)
    abandon_check: Callable[[float, float], int] | None = None    # (bytes so far, elapsed s) -> rung | -1
    method: str = "GET"
    payload: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry: RetryPolicy | None = None            # None: the fetcher's
    on_attempt: Callable[[int], None] | None = None   # called with the attempt number before sending
    fail_fast: bool = False                     # an unreachable server is final (the manifest before play)
    check: Callable[[bytes], None] | None = None     # raises BoxError/ValueError when a body is not what it should be
    on_data: Callable[[bytearray, float], None] | None = None   # (body so far, player clock) after each read

    def label(self) -> str:
        """How an error names it: "manifest", "video segment 3" (1-based)."""
        return self.what if self.segment is None else f"{self.track or self.what} segment {self.segment + 1}"


@dataclass
class Body:
    """One object fetched (possibly over several attempts)."""

    data: bytes
    url: str
    t_sent: float            # first attempt sent (player clock)
    latency_s: float         # of the attempt that delivered the data
    t_done: float
    edge: int
    attempts: int
    wasted: int = 0          # bytes received and thrown away (restarts, skipped prefixes)
    final_url: str = ""
    byte_range: ByteRange | None = None
    charset: str | None = None   # of the Content-Type, when the server names one (a manifest's text)
    date: str | None = None      # the response's Date header (a live player's last resort to learn the time)
    time_scale: float | None = None   # the time scale the server announces (`netem.edge.TIME_SCALE_HEADER`)

    @property
    def size(self) -> int:
        return len(self.data)


class NotFound(Exception):
    """404/410 on every alternative (`status`: the last one seen)."""

    def __init__(self, url: str, wasted: int, status: int = 404) -> None:
        super().__init__(url)
        self.url = url
        self.wasted = wasted
        self.status = status


class TooEarly(Exception):
    """425 Too Early: the object (a live segment) is not available yet; the server says to
    come back after `retry_after_s` (None: it did not say)."""

    def __init__(self, url: str, retry_after_s: float | None) -> None:
        super().__init__(url)
        self.url = url
        self.retry_after_s = retry_after_s


class Abandoned(Exception):
    """The abandonment hook chose `rung`; `wasted` bytes were received for nothing."""

    def __init__(self, rung: int, wasted: int) -> None:
        super().__init__(rung)
        self.rung = rung
        self.wasted = wasted


class FetchFailed(PlaybackError):
    """A resource was given up. `kind` says why: "budget" (retries ran out), or a failure
    retrying cannot help: "status", "redirect", "unreachable", "bad_body", "too_large".
    `status`: the last HTTP status, if any; `detail`: the start of the last error body."""

    def __init__(self, message: str, *, kind: str = "budget", status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.detail = detail

    @property
    def permanent(self) -> bool:
        """Whether retrying could not have helped."""
        return self.kind != "budget"


class _Retryable(Exception):
    """A failure worth retrying (5xx, timeout, reset, a short body)."""


class _BadBody(_Retryable):
    """A complete body that is not what the resource should be (its `check` refused it)."""


class _TooLarge(_BadBody):
    """A body (or its Content-Length) over the resource's limit."""


class _Unreachable(_Retryable):
    """The server cannot be reached (connection refused, unknown host): retried, except on a
    `fail_fast` resource."""


class _Permanent(Exception):
    """A failure retrying cannot help; `kind` as `FetchFailed.kind`."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class _StatusError(Exception):
    def __init__(self, status: int, detail: str = "", retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}{': ' + detail.splitlines()[0][:120] if detail.strip() else ''}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


@dataclass
class _Partial:
    """One resource's bytes across attempts."""

    t_start: float
    got: bytearray = field(default_factory=bytearray)
    wasted: int = 0
    attempts: int = 0
    resumable: bool = False
    etag: str | None = None

    def discard(self) -> None:
        self.wasted += len(self.got)
        self.got.clear()


@dataclass
class _AttemptRecord:
    """What one attempt did, for its Request event."""

    status: int | None = None
    latency_s: float | None = None
    transfer_s: float | None = None
    received: int = 0
    ok: bool = False
    error: str | None = None


class _Tries:
    """One resource's attempts across alternatives: which are excluded and why, the last
    error, how many failed in a row on the current one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.missing: set[int] = set()          # without the object (404/410)
        self.unreachable: set[int] = set()      # refused the connection (fail_fast resources)
        self.corrupt: set[int] = set()          # answered with bad bodies `per_edge` times
        self.bad_bodies: dict[int, int] = {}
        self.used: set[int] = set()
        self.consecutive = 0
        self.last = "no attempt"
        self.last_status: int | None = None

    def excluded(self) -> set[int]:
        return self.missing | self.unreachable | self.corrupt

    def next_alternative(self, preferred: list[int]) -> int | None:
        """The alternative to try next (the edges' preference, excluded ones skipped)."""
        out = self.excluded()
        alt = next((a % self.n for a in preferred if a % self.n not in out), None)
        if alt is not None:
            self.used.add(alt)
        return alt

    def exclude(self, alt: int, reason: set[int]) -> bool:
        """Exclude `alt` (adding it to `reason`); whether any alternative is left."""
        reason.add(alt)
        return len(self.excluded()) < self.n


class Edges:
    """BaseURL alternatives and which have failed recently (DVB-DASH style failover)."""

    def __init__(self, n: int, penalty_s: float) -> None:
        self.n = max(1, n)
        self.penalty_s = penalty_s
        self.current = 0
        self.bad_until = [-math.inf] * self.n

    def order(self, now: float) -> list[int]:
        """Alternatives to try, best first: the current one, then the next ones, skipping
        those in penalty (unless every one is)."""
        ring = [(self.current + i) % self.n for i in range(self.n)]
        good = [a for a in ring if self.bad_until[a] <= now]
        return good or sorted(ring, key=lambda a: self.bad_until[a])

    def fail(self, alt: int, now: float) -> int:
        self.bad_until[alt % self.n] = now + self.penalty_s
        if alt % self.n == self.current:
            self.current = self.order(now)[0]
        return self.current


# ---------------------------------------------------------------------------------------
# the fetcher


def open_client(config: HttpConfig) -> aiohttp.ClientSession:
    """The player's HTTP client: keep-alive, the connect timeout (wall seconds: TCP set-up
    is not emulated), bodies as sent (no decompression: sizes are what the link carried)."""
    timeout = aiohttp.ClientTimeout(total=None, connect=config.connect_timeout_s,
                                    sock_connect=config.connect_timeout_s)
    connector = aiohttp.TCPConnector(limit=32, keepalive_timeout=60.0)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False,
                                 headers={"User-Agent": USER_AGENT})


class Fetcher:
    """Fetches resources over one aiohttp client (see the module doc)."""

    def __init__(self, client: Any, clock: Clock, config: HttpConfig, *, emit: Callable[[Event], Any],
                 decorate: Callable[[Resource, str, ByteRange | None, int, dict], str] | None = None) -> None:
        self.client = client
        self.clock = clock
        self.config = config
        self.emit = emit
        self.decorate = decorate
        self.retry = config.retry()
        self.edges = Edges(1, config.failover_penalty_s)
        self.counters = {"requests": 0, "retries": 0, "failovers": 0, "wasted_bytes": 0, "ranges_ignored": 0}

    def use_alternatives(self, n: int) -> None:
        """The presentation offers `n` BaseURL alternatives (edges)."""
        if n != self.edges.n:
            self.edges = Edges(n, self.config.failover_penalty_s)

    async def fetch(self, res: Resource) -> Body:
        """Fetch one resource with retries, resume and failover (see the module doc)."""
        policy = res.retry or self.retry
        part = _Partial(t_start=self.clock.now())
        tries = _Tries(max(1, res.n_alternatives))
        while True:
            alt = tries.next_alternative(self.edges.order(self.clock.now()))
            if alt is None:
                raise NotFound(res.locate(0)[0], part.wasted + len(part.got))
            url, rng = res.locate(alt)
            if part.got and not part.resumable:
                part.discard()
            part.attempts += 1
            self.counters["requests"] += 1
            if res.on_attempt is not None:
                res.on_attempt(part.attempts)
            try:
                body = await self._attempt(res, url, rng, alt, part, policy)
                self.counters["wasted_bytes"] += part.wasted
                body.wasted = part.wasted
                return body
            except Abandoned as a:
                a.wasted = part.wasted + len(part.got)
                raise
            except _StatusError as s:
                tries.last, tries.last_status = str(s), s.status
                if s.status == 425:
                    raise TooEarly(url, retry_after_seconds(s.retry_after)) from None
                if s.status in (404, 410):
                    if not tries.exclude(alt, tries.missing):
                        raise NotFound(url, part.wasted + len(part.got), s.status) from None
                    self._failover(res, url, alt, tries.next_alternative(self.edges.order(self.clock.now())),
                                   str(s), None)
                    continue
                if s.status not in (408, 429) and s.status < 500:
                    raise FetchFailed(f"{res.label()} ({url}): {s}", kind="status", status=s.status,
                                      detail=s.detail) from None
            except _Permanent as p:
                raise FetchFailed(f"{res.label()} ({url}): {p}", kind=p.kind, status=tries.last_status) from None
            except _Retryable as t:
                tries.last = str(t)
                if isinstance(t, _BadBody):
                    tries.bad_bodies[alt] = tries.bad_bodies.get(alt, 0) + 1
                    if tries.bad_bodies[alt] >= policy.per_edge:
                        self.edges.fail(alt, self.clock.now())
                        if not tries.exclude(alt, tries.corrupt):
                            raise FetchFailed(f"{res.label()} ({url}): no good body after {part.attempts} attempts on "
                                              f"{len(tries.used)} edge(s); last: {t}",
                                              kind="too_large" if isinstance(t, _TooLarge) else "bad_body") from None
                        self._failover(res, url, alt, tries.next_alternative(self.edges.order(self.clock.now())),
                                       str(t), round(self.edges.bad_until[alt % self.edges.n], 6))
                        continue
                if isinstance(t, _Unreachable) and res.fail_fast:
                    if not tries.exclude(alt, tries.unreachable):
                        raise FetchFailed(f"{res.label()} ({url}): {t}", kind="unreachable") from None
                    self._failover(res, url, alt, tries.next_alternative(self.edges.order(self.clock.now())),
                                   str(t), None)
                    continue
            await self._after_failure(res, policy, part, tries, alt, url)

    async def _after_failure(self, res: Resource, policy: RetryPolicy, part: _Partial, tries: _Tries, alt: int,
                             url: str) -> None:
        """A retryable failure on `alt`: give up (FetchFailed) when the budget is spent, fail
        over after `per_edge` in a row, else wait the policy's backoff."""
        tries.consecutive += 1
        elapsed = self.clock.now() - part.t_start
        delay = policy.delay(tries.consecutive - 1)
        if policy.gives_up(part.attempts, elapsed + delay):
            raise FetchFailed(f"{res.label()} ({url}): gave up after {part.attempts} attempts in {elapsed:.1f} s on "
                              f"{len(tries.used)} edge(s) (retry budget {policy.budget_s:g} s); last error: "
                              f"{tries.last}", status=tries.last_status)
        if tries.consecutive >= policy.per_edge and tries.n > 1 and self.edges.n > 1:
            new = self.edges.fail(alt, self.clock.now()) % tries.n
            tries.consecutive = 0
            if new != alt:
                self._failover(res, url, alt, new, tries.last, round(self.edges.bad_until[alt % self.edges.n], 6))
                return
        self.counters["retries"] += 1
        self.emit(Retry(self.clock.now(), res.what, url, part.attempts, tries.last, round(delay, 6),
                        segment=res.segment, resume_from=len(part.got) if part.resumable else 0))
        await self.clock.sleep(delay)

    def _failover(self, res: Resource, url: str, alt: int, new: int | None, reason: str,
                  until_s: float | None) -> None:
        self.counters["failovers"] += 1
        self.emit(Failover(self.clock.now(), res.what, alt, new, reason, until_s, url=url, segment=res.segment))

    async def _attempt(self, res: Resource, url: str, rng: ByteRange | None, alt: int, part: _Partial,
                       policy: RetryPolicy) -> Body:
        """One HTTP attempt. Body bytes go to `part.got` (a resumed attempt asks for the rest);
        raises _StatusError, _Retryable (_Unreachable), _Permanent or Abandoned. A retry runs
        inside the object's retry budget: its timeouts end where the budget does. The steps:
        send and wait for the first byte, check the response (`_expect`), read the body
        (`_read_body`), check it (`_verify`); every attempt ends with one Request event."""
        cfg = self.config
        now = self.clock.now
        budget_end = part.t_start + policy.budget_s if part.attempts > 1 else math.inf
        held = len(part.got)                       # bytes kept from earlier attempts
        start = (rng[0] if rng else 0) + held
        headers = self._request_headers(res, rng, part, start)
        req_url = self.decorate(res, url, rng, alt, headers) if self.decorate is not None else url
        t_sent = now()
        rec = _AttemptRecord()
        resp = None
        first_byte_s = cfg.first_byte_timeout_s if policy.attempt_timeout_s is None else \
            min(cfg.first_byte_timeout_s, policy.attempt_timeout_s)
        final = url
        try:
            try:
                async with asyncio.timeout(self.clock.wall(min(first_byte_s, budget_end - t_sent))):
                    resp, final = await self._send(res, url, req_url, headers)
            except TimeoutError:
                if now() >= budget_end - 1e-6:
                    raise _Retryable(f"no response before the retry budget of {policy.budget_s:g} s ran out") \
                        from None
                raise _Retryable(f"no response within {first_byte_s:g} s") from None
            t_first = now()
            rec.status = resp.status
            rec.latency_s = round(t_first - t_sent, 6)
            if resp.status not in (200, 206):
                detail = await self._error_text(resp, min(cfg.idle_timeout_s, budget_end - now()))
                raise _StatusError(resp.status, detail, resp.headers.get("Retry-After"))
            target, skip = self._expect(res, resp, rng, part, start, held, ranged="Range" in headers)
            if policy.attempt_timeout_s is not None:
                total = policy.attempt_timeout_s
            else:
                total = max(cfg.min_total_timeout_s, cfg.total_timeout_factor * (res.duration_s or 2.0)
                            + cfg.first_byte_timeout_s)
            deadline = min(t_sent + total, budget_end)
            limit = "the retry budget ran out" if deadline == budget_end else f"not complete after {total:g} s"
            await self._read_body(res, resp, rng, part, rec, target, skip, deadline, limit)
            t_done = now()
            data = self._verify(res, part, target)
            rec.ok, rec.transfer_s = True, round(t_done - t_first, 6)
            return Body(data, url, part.t_start, t_first - t_sent, t_done, alt, part.attempts,
                        final_url=final, byte_range=rng, charset=resp.charset, date=resp.headers.get("Date"),
                        time_scale=parse_time_scale(resp.headers.get(TIME_SCALE_HEADER)))
        except (_StatusError, _Retryable, _Permanent, Abandoned) as exc:
            rec.error = rec.error or str(exc)
            raise
        except aiohttp.ClientConnectorError as exc:
            rec.error = unreachable_reason(final, exc)
            raise _Unreachable(rec.error) from None
        except (aiohttp.ClientError, OSError) as exc:
            rec.error = f"{type(exc).__name__}: {exc}".split("\n")[0][:200]
            raise _Retryable(rec.error) from None
        finally:
            if resp is not None:
                resp.release()
            self.emit(Request(now(), res.what, url, rng, rec.status, rec.received, rec.latency_s, rec.transfer_s,
                              alt, part.attempts, rec.ok, rec.error, segment=res.segment, rung=res.rung,
                              track=res.track, resume_from=held))

    @staticmethod
    def _request_headers(res: Resource, rng: ByteRange | None, part: _Partial, start: int) -> dict[str, str]:
        """The attempt's headers: no content coding, the resource's own, and a Range from
        `start` when a byte range is wanted or earlier attempts kept bytes (If-Range: the
        same version)."""
        headers: dict[str, str] = {"Accept-Encoding": "identity", **res.headers}
        if rng is not None or part.got:
            headers["Range"] = f"bytes={start}-{'' if rng is None else rng[1]}"
            if part.got and part.etag:
                headers["If-Range"] = part.etag
        return headers

    def _expect(self, res: Resource, resp, rng: ByteRange | None, part: _Partial, start: int, held: int,
                ranged: bool) -> tuple[int | None, int]:
        """What a 200/206 answer promises: the object's total length when known (None: read
        to the end) and how many leading bytes to drop (a 200 to a range request sends the
        whole resource). Refuses a 206 from the wrong offset and a declared body over the
        resource's limit; notes whether the server can resume and the version (ETag)."""
        skip = 0
        if resp.status == 206:
            cr = resp.headers.get("Content-Range", "")
            if content_range_start(cr) != start:
                raise _Retryable(f"unexpected Content-Range {cr!r} for bytes={start}-")
        elif ranged:
            # 200 to a range request: the server sends the whole resource (http.server)
            self.counters["ranges_ignored"] += 1
            part.discard()
            skip = rng[0] if rng else 0
        if rng is not None:
            target = rng[1] - rng[0] + 1
        elif resp.status == 206:
            rest = content_range_rest(resp.headers.get("Content-Range", ""))
            target = None if rest is None else held + rest
        else:
            target = resp.content_length
        length = resp.content_length
        if rng is None and length is not None and length > res.max_bytes:   # (a range is cut at its end)
            raise _TooLarge(f"Content-Length {length} exceeds the limit of {res.max_bytes} bytes")
        part.resumable = resp.status == 206 or resp.headers.get("Accept-Ranges", "").lower() == "bytes"
        part.etag = resp.headers.get("ETag") or part.etag
        return target, skip

    async def _read_body(self, res: Resource, resp, rng: ByteRange | None, part: _Partial, rec: "_AttemptRecord",
                         target: int | None, skip: int, deadline: float, limit: str) -> None:
        """Read the body into `part.got` until it ends (or `target` bytes are in): no data for
        the idle timeout or past `deadline` is retryable (`limit` says which deadline); every
        abandonment interval the resource's check may abandon it; a body over the limit is
        refused; connection errors are retryable."""
        cfg = self.config
        now = self.clock.now
        last_data = last_check = now()
        check = res.abandon_check
        step = min(cfg.idle_timeout_s, cfg.abandon_interval_s) if check else cfg.idle_timeout_s
        try:
            while True:
                wait = min(step, deadline - now(), cfg.idle_timeout_s - (now() - last_data))
                chunk = None
                try:
                    async with asyncio.timeout(self.clock.wall(max(wait, 1e-4))):
                        chunk = await resp.content.read(self._read_size(res, part, skip, target))
                except TimeoutError:
                    if now() - last_data >= cfg.idle_timeout_s - 1e-6:
                        raise _Retryable(f"no data for {cfg.idle_timeout_s:g} s after {rec.received} bytes") \
                            from None
                    if now() >= deadline - 1e-6:
                        raise _Retryable(f"{limit} ({rec.received} bytes)") from None
                if chunk is not None:
                    if not chunk:
                        return
                    rec.received += len(chunk)
                    last_data = now()
                    if skip:
                        drop = min(skip, len(chunk))
                        skip -= drop
                        part.wasted += drop
                        chunk = chunk[drop:]
                    if target is not None and len(part.got) + len(chunk) > target:
                        part.wasted += len(part.got) + len(chunk) - target
                        chunk = chunk[:target - len(part.got)]
                    if len(part.got) + len(chunk) > res.max_bytes:
                        resp.close()
                        part.discard()
                        part.resumable = False
                        raise _TooLarge(f"body longer than the limit of {res.max_bytes} bytes")
                    part.got += chunk
                    if res.on_data is not None:
                        res.on_data(part.got, now())
                    if target is not None and len(part.got) == target and rng is not None and resp.status == 200:
                        resp.close()  # all we asked for, from a server that ignored Range and sends more
                        return
                if check is not None and now() - last_check >= cfg.abandon_interval_s:
                    last_check = now()
                    r = check(float(len(part.got)), now() - part.t_start)
                    if r >= 0:
                        resp.close()
                        rec.error = f"abandoned for rung {r}"
                        raise Abandoned(r, 0)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                ConnectionError) as exc:
            raise _Retryable(f"connection lost after {rec.received} bytes ({type(exc).__name__})") from None

    @staticmethod
    def _verify(res: Resource, part: _Partial, target: int | None) -> bytes:
        """The whole body, or a retryable short one; a body the resource's check refuses (not
        ISO-BMFF, a box running past its end) is discarded: retrying it elsewhere may help,
        resuming it cannot."""
        if target is not None and len(part.got) < target:
            raise _Retryable(f"short body: {len(part.got)} of {target} bytes")
        data = bytes(part.got)
        if res.check is not None:
            try:
                res.check(data)
            except ValueError as exc:   # BoxError is one
                part.discard()
                part.resumable = False
                raise _BadBody(str(exc)) from None
        return data

    @staticmethod
    def _read_size(res: Resource, part: _Partial, skip: int, target: int | None) -> int:
        """How much the next read of a body may take: what is still to skip, then what is
        still wanted (the rest of a known length, else one byte past the limit, to see a body
        that is too long), never more than `READ_BYTES`."""
        wanted = target - len(part.got) if target is not None else res.max_bytes - len(part.got) + 1
        return max(1, min(READ_BYTES, skip + max(1, wanted)))

    async def _error_text(self, resp: Any, timeout_s: float) -> str:
        """The start of an error response's body (its first line names the error), if it
        comes within `timeout_s`."""
        try:
            async with asyncio.timeout(self.clock.wall(timeout_s)):
                return (await resp.content.read(ERROR_BODY_BYTES)).decode("utf-8", "replace").strip()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return ""

    async def _send(self, res: Resource, url: str, req_url: str, headers: dict[str, str]) -> tuple[Any, str]:
        """Send the request, following redirects by hand: (response, final URL)."""
        method, payload = res.method, res.payload
        seen = {url}
        for _hop in range(self.config.max_redirects + 1):
            resp = await self.client.request(method, URL(req_url, encoded=True), headers=headers, data=payload,
                                             allow_redirects=False)
            if resp.status not in REDIRECT_STATUSES:
                return resp, url
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise _Permanent(f"HTTP {resp.status} redirect without a Location from {url}", "redirect")
            nxt = urljoin(url, location)
            if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                raise _Permanent(f"redirect from {url} to a non-HTTP URL {nxt[:200]!r}", "redirect")
            if nxt in seen:
                raise _Permanent(f"redirect loop ({url} back to {nxt})", "redirect")
            seen.add(nxt)
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, payload = "GET", None
            url = req_url = nxt
        raise _Permanent(f"too many redirects (more than {self.config.max_redirects})", "redirect")


def unreachable_reason(url: str, exc: aiohttp.ClientConnectorError) -> str:
    """One line for a connection that could not be made: refused, unknown host, or other."""
    host = urlsplit(url).netloc
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot connect to {host}: unknown host"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return f"cannot connect to {host}: connection refused"
    return f"cannot connect to {host}: {exc.os_error.strerror or type(exc.os_error).__name__}"


def retry_after_seconds(text: str | None) -> float | None:
    """A Retry-After header's delay in seconds (the delta-seconds form; an HTTP date or
    anything else: None)."""
    if text is None or not text.strip().isdigit():
        return None
    return float(min(int(text.strip()), 86400))


def content_range_rest(text: str) -> int | None:
    """The length of the range a Content-Range header announces (``bytes a-b/total`` gives
    b − a + 1): the bytes still to come for an open range request. None when unknown."""
    t = text.strip().lower()
    if not t.startswith("bytes "):
        return None
    spec = t[6:].split("/", 1)[0]
    a, _, b = spec.partition("-")
    if not (a.strip().isdigit() and b.strip().isdigit()):
        return None
    return int(b) - int(a) + 1


def content_range_start(text: str) -> int | None:
    """The first byte a Content-Range header announces (None when unknown)."""
    t = text.strip().lower()
    if not t.startswith("bytes "):
        return None
    spec = t[6:].split("/", 1)[0]
    a, _, _ = spec.partition("-")
    return int(a) if a.strip().isdigit() else None
