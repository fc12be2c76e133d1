"""Typed events: what a streaming session tells its listeners, one small dataclass per kind.

The session core emits the events of the session rules (decision, wait, download, stall,
startup, abandon, failure, mask, pause, resume, end; for live sessions also the join, the
arrival of low-latency chunks, playback-rate changes and seeks); the HTTP driver adds those of the
I/O around them (manifest, request, retry, failover, licences, decryption, notes, errors,
the summary). Both are defined here, beside the core that emits half of them, so a
listener, the JSON lines (`as_dict`) and the dashboard read the same fields by the same
names. Times: `t_s` is the emitter's clock in seconds (the core's session clock; the
driver moves core events onto the player's clock with `at`). Units: seconds, bits per
second, bytes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


from player.core.json_values import json_safe

#: every event class by its kind
KINDS: dict[str, type["Event"]] = {}


@dataclass(frozen=True)
class Event:
    """Base class: `t_s` and the kind; subclasses add their fields."""

    kind: ClassVar[str] = ""
    t_s: float
    #: the session core's own clock for an event the driver moved onto its clock (None: same)
    session_t_s: float | None = field(default=None, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            KINDS[cls.kind] = cls

    def at(self, t_s: float, **extra: Any) -> "Event":
        """The same event on another clock (the driver's), with fields replaced."""
        return dataclasses.replace(self, t_s=t_s, **extra)

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "t_s" and not (f.name == "session_t_s" and self.session_t_s is None)}

    def as_dict(self) -> dict[str, Any]:
        """The JSON line: {"t_s", "event", fields...}."""
        out: dict[str, Any] = {"t_s": round(float(self.t_s), 6), "event": self.kind}
        for k, v in self.fields().items():
            if k == "extra":
                out.update(json_safe(v))
            else:
                out[k] = json_safe(v)
        return out


def field_names(kind: str) -> tuple[str, ...]:
    """The fields an event of `kind` always carries besides t_s and event (its schema);
    `session_t_s` comes with the core's events a driver moved onto its own clock."""
    return tuple(f.name for f in dataclasses.fields(KINDS[kind]) if f.name not in ("t_s", "extra", "session_t_s"))


def from_dict(line: dict[str, Any]) -> Event:
    """The event a JSON line (`Event.as_dict`) came from: its kind's fields by name, any other
    key into ``extra`` (for kinds that have one). KeyError for an unknown kind, TypeError for
    a line that lacks a field."""
    cls = KINDS[line["event"]]
    names = {f.name for f in dataclasses.fields(cls)}
    known = {k: v for k, v in line.items() if k in names and k != "extra"}
    rest = {k: v for k, v in line.items() if k not in names and k != "event"}
    if "extra" in names:
        known["extra"] = rest
    return cls(**known)


# -- emitted by the session core -----------------------------------------------------------------

@dataclass(frozen=True)
class Decision(Event):
    """The policy chose `rung` for `segment`. `observation` is what it saw (buffer, last
    rung, last throughput and download time, segments left, allowed rungs, playing), `inputs`
    what it computed (its `last_info`), `reason` why when no policy was asked."""

    kind: ClassVar[str] = "decision"
    segment: int
    rung: int
    bitrate_bps: float
    buffer_s: float
    observation: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    reason: str = "policy"


@dataclass(frozen=True)
class Wait(Event):
    """The buffer is full: the next request waits `seconds` (or a policy asked for a delay)."""

    kind: ClassVar[str] = "wait"
    seconds: float
    buffer_s: float
    reason: str = "buffer full"


@dataclass(frozen=True)
class Download(Event):
    """Segment `segment` arrived at `rung`: `bytes` in `latency_s` + `transfer_s`. `refetch`:
    it was in the buffer already and this version replaces it (fast switching)."""

    kind: ClassVar[str] = "download"
    segment: int
    rung: int
    bytes: int
    latency_s: float
    transfer_s: float
    throughput_bps: float
    buffer_s: float
    stall_s: float
    refetch: bool = False
    live_latency_s: float | None = None      # live: wall clock − playhead when it arrived
    playback_rate: float | None = None       # live: the playback rate then


@dataclass(frozen=True)
class LiveJoin(Event):
    """A live session joined: its live delay (the latency target) and where it came from
    (dash.js's order of precedence), the live edge and playhead start (presentation seconds
    since availabilityStartTime), the first segment (index since then), the catch-up law."""

    kind: ClassVar[str] = "live_join"
    delay_s: float
    delay_source: str
    edge0_s: float
    start_s: float
    first_segment: int
    segment_duration_s: float
    low_latency: bool
    catchup: str
    duration_s: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk(Event):
    """A low-latency chunk of `segment` arrived: `bytes`, `media_s` of it playable."""

    kind: ClassVar[str] = "chunk"
    segment: int
    index: int
    bytes: int
    media_s: float
    buffer_s: float


@dataclass(frozen=True)
class Rate(Event):
    """The catch-up law changed the playback rate (at that latency and target)."""

    kind: ClassVar[str] = "rate"
    playback_rate: float
    live_latency_s: float
    target_latency_s: float


@dataclass(frozen=True)
class Seek(Event):
    """The playhead jumped forward by `skipped_s` towards the live edge: the catch-up law
    asked ("catch-up", dash.js maxDrift) or the next segment had left the time-shift buffer
    ("gone", HTTP 410); the next request is for segment index `next_segment`."""

    kind: ClassVar[str] = "seek"
    skipped_s: float
    live_latency_s: float
    reason: str
    next_segment: int


