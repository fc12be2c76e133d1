"""dash.js 5 plays our live origin: `abrlab interop dashjs --live [--low-latency]`.

A live session differs from a VoD one in what ends it (the duration, not the content),
how segments are named (the live timeline's $Number$, not 1..K) and what is measured
(latency, playback rate, dash.js's low-latency mode); everything else — the encoded
content, the interop edge with its trace clock, the browser, the page, the extraction of
requests, decisions, loads and stalls, the watchdog — is `player.cli.interop.dashjs`'s,
reused here rather than copied.

One session:

1. The content is encoded as for VoD (`dashjs.prepare_content`) and looped live by the
   origin of `abrlab serve --live` (`netem.live.origin.LiveEdge`, availability start
   1970-01-01T00:00:00Z as livesim2), under the interop edge hook: the trace clock starts
   at the first media request. The page is served beside the live MPD (same origin).
2. dash.js plays the MPD with its default settings: with `low_latency` the origin writes a
   ServiceDescription (the target, min ¾ and max 2× of it, playback rate 0.96–1.04),
   `availabilityTimeOffset` and `availabilityTimeComplete="false"`, and sends each segment
   as CMAF chunks with chunked transfer; dash.js turns its low-latency mode on from the MPD
   (`streaming.lowLatencyEnabledByManifest`, its default).
3. The page samples every 500 ms `getCurrentLiveLatency()`, `getTargetLiveDelay()`,
   `getLowLatencyModeEnabled()`, the playback rate and the buffer; the session stops once
   `duration_s` seconds of the session clock have passed.
4. The summary has `abrlab simulate --json`'s fields for a live session (the chosen rung of
   every segment from the first one requested, in order; stalls; `LIVE_METRICS`) plus
   `latency_p95_s` and `low_latency_mode`.

Latency figures are dash.js's own (its clock synchronised through the origin's UTCTiming),
over the samples taken while playing: after startup, outside stalls.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from netem import content as content_mod
from netem import formats
from netem.edge import Resource
from netem.errors import InputError, UsageError
from netem.live.config import DEFAULT_TARGET_LATENCY_S, LiveConfig
from netem.live.origin import LiveEdge, load_vod
from netem.live.presentation import LivePresentation
from player.cli.interop import dashjs as dj
from player.core.summary import session_summary

#: the chunk duration when none is given (as `abrlab serve --live --low-latency`)
DEFAULT_CHUNK_S = 0.5
#: at most this long a live session (seconds of session clock)
MAX_DURATION_S = 6 * 3600.0


@dataclass(frozen=True)
class LiveRun:
    """What a live interop session is asked for (seconds). `target_latency_s` and `chunk_s`
    are the origin's (low latency only; None: its defaults)."""

    duration_s: float
    low_latency: bool = False
    target_latency_s: float | None = None
    chunk_s: float | None = None

    def check(self) -> "LiveRun":
        """UsageError/InputError naming the option that is wrong; returns self."""
        if not (isinstance(self.duration_s, (int, float)) and math.isfinite(self.duration_s)
                and 0 < self.duration_s <= MAX_DURATION_S):
            raise InputError(f"must be positive seconds (at most {MAX_DURATION_S:g}), got {self.duration_s!r}",
                             where="--duration")
        if not self.low_latency and (self.target_latency_s is not None or self.chunk_s is not None):
            raise UsageError("--target-latency and --chunk-duration need --low-latency")
        self.config()   # the origin's own checks
        return self

    def config(self) -> LiveConfig:
        """The live origin's configuration."""
        chunk = (self.chunk_s if self.chunk_s is not None else DEFAULT_CHUNK_S) if self.low_latency else None
        target = self.target_latency_s if self.target_latency_s is not None else DEFAULT_TARGET_LATENCY_S
        return LiveConfig(chunk_s=chunk, target_latency_s=target).check()

    def preset_overrides(self) -> dict[str, Any]:
        """The live settings the simulator's preset takes to describe the same origin and session
        (`player.core.presets.variant`)."""
        cfg = self.config()
        return {"duration_s": float(self.duration_s), "chunk_s": cfg.chunk_s,
                "target_latency_s": cfg.target_latency_s if cfg.low_latency else None}


