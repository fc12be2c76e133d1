"""The simulator's prediction of a session played over HTTP, and how far the two are apart.

DESIGN.md's core idea is one model on two clocks; this module is where every real session
checks it. Given what an HTTP session saw (its typed events), the trace that shaped its
network and the content it played, it

* measures the session's per-request overhead (`request_timings`, `measured_overhead`): for
  every media request, the time it went out after the session core asked for it (the
  previous arrival, or the end of a wait for room in the buffer) plus how much longer its
  latency + transfer took than the link model says for the same bytes sent at the same
  trace time — the client's and the server's own work, their timers and the loopback
  socket, in session seconds (at ``--time-scale K``, K times the wall-clock cost);
* simulates the same session (`predict`): the same trace from the trace time at which the
  session started (an edge replays its trace from when it starts listening, or, `abrlab
  play`'s, from the session's start), the same content, policy, device and preset, with the
  session's own overhead in place of the preset's: a cost per request and one per byte, the
  least-squares line through its requests (a request's cost grows with its segment's size);
* compares the two (`agreement`): the share of segments at the same rung, the first segment
  where they part, the QoE and the stall time of each;
* re-runs the session with each request's own delay before its first byte (`replay`:
  hindsight, not a prediction), which tells the model's error from the machine's timing:
  as long as both choose the same rungs, every segment then arrives when it did.

`abrlab play` puts the result in its summary (`prediction`), `abrlab fidelity player` runs
it over trace sets. The goal (`GOAL_SAME_RUNG`, `GOAL_QOE_REL`) is the one the project holds
the simulator to.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Sequence

import numpy as np

from netem.content import Content, Rung
from netem.link import Link
from netem.trace import Trace
from player.core.device import DeviceProfile
from player.core.events import Abandon, Download, Event, Failure, Retry, SessionStart, Wait
from player.core.presets import SessionPreset, get as get_preset
from player.core.rules import SegmentPlan
from player.core.session import SessionCore, drive_with_link
from player.core.simulator import SessionResult, SessionSpec, simulate
from player.core.summary import session_summary

GOAL_SAME_RUNG = 0.90    # of the segments, at the same rung in both
GOAL_QOE_REL = 0.02      # |QoE played − QoE predicted| <= 2% of |QoE predicted|
QOE_FLOOR = 1e-9         # the smallest |QoE| a relative difference divides by


@dataclass(frozen=True)
class RequestTiming:
    """One media request of an HTTP session, against the link model (session seconds)."""

    segment: int
    wanted_s: float      # when the core asked for it: the previous arrival, or the end of a wait
    sent_s: float        # when it went out
    latency_s: float     # measured: sent → response headers
    transfer_s: float    # measured: headers → last byte
    size_bytes: int
    model_s: float       # the link model's latency + transfer for these bytes sent at `sent_s`
    delay_s: float = math.nan   # the overhead before the first byte that makes the model deliver it
                                # when it arrived, had it been sent when wanted (`start_delays`)

    @property
    def overhead_s(self) -> float:
        """Session seconds this request cost beyond the link model: the delay before it went
        out plus the extra in its download."""
        return (self.sent_s - self.wanted_s) + (self.latency_s + self.transfer_s - self.model_s)


def request_timings(events: Iterable[Event], trace: Trace, trace_offset_s: float,
                    preset: str | SessionPreset = "default") -> list[RequestTiming]:
    """The media requests of a session whose core clock started at trace time
    `trace_offset_s`, each beside the link model of `preset` (without its overhead).

    Segments that were abandoned, failed or retried are left out: their timing is not one
    request's. A restarted session (a licence fallback) counts from its last start."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    link = Link([trace], replace(p.link, overhead_s=0.0, overhead_s_per_byte=0.0))
    downloads: list[Download] = []
    unclean: set[int] = set()
    wait_until: dict[int, float] = {}
    next_segment = 0
    for ev in events:
        t = ev.session_t_s      # the core's clock (None: an event of the driver's own)
        match ev:
            case SessionStart():
                downloads, unclean, wait_until, next_segment = [], set(), {}, 0
            case Wait() if t is not None:
                wait_until[next_segment] = t + float(ev.seconds)
            case Download() if t is not None:
                downloads.append(ev)
                next_segment = int(ev.segment) + 1
            case Abandon() | Failure():
                unclean.add(int(ev.segment))
            case Retry() if ev.segment is not None:
                unclean.add(int(ev.segment))
    rows = []
    arrived = 0.0
    for ev in downloads:
        k = int(ev.segment)
        sent = float(ev.session_t_s) - float(ev.latency_s) - float(ev.transfer_s)
        wanted = max(arrived, wait_until.get(k, 0.0))
        arrived = float(ev.session_t_s)
        if k not in unclean:
            rows.append((k, wanted, sent, float(ev.latency_s), float(ev.transfer_s), int(ev.bytes), arrived))
    if not rows:
        return []
    k, wanted, sent, lat, xfer, size, arrival = (np.array(c) for c in zip(*rows))
    model = link.transfer(np.zeros(k.size, dtype=np.int64), trace_offset_s + sent, size.astype(np.float64)).total_s
    delay = start_delays(link, trace_offset_s + wanted, size.astype(np.float64), arrival - wanted)
    return [RequestTiming(int(k[i]), float(wanted[i]), float(sent[i]), float(lat[i]), float(xfer[i]), int(size[i]),
                          float(model[i]), float(delay[i])) for i in range(k.size)]


