"""A live presentation as the player plays it: its ladder's templates, the live facts the
session rules need (`player.core.live.LiveFacts`), and the plan.

`build_live(selection, device)` turns a live selection (`player.dash.playback.select`, the
live edge's Period) into a `LivePlan`:

* per rung a `LiveTrack`: the representation's `LiveSegmentTemplate` ($Number$ with
  @duration) per Period (every Period the MPD lists, matched rung by rung on the ladder's
  order), on every BaseURL alternative. Segments are named by their index j
  since availabilityStartTime (all of one duration D, as the session rules count them); the
  segment of index j is number startNumber + (j − Period start / D) of the latest Period
  starting at or before jD, so a new Period in a refreshed MPD (`refresh`) takes over at
  its start;
* the live facts: D, availabilityTimeOffset, the CMAF chunk duration when
  availabilityTimeComplete is false (D − ATO), the first ServiceDescription (latency
  target/min/max, playback rates), suggestedPresentationDelay, minBufferTime,
  timeShiftBufferDepth;
* the `SegmentPlan` the core needs (one looped segment per rung: sizes estimated as
  @bandwidth × D), the device mask, heights and buffer settings as `build` computes them.

A live SegmentTimeline ($Time$ with a timeline that grows with each refresh) is not played
yet: `UnsupportedManifest` says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from player.core.catchup import ServiceBounds
from player.core.device import DeviceProfile
from player.core.live import LiveFacts
from player.core.rules import SegmentPlan
from player.dash.drm import DrmInfo, drm_info, is_protected
from player.dash.errors import UnsupportedManifest
from player.dash.model import Presentation, Representation
from player.dash.playback import DevicePlan, Selection, alternatives
from player.dash.segments import InitSegment, LiveSegmentTemplate

__all__ = ["LiveTrack", "LivePlan", "build_live", "live_facts"]

#: the Periods a live track remembers (the newest; older ones have left any time-shift buffer)
MAX_PERIODS = 64


@dataclass
class LiveTrack:
    """One rung (or the audio) of a live presentation: its template in each Period (by
    Period start), on every BaseURL alternative. It answers what `player.http.parts` asks of
    a track (`at`, `init`, `init_key`, `rep_at`, `n_alternatives`), with segment indices j."""

    kind: str
    periods: list[tuple[float, LiveSegmentTemplate, Representation]]   # (start s, template, rep), by start
    bases: tuple[str, ...]
    protected: bool = False

    @property
    def rep(self) -> Representation:
        return self.periods[-1][2]

    @property
    def n_alternatives(self) -> int:
        return len(self.bases)

    @property
    def duration_s(self) -> float:
        return self.periods[-1][1].duration_s

    def _period(self, j: int) -> tuple[float, LiveSegmentTemplate, Representation]:
        t = j * self.duration_s
        best = self.periods[0]
        for entry in self.periods:
            if entry[0] <= t + 1e-9:
                best = entry
        return best

    def template(self, j: int, alt: int = 0) -> LiveSegmentTemplate:
        tpl = self._period(j)[1]
        alt %= len(self.bases)
        return tpl if alt == 0 else tpl.with_base_url(self.bases[alt])

    def number(self, j: int) -> int:
        """The $Number$ of segment index j."""
        start, tpl, _ = self._period(j)
        return tpl.start_number + j - int(round(start / tpl.duration_s))

    def url(self, j: int, alt: int = 0) -> str:
        return self.template(j, alt).segment(self.number(j)).url

    def segment(self, j: int, alt: int = 0) -> tuple[str, None]:
        return self.url(j, alt), None

    # -- the track interface of player.http.parts ------------------------------------------------
    def at(self, j: int) -> tuple["LiveTrack", int]:
        return self, j

    def rep_at(self, j: int) -> Representation:
        return self._period(j)[2]

    def protected_at(self, j: int) -> bool:
        return self.protected

    def init(self, alt: int = 0, j: int = 0) -> InitSegment | None:
        return self.template(j, alt).init

    def init_key(self, j: int = 0) -> tuple[str, tuple[int, int] | None] | None:
        init = self.template(j).init
        return None if init is None else (init.url, init.byte_range)

    def add_period(self, start_s: float, template: LiveSegmentTemplate, rep: Representation) -> bool:
        """A Period of a refreshed MPD; False when it was known already."""
        if any(abs(s - start_s) < 1e-6 for s, _, _ in self.periods):
            return False
        self.periods.append((start_s, template, rep))
        self.periods.sort(key=lambda e: e[0])
        del self.periods[:-MAX_PERIODS]     # a day of short Periods stays bounded
        return True


def live_facts(presentation: Presentation, rep: Representation, template: LiveSegmentTemplate) -> LiveFacts:
    """What the MPD says of the live stream for the session rules (see the module docstring)."""
    d = template.duration_s
    ato = rep.availability_time_offset_s or 0.0
    if not math.isfinite(ato):
        ato = d
    ato = min(max(ato, 0.0), d)
    chunk = d - ato if rep.availability_time_complete is False and 0 < ato < d else None
    sds = presentation.service_descriptions
    service = ServiceBounds()
    if sds:
        sd = sds[0]
        service = ServiceBounds(sd.latency_target_s, sd.latency_min_s, sd.latency_max_s, sd.playback_rate_min,
                                sd.playback_rate_max)
    return LiveFacts(d, ato, chunk, service, presentation.suggested_presentation_delay_s,
                     presentation.min_buffer_time_s, presentation.time_shift_buffer_depth_s)


class SameSegment:
    """`audio_for` of a live plan: the audio segment of index j goes with the video's j."""

    def __getitem__(self, j: int) -> list[int]:
        return [j]


