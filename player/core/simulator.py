"""The trace-driven simulator: many sessions in lockstep, one segment per step, virtual time.

Sessions that share a policy, a content and a preset form a batch: one policy instance
(reset for the whole batch), one `netem.link.Link` over their traces, and one
`player.core.buffer.BufferState`. Each step asks the policy for every session at once, gets
every download time from the link in one vectorised call, and advances every buffer.
Per-session things (trace, device mask, buffer cap) are arrays, so a batch mixes them.

A preset with `init_bytes` adds an init-segment request before a media request whose
representation differs from the previous request's: a sequential transfer on the same link
(latency, overhead, then the bytes) that the buffer drains during, for the rows that
switch only; the policy's throughput samples stay the media segment's alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

import abr
from netem.content import Content
from netem.link import Link
from netem.trace import Trace
from player.core import qoe as qoe_mod
from player.core.buffer import BufferState
from player.core.device import DeviceProfile
from player.core.presets import SessionPreset, get as get_preset

HISTORY = 8          # throughput samples kept in the observation
HORIZON = 5          # future segment sizes offered to the policy


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
    wait_s: np.ndarray           # full-buffer wait before each request
    request_s: np.ndarray        # session time each request was sent
    startup_s: float
    session_s: float             # session clock at the end
    rebuffer_count: int
    qoe: dict[str, qoe_mod.QoE]
    policy_desc: str
    wasted_bytes: int = 0        # bytes of abandoned downloads
    abandons: int = 0
    init_s: np.ndarray | None = None  # time of the init-segment requests before each segment (None: none made)

    def summary(self, qoe_model: str = "linear") -> dict:
        c = self.spec.content
        br = self.bitrate_bps
        played = c.segment_durations_s
        switches = int(np.count_nonzero(np.diff(self.chosen)))
        mag = float(np.abs(np.diff(br)).sum() / switches) if switches else 0.0
        play_time = self.session_s - (self.startup_s if np.isfinite(self.startup_s) else 0.0)
        out = {
            "abr": self.spec.abr,
            "abr_params": self.policy_desc,
            "trace": self.spec.label.get("trace", self.spec.trace.source or self.spec.trace.name),
            "movie": self.spec.label.get("movie", c.source or c.name),
            "device": self.spec.device.name if self.spec.device else "none",
            "preset": _preset_name(self.spec.preset),
            "segments": int(self.chosen.size),
            "avg_bitrate_bps": float(br.mean()),
            "time_avg_bitrate_bps": float((br * played).sum() / play_time) if play_time > 0 else float(br.mean()),
            "utility": float(np.log(br / c.bitrates_bps[0]).mean()),
            "rebuffer_s": float(self.rebuffer_s.sum()),
            "rebuffer_count": int(self.rebuffer_count),
            "rebuffer_ratio": float(self.rebuffer_s.sum() / self.session_s) if self.session_s > 0 else 0.0,
            "startup_s": float(self.startup_s),
            "switches": switches,
            "switch_magnitude_bps": mag,
            "bytes": int(self.size_bytes.sum()),
            "wasted_bytes": int(self.wasted_bytes),
            "abandons": int(self.abandons),
            "session_s": float(self.session_s),
            "qoe": self.qoe[qoe_model].as_dict(),
            "qoe_all": {m: q.as_dict() for m, q in self.qoe.items()},
            "chosen": self.chosen.tolist(),
        }
        return out

    def segment_log(self) -> list[dict]:
        init = self.init_s if self.init_s is not None else np.zeros(self.chosen.size)
        return [
            {"segment": k, "request_s": float(self.request_s[k]), "wait_s": float(self.wait_s[k]),
             "rung": int(self.chosen[k]), "bitrate_bps": float(self.bitrate_bps[k]),
             "size_bytes": int(self.size_bytes[k]), "init_s": float(init[k]), "latency_s": float(self.latency_s[k]),
             "download_s": float(self.download_s[k]), "rebuffer_s": float(self.rebuffer_s[k]),
             "buffer_s": float(self.buffer_s[k])}
            for k in range(self.chosen.size)
        ]


def _preset_name(preset: str | SessionPreset) -> str:
    return preset if isinstance(preset, str) else preset.name


def _group_key(spec: SessionSpec) -> tuple:
    p = spec.preset if isinstance(spec.preset, str) else ("preset object", id(spec.preset))
    return (spec.abr, tuple(sorted(spec.abr_params.items())), id(spec.content), p)


@dataclass
class _Inits:
    """The init-segment requests of a batch (a preset with `init_bytes`): per session, the
    representation whose init segment was requested last and those requested before."""

    size_bytes: float
    revalidated: bool          # a representation's init requested again is a 304: no body
    last: np.ndarray           # (n,) rung of the last init requested, -1 before any
    had: np.ndarray            # (n, R) bool
    spent_s: np.ndarray        # (n,) time spent on init requests for the current segment

    @classmethod
    def new(cls, preset: SessionPreset, n: int, R: int) -> "_Inits":
        return cls(float(preset.init_bytes), preset.init_revalidated, np.full(n, -1, dtype=np.int64),
                   np.zeros((n, R), dtype=bool), np.zeros(n))

    def skip(self, rows: np.ndarray, rung: np.ndarray) -> None:
        """These rows' init segments came before the session clock (`init_at_start=False`)."""
        self.last[rows] = rung
        self.had[rows, rung] = True

    def request(self, link: Link, tidx: np.ndarray, trace_t: np.ndarray, st: BufferState, rows: np.ndarray,
                rung: np.ndarray) -> np.ndarray:
        """Sessions `rows` are about to request rung `rung` (one per row): those whose rung
        differs from their last init's first fetch its init segment, in full on the link, while
        the buffer drains. Advances their clocks and traces; returns the stall per row."""
        need = rung != self.last[rows]
        stall = np.zeros(rows.size)
        if not need.any():
            return stall
        r, q = rows[need], rung[need]
        size = np.where(self.had[r, q], 0.0, self.size_bytes) if self.revalidated else np.full(r.size, self.size_bytes)
        tr = link.transfer(tidx[r], trace_t[r], size)
        total = tr.total_s
        stall[need] = st.elapse(total, r)
        trace_t[r] += tr.trace_advance_s
        self.spent_s[r] += total
        self.last[r] = q
        self.had[r, q] = True
        return stall


