"""The live terminal dashboard of `abrlab play` (rich), and its plain-text fallback.

The dashboard never drives the session: it polls the player's `snapshot()` several times a
second and listens to its events (decisions with the policy's inputs, downloads, stalls,
license, retries, failovers). The model below keeps what it needs to draw; `render` turns
it into a rich layout sized to the terminal, so a resize re-lays the panels.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from rich.console import Group
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from player.core import qoe
from player.core.events import (Abandon, Decision, Download, End, Event, Failover, LicenseFailed, LicenseFallback,
                                LicenseGranted, LicenseRequest, Retry, StallEnd, StallStart, Startup, Summary)

SERIES_STYLE = {"capacity": "grey50", "throughput": "cyan", "bitrate": "green", "buffer": "yellow",
                "target": "red", "latency": "magenta", "latency target": "blue"}


@dataclass
class DashboardModel:
    """What the dashboard has seen so far. Times are session (presentation) seconds."""

    title: dict[str, Any] = field(default_factory=dict)       # content, policy, device, edge, time scale
    capacity_at: Callable[[np.ndarray], np.ndarray] | None = None   # trace capacity (bit/s) at session times
    samples: deque = field(default_factory=lambda: deque(maxlen=4000))   # (t, buffer, target)
    latency: deque = field(default_factory=lambda: deque(maxlen=4000))   # live: (t, latency, its target, rate)
    throughput: deque = field(default_factory=lambda: deque(maxlen=2000))  # (t, bit/s)
    bitrate: deque = field(default_factory=lambda: deque(maxlen=2000))     # (t, bit/s)
    snapshot: dict = field(default_factory=dict)
    last_decision: Decision | None = None
    counters: dict = field(default_factory=lambda: {"stalls": 0, "stall_s": 0.0, "switches": 0, "retries": 0,
                                                    "failovers": 0, "abandons": 0})
    startup_s: float | None = None
    license: dict | None = None
    state: str = "starting"
    paused: bool = False
    message: str = ""
    summary: dict | None = None
    _last_rung: int | None = None
    downloaded: list = field(default_factory=list)   # rung of every segment that arrived
    prediction: dict | None = None   # the summary's `prediction` (`player.lab.prediction`), once the session is over

    def on_event(self, ev: Event) -> None:
        """Take in one event of the session (a typed `player.core.events.Event`)."""
        session_t = getattr(ev, "session_t_s", None)
        t = float(ev.t_s if session_t is None else session_t)
        match ev:
            case Decision():
                self.last_decision = ev
                if self._last_rung is not None and ev.rung != self._last_rung:
                    self.counters["switches"] += 1
                self._last_rung = ev.rung
                self.bitrate.append((t, float(ev.bitrate_bps)))
            case Download():
                self.downloaded.append(int(ev.rung))
                if ev.throughput_bps:
                    self.throughput.append((t, float(ev.throughput_bps)))
            case StallStart():
                self.counters["stalls"] += 1
                self.state = "stalled"
            case StallEnd():
                self.state = "playing"
            case Startup():
                self.startup_s = float(ev.startup_s)
                self.state = "playing"
            case Retry():
                self.counters["retries"] += 1
            case Failover():
                self.counters["failovers"] += 1
            case Abandon():
                self.counters["abandons"] += 1
            case LicenseRequest():
                self.license = {**(self.license or {}), "status": "requested", "system": ev.system}
            case LicenseGranted():
                self.license = {**(self.license or {}), "status": "granted" + (" (renewed)" if ev.renewal else ""),
                                "system": ev.system, "max_height": ev.max_height}
            case LicenseFailed():
                self.license = {**(self.license or {}), "status": "failed" if ev.final else "failed (retrying)",
                                "system": ev.system}
            case LicenseFallback():
                self.license = {**(self.license or {}), "status": "fell back to clear representations"}
            case End():
                self.state = "ended"
            case Summary():
                self.summary = ev.summary
                self.state = "ended"

    def frozen(self) -> "DashboardModel":
        """A copy to draw from another thread while this model keeps taking events."""
        return dataclasses.replace(
            self, title=dict(self.title), samples=deque(self.samples, maxlen=self.samples.maxlen),
            throughput=deque(self.throughput, maxlen=self.throughput.maxlen),
            bitrate=deque(self.bitrate, maxlen=self.bitrate.maxlen), snapshot=dict(self.snapshot),
            counters=dict(self.counters), license=None if self.license is None else dict(self.license),
            downloaded=list(self.downloaded))

    def on_snapshot(self, snap: dict) -> None:
        self.snapshot = snap
        if "buffer_s" in snap and snap.get("session_s") is not None:
            self.samples.append((float(snap["session_s"]), float(snap["buffer_s"]), float(snap.get("buffer_cap_s") or 0)))
            if snap.get("live_latency_s") is not None:
                self.latency.append((float(snap["session_s"]), float(snap["live_latency_s"]),
                                     float(snap.get("target_latency_s") or 0.0), float(snap.get("playback_rate", 1.0))))
            self.counters["stall_s"] = float(snap.get("stall_s", 0.0))
            self.counters["stalls"] = max(self.counters["stalls"], int(snap.get("stalls", 0)))
            if snap.get("stalled"):
                self.state = "stalled"
            elif snap.get("playing") and self.state not in ("ended",):
                self.state = "paused" if self.paused else "playing"
        for k in ("retries", "failovers", "abandons"):
            if k in snap:
                self.counters[k] = int(snap[k])
        lic = snap.get("license")
        if lic:   # the licence in use (`License.to_dict`); the status comes from the events
            self.license = {"status": "granted", **(self.license or {}), "system": lic.get("system"),
                            "max_height": lic.get("max_height")}
        if snap.get("phase") == "ended":
            self.state = "ended"


# -- a small braille canvas ---------------------------------------------------------------------
_BRAILLE = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]]


def braille_chart(series: dict[str, list[tuple[float, float]]], width: int, height: int,
                  t_range: tuple[float, float], y_max: float, styles: dict[str, str]) -> Text:
    """Plot several (t, y) series as lines of braille dots; later series draw on top."""
    width, height = max(8, width), max(2, height)
    W, H = width * 2, height * 4
    dots = np.zeros((height, width), dtype=np.int32)
    owner = np.full((height, width), -1, dtype=np.int32)
    t0, t1 = t_range
    span = max(t1 - t0, 1e-9)
    names = list(series)
    for si, name in enumerate(names):
        pts = series[name]
        if not pts:
            continue
        arr = np.array(pts, dtype=float)
        xs = np.clip(((arr[:, 0] - t0) / span * (W - 1)).round().astype(int), 0, W - 1)
        ys = np.clip((H - 1 - (arr[:, 1] / max(y_max, 1e-9)) * (H - 1)).round().astype(int), 0, H - 1)
        # join consecutive points: for every column between them, fill from the previous
        # interpolated height to this one, so both slopes and steps read as lines
        px, py = int(xs[0]), int(ys[0])
        prev_y = py
        for x, y in zip(xs.tolist(), ys.tolist()):
            cols = range(px, x + 1) if x >= px else [x]
            for cx in cols:
                cy = y if x == px else round(py + (y - py) * (cx - px) / (x - px))
                lo, hi = sorted((prev_y, cy))
                for yy in range(lo, hi + 1):
                    r, c = yy // 4, cx // 2
                    dots[r, c] |= _BRAILLE[yy % 4][cx % 2]
                    owner[r, c] = si
                prev_y = cy
            px, py = x, y
    text = Text()
    for r in range(height):
        for c in range(width):
            ch = chr(0x2800 + dots[r, c]) if dots[r, c] else " "
            text.append(ch, style=styles.get(names[owner[r, c]], "") if owner[r, c] >= 0 else "")
        if r < height - 1:
            text.append("\n")
    return text


def short_policy(desc: str, limit: int = 48) -> str:
    """`bola(gp=5.0, buffer_target_s=None, …)` → `bola(gp=5.0)`: only parameters that are set."""
    if "(" not in desc:
        return desc
    name, rest = desc.split("(", 1)
    keep = [kv for kv in rest.rstrip(")").split(", ") if not kv.endswith(("=None", "=False"))]
    out = f"{name}({', '.join(keep)})" if keep else name
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _mbps(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v / 1e6:.2f}"


def _hms(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return "—"
    return f"{int(t // 60):d}:{t % 60:04.1f}"


def render(model: DashboardModel, width: int, height: int) -> Layout:
    """The whole screen for a terminal of `width` × `height` characters."""
    s, title = model.snapshot, model.title
    layout = Layout()
    layout.split_column(Layout(name="header", size=4), Layout(name="chart", ratio=1),
                        Layout(name="bottom", size=max(10, min(14, height // 3))))
    layout["bottom"].split_row(Layout(name="decision", ratio=3), Layout(name="counters", ratio=2),
                               Layout(name="license", ratio=2))

    state_style = {"playing": "bold green", "stalled": "bold red", "ended": "bold blue", "paused": "bold yellow"}
    st = model.state
    head = Table.grid(expand=True)
    head.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    head.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    dur = title.get("duration_s")
    played = float(s.get("played_s", 0.0))
    if s.get("live"):
        where = Text.assemble(("   latency ", "dim"), f"{s.get('live_latency_s') or 0.0:.2f} s",
                              (" → ", "dim"), f"{s.get('target_latency_s') or 0.0:.2f}", ("  rate ", "dim"),
                              f"×{s.get('playback_rate', 1.0):.3f}")
    else:
        where = Text.assemble(("   playhead ", "dim"), f"{_hms(max(played, 0.0))} / {_hms(dur)}")
    head.add_row(
        Text.assemble(("content ", "dim"), str(title.get("content", "?")), ("   policy ", "dim"),
                      short_policy(str(title.get("policy", "?")))),
        Text.assemble(("state ", "dim"), (st, state_style.get(st, "bold")), where))
    head.add_row(
        Text.assemble(("device ", "dim"), str(title.get("device", "none")), ("   edge ", "dim"),
                      str(title.get("edge", "?")) + (f" (#{s['edge']})" if s.get("edge") else "")),
        Text.assemble(("time scale ", "dim"), f"×{title.get('time_scale', 1)}", ("   keys ", "dim"),
                      "q quit · space pause · +/- speed", ("  " + model.message, "italic")))
    layout["header"].update(Panel(head, title="abrlab play", border_style="blue"))

    # chart: rates on top, buffer below, on one time axis
    chart_w = max(20, width - 12)
    chart_h = max(4, (height - 4 - layout["bottom"].size - 4))
    rate_h = max(2, chart_h * 3 // 5)
    buf_h = max(2, chart_h - rate_h - 1)
    t_end = max([model.samples[-1][0] if model.samples else 0.0] + [p[0] for p in list(model.bitrate)[-1:]] + [10.0])
    # a long (live) session: the window the kept samples span
    t_start = model.samples[0][0] if len(model.samples) == model.samples.maxlen else 0.0
    series: dict[str, list] = {}
    if model.capacity_at is not None:
        ts = np.linspace(t_start, t_end, chart_w * 2)
        series["capacity"] = list(zip(ts, model.capacity_at(ts)))
    series["throughput"] = list(model.throughput)
    series["bitrate"] = _steps(list(model.bitrate), t_end)
    ymax = max([1e5] + [y for _, y in series.get("throughput", [])] + [y for _, y in series["bitrate"]]
               + ([max(y for _, y in series["capacity"])] if series.get("capacity") else []))
    ymax = min(ymax, 4 * max([1e5] + [y for _, y in series["bitrate"]] + [y for _, y in series["throughput"]]))
    rate = braille_chart(series, chart_w, rate_h, (t_start, t_end), ymax * 1.05, SERIES_STYLE)
    buf_pts = [(t, b) for t, b, _ in model.samples]
    target = [(t, c) for t, _, c in model.samples]
    lower = {"target": target, "buffer": buf_pts}
    if model.latency:   # live: the latency and its target on the buffer's axis (seconds both)
        lower = {"latency target": [(t, g) for t, _, g, _ in model.latency], **lower,
                 "latency": [(t, lat) for t, lat, _, _ in model.latency]}
    bmax = max([1.0] + [y for pts in lower.values() for _, y in pts]) * 1.05
    buf = braille_chart(lower, chart_w, buf_h, (t_start, t_end), bmax, SERIES_STYLE)
    legend = Text.assemble(("capacity ", SERIES_STYLE["capacity"]), ("throughput ", SERIES_STYLE["throughput"]),
                           ("bitrate", SERIES_STYLE["bitrate"]), (f"   0–{ymax * 1.05 / 1e6:.1f} Mbit/s", "dim"))
    live = (("   latency ", SERIES_STYLE["latency"]), ("latency target", SERIES_STYLE["latency target"])) \
        if model.latency else ()
    legend2 = Text.assemble(("buffer ", SERIES_STYLE["buffer"]), ("target", SERIES_STYLE["target"]), *live,
                            (f"   0–{bmax:.0f} s   ·   time {t_start:.0f}–{t_end:.0f} s", "dim"))
    title_chart = "network, bitrate, buffer and latency" if model.latency else "network, bitrate and buffer"
    layout["chart"].update(Panel(Group(legend, rate, legend2, buf), title=title_chart, border_style="cyan"))

    # the current representation and the last decision
    d = model.last_decision
    dec = Table.grid(padding=(0, 1))
    dec.add_column(style="dim")
    dec.add_column()
    rep = title.get("representations", {})
    rung = s.get("rung")
    rinfo = rep.get(rung, {}) if isinstance(rep, dict) else {}
    dec.add_row("now playing", f"rung {rung}: {_mbps(s.get('bitrate_bps'))} Mbit/s"
                + (f", {rinfo.get('width')}x{rinfo.get('height')}" if rinfo.get("width") else "")
                + (f", {rinfo.get('codecs')}" if rinfo.get("codecs") else ""))
    dec.add_row("buffer", f"{s.get('buffer_s', 0.0):.1f} s of {s.get('buffer_cap_s') or 0:.0f} s target")
    dec.add_row("throughput", f"{_mbps(s.get('throughput_bps'))} Mbit/s (last download)")
    if d is not None:
        dec.add_row("last decision", f"segment {d.segment} → rung {d.rung} "
                    f"({_mbps(d.bitrate_bps)} Mbit/s) at buffer {d.buffer_s:.1f} s")
        for k, v in list(d.inputs.items())[:5]:
            dec.add_row(f"  {k}", _fmt_input(k, v))
    layout["decision"].update(Panel(dec, title="representation and decision", border_style="green"))

    c = model.counters
    cnt = Table.grid(padding=(0, 1))
    cnt.add_column(style="dim")
    cnt.add_column(justify="right")
    cnt.add_row("stalls", f"{c['stalls']} ({c['stall_s']:.1f} s)")
    cnt.add_row("startup delay", "—" if model.startup_s is None else f"{model.startup_s:.2f} s")
    cnt.add_row("switches", str(c["switches"]))
    cnt.add_row("bytes", f"{s.get('bytes', 0) / 1e6:.1f} MB")
    cnt.add_row("wasted bytes", f"{s.get('wasted_bytes', 0) / 1e6:.2f} MB")
    cnt.add_row("failovers", str(c["failovers"]))
    cnt.add_row("retries", str(c["retries"]))
    q = _qoe_so_far(model)
    if q:
        cnt.add_row("QoE (linear)", f"{q[0]:.1f}")
        cnt.add_row(" utility", f"{q[1]:.1f}")
        cnt.add_row(" − rebuffer", f"{q[2]:.1f}")
        cnt.add_row(" − switches", f"{q[3]:.1f}")
    layout["counters"].update(Panel(cnt, title="counters", border_style="magenta"))

    lic = Table.grid(padding=(0, 1))
    lic.add_column(style="dim")
    lic.add_column()
    L = model.license or {}
    lic.add_row("license", str(L.get("status", "none (clear content)")))
    if L.get("system"):
        lic.add_row("scheme", str(L["system"]))
    if L.get("max_height"):
        lic.add_row("policy cap", f"{L['max_height']}p")
    lic.add_row("CMCD", str(title.get("cmcd") or "off"))
    for i, line in enumerate(prediction_lines(model.prediction)):
        lic.add_row("prediction" if i == 0 else "", line)
    layout["license"].update(Panel(lic, title="license, CMCD, prediction", border_style="yellow"))
    return layout


def prediction_lines(record: dict | None) -> list[str]:
    """The simulator's prediction of the session in two short lines (`player.lab.prediction`):
    once the session is over, the share of segments at the same rung and the QoE difference."""
    if record is None:
        return ["after the session"]
    if not record.get("available"):
        return ["none (see the summary)"]
    rel = record.get("qoe_rel_diff")
    return [f"{100 * record['same_rung']:.0f}% same rung",
            "QoE " + ("—" if rel is None else f"{100 * rel:+.1f}%") + (", goal met" if record.get("meets_goal") else "")]


def _steps(points: list[tuple[float, float]], t_end: float) -> list[tuple[float, float]]:
    """A step function through the decisions, so the chosen bitrate reads as held."""
    out = []
    for i, (t, y) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else t_end
        out += [(t, y), (max(t, nxt - 1e-6), y)]
    return out


def _fmt_input(key: str, v: Any) -> str:
    if isinstance(v, float):
        if key.endswith("_bps") or "bps" in key:
            return f"{v / 1e6:.2f} Mbit/s"
        return f"{v:.3g}"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in v[:8]) + "]"
    return str(v)


def _qoe_so_far(model: DashboardModel) -> tuple[float, float, float, float] | None:
    """Linear QoE of what has arrived so far, by `player.core.qoe`'s own definition."""
    ladder = model.snapshot.get("ladder_bps")
    if not model.downloaded or not ladder:
        return None
    u, w = qoe.rung_utilities("linear", np.asarray(ladder, dtype=float))
    vals = u[np.asarray(model.downloaded)]
    util = float(vals.sum())
    smooth = float(np.abs(np.diff(vals)).sum())
    rebuf = w * float(model.counters["stall_s"])
    return util - rebuf - smooth, util, rebuf, smooth


class KeyReader:
    """Single keys from a TTY's stdin without Enter (cbreak), restored on exit."""

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self.on_key = on_key
        self._old = None

    def __enter__(self) -> "KeyReader":
        import termios
        import tty

        fd = sys.stdin.fileno()
        self._old = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        asyncio.get_running_loop().add_reader(fd, self._read)
        return self

    def _read(self) -> None:
        try:
            ch = os.read(sys.stdin.fileno(), 32).decode(errors="ignore")
        except OSError:
            return
        for c in ch:
            self.on_key(c)

    def __exit__(self, *exc) -> None:
        import termios

        fd = sys.stdin.fileno()
        asyncio.get_running_loop().remove_reader(fd)
        if self._old is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, self._old)
