"""One model, two clocks: the HTTP player against our shaped edge agrees with the simulator.

For the same content, trace, policy and device, an HTTP session (`player.http.player.HttpPlayer`
against an in-process `netem.edge.EdgeServer` replaying the trace K times faster) and the
simulated session (`player.core.simulator.simulate`) must choose the same rung for at least 90 %
of the segments and agree on linear QoE within 5 %, at time scales 10 and 20, on traces
from ../shared/traces (skipped when absent) and on synthetic ones.

How the two are matched:

* content: 15 segments of 2 s on the Pensieve ladder (0.3–4.3 Mbit/s) with sizes exactly
  bitrate × duration, so the player's sizes from @bandwidth are the simulator's (one case
  uses SegmentBase with VBR sizes, which the player reads from the sidx). It is written to
  a directory: a virtual `SyntheticPresentation` generates its payload inside the event loop the
  player shares in-process, which would add ~2 ms of wall time to every request.
* simulator preset `default`: per request the trace's own latency with the trace clock
  advancing, then the bytes at the trace's rate; throughput samples exclude the latency —
  what the edge does (latency before the headers, body through the trace-driven shaper).
* the simulator gets the trace rotated to where the edge's trace clock stood when the
  player's session clock started (the edge starts its clock when it starts listening; the
  player spends a little time on the manifest first).
* HTTP overhead: each request costs a little more than the link model says (client and
  server in one Python event loop, asyncio timers of 1 ms resolution on epoll: about
  2–3 ms of wall time, i.e. ~25 ms of session time at K = 10 and ~50 ms at K = 20). It is
  measured in the HTTP session itself — per request, the gap between a segment's arrival
  and the next request plus (latency + transfer) minus the link model's for the same
  request — and added to the simulator's per-request latency. Both the raw comparison
  (no overhead) and the calibrated one are printed; the calibrated one is asserted.
* abandonment is off in both (the simulator does not model abandonment; the HTTP player
  does, which makes them differ whenever a download is abandoned).
* timing on a shared machine has jitter of a few milliseconds per request, enough to flip
  one knife-edge decision in a 15-segment session now and then (measured: about one
  session in 15 misses on its first run; one flipped segment moves linear QoE by more than
  5 % when the total is small): a case that misses the bar is run again, up to 3 times.
"""
from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import event_dicts

from netem import formats, synth
from netem.content import Content, synthetic
from netem.edge import EdgeServer
from netem.link import Link, LinkParams
from netem.package import SyntheticPresentation
from netem.trace import Trace
from player.http.player import HttpPlayer
from player.core.simulator import SessionSpec, simulate

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
N_SEGMENTS, SEGMENT_S = 15, 2.0
MIN_SAME_RUNG = 0.90
MAX_QOE_REL = 0.05
ATTEMPTS = 3          # timing jitter on a shared machine: a case that misses is run again


def rotate(trace: Trace, offset_s: float, extra_latency_s: float = 0.0) -> Trace:
    """The trace as seen from `offset_s` on (wrapping), with `extra_latency_s` added to
    every request's latency."""
    D = trace.duration_s
    off = offset_s % D
    if trace.packet_times_s is not None:
        p = np.sort(np.mod(trace.packet_times_s - off, D))
        return Trace(np.array([0.0]), np.array([trace.mean_rate_bps]), D, latency_s=np.array([extra_latency_s]),
                     packet_times_s=p, name=trace.name, source=trace.source)
    t, r = trace.times_s, trace.rates_bps
    lat = trace.latency_s if trace.latency_s is not None else np.zeros_like(t)
    k = int(np.searchsorted(t, off, side="right")) - 1
    nt = np.concatenate([[0.0], t[k + 1:] - off, t[:k + 1] + D - off])
    nr = np.concatenate([r[k:], r[:k + 1]])
    nl = np.concatenate([lat[k:], lat[:k + 1]])
    keep = np.concatenate([[True], np.diff(nt) > 1e-9]) & (nt < D - 1e-9)
    return Trace(nt[keep], nr[keep], D, latency_s=nl[keep] + extra_latency_s, name=trace.name, source=trace.source)