def simulate(specs: Sequence[SessionSpec], progress: Callable[[int], None] | None = None) -> list[SessionResult]:
    """Simulate every session; results come back in the order of `specs`."""
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(_group_key(s), []).append(i)
    results: list[SessionResult | None] = [None] * len(specs)
    for rows in groups.values():
        batch = [specs[i] for i in rows]
        for i, r in zip(rows, simulate_batch(batch)):
            results[i] = r
        if progress:
            progress(len(rows))
    return results  # type: ignore[return-value]


def simulate_batch(specs: Sequence[SessionSpec]) -> list[SessionResult]:
    """Sessions sharing policy, content and preset, each with its own trace and device."""
    first = specs[0]
    preset: SessionPreset = first.preset if isinstance(first.preset, SessionPreset) else get_preset(first.preset)
    content = first.content
    n, K, R = len(specs), content.n_segments, content.n_rungs
    policy = preset.policy(first.abr, first.abr_params)
    ladder = abr.Ladder(content.bitrates_bps, content.segment_duration_s)
    policy.reset(n, ladder)

    # one link over the distinct traces of the batch
    trace_ids: dict[int, int] = {}
    uniq: list[Trace] = []
    for s in specs:
        if id(s.trace) not in trace_ids:
            trace_ids[id(s.trace)] = len(uniq)
            uniq.append(s.trace)
    link = Link(uniq, preset.link)
    tidx = np.array([trace_ids[id(s.trace)] for s in specs], dtype=np.int64)

    mask = np.ones((n, R), dtype=bool)
    cap = np.full(n, preset.buffer_cap_s)
    startup_thr = np.zeros(n)
    for i, s in enumerate(specs):
        if s.device is not None:
            mask[i] = s.device.mask(content)
            cap[i] = s.device.buffer_target_s
            startup_thr[i] = s.device.startup_threshold_s
    startup_thr = np.maximum(startup_thr, preset.startup_threshold_s)
    top_cap = preset.top_cap_s(float(content.segment_durations_s.sum()))
    top_rung = (R - 1 - np.argmax(mask[:, ::-1], axis=1)) if top_cap is not None else None  # highest allowed
    durs = content.segment_durations_s
    sizes = content.segment_sizes_bytes.astype(np.float64)
    bitrates = content.bitrates_bps
    padded = np.concatenate([sizes, np.repeat(sizes[-1:], HORIZON, axis=0)])
    sessions = np.arange(n)

    st = BufferState.new(n, playing_from_start=preset.startup_is_stall)
    trace_t = np.zeros(n)
    last = np.full(n, -1, dtype=np.int64)
    tp_hist = np.full((n, HISTORY), np.nan)
    dt_hist = np.full((n, HISTORY), np.nan)
    lat_hist = np.full((n, HISTORY), np.nan)
    rec = {k: np.zeros((n, K)) for k in ("download", "latency", "rebuffer", "buffer", "wait", "request", "size")}
    chosen = np.zeros((n, K), dtype=np.int64)
    wasted = np.zeros(n)
    abandons = np.zeros(n, dtype=np.int64)
    can_abandon = preset.abandonment and type(policy).abandon is not abr.Policy.abandon
    inits = _Inits.new(preset, n, R) if preset.init_bytes > 0 else None
    init_rec = np.zeros((n, K)) if inits is not None else None

    for k in range(K):
        if k > 0:
            target = cap if top_cap is None else np.where(last == top_rung, top_cap, cap)
            wait = st.room_wait(durs[k], target, preset.whole_segment_fits, preset.wait_quantum_s)
            if np.any(wait > 0):
                st.elapse(wait)
                trace_t += wait
            rec["wait"][:, k] = wait
        if k == 0 and preset.first_rung is not None:
            rung = abr.apply_mask(np.full(n, min(preset.first_rung, R - 1)), mask)
        else:
            obs = abr.Observation(
                sessions=sessions, buffer_s=st.buffer_s.copy(), last_rung=last.copy(),
                throughput_bps=tp_hist, download_time_s=dt_hist,
                next_sizes_bytes=np.broadcast_to(padded[k:k + HORIZON], (n, HORIZON, R)),
                segments_left=np.full(n, K - k), segment_index=np.full(n, k),
                segment_duration_s=float(durs[k]), playing=st.playing.copy(), mask=mask,
                time_s=st.clock_s.copy(), buffer_cap_s=cap, latency_s=lat_hist,
            )
            rung = policy.select(obs)
        rec["request"][:, k] = st.clock_s
        stall = np.zeros(n)
        if inits is not None:
            inits.spent_s[:] = 0.0
            if k == 0 and not preset.init_at_start:
                inits.skip(sessions, rung)
            stall += inits.request(link, tidx, trace_t, st, sessions, rung)
        if can_abandon:
            rung, pre_stall = _abandonments(policy, link, tidx, trace_t, st, rung, sizes[k], float(durs[k]), mask,
                                            preset, wasted, abandons, inits)
            stall += pre_stall
        if inits is not None:
            init_rec[:, k] = inits.spent_s
        size = sizes[k, rung]
        tr = link.transfer(tidx, trace_t, size)
        total = tr.total_s
        stall += st.elapse(total)
        trace_t += tr.trace_advance_s
        st.add(durs[k], startup_thr)
        measured = tr.transfer_s + (tr.latency_s if preset.throughput_includes_latency else 0.0)
        measured = np.maximum(measured, 1e-9)
        tp_hist = np.concatenate([tp_hist[:, 1:], (size * 8.0 / measured)[:, None]], axis=1)
        dt_hist = np.concatenate([dt_hist[:, 1:], measured[:, None]], axis=1)
        lat_hist = np.concatenate([lat_hist[:, 1:], tr.latency_s[:, None]], axis=1)
        last = rung
        chosen[:, k] = rung
        rec["download"][:, k] = total
        rec["latency"][:, k] = tr.latency_s
        rec["rebuffer"][:, k] = stall
        rec["buffer"][:, k] = st.buffer_s
        rec["size"][:, k] = size
    if preset.play_out_at_end:
        st.play_out()

    heights = np.array([r.height for r in content.rungs])
    scores = {m: qoe_mod.score(m, chosen, rec["rebuffer"], bitrates, heights, preset.qoe_skip_first)
              for m in qoe_mod.MODELS}
    n_scored = K - 1 if preset.qoe_skip_first else K
    desc = policy.describe()
    out = []
    for i, s in enumerate(specs):
        out.append(SessionResult(
            spec=s, chosen=chosen[i], bitrate_bps=bitrates[chosen[i]], size_bytes=rec["size"][i].astype(np.int64),
            download_s=rec["download"][i], latency_s=rec["latency"][i], rebuffer_s=rec["rebuffer"][i],
            buffer_s=rec["buffer"][i], wait_s=rec["wait"][i], request_s=rec["request"][i],
            startup_s=float(st.startup_s[i]), session_s=float(st.clock_s[i]),
            rebuffer_count=int(st.stall_count[i]), wasted_bytes=int(wasted[i]), abandons=int(abandons[i]),
            init_s=init_rec[i] if init_rec is not None else None,
            qoe={m: qoe_mod.qoe_records(m, scores[m][i:i + 1], n_scored)[0] for m in qoe_mod.MODELS},
            policy_desc=desc,
        ))
    return out


