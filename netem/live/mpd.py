"""The live MPD at one instant: a pure function of the presentation, `now` and the origin URL.

``live_mpd(live, now_s, base_url)`` writes a `type="dynamic"` MPD (ISO/IEC 23009-1,
isoff-live profile):

* MPD: `availabilityStartTime` (the configured AST), `publishTime` (the last instant
  the document's content changed: the newest listed segment's availability with a
  SegmentTimeline, the newest Period's first availability with $Number$, else AST),
  `minimumUpdatePeriod` (default: the nominal segment duration), `timeShiftBufferDepth`,
  `minBufferTime` (2 segments, at least 1 s; low latency: 2 chunks, at least 0.5 s),
  `maxSegmentDuration`; for low latency a `ServiceDescription` (Latency target/min/max
  in ms, min = ¾ target and max = 2 × target as livesim2 writes them, PlaybackRate
  0.96–1.04); the `UTCTiming` elements in the configured order, pointing at the origin.
* One Period per `--period-duration` holding listed segments (else one, ``p0`` at
  PT0S); Period ``pN`` starts at its first segment, media time runs on across Periods
  and each SegmentTemplate's `presentationTimeOffset` is its Period's start.
* SegmentTemplate per AdaptationSet (per Representation when timings differ):
  $Number$ with `startNumber` (the Period's first segment, numbers from 1 at AST) and
  `duration`; or $Time$ with a SegmentTimeline listing exactly the segments available now
  (the time-shift window), which grows from one refresh to the next. Low latency adds
  `availabilityTimeOffset` (segment − chunk duration) and `availabilityTimeComplete="false"`.

With a SegmentTimeline and no segment available yet (AST in the future) there is nothing
to list: `live_mpd` returns None and the origin answers 425.
"""
from __future__ import annotations

from xml.sax.saxutils import escape

import numpy as np

from netem.cenc import MPD_NAMESPACES
from netem.live.config import (MAX_LATENCY_FACTOR, MIN_LATENCY_FACTOR, PLAYBACK_RATE_MAX, PLAYBACK_RATE_MIN)
from netem.live.presentation import LivePresentation, LiveTrack
from netem.live.timeline import Window, round_div
from netem.live.utc import iso_ms, iso_seconds, utc_timing_lines
from netem.package import PROFILE_LIVE, Track, timeline_xml, xs_duration

INIT_TEMPLATE = "$RepresentationID$/init.mp4"
MEDIA_NUMBER = "$RepresentationID$/$Number$.m4s"
MEDIA_TIME = "$RepresentationID$/t$Time$.m4s"


