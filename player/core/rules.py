"""The session rules, written once and vectorised over rows.

Everything that decides what a streaming session does lives here, and both clocks call it:
the batch simulator (`player.core.simulator`, n rows in lockstep, virtual time) and the
sans-IO session core (`player.core.session`, one row, driven by a driver's events). In the
style of h11, this module owns the state machine's rules; the two clocks own only time.

The rules, each stated once:

- **The segments played** (`played_plan`): all of the presentation's, at their own
  durations, unless the preset says otherwise (Pensieve's environment credits each chunk
  with its nominal length and never plays the last one).
- **Histories.** The policy sees the last `HISTORY_SAMPLES` throughput samples and download
  times, newest last, NaN-padded on the left before there are that many. A sample is a
  media segment's `bytes × 8 / measured`, where `measured` is the transfer time (plus the
  latency when the preset says samples include it). Init segments and abandoned attempts
  are not samples.
- **The observation** a policy decides on (`SessionRows.observation`), including the sizes
  of the next `HORIZON_SEGMENTS` segments (past the end the last segment repeats).
- **The first rung**: a preset may fix segment 1's rung (Sabre: the lowest; Pensieve: rung
  1); it is then moved onto the device mask like any choice.
- **The buffer target** before each request: the cap (the preset's or the device's), or the
  top-rung target (dash.js `bufferTimeAtTopQuality`) while the previous choice is the
  highest allowed rung. A request waits until the buffer (plus the whole next segment, if
  the preset says so) is within the target, in `wait_quantum_s` steps if the preset sleeps.
- **A policy's delay**: a policy may ask to wait before its request (`last_delay_s`).
- **Init segments** (`InitTracker`): before a media request at a representation other than
  the previous request's, that representation's init segment (a 304 without body when it
  was fetched before and the preset says it is revalidated).
- **Abandonment**: every `abandon_interval_s` an in-flight download is offered to a policy
  that has an abandonment hook (`next_offer_s`; with `abandon_min_bytes`, also not before
  that many more bytes have arrived, as Sabre checks); bytes so far come from the link's
  exact capacity integral; the policy's answer counts only if it is a lower rung
  (`accept_abandon`). The segment is then fetched at that rung, or, when the preset says
  `abandon_reselect` (Sabre), at the rung of a new decision (`MAX_ATTEMPTS` per segment at most).
- **Policy parameters** are merged by the preset (`SessionPreset.policy`).
- **Fast switching** (a preset with `fast_switch`, dash.js's): a quality change above the
  rung buffered at the playhead re-fetches the buffered segments from the playhead on;
  its state and rules are `player.core.fast_switch` (`SessionRows.fast`).
- **Live sessions** (a preset with `live`): every live rule — which segment a request is for,
  availability, chunks, the playback rate and its catch-up law, latency, the end by duration —
  is `player.core.live.LiveRows`'s; `SessionRows` holds one (`live`) and routes to it: time
  passes through `elapse` (at the playback rate), sizes through `segment_sizes`, media through
  `chunk_arrived` / `downloaded`, and the observation gains the live fields.

Per-row segments: the lockstep simulator and the session core ask about one segment `k` for
all their rows; the crowd (`player.core.crowd`), whose sessions share a bottleneck and so
drift apart, passes `k` as an array with one segment index per row to `room_wait_s`,
`observation`, `choose` and `downloaded` (rows asked together must then share the segment
duration, which the observation states once).

Units: seconds, bits per second, bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

import abr
from netem.errors import InputError
from player.core.buffer import BufferState
from player.core.fast_switch import FastSwitch
from player.core.live import LiveRows
from player.core.presets import SessionPreset

HISTORY_SAMPLES = 8      # throughput samples and download times kept in the observation
HORIZON_SEGMENTS = 5     # future segment sizes offered to the policy
MAX_ATTEMPTS = 1000      # requests per segment that may be abandoned; the next one runs to its end


@dataclass(frozen=True)
class SegmentPlan:
    """What a session knows of the presentation: per-segment durations, the ladder's
    bitrates, per-segment sizes (estimated as bitrate × duration where the manifest does not
    say) and, when known, each rung's picture height (for the HD QoE model)."""

    durations_s: np.ndarray          # (K,)
    bitrates_bps: np.ndarray         # (R,) ascending
    sizes_bytes: np.ndarray          # (K, R)
    heights: np.ndarray | None = None  # (R,) pixels, 0 unknown

    @classmethod
    def from_content(cls, content) -> "SegmentPlan":
        return cls(np.asarray(content.segment_durations_s, dtype=np.float64),
                   np.asarray(content.bitrates_bps, dtype=np.float64),
                   np.asarray(content.segment_sizes_bytes, dtype=np.float64),
                   np.array([r.height for r in content.rungs], dtype=np.float64))

    @property
    def n_segments(self) -> int:
        return int(self.durations_s.size)

    @property
    def n_rungs(self) -> int:
        return int(self.bitrates_bps.size)

    @property
    def duration_s(self) -> float:
        return float(self.durations_s.sum())


