"""Glue between the manifest model and the session core, shared by every driver.

* `select(presentation, ...)` picks what to play from a parsed MPD, period by period: the
  main adaptation set (video, else audio: the ABR ladder, lowest bandwidth first) and one
  audio representation to fetch alongside (the highest bandwidth the device decodes). A live
  (type=dynamic) presentation plays from its last Period, the live edge's
  (`player.dash.live` builds its plan).
* Several periods play in sequence as one session: the ABR sees one ladder (the period
  with the most rungs; other periods map each rung to their representation of nearest
  bandwidth) and one run of segments (every period's, in order), so buffer, estimates and
  QoE carry across period boundaries as in a real player. Each period keeps its own
  representations, init segments, BaseURLs and protection.
* `build(selection, indexes, device)` turns it into a `PlaybackPlan`: per rung a `Track`
  (per period a `PeriodTrack`: segment URLs and byte ranges on every BaseURL alternative,
  for failover), the
  `SegmentPlan` the core needs (durations; bitrates from @bandwidth; sizes exact where the
  manifest or the sidx gives byte ranges, else bandwidth × duration), the device mask and
  buffer settings computed exactly as the simulator does (`DeviceProfile.allows` per
  representation from @width/@height/@frameRate/@codecs/@bandwidth; the lowest rung stays
  when nothing is allowed; the device's buffer target replaces the preset's cap), and
  which audio segments go with each video segment (by time: every audio segment starting
  before the video segment's end, less a quarter of its duration).
* `make_core(plan, abr, params, preset)` builds the `SessionCore` as the simulator builds
  its batch (the preset's per-policy defaults under the user's parameters).

Units: seconds, bits per second, bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from player.core.device import DeviceProfile
from player.dash.drm import DrmInfo, drm_info, is_protected
from player.dash.errors import UnsupportedManifest
from player.dash.model import AdaptationSet, Period, Presentation, Representation
from player.dash.segments import InitSegment, SegmentIndex
from player.core.presets import SessionPreset, get as get_preset
from player.core.rules import SegmentPlan
from player.core.session import SessionCore

AUDIO_SLACK = 0.25  # fraction of a video segment by which an audio segment may start before its end


# ---------------------------------------------------------------------------------------
# selection


@dataclass(frozen=True)
class PeriodChoice:
    """What plays in one period. `rungs` has one representation per rung of the session's
    ladder (the same one may serve several rungs when this period's ladder is shorter)."""

    period: Period
    main: AdaptationSet
    ladder: tuple[Representation, ...]          # this period's, lowest bandwidth first, duplicates removed
    rungs: tuple[Representation, ...]           # per session rung
    audio_set: AdaptationSet | None
    audio: Representation | None


@dataclass(frozen=True)
class Selection:
    presentation: Presentation
    periods: tuple[PeriodChoice, ...]           # in play order
    reference: int = 0                          # the period whose ladder is the session's
    notes: tuple[str, ...] = ()

    @property
    def period(self) -> Period:
        return self.periods[self.reference].period

    @property
    def main(self) -> AdaptationSet:
        return self.periods[self.reference].main

    @property
    def ladder(self) -> tuple[Representation, ...]:
        return self.periods[self.reference].ladder

    @property
    def audio_set(self) -> AdaptationSet | None:
        return self.periods[self.reference].audio_set

    @property
    def audio(self) -> Representation | None:
        return self.periods[self.reference].audio

    @property
    def mains(self) -> tuple[AdaptationSet, ...]:
        return tuple(c.main for c in self.periods)

    @property
    def kind(self) -> str:
        return self.main.content_type

    def representations(self) -> tuple[tuple[int, Representation], ...]:
        """(period number, representation) of everything that may be fetched."""
        out = []
        for i, c in enumerate(self.periods):
            seen = set()
            for r in c.ladder + ((c.audio,) if c.audio is not None else ()):
                if r.id not in seen:
                    seen.add(r.id)
                    out.append((i, r))
        return tuple(out)


def _device_allows(dev: DeviceProfile | None, r: Representation) -> bool:
    if dev is None:
        return True
    return dev.allows(r.width or 0, r.height or 0, r.frame_rate or 0.0, r.codecs or "", r.bandwidth_bps)


def select(presentation: Presentation, device: DeviceProfile | None = None, *, clear_only: bool = False,
           exclude: Sequence[AdaptationSet] = ()) -> Selection:
    """What to play (see module doc). `clear_only` keeps unprotected sets only (license
    fallback); `exclude` skips sets already tried. Raises `UnsupportedManifest`."""
    periods = [p for p in presentation.periods if p.playable()]
    if presentation.is_live:
        periods = periods[-1:]   # the live edge's Period (`player.dash.live` follows the later ones)
    if not periods:
        raise UnsupportedManifest("the presentation has no playable adaptation set")
    notes: list[str] = []
    for i, p in enumerate(presentation.periods):
        if not p.playable():
            notes.append(f"period {_period_name(p, i)} has nothing to play (no video or audio); skipped")
    several = len(periods) > 1
    choices = []
    for p in periods:
        where = f"period {_period_name(p, presentation.periods.index(p))}: " if several else ""
        choices.append(_select_period(p, device, clear_only, exclude, notes, where))
    kinds = {c.main.content_type for c in choices}
    if len(kinds) > 1:
        raise UnsupportedManifest("periods alternate between video and audio-only "
                                  f"({', '.join(c.main.content_type for c in choices)}); one kind is needed")
    ref = max(range(len(choices)), key=lambda i: (len(choices[i].ladder), -i))
    ref_ladder = choices[ref].ladder
    mapped = []
    for i, c in enumerate(choices):
        if len(c.ladder) == len(ref_ladder):
            rungs = c.ladder
        else:
            rungs = tuple(_nearest(c.ladder, r.bandwidth_bps) for r in ref_ladder)
            notes.append(f"period {_period_name(c.period, presentation.periods.index(c.period))} has "
                         f"{len(c.ladder)} representations, the session's ladder {len(ref_ladder)}: "
                         "each rung plays the representation of nearest bandwidth")
        mapped.append(PeriodChoice(c.period, c.main, c.ladder, rungs, c.audio_set, c.audio))
    if several and any(c.audio is None for c in mapped) and any(c.audio is not None for c in mapped):
        notes.append("some periods have no audio to play; the others play without audio as well")
        mapped = [PeriodChoice(c.period, c.main, c.ladder, c.rungs, None, None) for c in mapped]
    return Selection(presentation, tuple(mapped), ref, tuple(notes))


def _period_name(p: Period, i: int) -> str:
    return f"{i + 1}" + (f" ({p.id!r})" if p.id else "")


def _nearest(ladder: Sequence[Representation], bps: float) -> Representation:
    """The representation whose bandwidth is nearest `bps` on a log scale (ties: lower)."""
    target = math.log(max(bps, 1.0))
    return min(ladder, key=lambda r: (abs(math.log(max(r.bandwidth_bps, 1.0)) - target), r.bandwidth_bps))


def _select_period(period: Period, device: DeviceProfile | None, clear_only: bool,
                   exclude: Sequence[AdaptationSet], notes: list[str], where: str) -> PeriodChoice:
    def usable(a: AdaptationSet) -> bool:
        if a in exclude:
            return False
        if clear_only and any(is_protected(r.protection) for r in a.representations):
            return False
        return True

    main = None
    for kind in ("video", "audio"):
        cands = [a for a in period.playable(kind) if usable(a)]
        if cands:
            mains = [a for a in cands if "main" in a.roles]
            main = (mains or cands)[0]
            break
    if main is None:
        what = "unprotected " if clear_only else ""
        raise UnsupportedManifest(f"{where}no {what}video or audio adaptation set to play")
    ladder: list[Representation] = []
    for r in main.ladder:
        if ladder and r.bandwidth_bps == ladder[-1].bandwidth_bps:
            # equal @bandwidth: keep one per bitrate (the device's choice when it can only take one)
            if not _device_allows(device, ladder[-1]) and _device_allows(device, r):
                notes.append(f"{where}representation {ladder[-1].id!r} dropped: same @bandwidth as {r.id!r}")
                ladder[-1] = r
            else:
                notes.append(f"{where}representation {r.id!r} dropped: same @bandwidth as {ladder[-1].id!r}")
            continue
        ladder.append(r)
    for r in ladder:
        if r.segment_index is None and r.pending_sidx is None and r.live_template is None:
            raise UnsupportedManifest(f"{where}representation {r.id!r} has no segment information"
                                      + (f" ({r.note})" if r.note else ""))
    audio_set = audio = None
    if main.content_type == "video":
        sets = [a for a in period.playable("audio") if not (clear_only and any(
            is_protected(r.protection) for r in a.representations))]
        if sets:
            mains = [a for a in sets if "main" in a.roles]
            audio_set = (mains or sets)[0]
            ok = [r for r in audio_set.ladder if _device_allows(device, r)
                  and (r.segment_index is not None or r.pending_sidx is not None or r.live_template is not None)]
            if ok:
                audio = ok[-1]
            else:
                notes.append(f"{where}audio adaptation set {audio_set.id!r}: no representation this device "
                             "decodes; playing without audio")
                audio_set = None
    return PeriodChoice(period, main, tuple(ladder), tuple(ladder), audio_set, audio)


# ---------------------------------------------------------------------------------------
# tracks and the plan


def swap_origin(url: str, origin: str) -> str:
    """`url` on another server (scheme://host:port of `origin`), same path and query."""
    a, b = urlsplit(url), urlsplit(origin)
    return urlunsplit((b.scheme or a.scheme, b.netloc, a.path, a.query, a.fragment))


class _Timed:
    """Start and duration accessors over a `timing()` of (starts, durations)."""

    def timing(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def starts_s(self) -> np.ndarray:
        return self.timing()[0]

    def durations_s(self) -> np.ndarray:
        return self.timing()[1]


@dataclass
class PeriodTrack(_Timed):
    """One representation of one period as fetched: its segments on every BaseURL alternative."""

    rep: Representation
    kind: str                                   # video | audio
    index: SegmentIndex
    bases: tuple[str, ...]                      # base URL per alternative (0: the manifest's first)
    protected: bool = False
    _alts: dict[int, SegmentIndex] = field(default_factory=dict, repr=False)
    _timing: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_alternatives(self) -> int:
        return len(self.bases)

    def _at(self, alt: int) -> SegmentIndex:
        alt %= len(self.bases)
        if alt == 0:
            return self.index
        idx = self._alts.get(alt)
        if idx is None:
            idx = self._alts[alt] = self.index.with_base_url(self.bases[alt])
        return idx

    def segment(self, k: int, alt: int = 0) -> tuple[str, tuple[int, int] | None]:
        s = self._at(alt)[k]
        return s.url, s.byte_range

    def init(self, alt: int = 0) -> InitSegment | None:
        init = self.index.init
        if init is None:
            return None
        if alt % len(self.bases) == 0:
            return init
        if init.url == self.index.base_url:   # SegmentBase: the init lives in the media file
            return InitSegment(self.bases[alt % len(self.bases)], init.byte_range)
        return self._at(alt).init

    def timing(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, durations) of every segment, seconds (computed once)."""
        if self._timing is None:
            self._timing = _segment_times(self.index)
        return self._timing

    def sizes_bytes(self) -> np.ndarray | None:
        """Exact segment sizes when the index has byte ranges for every segment."""
        ranges = self.index.ranges
        n = len(self.index)
        if ranges is None or len(ranges) < n or any(r is None for r in ranges[:n]):
            return None
        return np.array([b - a + 1 for a, b in ranges[:n]], dtype=np.float64)


class Track(_Timed):
    """One rung (or the audio) across the session: per period a `PeriodTrack`, its segments
    numbered on from the previous period's. Segment `k` of the session is segment
    `k - first[p]` of period part `p`."""

    def __init__(self, parts: Sequence[PeriodTrack], reference: int = 0) -> None:
        if not parts:
            raise ValueError("a track needs at least one period")
        self.parts = tuple(parts)
        self.reference = min(max(0, reference), len(self.parts) - 1)
        counts = np.array([len(t.index) for t in self.parts], dtype=np.int64)
        self.first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.n_segments = int(counts.sum())
        self._timing: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"Track({', '.join(t.rep.id for t in self.parts)}, {self.n_segments} segments)"

    @property
    def kind(self) -> str:
        return self.parts[0].kind

    @property
    def rep(self) -> Representation:
        """The reference period's representation (names the rung and gives its @bandwidth)."""
        return self.parts[self.reference].rep

    @property
    def addressing(self) -> str:
        return self.parts[self.reference].index.addressing

    @property
    def n_alternatives(self) -> int:
        return max(t.n_alternatives for t in self.parts)

    @property
    def protected(self) -> bool:
        return any(t.protected for t in self.parts)

    def part(self, k: int) -> int:
        """The period part holding session segment `k`."""
        if not 0 <= k < self.n_segments:
            raise IndexError(f"segment {k} out of range (0..{self.n_segments - 1})")
        return int(np.searchsorted(self.first, k, side="right")) - 1

    def at(self, k: int) -> tuple[PeriodTrack, int]:
        """(period part, segment number within it) of session segment `k`."""
        p = self.part(k)
        return self.parts[p], k - int(self.first[p])

    def rep_at(self, k: int) -> Representation:
        return self.at(k)[0].rep

    def protected_at(self, k: int) -> bool:
        return self.at(k)[0].protected

    def segment(self, k: int, alt: int = 0) -> tuple[str, tuple[int, int] | None]:
        t, j = self.at(k)
        return t.segment(j, alt)

    def init(self, alt: int = 0, k: int = 0) -> InitSegment | None:
        """The init segment that segment `k` needs."""
        return self.at(k)[0].init(alt)

    def init_key(self, k: int = 0) -> tuple[str, tuple[int, int] | None] | None:
        """What identifies segment `k`'s init segment (its URL and range on the first
        alternative): equal keys share one fetch, across rungs and periods alike."""
        init = self.at(k)[0].index.init
        return None if init is None else (init.url, init.byte_range)

    def timing(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, durations) of every segment, seconds, periods in order (computed once)."""
        if self._timing is None:
            parts = [t.timing() for t in self.parts]
            self._timing = (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))
        return self._timing

    def sizes_bytes(self) -> np.ndarray | None:
        """Exact segment sizes when every period's index has byte ranges for every segment."""
        sizes = [t.sizes_bytes() for t in self.parts]
        if any(x is None for x in sizes):
            return None
        return np.concatenate(sizes)


def _segment_times(index: SegmentIndex) -> tuple[np.ndarray, np.ndarray]:
    """(starts, durations) in seconds of every segment, from the index's runs (vectorised)."""
    runs = index.runs
    if not runs:
        return np.zeros(0), np.zeros(0)
    counts = np.array([r.count for r in runs], dtype=np.int64)
    first_t = np.repeat(np.array([r.t for r in runs], dtype=np.float64), counts)
    d = np.repeat(np.array([r.d for r in runs], dtype=np.float64), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    starts = index.offset_s + (first_t + within * d) / index.timescale
    durs = d / index.timescale
    if index.end_s is not None:
        durs = np.where(starts + durs > index.end_s, np.maximum(0.0, index.end_s - starts), durs)
    return starts, durs


def alternatives(rep: Representation, base_url: str, extra_origins: Sequence[str] = ()) -> tuple[str, ...]:
    """Base URLs to fail over between: the manifest's BaseURL alternatives (lowest DVB
    priority first), then `base_url` moved to each extra origin (`--edge`)."""
    bases = [b.url for b in rep.base_urls] or [base_url]
    if base_url not in bases:
        bases.insert(0, base_url)
    for o in extra_origins:
        u = swap_origin(bases[0], o)
        if u not in bases:
            bases.append(u)
    return tuple(bases)


class DevicePlan:
    """What a plan (VoD `PlaybackPlan`, live `player.dash.live.LivePlan`) tells from its
    segment plan, its device and its DRM."""

    segment_plan: SegmentPlan
    device: DeviceProfile | None
    drm: DrmInfo | None

    @property
    def bitrates_bps(self) -> np.ndarray:
        return self.segment_plan.bitrates_bps

    @property
    def protected(self) -> bool:
        return self.drm is not None

    @property
    def buffer_cap_s(self) -> float | None:
        return self.device.buffer_target_s if self.device is not None else None

    @property
    def startup_threshold_s(self) -> float | None:
        return self.device.startup_threshold_s if self.device is not None else None


@dataclass
class PlaybackPlan(DevicePlan):
    selection: Selection
    video: list[Track]                          # the ABR ladder (may be audio for audio-only)
    audio: Track | None
    segment_plan: SegmentPlan
    mask: np.ndarray                            # (R,) device mask
    heights: np.ndarray                         # (R,) pixels, 0 unknown
    device: DeviceProfile | None
    audio_for: list[list[int]]                  # audio segment indices fetched with each video segment
    drm: DrmInfo | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_segments(self) -> int:
        return self.segment_plan.n_segments

    def describe(self) -> dict:
        return {
            "kind": self.selection.kind,
            "segments": self.n_segments,
            "duration_s": float(self.segment_plan.durations_s.sum()),
            "ladder": [{"id": t.rep.id, "bitrate_bps": float(t.rep.bandwidth_bps), "width": t.rep.width,
                        "height": t.rep.height, "codecs": t.rep.codecs, "addressing": t.addressing,
                        "allowed": bool(m), "alternatives": t.n_alternatives}
                       for t, m in zip(self.video, self.mask)],
            "audio": None if self.audio is None else {"id": self.audio.rep.id,
                                                      "bitrate_bps": float(self.audio.rep.bandwidth_bps),
                                                      "codecs": self.audio.rep.codecs},
            "periods": [{"id": c.period.id, "start_s": c.period.start_s, "segments": len(pt.index),
                         "representations": [r.id for r in c.rungs]}
                        for c, pt in zip(self.selection.periods, self.video[0].parts)],
            "protected": self.protected,
            "drm": None if self.drm is None else self.drm.to_dict(),
            "device": None if self.device is None else self.device.name,
            "notes": list(self.notes),
        }


def build(selection: Selection, indexes: dict[tuple[int, str], SegmentIndex], device: DeviceProfile | None = None,
          *, extra_origins: Sequence[str] = (), drm_system: str | None = None,
          license_url: str | None = None) -> PlaybackPlan:
    """A `PlaybackPlan` from a selection and the segment index of every selected
    representation (`indexes[(period number, rep.id)]`, for those whose index was not in
    the manifest)."""
    pres = selection.presentation
    src = pres.source_url or ""
    several = len(selection.periods) > 1
    made: dict[tuple[int, str], PeriodTrack] = {}

    def part(i: int, rep: Representation, kind: str) -> PeriodTrack:
        key = (i, rep.id)
        if key in made:
            return made[key]
        where = f"period {i + 1}: " if several else ""
        idx = rep.segment_index if rep.segment_index is not None else indexes.get(key)
        if idx is None:
            raise UnsupportedManifest(f"{where}representation {rep.id!r}: segment index not resolved")
        if len(idx) == 0:
            raise UnsupportedManifest(f"{where}representation {rep.id!r} has no segments")
        made[key] = PeriodTrack(rep, kind, idx, alternatives(rep, idx.base_url, extra_origins),
                                is_protected(rep.protection))
        return made[key]

    kind = selection.kind
    n_rungs = len(selection.ladder)
    for i, c in enumerate(selection.periods):
        parts = [part(i, r, kind) for r in c.rungs]
        where = f"period {i + 1}: " if several else ""
        counts = {len(t.index) for t in parts}
        if len(counts) != 1:
            raise UnsupportedManifest(f"{where}the representations of the ladder have different segment counts "
                                      f"({', '.join(f'{t.rep.id}: {len(t.index)}' for t in parts)}); "
                                      "segment-aligned representations are needed")
        starts, durs = parts[0].timing()
        for t in parts[1:]:
            s2, _ = t.timing()
            if np.max(np.abs(s2 - starts)) > max(0.05, 0.1 * float(np.median(durs))):
                raise UnsupportedManifest(f"{where}representation {t.rep.id!r} is not segment-aligned with "
                                          f"{parts[0].rep.id!r}")
    video = [Track([part(i, c.rungs[r], kind) for i, c in enumerate(selection.periods)], selection.reference)
             for r in range(n_rungs)]
    audio = None
    if selection.audio is not None:
        audio = Track([part(i, c.audio, "audio") for i, c in enumerate(selection.periods) if c.audio is not None])
    starts, durs = video[0].timing()
    if np.any(durs <= 0):
        durs = np.maximum(durs, 1e-3)
    bitrates = np.array([t.rep.bandwidth_bps for t in video], dtype=np.float64)
    sizes = np.empty((durs.size, bitrates.size))
    notes = list(selection.notes)
    estimated = []
    for r, t in enumerate(video):
        for pt, first in zip(t.parts, t.first):
            rows = slice(int(first), int(first) + len(pt.index))
            exact = pt.sizes_bytes()
            if exact is not None and exact.size == len(pt.index):
                sizes[rows, r] = exact
            else:
                sizes[rows, r] = np.maximum(1.0, pt.rep.bandwidth_bps * durs[rows] / 8.0)
                if pt.rep.id not in estimated:
                    estimated.append(pt.rep.id)
    if estimated and len(estimated) < len({id(pt) for t in video for pt in t.parts}):
        notes.append(f"segment sizes estimated from @bandwidth for {', '.join(estimated)}")
    mask = np.array([all(_device_allows(device, pt.rep) for pt in t.parts) for t in video], dtype=bool)
    if not mask.any():
        mask[0] = True
        notes.append("the device can play no representation; the lowest stays allowed")
    heights = np.array([t.rep.height or 0 for t in video], dtype=np.float64)
    audio_for: list[list[int]] = [[] for _ in range(durs.size)]
    if audio is not None:
        a_starts, _ = audio.timing()
        ends = starts + durs
        j = 0
        for k in range(durs.size):
            limit = math.inf if k == durs.size - 1 else ends[k] - AUDIO_SLACK * durs[k]
            while j < a_starts.size and a_starts[j] < limit:
                audio_for[k].append(j)
                j += 1
    info = None
    protections = tuple(cp for t in video + ([audio] if audio is not None else [])
                        for pt in t.parts for cp in pt.rep.protection)
    if any(t.protected for t in video) or (audio is not None and audio.protected):
        info = drm_info(protections, src,
                        system=drm_system, license_url=license_url)
    plan = SegmentPlan(durs.astype(np.float64), bitrates, sizes, heights)
    return PlaybackPlan(selection, video, audio, plan, mask, heights, device, audio_for, info, notes)


# ---------------------------------------------------------------------------------------
# the core and the summary


def make_core(plan: PlaybackPlan, abr_name: str, abr_params: dict[str, Any] | None = None,
              preset: str | SessionPreset = "default", mask: np.ndarray | None = None) -> SessionCore:
    p = get_preset(preset) if isinstance(preset, str) else preset
    policy = p.policy(abr_name, dict(abr_params or {}))
    m = plan.mask if mask is None else mask
    return SessionCore(plan.segment_plan, policy, p, mask=m, buffer_cap_s=plan.buffer_cap_s,
                       startup_threshold_s=plan.startup_threshold_s)