@dataclass(frozen=True)
class StallStart(Event):
    kind: ClassVar[str] = "stall_start"
    buffer_s: float = 0.0


@dataclass(frozen=True)
class StallEnd(Event):
    """A stall ended when `segment` arrived; it lasted `stall_s`."""

    kind: ClassVar[str] = "stall_end"
    segment: int
    stall_s: float = 0.0


@dataclass(frozen=True)
class Startup(Event):
    kind: ClassVar[str] = "startup"
    startup_s: float


@dataclass(frozen=True)
class Abandon(Event):
    """The download of `segment` at `from_rung` was given up for `to_rung`. `reason`:
    "policy" (the abandonment hook), "missing" (no such object), "license" (not allowed)."""

    kind: ClassVar[str] = "abandon"
    segment: int
    from_rung: int
    to_rung: int
    wasted_bytes: int
    reason: str = "policy"


@dataclass(frozen=True)
class Failure(Event):
    """The request for `segment` failed after the driver's retries; it is tried again."""

    kind: ClassVar[str] = "failure"
    segment: int
    reason: str
    wasted_bytes: int = 0


@dataclass(frozen=True)
class Mask(Event):
    """The rungs that may be chosen changed (a licence arrived or was renewed)."""

    kind: ClassVar[str] = "mask"
    allowed: list[bool]
    reason: str


@dataclass(frozen=True)
class Pause(Event):
    kind: ClassVar[str] = "pause"
    buffer_s: float


@dataclass(frozen=True)
class Resume(Event):
    kind: ClassVar[str] = "resume"
    buffer_s: float


@dataclass(frozen=True)
class End(Event):
    """Playback is over: `played_s` of media played."""

    kind: ClassVar[str] = "end"
    played_s: float


# -- emitted by the HTTP driver --------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest(Event):
    """The manifest arrived from `url` (after redirects): `periods` periods, parser `notes`."""

    kind: ClassVar[str] = "manifest"
    url: str
    bytes: int
    type: str
    duration_s: float | None
    periods: int = 1
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClockSync(Event):
    """The player learned the origin's clock for a live session: origin − local = `offset_s`,
    by `method` (a UTCTiming scheme, "date-header" or "none"), `rtt_s` the round trip."""

    kind: ClassVar[str] = "clock_sync"
    offset_s: float
    method: str
    rtt_s: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SessionStart(Event):
    kind: ClassVar[str] = "session_start"
    url: str
    abr: str
    abr_params: str
    preset: str
    time_scale: float
    setup_s: float
    plan: dict[str, Any]
    restart: bool = False               # a new core for another plan (a licence fallback)
    cmcd: str | None = None             # CMCD mode, None when off
    session_id: str | None = None       # CMCD session id
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request(Event):
    """One HTTP request, as it ended (ok or not)."""

    kind: ClassVar[str] = "request"
    what: str
    url: str
    range: tuple[int, int] | None       # first and last byte (a JSON list), None: the whole object
    status: int | None
    bytes: int
    latency_s: float | None
    transfer_s: float | None
    edge: int
    attempt: int
    ok: bool
    error: str | None
    segment: int | None = None
    rung: int | None = None
    track: str | None = None
    resume_from: int = 0                # bytes kept from earlier attempts (a resumed body)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Retry(Event):
    """Attempt `attempt` failed for `reason`; the next starts after `backoff_s`."""

    kind: ClassVar[str] = "retry"
    what: str
    url: str
    attempt: int
    reason: str
    backoff_s: float
    segment: int | None = None
    resume_from: int = 0                # bytes the next attempt will not ask for again
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failover(Event):
    """The fetch of `url` moves from alternative (edge) `from_edge` to `to_edge`; the failed
    one is avoided until `until_s` (None: a 404/410 on that alternative only)."""

    kind: ClassVar[str] = "failover"
    what: str
    from_edge: int
    to_edge: int | None
    reason: str
    until_s: float | None = None
    url: str = ""
    segment: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Missing(Event):
    """The server has no such object at `rung`; the segment is fetched at `to_rung`."""

    kind: ClassVar[str] = "missing"
    segment: int
    rung: int
    to_rung: int | None                 # None: no other rung is left
    url: str


@dataclass(frozen=True)
class LicenseRequest(Event):
    kind: ClassVar[str] = "license_request"
    system: str
    url: str
    attempt: int
    renewal: bool


@dataclass(frozen=True)
class LicenseGranted(Event):
    kind: ClassVar[str] = "license"
    system: str
    url: str
    latency_s: float
    renewal: bool
    kids: list[str]
    policy: dict[str, Any]
    max_height: int | None
    license_duration_s: float | None


@dataclass(frozen=True)
class LicenseFailed(Event):
    kind: ClassVar[str] = "license_failed"
    system: str
    reason: str
    final: bool
    renewal: bool


@dataclass(frozen=True)
class LicenseFallback(Event):
    kind: ClassVar[str] = "license_fallback"
    reason: str
    adaptation_set: str | None = None


@dataclass(frozen=True)
class Decrypt(Event):
    kind: ClassVar[str] = "decrypt"
    segment: int
    track: str
    samples: int
    rung: int | None = None


@dataclass(frozen=True)
class Note(Event):
    kind: ClassVar[str] = "note"
    message: str


@dataclass(frozen=True)
class Error(Event):
    kind: ClassVar[str] = "error"
    message: str


@dataclass(frozen=True)
class Summary(Event):
    kind: ClassVar[str] = "summary"
    summary: dict[str, Any]