def played_plan(plan: SegmentPlan, preset: SessionPreset) -> SegmentPlan:
    """The segments a session under `preset` fetches and the media each adds to the buffer:
    without the last segment unless `preset.last_segment_played`; each duration rounded to
    the nearest multiple of `preset.duration_quantum_s` (never below one quantum) when that is
    set (Pensieve: 0.1 s, so EnvivioDash3's 359408/90000 s segments count as its 4 s chunks).
    The same plan when the preset changes nothing."""
    q = preset.duration_quantum_s
    if preset.last_segment_played and q == 0:
        return plan
    durations, sizes = plan.durations_s, plan.sizes_bytes
    if not preset.last_segment_played:
        if durations.size < 2:
            raise InputError(f"preset {preset.name!r} does not play the last segment: the presentation needs "
                             f"2 segments at least, it has {durations.size}")
        durations, sizes = durations[:-1], sizes[:-1]
    if q > 0:
        durations = np.maximum(np.round(durations / q), 1.0) * q
    return replace(plan, durations_s=durations, sizes_bytes=sizes)


def live_plan(plan: SegmentPlan, live: LiveRows) -> SegmentPlan:
    """A live session's segments: as many as it can request in its duration, all of the live
    duration, their sizes those of the looped content from the first row's first segment (the
    rules ask `LiveRows` for each row's own)."""
    K = live.max_requests
    j = live.j0[0] + np.arange(K)
    return replace(plan, durations_s=np.full(K, live.D), sizes_bytes=live.sizes[j % live.K])


