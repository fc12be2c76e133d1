"""dash.js 5 in headless Chromium through the shaped edge: `abrlab interop dashjs`.

One session:

1. Content: the movie's ladder and segment durations (cut to `max_duration_s`) really
   encoded (`netem.encode`, H.264, video only) and written to the encode cache, keyed by the
   movie file's bytes, the duration, the height limit and the x264 preset; reused when
   there. Its `content.json` (the real segment sizes) is what `abrlab simulate --movie`
   needs for the prediction of the same session.
2. Every URL the MPD implies (init and media segments of every representation) is checked
   to exist in the content directory before anything is launched.
3. Our edge (`netem.edge.EdgeServer`) serves the directory, with the page
   (`player/interop/page.html`) beside the MPD so that they share an origin, and every
   response shaped by the trace. The trace clock starts when the first media segment is
   requested, as the simulator's does (the page, the MPD and the first init segment come
   before, on a clock that is then thrown away).
4. Chromium (Debian's, `/usr/bin/chromium`), driven by Python Playwright from `.interop/`,
   starts headless with `CHROMIUM_FLAGS`, an empty profile and host resolution limited to
   127.0.0.1; dash.js (the npm package's `dist/modern/umd/dash.all.min.js`, inlined into
   the loaded page by the driver, never copied) plays the MPD muted with its default settings. The page
   records dash.js's QUALITY_CHANGE_REQUESTED (with the rule named in the reason),
   QUALITY_CHANGE_RENDERED, BUFFER_EMPTY, PLAYBACK_ENDED, ERROR and fragment events and the
   video element's events, and samples every 500 ms: `player.time()`,
   `getBufferLength('video')`, `getCurrentRepresentationForType('video')`,
   `getAverageThroughput('video')`, decoded and dropped frames, `videoWidth`.
5. Watchdog: the run fails unless a video QUALITY_CHANGE_RENDERED happened, `videoWidth > 0`
   and decoded frames rose (a codec the browser cannot decode is dropped silently; a
   mislabelled container stalls at 0); also when nothing plays within `startup_timeout_s`,
   playback makes no progress for `stuck_timeout_s`, or the session outlasts `timeout_s`.
6. The result: events in the schema of `abrlab play --headless --json` (`{"t_s", "event",
   ...}`, t_s on the trace clock from the first media request) and a summary with the
   fields of `abrlab simulate --json` (including `chosen`, the rung of every segment as
   the edge's access log saw it requested and completed).

Time scale K > 1 (experimental): the edge replays the trace K× faster, the MPD given to
dash.js declares bitrates × K, the video plays at rate K and dash.js's EWMA half-lives and
500 ms schedule interval are divided by K; BOLA's placeholder (wall-clock idle time) and
the abandonment rule's timing are not rescaled. Agreement figures use K = 1.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from netem import content as content_mod
from netem import formats
from netem.edge import EdgeServer
from netem.encode import encode_presentation
from netem.errors import InputError, UnavailableError, UsageError
from netem.shaper import Shaper
from player.core.summary import session_summary
from player.dash.loading import parse_manifest

REPO_ROOT = Path(__file__).resolve().parents[3]
DASHJS_FILE = Path("node_modules/dashjs/dist/modern/umd/dash.all.min.js")
PAGE_NAME = "abrlab-dashjs.html"
PAGE_SOURCE = Path(__file__).with_name("page.html")
CACHE_FORMAT = "abrlab-interop-1"
DEFAULT_MAX_HEIGHT = 360

#: The launch flags (the issue's list, plus what keeps timers and media running headless).
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--mute-audio", "--no-default-browser-check",
    "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--password-store=basic",
)

MEDIA_PATH = re.compile(r"^/(v\d+)/(\d+)\.m4s$")
INIT_PATH = re.compile(r"^/(v\d+)/init\.mp4$")


class InteropUnavailable(UnavailableError):
    """The browser, dash.js or the driver is missing; the message says how to get them."""


class InteropError(InputError):
    """A session that could not run or that the watchdog failed; one line."""


# -- set-up ---------------------------------------------------------------------------------------
def interop_dir() -> Path:
    """Where `make interop` installs dash.js and the driver (ABRLAB_INTEROP_DIR overrides)."""
    env = os.environ.get("ABRLAB_INTEROP_DIR")
    return Path(env) if env else REPO_ROOT / ".interop"


@dataclass(frozen=True)
class Setup:
    interop_dir: Path
    chromium: Path
    dashjs_js: Path
    dashjs_version: str
    python_dir: Path | None      # where the playwright package is (None: importable already)


def find_setup() -> Setup:
    """The installed pieces, or `InteropUnavailable` naming what is missing."""
    root = interop_dir()
    hint = ("run `make interop` (installs Debian chromium, the dashjs npm package 5.x and Python playwright "
            "into .interop/)")
    chrome = os.environ.get("ABRLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chrome).is_file():
        raise InteropUnavailable(f"Chromium not found (looked for `chromium` on PATH and /usr/bin/chromium); {hint}")
    js = root / DASHJS_FILE
    pkg = root / "node_modules/dashjs/package.json"
    if not js.is_file() or not pkg.is_file():
        raise InteropUnavailable(f"dash.js not found at {js}; {hint}")
    try:
        version = str(json.loads(pkg.read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise InteropUnavailable(f"cannot read the dashjs package version in {pkg}: {exc}; {hint}") from None
    if not version.startswith("5."):
        raise InteropUnavailable(f"dash.js {version} found in {root}; 5.x is needed; {hint}")
    pydir = root / "python"
    python_dir = pydir if (pydir / "playwright").is_dir() else None
    if python_dir is None:
        try:
            import importlib.util

            if importlib.util.find_spec("playwright") is None:
                raise ImportError
        except ImportError:
            raise InteropUnavailable(f"the Python playwright driver is not installed ({pydir}); {hint}") from None
    return Setup(root, Path(chrome), js, version, python_dir)


def availability() -> str | None:
    """None when a session can run; otherwise why not (for skipping tests)."""
    try:
        find_setup()
    except InteropUnavailable as exc:
        return str(exc)
    return None


def _playwright(setup: Setup):
    if setup.python_dir is not None and str(setup.python_dir) not in sys.path:
        sys.path.insert(0, str(setup.python_dir))
    from playwright.async_api import async_playwright

    return async_playwright


def chromium_version(setup: Setup) -> str:
    try:
        out = subprocess.run([str(setup.chromium), "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError):
        return "chromium (version unknown)"


# -- content --------------------------------------------------------------------------------------
@dataclass
class PreparedContent:
    dir: Path
    content: Any                 # netem.content.Content with the encoded sizes
    content_json: Path
    key: str
    encoded_now: bool


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "abrlab" / "interop"


def content_key(movie: str | os.PathLike, max_duration_s: float | None, max_height: int | None,
                x264_preset: str) -> str:
    """The cache key: the movie's bytes (its ladder and segment durations), the duration cut,
    the height limit, the encoder preset and this cache's format."""
    p = Path(movie)
    h = hashlib.sha256()
    if p.is_dir():  # a Pensieve video_size_N folder
        for f in sorted(p.iterdir()):
            if f.is_file():
                h.update(f.name.encode())
                h.update(f.read_bytes())
    else:
        h.update(p.read_bytes())
    h.update(json.dumps({"max_duration_s": max_duration_s, "max_height": max_height, "preset": x264_preset,
                         "format": CACHE_FORMAT}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def prepare_content(movie: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                    max_duration_s: float | None = None, max_height: int | None = DEFAULT_MAX_HEIGHT,
                    x264_preset: str = "veryfast", progress: Callable[[str], None] | None = None) -> PreparedContent:
    """Encoded content for the movie's ladder and duration, from the cache or made now."""

    mp = Path(movie)
    if not mp.exists():
        raise InputError("movie not found", where=str(movie))
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    key = content_key(mp, max_duration_s, max_height, x264_preset)
    dur = "all" if max_duration_s is None else f"{max_duration_s:g}s"
    target = cache / f"{mp.stem}-{dur}-{key}"
    done = target / ".complete"
    if done.is_file() and (target / "content.json").is_file() and (target / "manifest.mpd").is_file():
        c = content_mod.load(target / "content.json")
        return PreparedContent(target, c, target / "content.json", key, False)

    desc = content_mod.load(mp)
    if max_duration_s is not None:
        desc = desc.truncated(float(max_duration_s))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    os.chmod(tmp, 0o755)
    try:
        pres = encode_presentation(desc, addressing="number", audio=False, max_height=max_height,
                                   preset=x264_preset, progress=progress)
        pres.write(tmp)
        content_mod.save(pres.content, tmp / "content.json")
        (tmp / ".complete").write_text(json.dumps({"movie": str(mp), "key": key}) + "\n")
        if target.exists():  # someone else finished first, or a broken earlier attempt
            if (target / ".complete").is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                c = content_mod.load(target / "content.json")
                return PreparedContent(target, c, target / "content.json", key, False)
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedContent(target, pres.content, target / "content.json", key, True)


def check_urls(root: str | os.PathLike, mpd: str = "manifest.mpd") -> list[str]:
    """Every init and media URL the MPD implies, missing from `root` (or outside it, or
    shorter than a byte range asks): an empty list when all are there."""

    base = Path(root).resolve()
    text = (base / mpd).read_bytes()
    pres = parse_manifest(text, url=None)
    missing: list[str] = []
    seen: set[str] = set()

    def check(url: str, rng) -> None:
        rel = url.split("?", 1)[0].split("#", 1)[0]
        key = f"{rel}@{rng}"
        if key in seen:
            return
        seen.add(key)
        if "://" in rel or rel.startswith("/"):
            missing.append(f"{url} (not relative to the MPD)")
            return
        p = (base / rel).resolve()
        if base not in p.parents or not p.is_file():
            missing.append(url)
            return
        if rng is not None and p.stat().st_size <= int(rng[1]):
            missing.append(f"{url} bytes {rng[0]}-{rng[1]} (file has {p.stat().st_size})")

    n_reps = 0
    for _period, _aset, rep in pres.representations():
        n_reps += 1
        idx = rep.segment_index
        if idx is None:
            for bu in rep.base_urls[:1]:
                check(bu.url, None)
            continue
        if idx.init is not None:
            check(idx.init.url, idx.init.byte_range)
        for seg in idx:
            check(seg.url, seg.byte_range)
    if n_reps == 0:
        missing.append("(the MPD lists no representation)")
    return missing


def write_page(root: Path, time_scale: float = 1.0) -> tuple[str, str]:
    """Put the page (and, for K ≠ 1, an MPD declaring bitrates × K) beside the MPD.
    Returns (page name, MPD name)."""
    page = root / PAGE_NAME
    src = PAGE_SOURCE.read_bytes()
    if not page.is_file() or page.read_bytes() != src:
        page.write_bytes(src)
    mpd = "manifest.mpd"
    if time_scale != 1.0:
        text = (root / "manifest.mpd").read_text()
        scaled = re.sub(r'bandwidth="(\d+)"', lambda m: f'bandwidth="{int(round(int(m.group(1)) * time_scale))}"', text)
        mpd = f"manifest-x{time_scale:g}.mpd"
        (root / mpd).write_text(scaled)
    return PAGE_NAME, mpd


# -- the edge -----------------------------------------------------------------------------------
def _edge_class(base: type = EdgeServer) -> type:
    """The interop edge on `base` (our VoD `EdgeServer`, or the live origin's `LiveEdge`)."""

    class InteropEdge(base):
        """Our edge, with the trace clock restarted when the first media segment is asked for."""

        def __init__(self, *args, free_init: bool = False, **kw) -> None:
            super().__init__(*args, **kw)
            self._interop_trace = kw.get("trace")
            self.t0_wall: float | None = None
            self.free_init = free_init

        def rebase(self) -> None:
            self.t0_wall = time.time()
            if self.shaper is not None and self._interop_trace is not None:
                fresh = Shaper(self._interop_trace, time_scale=self.time_scale, latency_s=self.latency_s)
                fresh.start()
                old, self.shaper = self.shaper, fresh
                old.close()
            if self._loop is not None:
                self.t0 = self._loop.time()

        async def _serve(self, request, res, rec):  # noqa: D401 - the edge's hook
            if self.t0_wall is None and MEDIA_PATH.match(request.path):
                self.rebase()
                rec["t_s"] = 0.0
            if self.free_init and INIT_PATH.match(request.path):
                # an init segment without latency or shaping (the batch simulator has none)
                from aiohttp import web

                body = res.read(0, res.size)
                rec["status"], rec["bytes"], rec["free"] = 200, len(body), True
                return web.Response(status=200, body=body, headers=self._headers(
                    {"ETag": res.etag, "Accept-Ranges": "bytes", "Content-Type": res.content_type,
                     "Cache-Control": "no-cache"}))
            return await super()._serve(request, res, rec)

    return InteropEdge


# -- the session ----------------------------------------------------------------------------------
@dataclass
class SessionOutput:
    events: list[dict]
    summary: dict
    raw: dict = field(default_factory=dict)   # what the page and the edge recorded, unprocessed


@dataclass
class _Collected:
    events: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    rt: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    reads: list[list] = field(default_factory=list)  # [wall ms, bytes (-1: done), path] per body read
    stop_reason: str = ""
    settings: dict = field(default_factory=dict)
    version: str = ""
    started_wall: float = 0.0
    ended_wall: float | None = None


async def run_session(trace_path: str, movie: str, *, cache_dir: str | None = None,
                      max_duration_s: float | None = None, time_scale: float = 1.0,
                      max_height: int | None = DEFAULT_MAX_HEIGHT, x264_preset: str = "veryfast",
                      timeout_s: float | None = None, startup_timeout_s: float = 60.0,
                      stuck_timeout_s: float = 120.0, latency_s: float | None = None,
                      sample_ms: int = 500, progress: Callable[[str], None] | None = None,
                      setup: Setup | None = None, debug_log: str | None = None,
                      fast_switch: bool | None = None, abandonment: bool | None = None,
                      free_init: bool = False) -> SessionOutput:
    """Play `movie` (cut to `max_duration_s`) in dash.js over `trace_path`; see the module doc."""

    setup = setup or find_setup()
    k = float(time_scale)
    if not math.isfinite(k) or k <= 0 or k > 16:
        raise InputError(f"time scale must be in (0, 16], got {time_scale!r}", where="--time-scale")
    trace = formats.load(trace_path)
    prepared = prepare_content(movie, cache_dir=cache_dir, max_duration_s=max_duration_s,
                               max_height=max_height, x264_preset=x264_preset, progress=progress)
    missing = check_urls(prepared.dir)
    if missing:
        raise InteropError(f"{len(missing)} URL(s) the MPD implies are missing, e.g. {missing[0]}",
                           where=str(prepared.dir / "manifest.mpd"))
    page_name, mpd_name = write_page(prepared.dir, k)
    duration_s = float(prepared.content.duration_s)
    if timeout_s is None:
        timeout_s = (3.0 * duration_s + 120.0) / k
    col = _Collected()
    col.settings = {"fastSwitchEnabled": "default" if fast_switch is None else bool(fast_switch),
                    "abandonRequestsRule": "default" if abandonment is None else bool(abandonment),
                    "init_segments": "free" if free_init else "shaped"}
    chrome_version = chromium_version(setup)
    Edge = _edge_class()
    edge = Edge(str(prepared.dir), trace=trace, latency_s=latency_s, time_scale=k, mpd=mpd_name, free_init=free_init)
    t0_wall = await play_through(edge, setup, col, page_name, mpd_name, k=k, duration_s=duration_s,
                                 timeout_s=timeout_s, startup_timeout_s=startup_timeout_s,
                                 stuck_timeout_s=stuck_timeout_s, sample_ms=sample_ms, progress=progress,
                                 debug_log=debug_log, fast_switch=fast_switch, abandonment=abandonment)
    return _assemble(col, prepared, trace_path, t0_wall, k, setup, chrome_version)


async def play_through(edge, setup: Setup, col: _Collected, page_name: str, mpd_name: str, **drive: Any
                       ) -> float | None:
    """Start `edge` (an `_edge_class()` instance), launch Chromium with an empty profile, play
    one session in dash.js (`_drive` with the `drive` keywords), stop the edge. Fills `col`
    (with the edge's access log) and returns the session clock's start in wall seconds (None:
    no media segment was ever requested). One place for the browser's life, VoD and live."""
    async_playwright = _playwright(setup)
    await edge.start()
    try:
        async with async_playwright() as pw:
            with tempfile.TemporaryDirectory(prefix="abrlab-chromium-") as profile:
                ctx = await pw.chromium.launch_persistent_context(
                    profile, executable_path=str(setup.chromium), headless=True, args=list(CHROMIUM_FLAGS),
                    viewport={"width": 800, "height": 450})
                try:
                    await _drive(ctx, edge, setup, col, page_name, mpd_name, **drive)
                finally:
                    await ctx.close()
    finally:
        col.records = list(edge.records)
        t0_wall = edge.t0_wall
        await edge.stop()
    return t0_wall


async def _drive(ctx, edge, setup: Setup, col: _Collected, page_name: str, mpd_name: str, k: float,
                 duration_s: float, timeout_s: float, startup_timeout_s: float, stuck_timeout_s: float,
                 sample_ms: int, progress, debug_log: str | None = None, fast_switch: bool | None = None,
                 abandonment: bool | None = None, end_after_s: float | None = None) -> None:
    """Load the page, start dash.js and collect until the session ends: the content played out
    (VoD), or `end_after_s` seconds of the session clock (from the first media request) passed
    (live, which never ends by itself); the watchdog's timeouts end it otherwise."""
    page = ctx.pages[0] if ctx.pages else await ctx.new_page()
    log_fh = open(debug_log, "w") if debug_log else None
    t_log = time.time()

    def on_console(m) -> None:
        if log_fh is not None:
            log_fh.write(f"{time.time() - t_log:9.3f} {m.type}: {m.text}\n")
        if m.type in ("error", "warning") and len(col.console) < 200:
            col.console.append(f"{m.type}: {m.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: col.console.append(f"pageerror: {e}"))
    await page.goto(f"{edge.base_url}/{page_name}", wait_until="load", timeout=60_000)
    # dash.js from the npm package, inlined into the page (no request, nothing shaped)
    await page.add_script_tag(path=str(setup.dashjs_js))
    options: dict[str, Any] = {"sample_ms": int(sample_ms), "debug": bool(debug_log)}
    streaming: dict[str, Any] = {}
    if fast_switch is not None:
        streaming["buffer"] = {"fastSwitchEnabled": bool(fast_switch)}
    if abandonment is not None:
        streaming.setdefault("abr", {})["rules"] = {"abandonRequestsRule": {"active": bool(abandonment)}}
    if k != 1.0:
        streaming.setdefault("abr", {})["throughput"] = {"ewma": {"throughputSlowHalfLifeSeconds": 8.0 / k,
                                                                  "throughputFastHalfLifeSeconds": 3.0 / k}}
        streaming["scheduling"] = {"defaultTimeout": 500.0 / k}
    if streaming:
        options["settings"] = {"streaming": streaming}
    col.started_wall = time.time()
    ok = await page.evaluate("([u, o]) => window.abrlab.start(u, o)", [f"{edge.base_url}/{mpd_name}", options])
    if not ok:
        err = await page.evaluate("window.abrlab.error")
        raise InteropError(f"dash.js could not start: {err}")
    col.version = await page.evaluate("window.abrlab.version || ''")
    if k != 1.0:
        await page.evaluate(f"document.getElementById('video').playbackRate = {k}")
    last_progress_wall = time.time()
    last_media_time = -1.0
    played = False
    last_note = 0.0
    while True:
        await asyncio.sleep(0.25)
        got = await page.evaluate("window.abrlab.drain()")
        col.events += got["events"]
        col.samples += got["samples"]
        col.reads += got.get("reads", [])
        now = time.time()
        for s in got["samples"]:
            t = s.get("time_s")
            if t is not None and t > last_media_time + 1e-3:
                last_media_time = t
                last_progress_wall = now
                if t > 0.05:
                    played = True
        if any(e["kind"] in ("PLAYBACK_ENDED", "video:ended") for e in got["events"]):
            col.stop_reason = "ended"
            col.ended_wall = min(e["wall_ms"] for e in got["events"]
                                 if e["kind"] in ("PLAYBACK_ENDED", "video:ended")) / 1000.0
            break
        if end_after_s is not None and edge.t0_wall is not None and now - edge.t0_wall >= end_after_s / k:
            col.stop_reason = "duration"
            col.ended_wall = edge.t0_wall + end_after_s / k
            break
        if progress and now - last_note >= 10.0:
            last_note = now
            s = col.samples[-1] if col.samples else {}
            if end_after_s is not None:
                lat = s.get("live_latency_s")
                lat_text = "-" if lat is None else format(lat, ".2f")
                progress(f"dash.js live: {0 if edge.t0_wall is None else now - edge.t0_wall:.0f}/{end_after_s:.0f} s, "
                         f"latency {lat_text} s, rate {s.get('playback_rate') or 0:.3f}, "
                         f"buffer {s.get('buffer_s') or 0:.1f} s, rung {(s.get('representation') or {}).get('index')}")
            else:
                progress(f"dash.js: media {s.get('time_s') or 0:.1f}/{duration_s:.0f} s, buffer "
                         f"{s.get('buffer_s') or 0:.1f} s, rung {(s.get('representation') or {}).get('index')}")
        elapsed = now - col.started_wall
        if elapsed > timeout_s:
            col.stop_reason = f"timeout: the session outlasted {timeout_s:.0f} s"
            break
        if not played and elapsed > startup_timeout_s / k:
            col.stop_reason = f"nothing played within {startup_timeout_s:.0f} s"
            break
        if played and now - last_progress_wall > stuck_timeout_s / k:
            col.stop_reason = f"playback made no progress for {stuck_timeout_s:.0f} s"
            break
    try:
        col.rt = await page.evaluate("window.abrlab.resourceTiming()")
        got = await page.evaluate("window.abrlab.drain()")
        col.events += got["events"]
        col.samples += got["samples"]
        col.reads += got.get("reads", [])
    except Exception:  # noqa: BLE001 - the page may be gone; what we have is reported
        pass
    if log_fh is not None:
        log_fh.close()


# -- turning what was recorded into events and a summary ---------------------------------------------
def _url_path(url: str) -> str:
    """The path of an absolute or relative URL, without query."""
    path = "/" + url.split("://", 1)[1].split("/", 1)[-1] if "://" in url else url
    return path.split("?", 1)[0]


def _rule_of(reason: dict | None) -> str:
    if not reason:
        return "unknown"
    msg = reason.get("message") or ""
    m = re.search(r"\[(\w+Rule)\]", msg)
    if m:
        return "AbandonRequestsRule" if m.group(1) == "AbandonRequestRule" else m.group(1)
    if "state" in reason and "placeholderBuffer" in reason or "bufferLevel" in reason:
        return "BolaRule"
    if "state" in reason:
        return "BolaRule"
    if "throughputInKbit" in reason:
        return "AbandonRequestsRule"
    return "unknown"


def version_plays(playhead_s: float | None, media_times: list[tuple[float, float]], t_s: float,
                  start_s: float) -> bool:
    """Whether a re-fetched segment starting at `start_s` (media time), arriving at `t_s`
    (session time), replaced the version that plays: the playhead had not reached its start.
    The playhead is the one the page recorded at the arrival, or else interpolated between
    the page's samples (`media_times`: (session time, media time), in order)."""
    if playhead_s is None:
        if not media_times:
            return False
        ts, ms = zip(*media_times)
        playhead_s = float(np.interp(t_s, ts, ms))
    return playhead_s <= start_s


class RuleAttribution:
    """Which rule made each load's decision: the newest video QUALITY_CHANGE_REQUESTED up to
    the load's start ("initial" for the first load without one, "no change" after). Call it
    on the loads in order of their start."""

    def __init__(self, qcr: list[dict]) -> None:
        self.qcr, self.i, self.prev_rung = qcr, 0, None

    def __call__(self, ld: dict) -> tuple[str, Any]:
        rule, reason = None, None
        while self.i < len(self.qcr) and self.qcr[self.i]["t"] <= ld["t0"] + 1e-6:
            rule, reason = self.qcr[self.i]["rule"], self.qcr[self.i].get("reason")
            self.i += 1
        if rule is None:
            rule = "initial" if self.prev_rung is None else "no change"
        self.prev_rung = ld["rung"]
        return rule, reason


def request_events(col: _Collected, ts: Callable[[float], float], rung_of: dict[str, int], ev, k: float,
                   segment_of: Callable[[int], int]) -> None:
    """A `request` event per request the edge logged (`segment_of`: the MPD's $Number$ → the
    session's segment index)."""
    for rec in sorted(col.records, key=lambda r: r["time"]):
        path = rec["path"]
        m = MEDIA_PATH.match(path)
        what = "media" if m else ("init" if INIT_PATH.match(path) else "manifest" if path.endswith(".mpd")
                                  else "page" if path.endswith(".html") else "other")
        start = rec["time"]
        info: dict[str, Any] = {"what": what, "url": path, "status": rec.get("status"), "bytes": rec.get("bytes"),
                                "aborted": bool(rec.get("aborted")), "wall_s": round(rec.get("duration_s", 0.0) * k, 6)}
        if m:
            info.update(segment=segment_of(int(m.group(2))), rung=rung_of.get(m.group(1), -1),
                        cached=rec.get("status") == 304)
        ev(ts(start), "request", **info)


#: what a live page samples beyond the VoD fields (None on a static MPD: left out)
LIVE_SAMPLE_FIELDS = ("live_latency_s", "target_latency_s", "low_latency_mode", "playback_rate")


def dashjs_events(col: _Collected, ts: Callable[[float], float], ev, k: float
                  ) -> tuple[list[dict], list[tuple[float, dict]]]:
    """A `dashjs` event per page event and a `sample` event per sample; returns the video
    QUALITY_CHANGE_REQUESTED events (with their rule) and the samples as (t_s, row)."""
    qcr: list[dict] = []
    for e in col.events:
        t = ts(e["wall_ms"] / 1000.0)
        kind = e["kind"]
        data = {k2: v for k2, v in e.items() if k2 not in ("wall_ms", "kind")}
        if kind == "QUALITY_CHANGE_REQUESTED":
            data["rule"] = _rule_of(data.get("reason"))
            if data.get("media") == "video":
                qcr.append({"t": t, **data})
        ev(t, "dashjs", name=kind, **data)
    samples = []
    for s in col.samples:
        t = ts(s["wall_ms"] / 1000.0)
        rep = s.get("representation") or {}
        tp = s.get("throughput_kbps")
        row = {"media_time_s": s.get("time_s"), "buffer_s": s.get("buffer_s"), "rung": rep.get("index"),
               "throughput_bps": None if tp is None else float(tp) * 1000.0 / k,
               "frames_decoded": s.get("frames_decoded"), "frames_dropped": s.get("frames_dropped"),
               "video_width": s.get("video_width"), "ready_state": s.get("ready_state")}
        if s.get("live_latency_s") is not None:
            row.update({f: s.get(f) for f in LIVE_SAMPLE_FIELDS})
        samples.append((t, row))
        ev(t, "sample", **row)
    return qcr, samples


def sample_at(samples: list[tuple[float, dict]], t: float, name: str):
    """The newest sample's `name` at session time `t` (None before the first)."""
    best = None
    for ts_, row in samples:
        if ts_ <= t:
            best = row.get(name)
        else:
            break
    return best


def segment_loads(col: _Collected, ts: Callable[[float], float], rung_of: dict[str, int], k: float) -> list[dict]:
    """Media segment loads as dash.js saw them: started (a decision), then completed or
    abandoned. A load's retries (a timed-out XHR that the browser resumes with a Range
    request) stay one load; Resource Timing gives each load's latency and transfer time.
    Each load: url, segment (dash.js's index), number (the URL's), rung, t0/end (session
    seconds), ok, abandoned, bytes, what the rules saw (`seen`), latency_s, transfer_s, cached."""
    loads: list[dict] = []
    open_loads: dict[str, list[dict]] = {}
    for e in sorted(col.events, key=lambda e: e["wall_ms"]):
        if e.get("media") != "video" or e.get("type") != "MediaSegment" or not e.get("url"):
            continue
        kind, url, t = e["kind"], _url_path(e["url"]), ts(e["wall_ms"] / 1000.0)
        rep = e.get("representation") or {}
        if kind == "FRAGMENT_LOADING_STARTED":
            tp = e.get("throughput_kbps")
            m = MEDIA_PATH.match(url)
            ld = {"url": url, "segment": int(e.get("index", -1)), "number": int(m.group(2)) if m else None,
                  "rung": rung_of.get(rep.get("id"), -1),
                  "t0": t, "t0_wall": e["wall_ms"] / 1000.0, "end": None, "ok": False, "abandoned": False,
                  "bytes": 0, "seen": {"buffer_s": e.get("buffer_s"), "media_time_s": e.get("time_s"),
                                       "throughput_bps": None if tp is None else float(tp) * 1000.0 / k}}
            loads.append(ld)
            open_loads.setdefault(url, []).append(ld)
        elif kind in ("FRAGMENT_LOADING_COMPLETED", "FRAGMENT_LOADING_ABANDONED"):
            pending = open_loads.get(url) or []
            if not pending:
                continue
            ld = pending.pop(0)
            ld["end"], ld["end_wall"] = t, e["wall_ms"] / 1000.0
            ld["end_media_s"] = e.get("time_s")   # the playhead then (recorded since fast switching is modelled)
            got, total = e.get("bytes_loaded"), e.get("bytes_total")
            ld["bytes"] = int(got) if isinstance(got, (int, float)) and got == got else 0
            ld["error"] = e.get("error")
            if kind == "FRAGMENT_LOADING_ABANDONED":
                ld["abandoned"] = True
            else:
                ld["ok"] = (not e.get("error")) and isinstance(total, (int, float)) and total == total \
                    and total > 0 and ld["bytes"] >= total
    rt_by_path: dict[str, list[dict]] = {}
    for r in col.rt:
        rt_by_path.setdefault(_url_path(r["name"]), []).append(r)
    for ld in loads:
        ld["latency_s"] = ld["transfer_s"] = None
        ld["cached"] = False
        if ld["end"] is None:
            continue
        cands = [r for r in rt_by_path.get(ld["url"], []) if r.get("response_end_ms") and r.get("response_start_ms")
                 and ld["t0_wall"] - 0.05 <= r["start_ms"] / 1000.0 <= ld["end_wall"] + 0.05]
        if cands:
            first, last = cands[0], cands[-1]
            ld["latency_s"] = round((first["response_start_ms"] - first["start_ms"]) / 1000.0 * k, 6)
            ld["transfer_s"] = round((last["response_end_ms"] - last["response_start_ms"]) / 1000.0 * k, 6)
            moved = sum(int(r.get("transfer_size") or 0) for r in cands)
            ld["cached"] = ld["bytes"] > 0 and moved < 0.5 * ld["bytes"]  # from the browser's cache (304)
    return loads


def playback(col: _Collected, ts: Callable[[float], float], ev, events: list[dict]
             ) -> tuple[float, list[tuple[float, float]], float | None]:
    """Startup, stalls and the end from the video element's own events: startup at the first
    `playing`; a stall from a `waiting` after it to the next `playing` (one still open when the
    run stopped ends there). Emits the `startup` event; returns (startup_s, [(from, to)],
    ended_t or None)."""
    vids = sorted(((ts(e["wall_ms"] / 1000.0), e["kind"]) for e in col.events if e["kind"].startswith("video:")))
    startup = math.nan
    stalls: list[tuple[float, float]] = []
    stall_from = None
    ended_t = None
    for t, kind in vids:
        if kind == "video:playing":
            if math.isnan(startup):
                startup = t
                ev(t, "startup", startup_s=t)
            elif stall_from is not None:
                stalls.append((stall_from, t))
                stall_from = None
        elif kind == "video:waiting" and not math.isnan(startup) and stall_from is None and ended_t is None:
            stall_from = t
        elif kind == "video:ended" and ended_t is None:
            ended_t = t
    if ended_t is None and col.ended_wall is not None:
        ended_t = ts(col.ended_wall)
    if stall_from is not None:  # a stall that never ended (the run stopped)
        stalls.append((stall_from, ended_t if ended_t is not None else (events[-1]["t_s"] if events else stall_from)))
    return startup, stalls, ended_t


def watch(col: _Collected, expected_stop: str) -> tuple[dict, list[str]]:
    """The watchdog: dash.js rendered a video quality, the video had a width, decoded frames
    rose, and the run stopped for `expected_stop` ("ended" for VoD, "duration" for live).
    Returns what it saw and the problems (empty: the run counts)."""
    rendered = any(e["kind"] == "QUALITY_CHANGE_RENDERED" and e.get("media") == "video" for e in col.events)
    widths = [s.get("video_width") or 0 for s in col.samples]
    frames = [s.get("frames_decoded") for s in col.samples if s.get("frames_decoded") is not None]
    frames_rose = bool(frames) and max(frames) > min(frames)
    errors = [e for e in col.events if e["kind"] in ("ERROR", "PLAYBACK_ERROR", "video:error")]
    watchdog = {"quality_change_rendered": rendered, "video_width": max(widths) if widths else 0,
                "frames_decoded": max(frames) if frames else 0, "frames_rose": frames_rose,
                "frames_dropped": max((s.get("frames_dropped") or 0 for s in col.samples), default=0),
                "errors": [e.get("message") for e in errors][:5], "stop_reason": col.stop_reason}
    problems = []
    if not rendered:
        problems.append("no video QUALITY_CHANGE_RENDERED")
    if not widths or max(widths) <= 0:
        problems.append("videoWidth stayed 0")
    if not frames_rose:
        problems.append("decoded frames did not rise")
    if col.stop_reason != expected_stop:
        problems.append(col.stop_reason or "the session did not end")
    return watchdog, problems


def _assemble(col: _Collected, prepared: PreparedContent, trace_path: str, t0_wall: float | None, k: float,
              setup: Setup, chrome_version: str) -> SessionOutput:

    content = prepared.content
    K = content.n_segments
    bitrates = content.bitrates_bps
    t0 = t0_wall if t0_wall is not None else col.started_wall

    def ts(wall_s: float) -> float:
        return round((wall_s - t0) * k, 6)

    events: list[dict] = []

    def ev(t: float, kind: str, **data) -> None:
        events.append({"t_s": t, "event": kind, **data})

    rung_of = {f"v{r}": r for r in range(content.n_rungs)}
    request_events(col, ts, rung_of, ev, k, segment_of=lambda number: number - 1)
    qcr, samples = dashjs_events(col, ts, ev, k)

    def buffer_at(t: float) -> float | None:
        return sample_at(samples, t, "buffer_s")

    loads = segment_loads(col, ts, rung_of, k)
    # decisions and downloads
    chosen = np.full(K, -1, dtype=np.int64)      # the rung each segment played at
    finish = np.full(K, np.nan)
    starts_s = np.concatenate([[0.0], np.cumsum(content.segment_durations_s)])
    played_bytes = np.zeros(K)
    fetched_bytes = 0
    abandoned_bytes = 0
    abandons = 0
    refetches = 0
    media_t = [(t_, row["media_time_s"]) for t_, row in samples if row.get("media_time_s") is not None]
    decide = RuleAttribution(qcr)
    for ld in loads:
        rule, reason = decide(ld)
        ev(ld["t0"], "decision", segment=ld["segment"], rung=ld["rung"], rule=rule, reason=reason,
           observation=ld["seen"])
        seg = ld["segment"]
        if ld["ok"] and 0 <= seg < K:
            refetch = bool(chosen[seg] >= 0)   # the segment was in already: dash.js replaced it (fast switching)
            if refetch:
                refetches += 1
            else:
                finish[seg] = ld["end"]
            if not refetch or version_plays(ld.get("end_media_s"), media_t, ld["end"], float(starts_s[seg])):
                chosen[seg] = ld["rung"]
                played_bytes[seg] = ld["bytes"]
            fetched_bytes += 0 if ld["cached"] else ld["bytes"]   # a 304: the browser's copy
            xf = ld["transfer_s"]
            ev(ld["end"], "download", segment=seg, rung=ld["rung"], bytes=ld["bytes"], latency_s=ld["latency_s"],
               transfer_s=xf, throughput_bps=(ld["bytes"] * 8.0 / xf) if xf else None,
               duration_s=round(ld["end"] - ld["t0"], 6), cached=ld["cached"], buffer_s=buffer_at(ld["end"]),
               stall_s=0.0, refetch=refetch)
        elif ld["end"] is not None:
            abandons += 1
            abandoned_bytes += ld["bytes"]
            nxt = next((o for o in loads if o is not ld and o["segment"] == seg and o["t0"] >= ld["end"] - 1e-6), None)
            ev(ld["end"], "abandon", segment=seg, from_rung=ld["rung"], to_rung=None if nxt is None else nxt["rung"],
               wasted_bytes=ld["bytes"])

    startup, stalls, ended_t = playback(col, ts, ev, events)
    rebuf = np.zeros(K)
    done_segments = int(np.count_nonzero(chosen >= 0))
    for a, b_ in stalls:
        ev(a, "stall_start", buffer_s=buffer_at(a))
        cand = [s for s in range(K) if np.isfinite(finish[s]) and finish[s] >= a - 0.05]
        seg = min(cand, key=lambda s: finish[s]) if cand else max(done_segments - 1, 0)
        rebuf[seg] += b_ - a
        ev(b_, "stall_end", segment=int(seg), stall_s=round(b_ - a, 6))
    for e_ in events:
        if e_["event"] == "download":
            e_["stall_s"] = round(float(rebuf[e_["segment"]]), 6)

    watchdog, problems = watch(col, "ended")
    if done_segments < K:
        problems.append(f"{K - done_segments} of {K} segments never arrived whole")
    if ended_t is not None:
        ev(ended_t, "end", played_s=float(content.duration_s))
    events.sort(key=lambda e: (e["t_s"], 0 if e["event"] == "request" else 1))

    # a segment that never arrived whole counts at the rung last asked for; the list stops at
    # the first segment never asked for (a run cut short)
    for ld in loads:
        if 0 <= ld["segment"] < K and chosen[ld["segment"]] < 0 and not any(
                o["ok"] and o["segment"] == ld["segment"] for o in loads):
            chosen[ld["segment"]] = ld["rung"]
    never = np.flatnonzero(chosen < 0)
    ch = chosen[:int(never[0])] if never.size else chosen
    session_s = float(ended_t) if ended_t is not None else float(events[-1]["t_s"] if events else 0.0)
    heights = np.array([r.height for r in content.rungs])
    summary = session_summary(
        ch, rebuf[:ch.size], content.segment_durations_s, bitrates, startup_s=float(startup), session_s=session_s,
        stall_count=len(stalls), bytes_=int(played_bytes.sum()),
        wasted_bytes=int(fetched_bytes - played_bytes.sum() + abandoned_bytes), abandons=abandons, heights=heights,
        labels={"abr": "dash.js", "abr_params": f"dash.js {col.version or setup.dashjs_version} defaults",
                "trace": str(trace_path), "movie": str(prepared.content_json), "device": "none", "preset": "dashjs"})
    summary.update({
        # beyond the simulator's fields
        "player": f"dash.js {col.version or setup.dashjs_version}",
        "browser": chrome_version,
        "real": True,
        "time_scale": k,
        "dashjs_settings": col.settings,
        "refetches": refetches,
        "content_dir": str(prepared.dir),
        "watchdog": watchdog,
        "ok": not problems,
        "problems": problems,
        "console": col.console[:20],
    })
    raw = {"events": col.events, "samples": col.samples, "resource_timing": col.rt, "edge_records": col.records,
           "body_reads": col.reads,
           "t0_wall": t0_wall, "started_wall": col.started_wall, "ended_wall": col.ended_wall,
           "stop_reason": col.stop_reason, "settings": col.settings, "version": col.version, "console": col.console,
           "browser": chrome_version, "time_scale": k}
    return SessionOutput(events, summary, raw)


def reassemble(raw: dict, summary: dict) -> SessionOutput:
    """A recorded session's events and summary made again from what was recorded (`raw`, as
    `SessionOutput.raw` holds it) by today's rules, for recordings that `abrlab interop
    agreement --resimulate` reads again. `summary` is the session's summary as it was
    written (for the content and what older recordings did not keep in `raw`)."""
    movie = Path(summary["movie"])
    prepared = PreparedContent(Path(summary.get("content_dir") or movie.parent), content_mod.load(movie), movie,
                               "", False)
    watchdog = summary.get("watchdog") or {}
    col = _Collected(events=list(raw["events"]), samples=list(raw["samples"]), console=list(raw.get("console", [])),
                     rt=list(raw["resource_timing"]), records=list(raw["edge_records"]),
                     stop_reason=raw.get("stop_reason", watchdog.get("stop_reason", "")),
                     settings=raw.get("settings", summary.get("dashjs_settings") or {}),
                     version=raw.get("version", str(summary.get("player", "")).removeprefix("dash.js ")),
                     started_wall=raw["started_wall"], ended_wall=raw.get("ended_wall"))
    if col.ended_wall is None and col.stop_reason == "ended":
        ends = [e["wall_ms"] for e in col.events if e["kind"] in ("PLAYBACK_ENDED", "video:ended")]
        col.ended_wall = min(ends) / 1000.0 if ends else None
    setup = Setup(interop_dir(), Path("chromium"), Path(""), col.version, None)
    return _assemble(col, prepared, summary["trace"], raw["t0_wall"], float(raw.get("time_scale", summary.get("time_scale", 1.0))), setup,
                     raw.get("browser", summary.get("browser", "")))


def run(trace_path: str, movie: str, **kw) -> SessionOutput:
    """`run_session` on a fresh event loop (for scripts and tests)."""
    return asyncio.run(run_session(trace_path, movie, **kw))


def agreement_rows(path: Path) -> dict[str, dict]:
    """The rows an earlier `interop agreement` run wrote to `path` (agreement.jsonl), by trace;
    a line that does not parse (a run killed mid-write) is skipped and its trace played again."""
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                done[row["trace"]] = row
            except (ValueError, KeyError, TypeError):
                continue
    return done


def rows_to_resimulate(path: Path, traces: list[str]) -> tuple[list[dict], list[int]]:
    """Every row of an earlier `interop agreement` run (`path`, agreement.jsonl) and the indices
    of those for `traces`, as recorded. UsageError when the file is missing or no row names
    any of `traces` (the recorded ones are listed), so a mistyped path rewrites nothing."""
    if not path.is_file():
        raise UsageError(f"{path} does not exist: nothing to resimulate")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    wanted = set(traces)
    picked = [i for i, r in enumerate(rows) if r.get("trace") in wanted]
    if not picked:
        recorded = ", ".join(sorted({str(r.get("trace")) for r in rows})) or "none"
        raise UsageError(f"no session in {path} was played on {', '.join(traces)}; recorded: {recorded} "
                         "(give the trace paths as they were given when the sessions were played)")
    return rows, picked


def rewrite_rows(path: Path, rows: list[dict]) -> None:
    """agreement.jsonl rewritten whole (a temporary file, then a rename): every row, the
    resimulated ones in place, the others as they were."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