def _seconds_attr(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"


def periods_listed(live: LivePresentation, window: Window) -> list[tuple[int, int, int]]:
    """(period, first segment, last segment) of each Period the MPD lists: those holding a
    segment of the window (with $Number$ and an empty window: the Period of AST)."""
    sch = live.schedule
    if window.empty:
        return [] if live.config.addressing == "timeline" else [(0, 0, -1)]
    out = []
    for p in range(sch.period_of(window.first), sch.period_of(window.last) + 1):
        first = max(window.first, sch.period_first(p))
        last = min(window.last, sch.period_first(p + 1) - 1) if sch.period_ticks is not None else window.last
        if first <= last:
            out.append((p, first, last))
    return out


def publish_time(live: LivePresentation, window: Window, listed: list[tuple[int, int, int]]) -> float:
    """When the MPD's content last changed (see the module docstring)."""
    sch = live.schedule
    t = sch.ast_s
    if window.empty:
        return t
    if live.config.addressing == "timeline":
        t = max(t, sch.availability_start(window.last))
        if window.first > 0:
            t = max(t, sch.availability_end(window.first - 1))
    elif sch.period_ticks is not None and listed:
        t = max(t, sch.availability_start(sch.period_first(listed[-1][0])))
    return t


def live_mpd(live: LivePresentation, now_s: float, base_url: str) -> str | None:
    """The MPD text at origin-clock time `now_s`; `base_url` (``http://host:port``) is where
    the UTCTiming endpoints are. None: nothing to list yet (SegmentTimeline before AST)."""
    cfg, sch = live.config, live.schedule
    window = sch.window(now_s)
    listed = periods_listed(live, window)
    if not listed:
        return None
    pkg = live.packaged
    ns = ['xmlns="urn:mpeg:dash:schema:mpd:2011"']
    if pkg.protection is not None:
        ns += [f'xmlns:{k}="{v}"' for k, v in MPD_NAMESPACES.items()]
    if cfg.low_latency:
        min_buffer = max(0.5, 2 * cfg.chunk_s)
    else:
        min_buffer = max(1.0, 2 * live.nominal_s)
    update = cfg.min_update_period_s if cfg.min_update_period_s is not None else live.nominal_s
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f"<!-- {escape(pkg.comment or 'abrlab').replace('--', '- -')}; played live by abrlab -->",
           f'<MPD {" ".join(ns)} type="dynamic" profiles="{PROFILE_LIVE}" '
           f'availabilityStartTime="{iso_seconds(sch.ast_s)}" '
           f'publishTime="{iso_ms(publish_time(live, window, listed))}" '
           f'minimumUpdatePeriod="{xs_duration(update)}" '
           f'timeShiftBufferDepth="{xs_duration(cfg.time_shift_depth_s)}" '
           f'minBufferTime="{xs_duration(min_buffer)}" '
           f'maxSegmentDuration="{xs_duration(live.max_segment_duration_s)}">',
           f"  <ProgramInformation><Title>{escape(pkg.title)} (live)</Title></ProgramInformation>"]
    if cfg.low_latency:
        target_ms = round(cfg.target_latency_s * 1000)
        out += ['  <ServiceDescription id="0">',
                f'    <Latency referenceId="0" target="{target_ms}" min="{round(target_ms * MIN_LATENCY_FACTOR)}" '
                f'max="{round(target_ms * MAX_LATENCY_FACTOR)}"/>',
                f'    <PlaybackRate min="{PLAYBACK_RATE_MIN}" max="{PLAYBACK_RATE_MAX}"/>',
                "  </ServiceDescription>"]
    for p, first, last in listed:
        out += _period(live, p, first, last)
    out += utc_timing_lines(cfg.utc_timing, now_s, base_url)
    out.append("</MPD>")
    return "\n".join(out) + "\n"


def _period(live: LivePresentation, p: int, first: int, last: int) -> list[str]:
    sch = live.schedule
    start_ticks = sch.period_start_ticks(p)
    lines = [f'  <Period id="p{p}" start="{xs_duration(start_ticks / live.ref.timescale)}">']
    by_track = {id(lt.track): lt for lt in live.tracks}

    def template(t: Track, ind: str) -> list[str]:
        return _template(live, by_track[id(t)], p, start_ticks, first, last, ind)

    groups = [("video", [t for t in live.packaged.tracks if t.kind == "video"]),
              ("audio", [t for t in live.packaged.tracks if t.kind == "audio"])]
    as_id = 0
    for kind, tracks in groups:
        if tracks:
            lines += live.packaged.adaptation_set(as_id, kind, tracks, False, template=template)
            as_id += 1
    lines.append("  </Period>")
    return lines


def _template(live: LivePresentation, lt: LiveTrack, p: int, period_ticks: int, first: int, last: int,
              ind: str) -> list[str]:
    cfg = live.config
    low = ""
    if cfg.low_latency:
        low = f' availabilityTimeOffset="{_seconds_attr(live.ato_s)}" availabilityTimeComplete="false"'
    if cfg.addressing == "number":
        timescale, duration = lt.timescale, lt.timing.nominal_duration()
        if duration is None:  # not a whole number of this track's ticks: describe it on the reference's
            timescale, duration = live.ref.timescale, live.ref.nominal_ticks
        pto = round_div(period_ticks * timescale, live.ref.timescale)
        start_number = live.schedule.period_first(p) + 1
        return [f'{ind}<SegmentTemplate timescale="{timescale}" initialization="{INIT_TEMPLATE}" '
                f'media="{MEDIA_NUMBER}" startNumber="{start_number}" duration="{duration}" '
                f'presentationTimeOffset="{pto}"{low}/>']
    pto = round_div(period_ticks * lt.timescale, live.ref.timescale)
    starts = [lt.timing.start(j) for j in range(first, last + 1)]
    durs = [lt.timing.end(j) - s for j, s in zip(range(first, last + 1), starts)]
    head = (f'{ind}<SegmentTemplate timescale="{lt.timescale}" initialization="{INIT_TEMPLATE}" '
            f'media="{MEDIA_TIME}" presentationTimeOffset="{pto}"{low}>')
    return [head, *timeline_xml(np.array(starts, dtype=np.int64), np.array(durs, dtype=np.int64), ind + "  "),
            f"{ind}</SegmentTemplate>"]