def start_delays(link: Link, start_s: np.ndarray, size_bytes: np.ndarray, took_s: np.ndarray,
                 rounds: int = 48) -> np.ndarray:
    """Per request sent at trace time `start_s` that took `took_s` to arrive: the overhead
    before its first byte (on top of the trace's latency; as low as minus that latency) with
    which the link model delivers it in exactly that time. Bisection, all requests at once:
    the model's arrival only moves later as the overhead grows."""
    idx = np.zeros(start_s.size, dtype=np.int64)
    lo = -link.latency(idx, start_s)
    hi = np.maximum(took_s, lo)
    for _ in range(rounds):
        mid = 0.5 * (lo + hi)
        late = link.transfer(idx, start_s, size_bytes, mid).total_s > took_s
        hi = np.where(late, mid, hi)
        lo = np.where(late, lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Overhead:
    """A session's per-request overhead: its mean and spread, and the line the prediction
    uses, `base_s` + `per_byte_s` × the request's bytes."""

    mean_s: float
    median_s: float
    p90_s: float
    samples: int
    base_s: float = 0.0
    per_byte_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measured_overhead(timings: Sequence[RequestTiming]) -> Overhead | None:
    """The per-request overhead of `timings` (None without any), and the least-squares line
    through it against the request's bytes (`base_s`, `per_byte_s`: the slope never below 0,
    and none with fewer than three requests or one size). The line goes through the mean,
    so it costs the session's requests the same sum: what shifts every later request; the
    slope puts more of it on the larger segments, where the played session spent it (on
    1,200 requests, 2.9 ms + 2.5 ms per MB of wall-clock time; README). Never below 0."""
    if not timings:
        return None
    y = np.array([t.overhead_s for t in timings])
    x = np.array([t.size_bytes for t in timings], dtype=np.float64)
    mean = max(0.0, float(np.mean(y)))
    slope = 0.0
    if x.size >= 3 and np.ptp(x) > 0:
        slope = max(0.0, float(np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)))
    base = max(0.0, mean - slope * float(np.mean(x)))
    return Overhead(mean, float(np.median(y)), float(np.percentile(y, 90)), int(y.size), base, slope)