class _WithPage:
    """The live origin's resources plus the interop page at /PAGE_NAME (same origin as the MPD)."""

    def __init__(self, source, page: bytes) -> None:
        self.source, self.page = source, page
        self.mpd_path = source.mpd_path

    def lookup(self, url_path: str, raw_path: str, base_url: str) -> Resource:
        if url_path == "/" + dj.PAGE_NAME:
            body = self.page
            return Resource(dj.PAGE_NAME, len(body), '"abrlab-page"', "text/html; charset=utf-8",
                            lambda a, b: body[a:b])
        return self.source.lookup(url_path, raw_path, base_url)

    def __getattr__(self, name: str):
        if name == "source":   # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)


async def run_live_session(trace_path: str, movie: str, run: LiveRun, *, cache_dir: str | None = None,
                           max_duration_s: float | None = None, max_height: int | None = dj.DEFAULT_MAX_HEIGHT,
                           x264_preset: str = "veryfast", timeout_s: float | None = None,
                           startup_timeout_s: float = 60.0, stuck_timeout_s: float = 60.0,
                           latency_s: float | None = None, sample_ms: int = 500,
                           progress: Callable[[str], None] | None = None, setup: dj.Setup | None = None,
                           debug_log: str | None = None) -> dj.SessionOutput:
    """Play `movie` live in dash.js over `trace_path` for `run.duration_s`; see the module doc."""
    run.check()
    setup = setup or dj.find_setup()
    trace = formats.load(trace_path)
    prepared = dj.prepare_content(movie, cache_dir=cache_dir, max_duration_s=max_duration_s,
                                  max_height=max_height, x264_preset=x264_preset, progress=progress)
    Edge = dj._edge_class(LiveEdge)
    edge = Edge(str(prepared.dir), config=run.config(), trace=trace, latency_s=latency_s)
    edge.source = _WithPage(edge.source, dj.PAGE_SOURCE.read_bytes())
    col = dj._Collected()
    cfg = edge.live.config
    col.settings = {"live": asdict(run), "origin": {
        "chunk_s": cfg.chunk_s, "target_latency_s": cfg.target_latency_s if cfg.low_latency else None,
        "segment_duration_s": float(edge.live.nominal_s)}}
    if timeout_s is None:
        timeout_s = run.duration_s + 120.0
    chrome_version = dj.chromium_version(setup)
    t0_wall = await dj.play_through(edge, setup, col, dj.PAGE_NAME, "manifest.mpd", k=1.0,
                                    duration_s=run.duration_s, timeout_s=timeout_s,
                                    startup_timeout_s=startup_timeout_s, stuck_timeout_s=stuck_timeout_s,
                                    sample_ms=sample_ms, progress=progress, debug_log=debug_log,
                                    end_after_s=run.duration_s)
    return assemble_live(col, prepared, trace_path, t0_wall, run, float(edge.live.nominal_s), setup, chrome_version)


def run(trace_path: str, movie: str, live: LiveRun, **kw) -> dj.SessionOutput:
    """`run_live_session` on a fresh event loop (for scripts and tests)."""
    return asyncio.run(run_live_session(trace_path, movie, live, **kw))