def cbr(c: Content, name: str | None = None) -> Content:
    """`c` with sizes exactly bitrate × duration (what the player estimates from @bandwidth)."""
    sizes = np.rint(c.bitrates_bps[None, :] * c.segment_durations_s[:, None] / 8.0)
    return Content(c.rungs, c.segment_durations_s, sizes, name=name or f"cbr-{c.name}")


def cbr_content(segments: int = N_SEGMENTS, segment_s: float = SEGMENT_S) -> Content:
    c = synthetic(duration_s=segments * segment_s, segment_duration_s=segment_s, seed=3)
    return cbr(c, name=f"cbr-{segments}x{segment_s:g}s")


def vbr_content() -> Content:
    return synthetic(duration_s=N_SEGMENTS * SEGMENT_S, segment_duration_s=SEGMENT_S, seed=3, name="vbr-15x2s")


@dataclass
class Figures:
    same_rung: float
    qoe_http: float
    qoe_sim: float
    raw_same_rung: float
    raw_qoe_sim: float
    overhead_s: float
    offset_s: float
    wall_s: float
    chosen_http: list
    chosen_sim: list

    @property
    def qoe_rel(self) -> float:
        return abs(self.qoe_http - self.qoe_sim) / max(abs(self.qoe_sim), 1e-9)

    @property
    def ok(self) -> bool:
        return self.same_rung >= MIN_SAME_RUNG and self.qoe_rel <= MAX_QOE_REL


def request_overhead(player: HttpPlayer, trace: Trace, offset_s: float) -> float:
    """Mean extra session time per request of the HTTP session over the link model."""
    link = Link([rotate(trace, offset_s)], LinkParams(latency="trace"))
    downloads = [e for e in event_dicts(player) if e["event"] == "download"]
    extra = []
    for i, e in enumerate(downloads):
        t_req = e["session_t_s"] - e["latency_s"] - e["transfer_s"]
        ideal = float(link.transfer(np.array([0]), np.array([t_req]), np.array([float(e["bytes"])])).total_s[0])
        gap = 0.0
        if i:
            g = t_req - downloads[i - 1]["session_t_s"]
            gap = g if g < 0.5 else 0.0       # a wait for room in the buffer is not overhead
        extra.append(e["latency_s"] + e["transfer_s"] - ideal + gap)
    return max(0.0, float(np.median(extra)))


async def http_session(root: Path, trace: Trace, abr: str, params: dict, k: float):
    async with EdgeServer(root, trace=trace, time_scale=k) as edge:
        player = HttpPlayer(edge.url, abr=abr, abr_params=params, time_scale=k)
        t0 = time.monotonic()
        summary = await player.run()
        wall = time.monotonic() - t0
        offset = (player.session_start_monotonic - edge.t0) * k
    return summary, player, offset, wall


def compare(trace: Trace, abr: str, params: dict, k: float, content: Content, addressing: str) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        SyntheticPresentation(content, addressing).write(root)
        s, player, offset, wall = asyncio.run(asyncio.wait_for(http_session(root, trace, abr, params, k), 60))
    assert s["complete"] and s["segments"] == content.n_segments
    overhead = request_overhead(player, trace, offset)
    raw = simulate([SessionSpec(rotate(trace, offset), content, abr, dict(params))])[0]
    cal = simulate([SessionSpec(rotate(trace, offset, overhead), content, abr, dict(params))])[0]
    http_chosen = np.array(s["chosen"])
    return Figures(
        same_rung=float(np.mean(http_chosen == cal.chosen)), qoe_http=s["qoe"]["total"],
        qoe_sim=cal.summary()["qoe"]["total"], raw_same_rung=float(np.mean(http_chosen == raw.chosen)),
        raw_qoe_sim=raw.summary()["qoe"]["total"], overhead_s=overhead, offset_s=offset, wall_s=wall,
        chosen_http=http_chosen.tolist(), chosen_sim=cal.chosen.tolist())


def shared_trace(rel: str) -> Trace:
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"{p} is absent (../shared is not part of the repository)")
    return formats.load(p)


def synthetic_trace(name: str) -> Trace:
    if name == "markov":
        return synth.markov(seed=2, duration_s=200.0, min_rate_bps=0.5e6, max_rate_bps=5e6, latency_s=0.04)
    if name == "steps":
        return synth.steps([3e6, 1.1e6, 3.9e6, 0.7e6], 7.0, latency_s=0.05)
    raise KeyError(name)