def with_overhead(preset: str | SessionPreset, overhead_s: float | None,
                  overhead_s_per_byte: float | None = None) -> SessionPreset:
    """`preset` with `overhead_s` per request and `overhead_s_per_byte` per byte in place of
    its own (None: its own)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    if overhead_s is None and overhead_s_per_byte is None:
        return p
    link = p.link if overhead_s is None else replace(p.link, overhead_s=float(overhead_s))
    if overhead_s_per_byte is not None:
        link = replace(link, overhead_s_per_byte=float(overhead_s_per_byte))
    return replace(p, link=link)


def predict(trace: Trace, content: Content, abr: str = "bola", abr_params: dict[str, Any] | None = None, *,
            device: DeviceProfile | None = None, preset: str | SessionPreset = "default",
            trace_offset_s: float = 0.0, overhead_s: float | None = None,
            overhead_s_per_byte: float | None = None, label: dict[str, Any] | None = None) -> SessionResult:
    """The simulated session: `content` over `trace` from trace time `trace_offset_s`, with
    `overhead_s` per request and `overhead_s_per_byte` per byte (None: the preset's)."""
    spec = SessionSpec(trace, content, abr, dict(abr_params or {}), device,
                       with_overhead(preset, overhead_s, overhead_s_per_byte),
                       label=dict(label or {}), trace_start_s=float(trace_offset_s) % trace.duration_s)
    return simulate([spec])[0]


def replay(trace: Trace, content: Content, abr: str, abr_params: dict[str, Any] | None,
           timings: Sequence[RequestTiming], *, device: DeviceProfile | None = None,
           preset: str | SessionPreset = "default", trace_offset_s: float = 0.0,
           qoe_model: str = "linear") -> dict[str, Any]:
    """The session re-run in the simulator with each request's own measured delay before its
    first byte (`RequestTiming.delay_s`, the session core on the link model,
    `player.core.session.drive_with_link`): a segment the played session measured gets its
    own, any other the mean. As long as both choose the same rungs, every segment arrives
    when it did in the played session. Hindsight, not a prediction: what is left between it
    and the played session is the model's error, not the machine's timing. Returns the summary."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    per = {t.segment: t.delay_s for t in timings}
    mean = float(np.mean(list(per.values()))) if per else p.link.overhead_s
    core = SessionCore(SegmentPlan.from_content(content), p.policy(abr, dict(abr_params or {})), p,
                       mask=None if device is None else device.mask(content),
                       buffer_cap_s=None if device is None else device.buffer_target_s,
                       startup_threshold_s=None if device is None else device.startup_threshold_s)
    drive_with_link(core, Link([trace], p.link), trace_start_s=float(trace_offset_s) % trace.duration_s,
                    overhead_s=lambda fetch: per.get(fetch.segment, mean))
    return core.summary(qoe_model)


@dataclass(frozen=True)
class Agreement:
    """A played session beside its prediction."""

    segments: int                # segments compared (those both played)
    same_rung: float             # share of them at the same rung
    first_divergence: int        # the first segment at another rung (0-based), -1: none
    qoe_played: float
    qoe_predicted: float
    stall_played_s: float
    stall_predicted_s: float

    @property
    def qoe_diff(self) -> float:
        return self.qoe_played - self.qoe_predicted

    @property
    def qoe_rel_diff(self) -> float:
        """(played − predicted) / |predicted|."""
        return self.qoe_diff / max(abs(self.qoe_predicted), QOE_FLOOR)

    @property
    def stall_diff_s(self) -> float:
        return self.stall_played_s - self.stall_predicted_s

    def meets_goal(self) -> bool:
        return self.same_rung >= GOAL_SAME_RUNG and abs(self.qoe_rel_diff) <= GOAL_QOE_REL

    def as_dict(self) -> dict[str, Any]:
        return {"segments": self.segments, "same_rung": round(self.same_rung, 6),
                "first_divergence": self.first_divergence,
                "qoe_played": _round(self.qoe_played), "qoe_predicted": _round(self.qoe_predicted),
                "qoe_diff": _round(self.qoe_diff), "qoe_rel_diff": _round(self.qoe_rel_diff),
                "stall_played_s": _round(self.stall_played_s), "stall_predicted_s": _round(self.stall_predicted_s),
                "stall_diff_s": _round(self.stall_diff_s), "meets_goal": self.meets_goal()}


def agreement(played: dict[str, Any], predicted: dict[str, Any]) -> Agreement:
    """Compare two session summaries (`player.core.summary`: `chosen`, `qoe`, `rebuffer_s`)."""
    a = np.asarray(played["chosen"], dtype=np.int64)
    b = np.asarray(predicted["chosen"], dtype=np.int64)
    n = int(min(a.size, b.size))
    differ = np.flatnonzero(a[:n] != b[:n])
    return Agreement(
        segments=n, same_rung=float(np.mean(a[:n] == b[:n])) if n else 0.0,
        first_divergence=int(differ[0]) if differ.size else -1,
        qoe_played=float(played["qoe"]["total"]), qoe_predicted=float(predicted["qoe"]["total"]),
        stall_played_s=float(played["rebuffer_s"]), stall_predicted_s=float(predicted["rebuffer_s"]))


def _round(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


PREDICTED_FIELDS = ("chosen", "avg_bitrate_bps", "rebuffer_s", "rebuffer_count", "startup_s", "switches", "qoe")


def prediction_record(played: dict[str, Any], result: SessionResult, *, trace_offset_s: float,
                      overhead: Overhead | None, overhead_s: float, qoe_model: str = "linear",
                      notes: Sequence[str] = ()) -> dict[str, Any]:
    """The `prediction` object of a played session's summary: how the simulator was set up,
    what it predicted, and the agreement."""
    predicted = result.summary(qoe_model)
    got = len(played.get("chosen") or [])
    notes = list(notes)
    if got < len(predicted["chosen"]):
        notes.append(f"the session stopped after {got} of {len(predicted['chosen'])} segments: QoE and stalls are "
                     f"compared over those {got}")
    agree = agreement(played, predicted if got >= len(predicted["chosen"]) else first_segments(result, got, qoe_model))
    return {
        "available": True, "preset": result.spec.preset_name, "trace_offset_s": round(trace_offset_s, 6),
        "overhead_s": round(overhead_s, 6), "overhead": None if overhead is None else overhead.as_dict(),
        "predicted": {k: predicted[k] for k in PREDICTED_FIELDS if k in predicted},
        **agree.as_dict(), "goal": {"same_rung": GOAL_SAME_RUNG, "qoe_rel_diff": GOAL_QOE_REL},
        "notes": notes,
    }


def first_segments(result: SessionResult, n: int, qoe_model: str = "linear") -> dict[str, Any]:
    """The summary of the first `n` segments of a simulated session (to set beside a played
    session that stopped early)."""
    c = result.spec.content
    p = get_preset(result.spec.preset) if isinstance(result.spec.preset, str) else result.spec.preset
    return session_summary(result.chosen[:n], result.rebuffer_s[:n], c.segment_durations_s, c.bitrates_bps,
                           startup_s=result.startup_s, session_s=float(result.request_s[n]) if n < result.chosen.size
                           else result.session_s, stall_count=int(np.count_nonzero(result.rebuffer_s[:n])),
                           bytes_=int(result.size_bytes[:n].sum()), qoe_model=qoe_model,
                           qoe_skip_first=p.qoe_skip_first, n_segments=result.chosen.size)


def unavailable(reason: str) -> dict[str, Any]:
    """The `prediction` object of a session the simulator cannot predict, and why."""
    return {"available": False, "reason": reason}


def predict_played(events: Sequence[Event], played: dict[str, Any], trace: Trace, content: Content, *,
                   abr: str, abr_params: dict[str, Any] | None = None, device: DeviceProfile | None = None,
                   preset: str | SessionPreset = "default", trace_offset_s: float = 0.0,
                   qoe_model: str = "linear", notes: Sequence[str] = ()) -> dict[str, Any]:
    """The `prediction` object of a played session (its `events` and `played` summary) whose
    network was `trace` from trace time `trace_offset_s`: the simulator with the overhead this
    session measured (`measured_overhead`: per request and per byte; the preset's when no
    request could be measured); and,
    as ``replayed``, the agreement with the simulator given each request's own delay (`replay`:
    hindsight; for complete sessions)."""
    if not played.get("chosen"):
        return unavailable("no segment arrived")
    p = get_preset(preset) if isinstance(preset, str) else preset
    timings = request_timings(events, trace, trace_offset_s, p)
    over = measured_overhead(timings)
    overhead_s = p.link.overhead_s if over is None else over.mean_s
    result = predict(trace, content, abr, abr_params, device=device, preset=p, trace_offset_s=trace_offset_s,
                     overhead_s=None if over is None else over.base_s,
                     overhead_s_per_byte=None if over is None else over.per_byte_s)
    notes = list(notes) + unmodelled(events)
    record = prediction_record(played, result, trace_offset_s=trace_offset_s, overhead=over, overhead_s=overhead_s,
                               qoe_model=qoe_model, notes=notes)
    record["replayed"] = None
    if timings and len(played["chosen"]) >= content.n_segments:
        again = replay(trace, content, abr, abr_params, timings, device=device, preset=p,
                       trace_offset_s=trace_offset_s, qoe_model=qoe_model)
        a = agreement(played, again).as_dict()
        record["replayed"] = {k: a[k] for k in ("same_rung", "first_divergence", "qoe_rel_diff", "stall_diff_s",
                                                 "meets_goal")}
    return record


def unmodelled(events: Sequence[Event]) -> list[str]:
    """What happened in the played session that the simulator does not do: retried and failed
    requests (a 10 s gap in the data, a reset, an error status)."""
    retried = sorted({int(e.segment) for e in events if isinstance(e, Retry) and e.segment is not None})
    failed = sorted({int(e.segment) for e in events if isinstance(e, Failure)})
    out = []
    if retried:
        out.append(f"segment(s) {', '.join(str(k + 1) for k in retried[:8])}{' ...' if len(retried) > 8 else ''} "
                   "were retried (the player's timeouts and backoff); the simulator does not retry")
    if failed:
        out.append(f"{len(failed)} segment download(s) failed and were fetched again; the simulator has no failures")
    return out


def content_of_plan(plan: SegmentPlan, name: str = "manifest") -> Content:
    """What a session knew of its presentation (`SegmentPlan`: durations, ladder, sizes —
    estimated as bitrate × duration where the manifest does not say) as a `Content`, for
    predicting a session whose content has no description of its own."""
    heights = plan.heights if plan.heights is not None else np.zeros(plan.n_rungs)
    rungs = tuple(Rung(float(b), 0, int(h)) for b, h in zip(plan.bitrates_bps, heights))
    return Content(rungs, np.asarray(plan.durations_s, dtype=np.float64),
                   np.rint(np.asarray(plan.sizes_bytes, dtype=np.float64)).astype(np.int64), name=name)


def describe(record: dict[str, Any]) -> list[str]:
    """A `prediction` object as a few lines of text: how it was made, the agreement, the goal."""
    if not record.get("available"):
        return [f"no prediction: {record.get('reason', 'unavailable')}"]
    over = record.get("overhead") or {}
    made = (f"abrlab simulate --preset {record['preset']}, the trace from {record['trace_offset_s']:.3f} s, "
            f"{1000 * record['overhead_s']:.1f} ms per request")
    if over.get("per_byte_s"):
        made += f" on average ({1000 * over['base_s']:.1f} ms + {1e9 * over['per_byte_s']:.2f} ms per MB)"
    made += f" (measured over {over['samples']} requests)" if over else " (the preset's)"
    diverge = "" if record["first_divergence"] < 0 else f", first apart at segment {record['first_divergence'] + 1}"
    same = round(record["same_rung"] * record["segments"])
    rel = record["qoe_rel_diff"]
    lines = [
        f"prediction: {made}",
        f"  same rung {same}/{record['segments']} ({100 * record['same_rung']:.0f}%){diverge}",
        f"  QoE {record['qoe_played']:.2f} played, {record['qoe_predicted']:.2f} predicted"
        + ("" if rel is None else f" ({100 * rel:+.1f}%)"),
        f"  stalls {record['stall_played_s']:.2f} s played, {record['stall_predicted_s']:.2f} s predicted "
        f"({record['stall_diff_s']:+.2f} s)",
        f"  goal (same rung >= {100 * GOAL_SAME_RUNG:.0f}%, QoE within {100 * GOAL_QOE_REL:.0f}%): "
        + ("met" if record["meets_goal"] else "not met"),
    ]
    again = record.get("replayed")
    if again:
        lines.append(f"  replayed with each request's own delay: same rung {100 * again['same_rung']:.0f}%, QoE "
                     + ("—" if again["qoe_rel_diff"] is None else f"{100 * again['qoe_rel_diff']:+.1f}%")
                     + (" (the rest was the machine's timing)" if again["meets_goal"] and not record["meets_goal"]
                        else ""))
    lines += [f"  note: {n}" for n in record.get("notes", [])]
    return lines