# -- pure pieces (tested without a browser) ---------------------------------------------------------------
def live_chosen(loads: list[dict]) -> tuple[list[int], list[int], list[int], list[float]]:
    """Per live segment number asked for, from the first one on in ascending order: its
    number, the rung that played (the last load of it that completed; else the last asked
    for), its bytes and when it arrived (session seconds; NaN: never whole). Numbers never
    asked for (skipped by a seek) are left out, as the simulator leaves them out."""
    by_number: dict[int, dict] = {}
    for ld in loads:
        n = ld.get("number")
        if n is None:
            continue
        done = ld.get("end") is not None and not ld.get("abandoned") and not ld.get("error")
        cur = by_number.get(n)
        if cur is not None and cur["done"] and not done:   # keep the version that arrived
            continue
        by_number[n] = {"rung": ld["rung"], "bytes": int(ld.get("bytes") or 0) if done else 0,
                        "end": float(ld["end"]) if done else math.nan, "done": done}
    numbers = sorted(by_number)
    return (numbers, [by_number[n]["rung"] for n in numbers], [by_number[n]["bytes"] for n in numbers],
            [by_number[n]["end"] for n in numbers])


def playing_samples(samples: list[tuple[float, dict]], startup_s: float, stalls: list[tuple[float, float]],
                    end_s: float) -> list[tuple[float, dict]]:
    """The samples taken while playing: after startup, up to `end_s`, outside every stall."""
    if not math.isfinite(startup_s):
        return []
    return [(t, row) for t, row in samples
            if startup_s <= t <= end_s and not any(a <= t < b for a, b in stalls)]


def latency_stats(samples: list[tuple[float, dict]]) -> dict[str, Any]:
    """dash.js's latency over (playing) samples: mean, 95th percentile (linear interpolation),
    max and last; the mean playback rate; the target it reported last; whether its
    low-latency mode was on in every sample that said (None: no sample said)."""
    lat = np.array([row["live_latency_s"] for _, row in samples if row.get("live_latency_s") is not None],
                   dtype=np.float64)
    rate = np.array([row["playback_rate"] for _, row in samples if row.get("playback_rate") is not None],
                    dtype=np.float64)
    modes = [row["low_latency_mode"] for _, row in samples if row.get("low_latency_mode") is not None]
    targets = [row["target_latency_s"] for _, row in samples if row.get("target_latency_s") is not None]
    nan = math.nan
    return {"latency_mean_s": float(lat.mean()) if lat.size else nan,
            "latency_p95_s": float(np.percentile(lat, 95)) if lat.size else nan,
            "latency_max_s": float(lat.max()) if lat.size else nan,
            "latency_end_s": float(lat[-1]) if lat.size else nan,
            "playback_rate_mean": float(rate.mean()) if rate.size else nan,
            "target_latency_s": float(targets[-1]) if targets else nan,
            "low_latency_mode": (all(bool(m) for m in modes) if modes else None),
            "latency_samples": int(lat.size)}


def stall_segments(stalls: list[tuple[float, float]], arrivals_s: list[float]) -> np.ndarray:
    """Stall time per segment: each stall counts with the first segment that arrived at or
    after its start (the one it waited for), else with the last (as the VoD harness does)."""
    rebuf = np.zeros(len(arrivals_s))
    if not arrivals_s:
        return rebuf
    arr = np.asarray(arrivals_s, dtype=np.float64)
    for a, b in stalls:
        later = np.flatnonzero(np.isfinite(arr) & (arr >= a - 0.05))
        seg = int(later[np.argmin(arr[later])]) if later.size else len(arr) - 1
        rebuf[seg] += b - a
    return rebuf