@dataclass
class LivePlan(DevicePlan):
    """What the HTTP player plays of a live presentation (see the module docstring)."""

    selection: Selection
    video: list[LiveTrack]
    audio: LiveTrack | None
    facts: LiveFacts
    segment_plan: SegmentPlan
    mask: np.ndarray
    heights: np.ndarray
    device: DeviceProfile | None
    availability_start_s: float
    drm: DrmInfo | None = None
    notes: list[str] = field(default_factory=list)
    audio_for: SameSegment = field(default_factory=SameSegment)

    def describe(self) -> dict:
        f = self.facts
        return {
            "kind": self.selection.kind, "live": True, "segment_duration_s": f.segment_duration_s,
            "ladder": [{"id": t.rep.id, "bitrate_bps": float(t.rep.bandwidth_bps), "width": t.rep.width,
                        "height": t.rep.height, "codecs": t.rep.codecs, "addressing": "live-template",
                        "allowed": bool(m), "alternatives": t.n_alternatives} for t, m in zip(self.video, self.mask)],
            "audio": None if self.audio is None else {"id": self.audio.rep.id,
                                                      "bitrate_bps": float(self.audio.rep.bandwidth_bps)},
            "availability_start_time_s": self.availability_start_s,
            "availability_time_offset_s": f.availability_time_offset_s, "chunk_s": f.chunk_s,
            "time_shift_depth_s": f.time_shift_depth_s, "suggested_delay_s": f.suggested_delay_s,
            "service": {"latency_target_s": f.service.latency_target_s, "latency_min_s": f.service.latency_min_s,
                        "latency_max_s": f.service.latency_max_s, "playback_rate_min": f.service.playback_rate_min,
                        "playback_rate_max": f.service.playback_rate_max},
            "protected": self.protected, "device": None if self.device is None else self.device.name,
            "notes": list(self.notes),
        }

    def refresh(self, presentation: Presentation) -> list[str]:
        """Take in a refreshed MPD's Periods (each rung by its place in the ladder); returns
        notes on what changed."""
        notes = []
        for p in presentation.periods:
            sets = [a for a in p.playable(self.selection.kind)]
            if not sets or p.start_s is None:
                continue
            ladder = [r for r in sets[0].ladder if r.live_template is not None]
            if len(ladder) < len(self.video):
                continue
            added = False
            for track, rep in zip(self.video, _by_bandwidth(ladder, len(self.video))):
                added |= track.add_period(float(p.start_s), rep.live_template, rep)
            if self.audio is not None:
                auds = [r for a in p.playable("audio") for r in a.ladder if r.live_template is not None]
                if auds:
                    self.audio.add_period(float(p.start_s), auds[-1].live_template, auds[-1])
            if added:
                notes.append(f"Period {p.id or '?'} from {p.start_s:g} s joins the session")
        return notes


