"""The trace-driven simulator: many sessions in lockstep, one segment per step, virtual time.

Sessions that share a policy, a content and a preset form a batch: one policy instance
(reset for the whole batch), one `netem.link.Link` over their traces, and one
`player.core.rules.SessionRows` (buffers, histories, masks, init segments). Each step asks
the policy for every session at once, gets every download time from the link in one
vectorised call, and advances every buffer. Per-session things (trace, device mask, buffer
cap) are arrays, so a batch mixes them. Every rule comes from `player.core.rules`; this
module only keeps the lockstep clock: what happens in which order within a step.

Order within step k, per session: wait until the buffer has room (not before segment 1),
the decision, the policy's own delay if it asked for one, the init segment if the
representation changed (a preset with `init_bytes`: a sequential transfer on the same link
that the buffer drains during; the throughput samples stay the media segment's alone), the
media request (offered to the policy's abandonment hook every `abandon_interval_s`), the
arrival. A live preset's batch (`SessionPreset.live`) runs `player.core.livesim`'s lockstep
over the same batch instead: requests cut at the session's duration, live records beside.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

import numpy as np

import abr
from netem.content import Content
from netem.errors import InputError
from netem.link import Link
from netem.trace import Trace
from player.core.device import DeviceProfile
from player.core.fast_switch import refetch_bound
from player.core.live import simulated_rows
from player.core.livesim import LiveLockstep
from player.core.presets import SessionPreset, get as get_preset
from player.core.rules import (MAX_ATTEMPTS, DecisionHook, SegmentPlan, SessionRows, accept_abandon, can_abandon,
                               delivered_bytes, next_offer_s, payload_link)
from player.core.summary import row_summary, session_metrics

#: progress points per row offered in one call to a pure or scanning abandonment rule (see
#: `abr.Policy.ABANDON_IS_PURE` and `ABANDON_SCANS`)
OFFERS_IN_BULK = 32


@dataclass
class SessionSpec:
    """One session to simulate."""

    trace: Trace
    content: Content
    abr: str = "bola"
    abr_params: dict[str, Any] = field(default_factory=dict)
    device: DeviceProfile | None = None
    preset: str | SessionPreset = "default"   # a preset's name, or a SessionPreset (e.g. a variant)
    label: dict[str, Any] = field(default_factory=dict)  # carried into the result (e.g. trace path)
    # the trace time at which the session starts (its request for segment 1 goes out): 0 plays the
    # trace from its beginning; an HTTP session against an edge that started replaying the trace
    # earlier starts where the edge's trace clock stood (`player.lab.prediction`)
    trace_start_s: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.trace_start_s) and self.trace_start_s >= 0):
            raise InputError(f"trace_start_s must be a number of seconds >= 0, got {self.trace_start_s!r}")

    @property
    def preset_name(self) -> str:
        return self.preset if isinstance(self.preset, str) else self.preset.name


@dataclass
class SessionResult:
    """What one session did. Sizes in bytes, times in seconds, rates in bits per second."""

    spec: SessionSpec
    chosen: np.ndarray           # rung per segment
    bitrate_bps: np.ndarray      # nominal bitrate per segment
    size_bytes: np.ndarray       # bytes per segment
    download_s: np.ndarray       # latency + transfer per segment
    latency_s: np.ndarray
    rebuffer_s: np.ndarray       # stall time during each segment's download
    buffer_s: np.ndarray         # buffer right after each segment arrived
    wait_s: np.ndarray           # full-buffer wait (and policy delay) before each request
    request_s: np.ndarray        # session time each request was sent
    startup_s: float
    session_s: float             # session clock at the end
    rebuffer_count: int
    policy_desc: str
    metrics: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # the batch's `session_metrics`
    row: int = 0                 # this session's row in `metrics`
    wasted_bytes: int = 0        # bytes of abandoned downloads
    abandons: int = 0
    init_s: np.ndarray | None = None  # time of the init-segment requests before each segment (None: none made)
    refetches: list[dict] | None = None   # fast switching's re-fetches, in order (None: the preset has none)
    live_latency_s: np.ndarray | None = None   # live: the latency when each segment arrived
    playback_rate: np.ndarray | None = None    # live: the playback rate when each segment arrived

    def summary(self, qoe_model: str = "linear") -> dict:
        c = self.spec.content
        out = {
            "abr": self.spec.abr,
            "abr_params": self.policy_desc,
            "trace": self.spec.label.get("trace", self.spec.trace.source or self.spec.trace.name),
            "movie": self.spec.label.get("movie", c.source or c.name),
            "device": self.spec.device.name if self.spec.device else "none",
            "preset": self.spec.preset_name,
        }
        out.update(row_summary(self.metrics, self.row, qoe_model))
        out["complete"] = True
        out["chosen"] = self.chosen.tolist()
        if self.refetches is not None:
            out["refetches"] = len(self.refetches)
        return out

    def segment_log(self) -> list[dict]:
        init = self.init_s if self.init_s is not None else np.zeros(self.chosen.size)
        out = [
            {"segment": k, "request_s": float(self.request_s[k]), "wait_s": float(self.wait_s[k]),
             "rung": int(self.chosen[k]), "bitrate_bps": float(self.bitrate_bps[k]),
             "size_bytes": int(self.size_bytes[k]), "init_s": float(init[k]), "latency_s": float(self.latency_s[k]),
             "download_s": float(self.download_s[k]), "rebuffer_s": float(self.rebuffer_s[k]),
             "buffer_s": float(self.buffer_s[k])}
            for k in range(self.chosen.size)
        ]
        if self.live_latency_s is not None:
            for k, rec in enumerate(out):
                rec["live_latency_s"] = float(self.live_latency_s[k])
                rec["playback_rate"] = float(self.playback_rate[k])
        return out


@dataclass(frozen=True)
class RefetchRecord:
    """Re-fetches of one buffered segment (fast switching) by some sessions of a batch,
    during step `step`: per row, the rung, when the request was decided (`asked_s`, before
    any init segment) and sent (`sent_s`), its latency + transfer, its bytes and whether
    that version played."""

    step: int
    segment: int
    rows: np.ndarray
    rung: np.ndarray
    asked_s: np.ndarray
    sent_s: np.ndarray
    download_s: np.ndarray
    latency_s: np.ndarray
    size_bytes: np.ndarray
    played: np.ndarray


#: what the lockstep records per step and session
RECORDS = ("download", "latency", "rebuffer", "buffer", "wait", "request", "size", "init")
#: the records the session metrics need, always kept
METRIC_RECORDS = ("rebuffer", "size")


def _scratch(K: int, n: int) -> np.ndarray:
    """A (K, n) array whose K rows are one row in memory: writes land, nothing is kept."""
    row = np.zeros(n)
    return np.lib.stride_tricks.as_strided(row, shape=(K, n), strides=(0, row.strides[0]))


def _by_segment(rows: np.ndarray, segment: np.ndarray):
    """(segment, the rows requesting it) for each segment requested, lowest first."""
    for seg in np.unique(segment):
        yield int(seg), rows[segment == seg]


def _group_key(spec: SessionSpec) -> tuple:
    p = spec.preset if isinstance(spec.preset, str) else ("preset object", id(spec.preset))
    return (spec.abr, tuple(sorted(spec.abr_params.items())), id(spec.content), p)


def simulate(specs: Sequence[SessionSpec], progress: Callable[[int], None] | None = None,
             on_decision: DecisionHook | None = None) -> list[SessionResult]:
    """Simulate every session; results come back in the order of `specs`. `on_decision`
    sees every decision (policy, observation, choice, what the policy computed)."""
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(_group_key(s), []).append(i)
    results: list[SessionResult | None] = [None] * len(specs)
    for rows in groups.values():
        batch = [specs[i] for i in rows]
        done = simulate_batch(batch, on_decision)
        for j, i in enumerate(rows):
            results[i] = done.session(j)
        if progress:
            progress(len(rows))
    return results  # type: ignore[return-value]


class _Batch:
    """The lockstep clock of one batch: the link, each session's trace time, and what each
    step records. The rules are `self.rules`'."""

    def __init__(self, specs: Sequence[SessionSpec], preset: SessionPreset, policy: abr.Policy,
                 keep: Collection[str] | None = None) -> None:
        content = specs[0].content
        self.preset = preset
        self.policy = policy
        n = len(specs)
        # one link over the distinct traces of the batch
        trace_ids: dict[int, int] = {}
        uniq: list[Trace] = []
        for s in specs:
            if id(s.trace) not in trace_ids:
                trace_ids[id(s.trace)] = len(uniq)
                uniq.append(s.trace)
        self.link = Link(uniq, preset.link)
        self.tidx = np.array([trace_ids[id(s.trace)] for s in specs], dtype=np.int64)
        plan = SegmentPlan.from_content(content)
        live = None if preset.live is None else simulated_rows(
            plan.durations_s, plan.sizes_bytes, preset.live, n, content.chunk_layout(preset.live.chunk_s))
        self.rules = SessionRows.for_devices(plan, preset, content, [s.device for s in specs], live=live)
        self.plan = self.rules.plan      # the segments as the preset plays them
        K = self.plan.n_segments
        self.trace_t = np.array([float(s.trace_start_s) for s in specs])
        self.n, self.K = n, K
        # one row per step (segment), so each step writes contiguous memory; transposed at the end.
        # A record not kept (`keep`) is one scratch row every step writes (a stride-0 view):
        # the steps run as ever, and a 5,000-session batch of a 199-segment movie does not
        # page-fault 8 MB per record it never reports
        self.kept = set(RECORDS) if keep is None else set(keep) | set(METRIC_RECORDS)
        self.rec = {k: np.zeros((K, n)) if k in self.kept else _scratch(K, n) for k in RECORDS}
        self.chosen = np.zeros((K, n), dtype=np.int64)
        self.wasted = np.zeros(n)
        self.abandons = np.zeros(n, dtype=np.int64)
        self.abandoning = can_abandon(preset, policy)
        self.payload = payload_link(self.link) if self.abandoning and preset.abandon_min_bytes > 0 else None
        self.refetch_log: list[RefetchRecord] = []     # fast switching's re-fetches, as they happen

    def elapse(self, rows: np.ndarray | slice, seconds: np.ndarray, trace_advance_s: np.ndarray | None = None
               ) -> np.ndarray:
        """Let time pass for `rows` (the buffer drains, the trace clock moves); returns stalls."""
        stall = self.rules.elapse(seconds, rows)
        self.trace_t[rows] += seconds if trace_advance_s is None else trace_advance_s
        return stall

    def fetch_inits(self, k: int, rows: np.ndarray, rung: np.ndarray) -> np.ndarray:
        """The init segments rows `rows` need before requesting `rung`: fetched in full on the
        link while the buffer drains. Returns the stall per row of `rows`."""
        stall = np.zeros(rows.size)
        need, size = self.rules.inits.request(rows, rung)
        if size.size:
            r = rows[need]
            tr = self.link.transfer(self.tidx[r], self.trace_t[r], size)
            stall[need] = self.elapse(r, tr.total_s, tr.trace_advance_s)
            self.rec["init"][k, r] += tr.total_s
        return stall

    def step(self, k: int, hook: DecisionHook | None) -> None:
        rules, rec = self.rules, self.rec
        every = slice(None)
        if k > 0:
            wait = rules.room_wait_s(k)
            if np.any(wait > 0):
                self.elapse(every, wait)
            rec["wait"][k] = wait
        rung, delay = rules.choose(self.policy, k, hook=hook)
        stall = rec["rebuffer"][k]          # this step's stalls accumulate in place
        if delay is not None:
            stall += self.elapse(every, delay)
            rec["wait"][k] += delay
        if rules.fast is not None:
            rung = self.refetch_buffered(k, rung, stall, hook)
        rec["request"][k] = rules.buffer.clock_s
        if rules.inits is not None:
            rules.first_inits_before_clock(k, rules.sessions, rung)
            stall += self.fetch_inits(k, rules.sessions, rung)
        if self.abandoning:
            rung = self.abandonments(k, rung, stall, hook)
        size = self.plan.sizes_bytes[k, rung]
        tr = self.link.transfer(self.tidx, self.trace_t, size)
        total = tr.total_s
        stall += self.elapse(every, total, tr.trace_advance_s)
        rules.downloaded(k, rung, size, tr.latency_s, tr.transfer_s)
        if rules.fast is not None:
            rules.fast.arrived(rules.sessions, np.full(self.n, k), rung, size, rules.fast.playhead_s(rules.buffer),
                               None, tr.latency_s, tr.transfer_s)
        self.chosen[k] = rung
        rec["download"][k] = total
        rec["latency"][k] = tr.latency_s
        rec["buffer"][k] = rules.buffer.buffer_s
        rec["size"][k] = size

    def refetch_buffered(self, k: int, rung: np.ndarray, stall: np.ndarray, hook: DecisionHook | None) -> np.ndarray:
        """Fast switching (`player.core.fast_switch`) before new segment `k`: the sessions
        whose decision re-fetches buffered segments do so, one request after another, each
        decided as usual (a wait for room, the decision, the policy's delay) and each able to
        start again from the playhead, until their requests reach segment `k`. Advances their
        clocks and adds their stalls to `stall`; returns the rung each session fetches
        segment `k` at (its last decision's)."""
        rules, fs, buf = self.rules, self.rules.fast, self.rules.buffer
        rows = rules.sessions
        to = fs.target(rows, rung, rules.last_rung, fs.playhead_s(buf), buf.buffer_s, buf.clock_s)
        active = np.flatnonzero(to >= 0)
        if active.size == 0:
            return rung
        fs.redirect(active, to[active])
        rung = rung.copy()
        sizes = self.plan.sizes_bytes
        for _ in range(refetch_bound(self.K, self.plan.n_rungs)):
            if active.size == 0:
                return rung
            for seg, rs in _by_segment(active, fs.next_index[active]):
                asked = buf.clock_s[rs].copy()
                init_s = self.rec["init"][k, rs].copy()   # the step's record is segment k's own inits
                if rules.inits is not None:
                    stall[rs] += self.fetch_inits(k, rs, rung[rs])
                sent = buf.clock_s[rs].copy()
                if self.abandoning:
                    rung = self.abandonments(k, rung, stall, hook, rs, seg)
                self.rec["init"][k, rs] = init_s
                size = sizes[seg, rung[rs]]
                body = fs.body_bytes(rs, seg, rung[rs], size)
                tr = self.link.transfer(self.tidx[rs], self.trace_t[rs], body)
                stall[rs] += self.elapse(rs, tr.total_s, tr.trace_advance_s)
                rules.sampled(rung[rs], *fs.sample(rs, seg, rung[rs], size, body, tr.latency_s, tr.transfer_s), rs)
                plays = fs.arrived(rs, np.full(rs.size, seg), rung[rs], size, fs.playhead_s(buf, rs), body,
                                   tr.latency_s, tr.transfer_s)
                self.refetch_log.append(RefetchRecord(k, seg, rs, rung[rs].copy(), asked, sent, tr.total_s,
                                                      tr.latency_s, body, plays))
            for seg, rs in _by_segment(active, fs.next_index[active]):
                wait = rules.room_wait_s(seg, rs)
                if np.any(wait > 0):
                    self.elapse(rs, wait)
                self.rec["wait"][k, rs] += wait
                r, delay = rules.choose(self.policy, seg, rs, hook=hook)
                if delay is not None:
                    stall[rs] += self.elapse(rs, delay)
                    self.rec["wait"][k, rs] += delay
                rung[rs] = r
                again = fs.target(rs, r, rules.last_rung[rs], fs.playhead_s(buf, rs), buf.buffer_s[rs],
                                  buf.clock_s[rs])
                fs.redirect(rs[again >= 0], again[again >= 0])
            active = active[fs.next_index[active] < k]
        raise RuntimeError("fast switching did not reach the end of the buffer")  # pragma: no cover - bound

    def _offered(self, rows: np.ndarray, rung: np.ndarray, segment: int) -> np.ndarray:
        """Of `rows` re-fetching `segment` at `rung`, those whose download may be abandoned:
        above the lowest rung, and not a 304 (a version fetched before)."""
        live = rows[rung[rows] > 0]
        return live[~self.rules.fast.had[live, segment, rung[live]]]

    def abandonments(self, k: int, rung: np.ndarray, stall: np.ndarray, hook: DecisionHook | None,
                     among: np.ndarray | None = None, segment: int | None = None) -> np.ndarray:
        """Offer every in-flight download to the policy (`next_offer_s`), as the HTTP player
        does. An abandoned request costs the time it ran and its bytes; the segment is
        requested again at the new rung, or at a new decision's with `abandon_reselect` (which
        may itself be abandoned), after that rung's init segment when the preset has them.
        Advances the sessions' clocks and traces past the abandoned attempts and adds their
        stalls to `stall`; returns the rung each session finally fetches. The sessions `among`
        (default: all) request `segment` (default: `k`, the step's own; fast switching
        re-fetches earlier ones within step `k`, and a re-fetch with no body, a 304, is not
        offered)."""
        p, rules, link = self.preset, self.rules, self.link
        seg = k if segment is None else segment
        seg_sizes = self.plan.sizes_bytes[seg]
        seg_s = float(self.plan.durations_s[seg])
        buf = rules.buffer
        rung = rung.copy()
        live = np.flatnonzero(rung > 0) if among is None else self._offered(among, rung, seg)
        # without reselection the rung only goes down, so this ends within the ladder
        for _ in range(MAX_ATTEMPTS if p.abandon_reselect else seg_sizes.size):
            if live.size == 0:
                break
            size = seg_sizes[rung[live]]
            start = self.trace_t[live].copy()
            tr = link.transfer(self.tidx[live], start, size)
            total, lat = tr.total_s, tr.latency_s
            first_byte = start + (lat if p.link.latency_advances_trace else 0.0)
            decided = np.full(live.size, -1, dtype=np.int64)
            when = np.zeros(live.size)
            got_at = np.zeros(live.size)
            prev_e = np.zeros(live.size)
            prev_got = np.zeros(live.size)
            pending = np.arange(live.size)
            # a pure abandonment rule on a fixed schedule is offered several progress points
            # per row in one call (identical answers, fewer calls); otherwise one at a time
            pure = self.policy.ABANDON_IS_PURE
            bulk = OFFERS_IN_BULK if ((pure or self.policy.ABANDON_SCANS) and p.abandon_min_bytes <= 0) else 1
            j = 1
            while pending.size:
                if bulk > 1:
                    offer, e = np.repeat(pending, bulk), np.tile(np.arange(j, j + bulk) * p.abandon_interval_s,
                                                                 pending.size)
                else:
                    offer = pending
                    e = next_offer_s(p, self.payload, self.tidx[live[offer]], first_byte[offer], j, prev_e[offer],
                                     prev_got[offer], lat[offer], size[offer], tr.transfer_s[offer])
                keep = e < total[offer]
                offer, e = offer[keep], e[keep]
                if offer.size == 0:
                    break
                rows = live[offer]
                got = delivered_bytes(link, self.tidx[rows], first_byte[offer], e, lat[offer], size[offer],
                                      tr.transfer_s[offer])
                moving = buf.playing[rows] & ~buf.paused[rows]
                level = np.where(moving, np.maximum(buf.buffer_s[rows] - e, 0.0), buf.buffer_s[rows])
                prog = abr.Progress(sessions=rows, rung=rung[rows], bytes_done=got, bytes_total=size[offer],
                                    elapsed_s=e, buffer_s=level, segment_duration_s=seg_s,
                                    sizes_bytes=np.broadcast_to(seg_sizes, (rows.size, seg_sizes.size)),
                                    mask=rules.mask[rows], request_latency_s=np.minimum(lat[offer], e))
                if bulk > 1 and pure:
                    answer = np.asarray(self.policy.abandon_answer(prog), dtype=np.int64)
                    accepted = accept_abandon(answer, rung[rows])
                    # the first accepted offer of each row (offers are grouped by row, in time order)
                    hit = np.zeros(offer.size, dtype=bool)
                    if accepted.any():
                        idx = np.flatnonzero(accepted)
                        firsts = idx[np.concatenate([[True], offer[idx[1:]] != offer[idx[:-1]]])]
                        hit[firsts] = True
                        self.policy.abandon_taken(prog, hit, answer)
                    new = answer
                else:   # one offer per row, or a scanning rule's: at most one abandonment per row
                    new = np.asarray(self.policy.abandon(prog), dtype=np.int64)
                    hit = accept_abandon(new, rung[rows])
                decided[offer[hit]] = new[hit]
                when[offer[hit]] = e[hit]
                got_at[offer[hit]] = got[hit]
                last = np.concatenate([offer[1:] != offer[:-1], [True]])   # each row's latest offer
                prev_e[offer[last]], prev_got[offer[last]] = e[last], got[last]
                pending = np.setdiff1d(pending, offer[hit], assume_unique=True) if hit.any() else pending
                pending = pending[np.isin(pending, offer)]                 # rows with no offer left are done
                j += bulk
            gone = np.flatnonzero(decided >= 0)
            if gone.size == 0:
                break
            rows = live[gone]
            e = when[gone]
            stall[rows] += self.elapse(rows, e, e - (0.0 if p.link.latency_advances_trace else lat[gone]))
            self.wasted[rows] += got_at[gone]
            self.abandons[rows] += 1
            if rules.fast is not None:
                rules.fast.abandoned(rows, buf.clock_s[rows])
            if p.abandon_reselect:
                rung[rows] = self.decide_again(seg, rows, stall, hook)
            else:
                rung[rows] = decided[gone]
            if rules.inits is not None:
                stall[rows] += self.fetch_inits(k, rows, rung[rows])
            live = self._offered(rows, rung, seg) if segment is not None else rows[rung[rows] > 0]
        return rung

    def decide_again(self, k: int, rows: np.ndarray, stall: np.ndarray, hook: DecisionHook | None) -> np.ndarray:
        """After an abandonment (`abandon_reselect`): the wait for room, a new decision for
        segment `k` and its delay, for `rows`, as at the start of a step."""
        rules, rec = self.rules, self.rec
        wait = rules.room_wait_s(k, rows)
        if np.any(wait > 0):
            stall[rows] += self.elapse(rows, wait)
            rec["wait"][k, rows] += wait
        rung, delay = rules.choose(self.policy, k, rows, hook=hook)
        if delay is not None:
            stall[rows] += self.elapse(rows, delay)
            rec["wait"][k, rows] += delay
        return rung