# -- the session's events and summary ---------------------------------------------------------------------
def assemble_live(col, prepared, trace_path: str, t0_wall: float | None, run: LiveRun, segment_s: float,
                  setup: dj.Setup, chrome_version: str) -> dj.SessionOutput:
    """Events (the schema of `abrlab play --json`, t_s on the trace clock) and the live summary."""
    content = prepared.content
    t0 = t0_wall if t0_wall is not None else col.started_wall

    def ts(wall_s: float) -> float:
        return round(wall_s - t0, 6)

    events: list[dict] = []

    def ev(t: float, kind: str, **data) -> None:
        events.append({"t_s": t, "event": kind, **data})

    rung_of = {f"v{r}": r for r in range(content.n_rungs)}
    loads = dj.segment_loads(col, ts, rung_of, 1.0)
    numbers = [ld["number"] for ld in loads if ld.get("number") is not None]
    first = min(numbers) if numbers else 0
    dj.request_events(col, ts, rung_of, ev, 1.0, segment_of=lambda number: number - first)
    qcr, samples = dj.dashjs_events(col, ts, ev, 1.0)
    decide = dj.RuleAttribution(qcr)
    abandons = 0
    for ld in loads:
        seg = -1 if ld.get("number") is None else ld["number"] - first
        rule, reason = decide(ld)
        ev(ld["t0"], "decision", segment=seg, number=ld.get("number"), rung=ld["rung"], rule=rule, reason=reason,
           observation=ld["seen"])
        if ld["end"] is None:
            continue
        if ld["abandoned"] or ld.get("error"):
            abandons += int(ld["abandoned"])
            ev(ld["end"], "abandon", segment=seg, from_rung=ld["rung"], to_rung=None, wasted_bytes=ld["bytes"],
               error=ld.get("error"))
            continue
        xf = ld["transfer_s"]
        ev(ld["end"], "download", segment=seg, number=ld.get("number"), rung=ld["rung"], bytes=ld["bytes"],
           latency_s=ld["latency_s"], transfer_s=xf, throughput_bps=(ld["bytes"] * 8.0 / xf) if xf else None,
           duration_s=round(ld["end"] - ld["t0"], 6), buffer_s=dj.sample_at(samples, ld["end"], "buffer_s"),
           live_latency_s=dj.sample_at(samples, ld["end"], "live_latency_s"))
    startup, stalls, ended_t = dj.playback(col, ts, ev, events)
    end_s = float(ended_t) if ended_t is not None else float(run.duration_s)
    for a, b in stalls:
        ev(a, "stall_start", buffer_s=dj.sample_at(samples, a, "buffer_s"))
        ev(b, "stall_end", stall_s=round(b - a, 6))
    nums, chosen, sizes, arrivals = live_chosen(loads)
    rebuf = stall_segments(stalls, arrivals)
    playing = playing_samples(samples, startup, stalls, end_s)
    stats = latency_stats(playing)
    vids = [(ts(e["wall_ms"] / 1000.0), e) for e in col.events if e["kind"] in ("video:ratechange", "video:seeking")]
    after = [(t, e) for t, e in vids if math.isfinite(startup) and t >= startup]
    watchdog, problems = dj.watch(col, "duration")
    if stats["latency_samples"] == 0:
        problems.append("dash.js reported no live latency while playing")
    if run.low_latency and stats["low_latency_mode"] is not True:
        problems.append(f"getLowLatencyModeEnabled() was {stats['low_latency_mode']} on a low-latency stream")
    events.sort(key=lambda e: (e["t_s"], 0 if e["event"] == "request" else 1))
    live_metrics = {"latency_mean_s": stats["latency_mean_s"], "latency_max_s": stats["latency_max_s"],
                    "latency_end_s": stats["latency_end_s"], "target_latency_s": stats["target_latency_s"],
                    "playback_rate_mean": stats["playback_rate_mean"],
                    "rate_changes": sum(1 for _, e in after if e["kind"] == "video:ratechange"),
                    "seeks": sum(1 for _, e in after if e["kind"] == "video:seeking"), "skipped_s": math.nan}
    version = col.version or setup.dashjs_version
    summary = session_summary(
        np.asarray(chosen, dtype=np.int64), rebuf, np.full(len(chosen), segment_s), content.bitrates_bps,
        startup_s=float(startup), session_s=end_s, stall_count=len(stalls), bytes_=int(sum(sizes)),
        abandons=abandons, heights=np.array([r.height for r in content.rungs]), played_s=None, live=live_metrics,
        labels={"abr": "dash.js", "abr_params": f"dash.js {version} defaults", "trace": str(trace_path),
                "movie": str(prepared.content_json), "device": "none", "preset": "dashjs-live"})
    summary.update({
        "latency_p95_s": stats["latency_p95_s"],
        "low_latency_mode": stats["low_latency_mode"],
        "latency_samples": stats["latency_samples"],
        "live": {**asdict(run), **col.settings.get("origin", {}), "first_number": first,
                 "numbers": [nums[0], nums[-1]] if nums else None},
        "player": f"dash.js {version}", "browser": chrome_version, "real": True, "time_scale": 1.0,
        "dashjs_settings": col.settings, "content_dir": str(prepared.dir), "watchdog": watchdog,
        "ok": not problems, "problems": problems, "console": col.console[:20],
    })
    raw = {"events": col.events, "samples": col.samples, "resource_timing": col.rt, "edge_records": col.records,
           "body_reads": col.reads,
           "t0_wall": t0_wall, "started_wall": col.started_wall, "ended_wall": col.ended_wall,
           "stop_reason": col.stop_reason, "settings": col.settings, "version": col.version, "console": col.console,
           "browser": chrome_version, "time_scale": 1.0}
    return dj.SessionOutput(events, summary, raw)