def _abandonments(policy, link: Link, tidx: np.ndarray, trace_t: np.ndarray, st: BufferState, rung: np.ndarray,
                  seg_sizes: np.ndarray, seg_s: float, mask: np.ndarray, preset: SessionPreset,
                  wasted: np.ndarray, abandons: np.ndarray,
                  inits: _Inits | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Offer every in-flight download to the policy every `abandon_interval_s`, as the HTTP
    player does. An abandoned request costs the time it ran and its bytes; the segment is
    requested again at the new rung (which may itself be abandoned), after that rung's init
    segment when the preset has them. Advances the sessions' clocks and traces past the
    abandoned attempts; returns the rung each session finally fetches and the stall time
    those attempts caused."""
    rung = rung.copy()
    stall = np.zeros(rung.size)
    dt = preset.abandon_interval_s
    eff = preset.link.efficiency
    live = np.flatnonzero(rung > 0)
    for _ in range(seg_sizes.size):  # the rung only goes down, so this ends
        if live.size == 0:
            break
        size = seg_sizes[rung[live]]
        tr = link.transfer(tidx[live], trace_t[live], size)
        total, lat = tr.total_s, tr.latency_s
        first_byte = trace_t[live] + (lat if preset.link.latency_advances_trace else 0.0)
        decided = np.full(live.size, -1, dtype=np.int64)
        when = np.zeros(live.size)
        done_at = np.zeros(live.size)
        pending = np.arange(live.size)
        j = 1
        while pending.size:
            e = j * dt
            pending = pending[e < total[pending]]
            if pending.size == 0:
                break
            rows = live[pending]
            flowing = np.maximum(e - lat[pending], 0.0)
            if link.params.noise is None:
                got = link.delivered_bits(tidx[rows], first_byte[pending], first_byte[pending] + flowing) * eff / 8.0
            else:  # noisy transfer times: progress in proportion
                got = size[pending] * flowing / np.maximum(tr.transfer_s[pending], 1e-12)
            got = np.minimum(got, size[pending])
            buf = np.where(st.playing[rows] & ~st.paused[rows], np.maximum(st.buffer_s[rows] - e, 0.0), st.buffer_s[rows])
            prog = abr.Progress(sessions=rows, rung=rung[rows], bytes_done=got, bytes_total=size[pending],
                                elapsed_s=np.full(rows.size, e), buffer_s=buf, segment_duration_s=seg_s,
                                sizes_bytes=np.broadcast_to(seg_sizes, (rows.size, seg_sizes.size)), mask=mask[rows],
                                latency_s=np.minimum(lat[pending], e))
            new = np.asarray(policy.abandon(prog), dtype=np.int64)
            hit = (new >= 0) & (new < rung[rows])
            decided[pending[hit]] = new[hit]
            when[pending[hit]] = e
            done_at[pending[hit]] = got[hit]
            pending = pending[~hit]
            j += 1
        gone = np.flatnonzero(decided >= 0)
        if gone.size == 0:
            break
        rows = live[gone]
        e = when[gone]
        stall[rows] += st.elapse(e, rows)
        trace_t[rows] += e - (0.0 if preset.link.latency_advances_trace else lat[gone])
        wasted[rows] += done_at[gone]
        abandons[rows] += 1
        rung[rows] = decided[gone]
        if inits is not None:
            stall[rows] += inits.request(link, tidx, trace_t, st, rows, rung[rows])
        live = rows[rung[rows] > 0]
    return rung, stall