class History:
    """Per-row sample windows, preallocated: row i's window is its last `HISTORY_SAMPLES`
    samples, newest last, NaN before the first. While every row has pushed the same number of
    samples (the simulator's lockstep), the window is a view, not a copy."""

    def __init__(self, n: int, capacity: int) -> None:
        self.data = np.full((n, HISTORY_SAMPLES + max(capacity, 1)), np.nan)
        self.count = np.zeros(n, dtype=np.int64)
        self._same = 0          # samples every row has, while all rows have the same number; -1 otherwise

    def push(self, values: np.ndarray, rows: np.ndarray | slice = slice(None)) -> None:
        if isinstance(rows, slice) and rows == slice(None) and self._same >= 0:
            col = HISTORY_SAMPLES + self._same
            if col >= self.data.shape[1]:
                self._grow()
                col = HISTORY_SAMPLES + self._same
            self.data[:, col] = values
            self._same += 1
            self.count += 1
            return
        self._same = -1
        if isinstance(rows, slice):  # every row at its own count: one column per row, not all of them
            rows = np.arange(self.data.shape[0])[rows]
        cnt = self.count[rows]
        if np.any(HISTORY_SAMPLES + cnt >= self.data.shape[1]):
            self._grow()
        self.data[rows, HISTORY_SAMPLES + cnt] = values
        self.count[rows] = cnt + 1

    def _grow(self) -> None:
        """Room for more samples (live sessions have no known length): keep the last windows."""
        n, width = self.data.shape
        if self._same >= 0:
            keep = self.data[:, self._same:self._same + HISTORY_SAMPLES].copy()
            self.data[:] = np.nan
            self.data[:, :HISTORY_SAMPLES] = keep
            self._same = 0
            self.count[:] = 0
            return
        self.data = np.concatenate([self.data, np.full((n, width), np.nan)], axis=1)

    def window(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        if self._same >= 0:
            return self.data[rows, self._same:self._same + HISTORY_SAMPLES]
        cnt = self.count[rows]
        return self.data[np.arange(self.data.shape[0])[rows][:, None], cnt[:, None] + np.arange(HISTORY_SAMPLES)]

    def last(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The newest sample per row (NaN before the first)."""
        return self.window(rows)[:, -1]


@dataclass
class InitTracker:
    """Init-segment requests (a preset with `init_bytes`): per row, the rung whose init
    segment was requested last and the rungs requested before."""

    size_bytes: float
    revalidated: bool          # a representation's init requested again is a 304: no body
    last: np.ndarray           # (n,) rung of the last init requested, -1 before any
    had: np.ndarray            # (n, R) bool

    @classmethod
    def new(cls, preset: SessionPreset, n: int, n_rungs: int) -> "InitTracker | None":
        if preset.init_bytes <= 0:
            return None
        return cls(float(preset.init_bytes), preset.init_revalidated, np.full(n, -1, dtype=np.int64),
                   np.zeros((n, n_rungs), dtype=bool))

    def skip(self, rows: np.ndarray, rung: np.ndarray) -> None:
        """These rows' init segments came before the session clock (`init_at_start=False`)."""
        self.last[rows] = rung
        self.had[rows, rung] = True

    def request(self, rows: np.ndarray, rung: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows `rows` are about to request `rung` (one per row). Returns which of them first
        fetch an init segment (bool per row) and its body size per such row, and records it."""
        need = rung != self.last[rows]
        if not need.any():
            return need, np.zeros(0)
        r, q = rows[need], rung[need]
        size = np.where(self.had[r, q], 0.0, self.size_bytes) if self.revalidated else np.full(r.size, self.size_bytes)
        self.last[r] = q
        self.had[r, q] = True
        return need, size


@dataclass(frozen=True)
class DecisionRecord:
    """One decision, as the per-decision hook sees it: which rows, what the policy saw,
    what it chose, what it computed (`inputs`, its `last_info`) and why."""

    segment: int | np.ndarray  # one per row when the rows are at different segments (the crowd)
    sessions: np.ndarray
    observation: abr.Observation | None
    rungs: np.ndarray
    inputs: dict[str, np.ndarray]
    delay_s: np.ndarray | None
    reason: str                # "policy" or "preset first rung"


DecisionHook = Callable[[DecisionRecord], None]


def highest_allowed(mask: np.ndarray) -> np.ndarray:
    """Per row, the highest rung the mask allows."""
    return mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)


def can_abandon(preset: SessionPreset, policy: abr.Policy) -> bool:
    """In-flight downloads are offered to the policy only when the preset says so and the
    policy has an abandonment hook of its own."""
    return preset.abandonment and (type(policy).abandon is not abr.Policy.abandon or type(policy).ABANDON_IS_PURE)


def accept_abandon(new_rung: np.ndarray, rung: np.ndarray) -> np.ndarray:
    """Whether a policy's abandonment answer stands: only a lower rung does (-1 carries on,
    and a policy cannot "abandon" to the same or a higher rung)."""
    return (new_rung >= 0) & (new_rung < rung)


def delivered_bytes(link, trace_idx: np.ndarray, first_byte_trace_s: np.ndarray, elapsed_s: np.ndarray,
                    latency_s: np.ndarray, size_bytes: np.ndarray, transfer_s: np.ndarray) -> np.ndarray:
    """Bytes of an in-flight download that have arrived `elapsed_s` after its request: the
    link's exact capacity between the first byte and now, times its efficiency (with noisy
    transfer times, progress in proportion instead), never more than the object."""
    flowing = np.maximum(elapsed_s - latency_s, 0.0)
    if link.params.noise is None:
        got = link.delivered_bits(trace_idx, first_byte_trace_s, first_byte_trace_s + flowing) \
            * link.params.efficiency / 8.0
    else:
        got = size_bytes * flowing / np.maximum(transfer_s, 1e-12)
    return np.minimum(got, size_bytes)


def payload_link(link):
    """The same traces without request latency or overhead: how long bytes take to arrive
    once the first one has (for `next_offer_s`, built once per link)."""
    return type(link)(link.traces, replace(link.params, latency="none", overhead_s=0.0, overhead_s_per_byte=0.0))


def next_offer_s(preset: SessionPreset, payload, trace_idx: np.ndarray, first_byte_trace_s: np.ndarray, j: int,
                 prev_s: np.ndarray, prev_bytes: np.ndarray, latency_s: np.ndarray, size_bytes: np.ndarray,
                 transfer_s: np.ndarray) -> np.ndarray:
    """When (seconds after the request) an in-flight download is offered to the abandonment
    hook for the `j`-th time (j = 1, 2, ...): every `abandon_interval_s`; with
    `abandon_min_bytes`, once both the interval has passed since the previous offer (`prev_s`,
    0 for the first) and that many bytes have arrived since it (`prev_bytes`), as Sabre's
    `NetworkModel.download` checks. `payload` is the link's `payload_link` (unused without
    `abandon_min_bytes`). At or past the transfer's end there is no offer (inf)."""
    dt = preset.abandon_interval_s
    if preset.abandon_min_bytes <= 0:
        return np.full(np.shape(prev_s), j * dt)
    want = prev_bytes + preset.abandon_min_bytes
    if payload.params.noise is None:
        reach = latency_s + payload.transfer(trace_idx, first_byte_trace_s, want).transfer_s
    else:  # noisy transfer times: progress in proportion
        reach = latency_s + transfer_s * want / np.maximum(size_bytes, 1e-12)
    return np.maximum(prev_s + dt, np.where(want >= size_bytes, np.inf, reach))


