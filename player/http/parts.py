"""The parts of a segment download as the fetcher sees them, and the init segments kept.

A segment of the session is its media object at the chosen rung, the audio segments that go
with it and any init segment not fetched before (one per representation and period). This
module turns the playback plan's tracks (`player.dash.playback`) into fetcher `Resource`s —
media, init and SegmentBase index (the init segment and its ``sidx`` in one range request
when they are adjacent) — and keeps init segments once fetched (`InitSegments`): rungs or
periods that share one share the fetch, and decryption reads them back.

Each resource's body is limited to what the manifest leads the player to expect, so a
server that streams without end (a chunked body with no Content-Length) is cut off early
and held in memory only up to that limit: the exact length when the byte range is known
(SegmentBase, SegmentList with mediaRange, init and index ranges); otherwise, for a media
segment, `MEDIA_SIZE_FACTOR` (8) times its representation's @bandwidth × its duration —
generous, as variable-bitrate segments run a few times over their average — and never less
than `MIN_BODY_LIMIT_BYTES` (4 MiB, also the limit of an init segment or index without a
range). A body over its limit is a bad body (`player.http.fetcher`): retried, failed over,
then an error.
"""
from __future__ import annotations

import asyncio
import math
from typing import Awaitable, Callable, Sequence

from netem.errors import PlaybackError
from player.dash.model import Representation
from player.dash.playback import PlaybackPlan, Track, alternatives
from player.http.fetcher import Body, ByteRange, Location, NotFound, Resource
from player.http.media import check_index, check_init, check_media, is_isobmff

MEDIA_SIZE_FACTOR = 8.0                     # × @bandwidth × duration: a media body's limit
MIN_BODY_LIMIT_BYTES = 4 * 1024 * 1024      # the least limit of any body (and that of an init without range)

InitKey = tuple[str, tuple[int, int] | None]    # an init segment's URL and range on the first alternative


def body_limit(byte_range: ByteRange | None, bandwidth_bps: float = 0.0, duration_s: float = 0.0) -> int:
    """The most bytes a body may have: the range's length when known, else the expected
    size (`MEDIA_SIZE_FACTOR` × bandwidth × duration) but at least `MIN_BODY_LIMIT_BYTES`."""
    if byte_range is not None:
        return byte_range[1] - byte_range[0] + 1
    expected = MEDIA_SIZE_FACTOR * max(0.0, bandwidth_bps) * max(0.0, duration_s) / 8.0
    return max(MIN_BODY_LIMIT_BYTES, math.ceil(expected))


def media_resource(plan: PlaybackPlan, track: Track, k: int, rung: int | None) -> Resource:
    """Segment `k` of `track` (the rung's, or the audio's with `rung` None)."""
    n = track.n_segments
    dur = float(track.durations_s()[k]) if track.kind == "audio" else float(plan.segment_plan.durations_s[k])

    def locate_next(alt: int) -> Location | None:
        return track.segment(k + 1, alt) if k + 1 < n else None

    rep = track.rep_at(k)
    limit = body_limit(track.segment(k, 0)[1], rep.bandwidth_bps, dur)
    return Resource("media", lambda alt: track.segment(k, alt), track.n_alternatives, limit,
                    object_type="v" if track.kind == "video" else "a", segment=k, rung=rung, track=track.kind,
                    bitrate_bps=track.rep.bandwidth_bps, duration_s=dur, locate_next=locate_next,
                    check=check_media if is_isobmff(rep.mime_type) else None)


def init_resource(track: Track, k: int = 0) -> Resource:
    """The init segment that segment `k` of `track` needs."""
    part, _ = track.at(k)

    def locate(alt: int) -> Location:
        init = part.init(alt)
        return init.url, init.byte_range

    return Resource("init", locate, part.n_alternatives, body_limit(locate(0)[1]), object_type="i", track=track.kind,
                    bitrate_bps=part.rep.bandwidth_bps, check=check_init if is_isobmff(part.rep.mime_type) else None)


def index_resource(rep: Representation, extra_origins: Sequence[str]) -> tuple[Resource, int]:
    """The SegmentBase index of `rep`, and how many bytes of init segment come first in it
    (0 unless the init segment lies just before the ``sidx``: then one range has both)."""
    pend = rep.pending_sidx
    bases = alternatives(rep, pend.media_url, extra_origins)
    init = pend.init
    combined = (init is not None and init.url == pend.url and init.byte_range is not None
                and pend.index_range is not None and init.byte_range[1] + 1 == pend.index_range[0])

    def locate(alt: int) -> Location:
        p = pend.with_base_url(bases[alt % len(bases)]) if alt % len(bases) else pend
        if combined:
            return p.url, (p.init.byte_range[0], p.index_range[1])
        return p.url, p.index_range

    n_init = init.byte_range[1] - init.byte_range[0] + 1 if combined else 0
    return Resource("index", locate, len(bases), body_limit(locate(0)[1]), object_type="i", track=rep.id,
                    bitrate_bps=rep.bandwidth_bps, check=lambda data: check_index(data, n_init)), n_init


class InitSegments:
    """Init segments fetched once per `InitKey` and kept (bytes by key)."""

    def __init__(self, fetch: Callable[[Resource], Awaitable[Body]]) -> None:
        self._fetch = fetch
        self._tasks: dict[InitKey, asyncio.Task] = {}
        self._data: dict[InitKey, bytes] = {}

    def keep(self, key: InitKey, data: bytes) -> None:
        """An init segment that arrived another way (with its ``sidx``)."""
        self._data[key] = data

    def data(self, key: InitKey | None) -> bytes | None:
        return None if key is None else self._data.get(key)

    def request(self, track: Track, k: int = 0) -> asyncio.Future:
        """The init segment segment `k` of `track` needs. The future gives its bytes if
        this call started the fetch, None if another did (or it was kept already)."""
        key = track.init_key(k)
        task = self._tasks.get(key)
        if task is not None and task.done() and (task.cancelled() or task.exception() is not None):
            task = None   # a failed or cancelled fetch is tried again
        if task is None and key is not None and key not in self._data:
            task = self._tasks[key] = asyncio.ensure_future(self._fetch_one(track, k))
            return task
        return asyncio.ensure_future(_after(task))

    async def bytes_for(self, track: Track, k: int) -> bytes | None:
        """Segment `k`'s init segment, fetched if need be (None when it has none)."""
        key = track.init_key(k)
        if key is not None and key not in self._data:
            await self.request(track, k)
        return self.data(key)

    async def _fetch_one(self, track: Track, k: int) -> bytes:
        try:
            body = await self._fetch(init_resource(track, k))
        except NotFound as m:
            raise PlaybackError(f"init segment of {track.rep_at(k).id!r} not found (HTTP 404/410) at {m.url}") \
                from None
        self._data[track.init_key(k)] = body.data
        return body.data

    def tasks(self) -> list[asyncio.Task]:
        return list(self._tasks.values())


async def _after(task: asyncio.Task | None) -> None:
    """Wait for another caller's fetch (without cancelling it if this waiter is cancelled)."""
    if task is not None:
        await asyncio.shield(task)
    return None