@dataclass
class BatchResult:
    """What a batch of sessions did, as arrays over (session, segment): the simulator's own
    output. `session(i)` is one session's `SessionResult` (views, no copies); the sweep
    writes `metrics` (`player.core.summary.session_metrics`) as CSV columns directly."""

    specs: Sequence[SessionSpec]
    chosen: np.ndarray           # (n, K) rung per segment
    records: dict[str, np.ndarray]   # (n, K) each: download, latency, rebuffer, buffer, wait, request, size, init
    startup_s: np.ndarray        # (n,)
    session_s: np.ndarray        # (n,)
    stall_count: np.ndarray      # (n,)
    wasted_bytes: np.ndarray     # (n,)
    abandons: np.ndarray         # (n,)
    metrics: dict[str, np.ndarray]
    policy_desc: str
    bitrates_bps: np.ndarray
    with_inits: bool
    refetches: np.ndarray | None = None      # (n,) fast switching's re-fetches per session (None: off)
    refetch_log: list[RefetchRecord] = field(default_factory=list)
    segments: np.ndarray | None = None   # live: the segments that arrived per session (the rest are not played)

    def __len__(self) -> int:
        return len(self.specs)

    def session(self, i: int) -> SessionResult:
        rec = self.records
        missing = [name for name in RECORDS if name not in rec]
        if missing:
            raise ValueError(f"session {i}: the batch kept no {', '.join(missing)} records (simulate_batch keep=...)")
        m = slice(None) if self.segments is None else slice(0, int(self.segments[i]))
        ch = self.chosen[i, m]
        live = "live_latency" in rec
        return SessionResult(
            spec=self.specs[i], chosen=ch, bitrate_bps=self.bitrates_bps[ch], size_bytes=rec["size"][i, m],
            download_s=rec["download"][i, m], latency_s=rec["latency"][i, m], rebuffer_s=rec["rebuffer"][i, m],
            buffer_s=rec["buffer"][i, m], wait_s=rec["wait"][i, m], request_s=rec["request"][i, m],
            startup_s=float(self.startup_s[i]), session_s=float(self.session_s[i]),
            rebuffer_count=int(self.stall_count[i]), policy_desc=self.policy_desc, metrics=self.metrics, row=i,
            wasted_bytes=int(self.wasted_bytes[i]), abandons=int(self.abandons[i]),
            init_s=rec["init"][i, m] if self.with_inits else None,
            live_latency_s=rec["live_latency"][i, m] if live else None,
            playback_rate=rec["rate"][i, m] if live else None,
            refetches=None if self.refetches is None else self.refetch_rows(i))

    def refetch_rows(self, i: int) -> list[dict]:
        """Session `i`'s re-fetches (fast switching), in order: the step (new segment) they
        came before, the segment, its rung, when decided and sent, latency + transfer, bytes,
        whether that version played."""
        out = []
        for r in self.refetch_log:
            at = np.flatnonzero(r.rows == i)
            if at.size:
                j = int(at[0])
                out.append({"before_segment": r.step, "segment": r.segment, "rung": int(r.rung[j]),
                            "request_s": float(r.asked_s[j]), "sent_s": float(r.sent_s[j]),
                            "download_s": float(r.download_s[j]), "latency_s": float(r.latency_s[j]),
                            "size_bytes": int(r.size_bytes[j]), "played": bool(r.played[j])})
        return out

    def sessions(self) -> list[SessionResult]:
        return [self.session(i) for i in range(len(self.specs))]