CASES = [
    # (trace, policy, params, addressing, content)
    ("shared:hsdpa-3g/report.2010-09-13_1003CEST.json", "throughput", {"abandonment": False}, "number", "cbr"),
    ("shared:hsdpa-3g/report.2010-09-14_1038CEST.json", "bola", {}, "timeline", "cbr"),
    ("shared:mahimahi-cellular/TMobile-UMTS-driving.down", "bba", {}, "number", "cbr"),
    ("shared:mahimahi-cellular/ATT-LTE-driving-2016.down", "bba", {}, "list", "cbr"),
    ("synthetic:markov", "bola", {}, "number", "cbr"),
    ("synthetic:steps", "throughput", {"abandonment": False}, "number", "cbr"),
    ("synthetic:markov", "bola", {"use_segment_sizes": True}, "base", "vbr"),
]


@pytest.mark.parametrize("k", [10.0, 20.0])
@pytest.mark.parametrize("trace_id,abr,params,addressing,content", CASES,
                         ids=[f"{c[0].split('/')[-1].split(':')[-1][:24]}-{c[1]}-{c[3]}" for c in CASES])
def test_http_agrees_with_simulation(trace_id, abr, params, addressing, content, k):
    kind, _, name = trace_id.partition(":")
    trace = shared_trace(name) if kind == "shared" else synthetic_trace(name)
    movie = cbr_content() if content == "cbr" else vbr_content()
    f = agree_with_retries(trace, abr, params, k, movie, addressing)
    assert f.wall_s < 10.0


def agree_with_retries(trace: Trace, abr: str, params: dict, k: float, movie: Content, addressing: str) -> Figures:
    """Compare up to ATTEMPTS times (a knife-edge decision flips about one run in fifteen),
    print every attempt, and hold the last one to the bar."""
    figs = []
    for _attempt in range(ATTEMPTS):
        f = compare(trace, abr, params, k, movie, addressing)
        figs.append(f)
        print(f"\n{trace.name} {abr} {addressing} K={k:g}: same rung {f.same_rung:.0%} (raw {f.raw_same_rung:.0%}), "
              f"QoE http {f.qoe_http:.3f} sim {f.qoe_sim:.3f} (raw sim {f.raw_qoe_sim:.3f}), rel {f.qoe_rel:.3f}; "
              f"overhead {f.overhead_s * 1000:.1f} ms/request, offset {f.offset_s:.3f} s, wall {f.wall_s:.2f} s\n"
              f"  http {f.chosen_http}\n  sim  {f.chosen_sim}")
        if f.ok:
            break
    f = figs[-1]
    assert f.same_rung >= MIN_SAME_RUNG, (f.chosen_http, f.chosen_sim)
    assert f.qoe_rel <= MAX_QOE_REL, (f.qoe_http, f.qoe_sim)
    return f


def test_rotate_is_the_same_link_seen_later():
    trace = synthetic_trace("steps")
    for off in (0.0, 3.3, 7.0, 40.0):
        rt = rotate(trace, off)
        a = Link([trace], LinkParams(latency="trace")).transfer(np.array([0]), np.array([off + 1.0]),
                                                                np.array([500_000.0]))
        b = Link([rt], LinkParams(latency="trace")).transfer(np.array([0]), np.array([1.0]), np.array([500_000.0]))
        assert float(a.total_s[0]) == pytest.approx(float(b.total_s[0]), abs=1e-9)
    assert rotate(trace, 2.0, 0.01).latency_s.min() == pytest.approx(0.06)


REAL_TIME_CASES = [
    ("hsdpa-3g/report.2010-09-13_1003CEST.json", "rb", {}),
    ("lte-4g/report_bus_0001.json", "throughput", {"abandonment": False}),
    ("mahimahi-cellular/TMobile-UMTS-driving.down", "bba", {}),
]


@pytest.mark.parametrize("name,abr,params", REAL_TIME_CASES, ids=[c[0].split("/")[0] for c in REAL_TIME_CASES])
def test_http_agrees_with_simulation_at_time_scale_1(name, abr, params):
    """The same bar at wall-clock speed: 10 segments of 1 s, about 10 s of real time each."""
    trace = shared_trace(name)
    agree_with_retries(trace, abr, params, 1.0, cbr_content(segments=10, segment_s=1.0), "number")