def reassemble_live(raw: dict, summary: dict) -> dj.SessionOutput:
    """A recorded live session's events and summary made again by today's rules (as
    `dashjs.reassemble` for VoD)."""
    movie = Path(summary["movie"])
    prepared = dj.PreparedContent(Path(summary.get("content_dir") or movie.parent), content_mod.load(movie), movie,
                                  "", False)
    col = dj._Collected(events=list(raw["events"]), samples=list(raw["samples"]), console=list(raw.get("console", [])),
                        rt=list(raw["resource_timing"]), records=list(raw["edge_records"]),
                        stop_reason=raw.get("stop_reason", ""), settings=raw.get("settings") or {},
                        version=raw.get("version", ""), started_wall=raw["started_wall"],
                        ended_wall=raw.get("ended_wall"))
    live = summary["live"]
    run_ = LiveRun(live["duration_s"], live["low_latency"], live.get("target_latency_s"), live.get("chunk_s"))
    setup = dj.Setup(dj.interop_dir(), Path("chromium"), Path(""), col.version, None)
    return assemble_live(col, prepared, summary["trace"], raw["t0_wall"], run_, float(live["segment_duration_s"]),
                         setup, raw.get("browser", summary.get("browser", "")))


def chunked_movie(movie: str, content_dir: str | None, run: LiveRun) -> str:
    """The content description a low-latency session's prediction simulates: `movie` (the
    encoded content's sizes) with each segment's chunks as our origin sends them for this
    run (`LivePresentation.chunk_sizes_bytes`), so the simulator times chunks on the real
    bytes (a keyframe chunk holds a third to a half of a segment, a scene cut another
    third) instead of a model's shares. Written once beside the encoded content as
    ``content-chunks-<chunk>s.json``; `movie` itself without low latency or without the
    encoded media (a recording read on another machine)."""
    if not run.low_latency or not content_dir or not (Path(content_dir) / "manifest.mpd").is_file():
        return movie
    config = run.config()
    out = Path(content_dir) / f"content-chunks-{config.chunk_s:g}s.json"
    if out.is_file() and out.stat().st_mtime >= Path(movie).stat().st_mtime:
        return str(out)
    content = content_mod.load(movie)
    layout = LivePresentation(load_vod(content_dir, None), config).chunk_sizes_bytes()
    if layout.shape[:2] != content.segment_sizes_bytes.shape:
        raise InputError(f"the encoded media has {layout.shape[0]} segments × {layout.shape[1]} rungs, the "
                         f"description {content.segment_sizes_bytes.shape}", where=str(movie))
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    content_mod.save(dataclasses.replace(content, chunk_sizes_bytes=layout, chunk_duration_s=config.chunk_s), tmp)
    os.replace(tmp, out)
    return str(out)