def _by_bandwidth(ladder: Sequence[Representation], n: int) -> list[Representation]:
    """n representations of a ladder, one per rung of the session's (the nearest by rank)."""
    if len(ladder) == n:
        return list(ladder)
    idx = np.round(np.linspace(0, len(ladder) - 1, n)).astype(int)
    return [ladder[i] for i in idx]


def _track(rep: Representation, kind: str, period_start_s: float, extra_origins: Sequence[str]) -> LiveTrack:
    tpl = rep.live_template
    if tpl is None:
        raise UnsupportedManifest(f"live representation {rep.id!r} has no SegmentTemplate@duration: a live "
                                  "SegmentTimeline ($Time$) is not played yet (serve with --addressing number)")
    return LiveTrack(kind, [(period_start_s, tpl, rep)], alternatives(rep, tpl.base_url, extra_origins),
                     is_protected(rep.protection))


def build_live(selection: Selection, device: DeviceProfile | None = None, *, extra_origins: Sequence[str] = (),
               drm_system: str | None = None, license_url: str | None = None) -> LivePlan:
    """The `LivePlan` of a live selection (see the module docstring)."""
    pres = selection.presentation
    if pres.availability_start_time_s is None:
        raise UnsupportedManifest("a live MPD without availabilityStartTime cannot be played")
    choice = selection.periods[-1]
    start = float(choice.period.start_s or 0.0)
    kind = selection.kind
    video = [_track(r, kind, start, extra_origins) for r in choice.rungs]
    durs = {round(t.duration_s, 9) for t in video}
    if len(durs) != 1:
        raise UnsupportedManifest(f"the live representations have different segment durations ({sorted(durs)}); "
                                  "one is needed")
    audio = None if choice.audio is None else _track(choice.audio, "audio", start, extra_origins)
    if audio is not None and abs(audio.duration_s - video[0].duration_s) > 0.05 * video[0].duration_s:
        audio = None
    d = video[0].duration_s
    bitrates = np.array([t.rep.bandwidth_bps for t in video], dtype=np.float64)
    sizes = np.maximum(1.0, bitrates * d / 8.0)[None, :]
    heights = np.array([t.rep.height or 0 for t in video], dtype=np.float64)
    notes = list(selection.notes)
    mask = np.array([device is None or device.allows(t.rep.width or 0, t.rep.height or 0, t.rep.frame_rate or 0.0,
                                                     t.rep.codecs or "", t.rep.bandwidth_bps) for t in video],
                    dtype=bool)
    if not mask.any():
        mask[0] = True
        notes.append("the device can play no representation; the lowest stays allowed")
    notes.append("live segment sizes estimated from @bandwidth × duration")
    info = None
    if any(t.protected for t in video) or (audio is not None and audio.protected):
        prot = tuple(cp for t in video + ([audio] if audio else []) for cp in t.rep.protection)
        info = drm_info(prot, pres.source_url or "", system=drm_system, license_url=license_url)
    facts = live_facts(pres, video[0].rep, video[0].periods[0][1])
    plan = SegmentPlan(np.array([d]), bitrates, sizes, heights)
    live = LivePlan(selection, video, audio, facts, plan, mask, heights, device, float(pres.availability_start_time_s),
                    info, notes)
    live.refresh(pres)     # the earlier Periods of the window: the session may start in one
    return live