def sample_time_s(preset: SessionPreset, latency_s: np.ndarray, transfer_s: np.ndarray) -> np.ndarray:
    """The download time a throughput sample divides by (never zero)."""
    measured = transfer_s + latency_s if preset.throughput_includes_latency else transfer_s
    return np.maximum(measured, 1e-9)


class SessionRows:
    """The rule state of n sessions that share a plan, a preset and a policy instance.

    Per row: the buffer (`BufferState`), the device mask, the buffer cap and startup
    threshold, the last rung, the throughput and download-time histories, the init
    segments fetched. Methods take `rows` (an index array, or a slice for all rows) so the
    simulator calls them for n rows at once and the session core for its one row.
    """

    def __init__(self, plan: SegmentPlan, preset: SessionPreset, n: int, *, mask: np.ndarray | None = None,
                 buffer_cap_s: np.ndarray | float | None = None,
                 startup_threshold_s: np.ndarray | float | None = None, live: LiveRows | None = None) -> None:
        R = plan.n_rungs
        plan = played_plan(plan, preset) if live is None else live_plan(plan, live)
        self.plan = plan                 # the segments as the preset plays them
        self.preset = preset
        self.n = n
        self.live = live
        self.mask = np.ones((n, R), dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(n, R)
        cap = preset.buffer_cap_s if buffer_cap_s is None else buffer_cap_s
        self.buffer_cap_s = np.broadcast_to(np.asarray(cap, dtype=np.float64), (n,)).copy()
        if live is not None:
            self.buffer_cap_s = live.buffer_cap(self.buffer_cap_s)
        thr = 0.0 if startup_threshold_s is None else startup_threshold_s
        self.startup_threshold_s = np.maximum(np.broadcast_to(np.asarray(thr, dtype=np.float64), (n,)),
                                              preset.startup_threshold_s)
        self.top_cap_s = preset.top_cap_s(plan.duration_s)      # the buffer target at the top rung (None: the cap)
        self.top_rung = highest_allowed(self.mask)
        self.buffer = BufferState.new(n, playing_from_start=preset.startup_is_stall, floor_s=preset.stall_floor_s,
                                      resume_s=preset.resume_buffer_s)
        self.last_rung = np.full(n, -1, dtype=np.int64)
        K = plan.n_segments
        self.throughput = History(n, K)
        self.download_time = History(n, K)
        self.request_latency = History(n, K)
        self.inits = InitTracker.new(preset, n, R)
        self.fast = FastSwitch(plan.durations_s, R, n, preset.fast_switch_margin_s, preset.stall_gap_s,
                               preset.abandon_lock_s) if preset.fast_switch else None
        sizes = np.asarray(plan.sizes_bytes, dtype=np.float64)
        self.padded_sizes = np.concatenate([sizes, np.repeat(sizes[-1:], HORIZON_SEGMENTS, axis=0)])
        self.sessions = np.arange(n)

    @classmethod
    def for_devices(cls, plan: SegmentPlan, preset: SessionPreset, content, devices: Sequence,
                    live: LiveRows | None = None) -> "SessionRows":
        """One row per entry of `devices` (a `player.core.device.DeviceProfile`, or None for
        no device): the device's mask of `content`'s representations, its buffer target as
        the cap and its startup threshold; without a device, every rung and the preset's cap."""
        n, R = len(devices), plan.n_rungs
        mask = np.ones((n, R), dtype=bool)
        cap = np.full(n, preset.buffer_cap_s)
        startup = np.zeros(n)
        for i, d in enumerate(devices):
            if d is not None:
                mask[i] = d.mask(content)
                cap[i] = d.buffer_target_s
                startup[i] = d.startup_threshold_s
        return cls(plan, preset, n, mask=mask, buffer_cap_s=cap, startup_threshold_s=startup, live=live)

    # -- time and sizes --------------------------------------------------------------------------
    def elapse(self, dt: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Let `dt` pass for `rows` (live: at their playback rates, catch-up running); the stall."""
        if self.live is None:
            return self.buffer.elapse(dt, rows)
        return self.live.elapse(self.buffer, dt, rows)

    def segment_sizes(self, k: int, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The sizes of request k's segment at every rung, (R,) or (len(rows), R) for live
        sessions (whose rows may be at different segments after seeks)."""
        if self.live is None:
            return self.plan.sizes_bytes[k]
        return self.live.sizes_at(k, rows)

    # -- the mask ------------------------------------------------------------------------------
    def set_mask(self, mask: np.ndarray, rows: np.ndarray | slice = slice(None)) -> None:
        self.mask[rows] = mask
        self.top_rung = highest_allowed(self.mask)

    # -- before a request ------------------------------------------------------------------------
    def buffer_target_s(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The buffer level a request must stay within: the cap, or the top-rung target while
        the previous choice is the highest allowed rung."""
        cap = self.buffer_cap_s[rows]
        if self.top_cap_s is None:
            return cap
        return np.where(self.last_rung[rows] == self.top_rung[rows], self.top_cap_s, cap)

    def room_wait_s(self, k: int | np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """How long each row waits before requesting segment `k` (0 for the first segment);
        `k` is one segment for every row, or one per row."""
        if np.ndim(k) == 0 and k == 0:
            return np.zeros(self.buffer.buffer_s[rows].shape)
        p = self.preset
        wait = self.buffer.room_wait(self.plan.durations_s[k], self.buffer_target_s(rows), p.whole_segment_fits,
                                     p.wait_quantum_s, rows)
        return wait if np.ndim(k) == 0 else np.where(np.asarray(k) == 0, 0.0, wait)

    def observation(self, k: int | np.ndarray, rows: np.ndarray | slice = slice(None),
                    time_s: np.ndarray | None = None, sessions: np.ndarray | None = None) -> abr.Observation:
        """What the policy sees before choosing segment `k` for `rows` (`k`: one segment for
        every row, or one per row of equal duration)."""
        b = self.buffer
        n = self.sessions[rows].size
        K = self.plan.n_segments
        live = {}
        if self.live is not None:
            lv = self.live
            next_sizes = lv.horizon(k, rows, HORIZON_SEGMENTS)
            index = np.full(n, k)
            duration_s = float(self.plan.durations_s[k])
            live = {"latency_s": lv.latency(b, rows), "playback_rate": lv.rate[rows].copy(),
                    "target_latency_s": lv.target_s[rows].copy(), **lv.chunks.fields(rows)}
        elif np.ndim(k) == 0:
            horizon = self.padded_sizes[k:k + HORIZON_SEGMENTS]
            next_sizes = np.broadcast_to(horizon, (n,) + horizon.shape)
            index = np.full(n, k)
            duration_s = float(self.plan.durations_s[k])
        else:
            index = np.asarray(k, dtype=np.int64).reshape(n)
            next_sizes = self.padded_sizes[index[:, None] + np.arange(HORIZON_SEGMENTS)]
            durations = self.plan.durations_s[index]
            if n and np.any(durations != durations[0]):
                raise ValueError("rows asked together must be at segments of the same duration")
            duration_s = float(durations[0]) if n else float(self.plan.durations_s[0])
        return abr.Observation(
            sessions=self.sessions[rows] if sessions is None else sessions, buffer_s=b.buffer_s[rows].copy(),
            last_rung=self.last_rung[rows].copy(),
            throughput_bps=self.throughput.window(rows), download_time_s=self.download_time.window(rows),
            next_sizes_bytes=next_sizes, segments_left=K - index, segment_index=index,
            segment_duration_s=duration_s, playing=b.playing[rows].copy(),
            mask=self.mask[rows], time_s=b.clock_s[rows].copy() if time_s is None else time_s,
            buffer_cap_s=self.buffer_cap_s[rows], request_latency_s=self.request_latency.window(rows), **live)

    def choose(self, policy: abr.Policy, k: int | np.ndarray, rows: np.ndarray | slice = slice(None),
               hook: DecisionHook | None = None, time_s: np.ndarray | None = None,
               sessions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The rung each row fetches segment `k` at (one segment for every row, or one per
        row), and the delay (s) the policy asked for before the request (None: none).
        Segment 1 may be fixed by the preset; rows asked together are then all at segment 1
        or none."""
        first = np.asarray(k) == 0
        if self.preset.first_rung is not None and first.any():
            if not first.all():
                raise ValueError("the preset fixes segment 1's rung: ask first segments apart from later ones")
            R = self.plan.n_rungs
            m = self.mask[rows]
            rung = abr.apply_mask(np.full(m.shape[0], min(self.preset.first_rung, R - 1)), m)
            if hook is not None:
                hook(DecisionRecord(k, self.sessions[rows], None, rung, {}, None, "preset first rung"))
            return rung, None
        obs = self.observation(k, rows, time_s, sessions)
        rung = policy.select(obs)
        delay = policy.last_delay_s
        if delay is not None:
            delay = np.maximum(np.broadcast_to(np.asarray(delay, dtype=np.float64), rung.shape), 0.0)
            if not delay.any():
                delay = None
        if hook is not None:
            hook(DecisionRecord(k, obs.sessions, obs, rung, dict(policy.last_info), delay, "policy"))
        return rung, delay

    def first_inits_before_clock(self, k: int, rows: np.ndarray, rung: np.ndarray) -> None:
        """Segment 1's init segments came with the manifest, before the session clock, when
        the preset says so (`init_at_start=False`)."""
        if self.inits is not None and k == 0 and not self.preset.init_at_start:
            self.inits.skip(rows, rung)

    # -- after a download ------------------------------------------------------------------------
    def chunk_arrived(self, k: int, media_s: np.ndarray, rows: np.ndarray | slice = slice(None)) -> None:
        """A live chunk of request k's segment arrived for `rows`: its playable media joins the
        buffer at once (playback may start, a stall ends)."""
        self._add_live_media(self.live.playable(k, rows, media_s), rows)

    def _add_live_media(self, media_s: np.ndarray, rows: np.ndarray | slice) -> None:
        """Live media joins the buffer; media before the playhead's start (none playable) is
        not an arrival: it neither starts playback nor ends a stall."""
        rows = np.arange(self.n)[rows] if isinstance(rows, slice) else np.asarray(rows)
        some = media_s > 0
        if some.any():
            self.buffer.add(media_s[some], self.startup_threshold_s[rows[some]], rows[some])

    def downloaded(self, k: int | np.ndarray, rung: np.ndarray, size_bytes: np.ndarray, latency_s: np.ndarray,
                   transfer_s: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Segment `k` arrived for `rows` at `rung`: its media joins the buffer (playback may
        start; live: what its chunks did not bring already), the histories take the sample, it
        becomes the last rung. Returns the sample (bits/s)."""
        if self.live is None:
            self.buffer.add(self.plan.durations_s[k], self.startup_threshold_s[rows], rows)
        else:
            self._add_live_media(self.live.rest_of_segment(k, rows), rows)
        return self.sampled(rung, size_bytes, latency_s, transfer_s, rows)

    def sampled(self, rung: np.ndarray, size_bytes: np.ndarray, latency_s: np.ndarray, transfer_s: np.ndarray,
                rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """A media download's throughput sample and rung, without its media (a re-fetched
        segment, `player.core.fast_switch`, replaces media already buffered). Returns the
        sample (bits/s)."""
        measured = sample_time_s(self.preset, latency_s, transfer_s)
        sample = size_bytes * 8.0 / measured
        self.throughput.push(sample, rows)
        self.download_time.push(measured, rows)
        self.request_latency.push(latency_s, rows)
        self.last_rung[rows] = rung
        return sample