def simulate_batch(specs: Sequence[SessionSpec], on_decision: DecisionHook | None = None,
                   keep: Collection[str] | None = None) -> BatchResult:
    """Sessions sharing policy, content and preset, each with its own trace and device.
    `keep`: the per-segment `RECORDS` to return besides those the metrics need (None: all;
    the sweep, which writes only the metrics, keeps none; `BatchResult.session` needs all)."""
    first = specs[0]
    preset: SessionPreset = first.preset if isinstance(first.preset, SessionPreset) else get_preset(first.preset)
    policy = preset.policy(first.abr, first.abr_params)
    batch = _Batch(specs, preset, policy, keep)
    played = batch.plan
    policy.reset(len(specs), abr.Ladder(played.bitrates_bps, float(np.median(played.durations_s))))
    live = None
    if batch.rules.live is not None:
        live = LiveLockstep(batch)
        live.run(on_decision)
    else:
        for k in range(batch.K):
            batch.step(k, on_decision)
    st = batch.rules.buffer
    if preset.play_out_at_end and live is None:
        st.play_out()
    plan = batch.plan
    # (n, K) each; a record not kept is not transposed (the sweep keeps only what the metrics read)
    records = {k: np.ascontiguousarray(a.T) for k, a in batch.rec.items() if k in batch.kept or k not in RECORDS}
    fs = batch.rules.fast
    if fs is not None:  # fast switching: the versions that played; the others are wasted
        batch.chosen = fs.played_rung.T
        records["size"] = fs.played_bytes
        batch.wasted = batch.wasted + fs.wasted_bytes()
    records["size"] = records["size"].astype(np.int64)
    chosen = np.ascontiguousarray(batch.chosen.T)
    extra = {}
    if live is not None:
        extra = dict(segments=live.segments, played_s=st.played_s, live_latency_s=records["live_latency"],
                     playback_rate=records["rate"], live=batch.rules.live.metrics(st))
    metrics = session_metrics(chosen, records["rebuffer"], plan.durations_s, plan.bitrates_bps,
                              startup_s=st.startup_s, session_s=st.clock_s, stall_count=st.stall_count,
                              bytes_=records["size"].sum(axis=1), wasted_bytes=batch.wasted.astype(np.int64),
                              abandons=batch.abandons, heights=plan.heights, qoe_skip_first=preset.qoe_skip_first,
                              **extra)
    return BatchResult(specs, chosen, records, st.startup_s, st.clock_s, st.stall_count,
                       batch.wasted.astype(np.int64), batch.abandons, metrics, policy.describe(), plan.bitrates_bps,
                       batch.rules.inits is not None, None if fs is None else fs.refetches.copy(), batch.refetch_log,
                       None if live is None else live.segments)
