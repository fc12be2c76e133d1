"""The live terminal dashboard of `abrlab play` (rich), and its plain-text fallback.

The dashboard never drives the session: it polls the player's `snapshot()` several times a
second and listens to its events (decisions with the policy's inputs, downloads, stalls,
license, retries, failovers). The model below keeps what it needs to draw; `render` turns
it into a rich layout sized to the terminal, so a resize re-lays the panels.
"""
from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from rich.console import Console, Group
from rich.layout import Layout
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from player.core import qoe
from player.core.events import (Abandon, Decision, Download, End, Event, Failover, LicenseFailed, LicenseFallback,
                                LicenseGranted, LicenseRequest, Retry, StallEnd, StallStart, Startup, Summary)

SERIES_STYLE = {"capacity": "grey50", "throughput": "cyan", "bitrate": "green", "buffer": "yellow",
                "target": "red", "latency": "magenta", "latency target": "blue", "ladder": "grey37"}
#: each series' line kind (`LOOK_GLYPH`), so the charts read on a monochrome terminal
SERIES_LOOK = {"capacity": "dotted", "throughput": "marker", "bitrate": "solid", "buffer": "solid",
               "target": "dotted", "latency": "marker", "latency target": "dotted", "ladder": "reference"}


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
            latency=deque(self.latency, maxlen=self.latency.maxlen),
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
MARKER = "•"
#: how a series is drawn, so that series differ without colour too: a solid line, a dotted
#: line (every other dot), or a marker per sample (not joined); its glyph in the legends
LOOK_GLYPH = {"solid": "─", "dotted": "┈", "marker": MARKER, "reference": "·"}


def braille_chart(series: dict[str, list[tuple[float, float]]], width: int, height: int,
                  t_range: tuple[float, float], y_max: float, styles: dict[str, str], *,
                  looks: dict[str, str] | None = None, hlines: tuple[float, ...] = (),
                  hline_style: str = "") -> Text:
    """Plot several (t, y) series as lines of braille dots; later series draw on top.

    `looks` gives a series' line kind (`LOOK_GLYPH`; default solid); `hlines` are reference
    levels (the ladder) drawn as sparse dots behind the series."""
    width, height = max(8, width), max(2, height)
    W, H = width * 2, height * 4
    looks = looks or {}
    dots = np.zeros((height, width), dtype=np.int32)
    owner = np.full((height, width), -1, dtype=np.int32)
    marks = np.full((height, width), -1, dtype=np.int32)
    t0, t1 = t_range
    span = max(t1 - t0, 1e-9)
    names = list(series)
    for level in hlines:   # a dot every fourth column: the ladder's rungs as reference lines
        yy = int(np.clip(round(H - 1 - level / max(y_max, 1e-9) * (H - 1)), 0, H - 1))
        for cx in range(0, W, 8):
            dots[yy // 4, cx // 2] |= _BRAILLE[yy % 4][cx % 2]
    for si, name in enumerate(names):
        pts = series[name]
        if not pts:
            continue
        look = looks.get(name, "solid")
        arr = np.array(pts, dtype=float)
        xs = np.clip(((arr[:, 0] - t0) / span * (W - 1)).round().astype(int), 0, W - 1)
        ys = np.clip((H - 1 - (arr[:, 1] / max(y_max, 1e-9)) * (H - 1)).round().astype(int), 0, H - 1)
        if look == "marker":
            marks[ys // 4, xs // 2] = si
            continue
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
                    if look == "dotted" and (cx + yy) % 2:
                        continue
                    r, c = yy // 4, cx // 2
                    dots[r, c] |= _BRAILLE[yy % 4][cx % 2]
                    owner[r, c] = si
                prev_y = cy
            px, py = x, y
    text = Text()
    for r in range(height):
        for c in range(width):
            if marks[r, c] >= 0:
                text.append(MARKER, style=styles.get(names[marks[r, c]], ""))
            elif dots[r, c]:
                text.append(chr(0x2800 + dots[r, c]),
                            style=styles.get(names[owner[r, c]], "") if owner[r, c] >= 0 else hline_style)
            else:
                text.append(" ")
        if r < height - 1:
            text.append("\n")
    return text


def legend(names: list[str], extra: str = "") -> Text:
    """`┈ capacity  • throughput  ─ bitrate …`: each series' glyph (its line kind) and name in
    its colour, readable on a monochrome terminal too."""
    out = Text()
    for name in names:
        colour, look = SERIES_STYLE[name], SERIES_LOOK.get(name, "solid")
        out.append(f"{LOOK_GLYPH[look]} {name}  ", style=colour)
    if extra:
        out.append(extra, style="dim")
    return out


def short_policy(desc: str, limit: int | None = None) -> str:
    """`bola(gp=5.0, buffer_target_s=None, …)` → `bola(gp=5.0)`: only parameters that are set
    (cut to `limit` characters, if given)."""
    if "(" not in desc:
        return desc
    name, rest = desc.split("(", 1)
    keep = [kv for kv in rest.rstrip(")").split(", ") if not kv.endswith(("=None", "=False"))]
    out = f"{name}({', '.join(keep)})" if keep else name
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"


def _mbps(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v / 1e6:.2f}"


def _hms(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return "—"
    return f"{int(t // 60):d}:{t % 60:04.1f}"


# -- the screen ---------------------------------------------------------------------------------
COMPACT_BELOW_ROWS = 32   # shorter terminals: sections under a title rule, without boxes
WIDE_FROM_COLUMNS = 120   # wider ones: the representation and the counters side by side
MIN_RATE_ROWS, MIN_BUFFER_ROWS = 5, 3   # the charts' rows however short the terminal
KEYS = "q quit · space pause"   # the time scale is fixed for a run: no speed key
_MEASURE = Console(file=io.StringIO(), width=1000, color_system=None, legacy_windows=False)
_BOTTOM_ROWS: dict[tuple, int] = {}   # the bottom's natural height by its shape (see `render`)


def render(model: DashboardModel, width: int, height: int) -> Layout:
    """The whole screen for a terminal of `width` × `height` characters: the header wraps
    rather than cuts, the bottom takes the rows its text needs (at most what leaves the charts
    `MIN_RATE_ROWS` + `MIN_BUFFER_ROWS`; its last rows are the first cut), the charts the rest.
    On a short terminal the sections lose their boxes (the header its title line too)."""
    compact = height < COMPACT_BELOW_ROWS
    inner = width if compact else width - 4
    head = header_text(model, inner, with_title=compact)
    header = head if compact else _section(head, "abrlab play", "blue", compact)
    header_h = _height(header, width)
    wide = width >= WIDE_FROM_COLUMNS
    now, counters = now_pairs(model, short=not wide), counter_pairs(model, short=not wide)
    if wide:
        left_w = width // 2
        parts = [(_section(_pairs(now), "representation and decision", "green", compact), left_w),
                 (_section(_pairs(counters), "counters", "magenta", compact), width - left_w)]
    else:
        grid = Table.grid(expand=True, padding=(0, 2))
        if inner >= 70:   # side by side
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(_pairs(now), _pairs(counters))
        else:
            grid.add_row(_pairs(now + counters))
        parts = [(_section(grid, "representation, decision and counters", "green", compact), width)]
    frame = 0 if compact else 2
    chart_min = frame + 2 + MIN_RATE_ROWS + MIN_BUFFER_ROWS     # two legends, the rates and the buffer
    # measuring takes milliseconds a frame; the rows depend on the widths of the texts, which
    # seldom change: measure once per shape
    shape = (width, compact, tuple((label, len(value)) for label, value in now + counters))
    if shape not in _BOTTOM_ROWS:
        if len(_BOTTOM_ROWS) > 256:
            _BOTTOM_ROWS.clear()
        _BOTTOM_ROWS[shape] = max(_height(part, w) for part, w in parts)
    bottom_h = _BOTTOM_ROWS[shape]
    bottom_h = max(3, min(bottom_h, height - header_h - chart_min))
    chart_h = max(chart_min, height - header_h - bottom_h)

    layout = Layout()
    layout.split_column(Layout(header, name="header", size=header_h), Layout(name="chart", size=chart_h),
                        Layout(name="bottom", size=bottom_h))
    if len(parts) == 2:
        layout["bottom"].split_row(Layout(parts[0][0], name="decision", size=parts[0][1]),
                                   Layout(parts[1][0], name="counters", ratio=1))
    else:
        layout["bottom"].update(parts[0][0])
    body = charts(model, inner, chart_h - frame - 2)
    title = "network, bitrate, buffer and latency" if model.latency else "network, bitrate and buffer"
    layout["chart"].update(body if compact else Panel(body, title=title, border_style="cyan"))
    return layout


def _section(body, title: str, style: str, compact: bool):
    """A titled section: a box, or on a short terminal a title rule above its text."""
    if compact:
        return Group(Rule(Text(title, style="bold"), style=style, align="left"), body)
    return Panel(body, title=title, border_style=style)


def _height(renderable, width: int) -> int:
    """Rows `renderable` takes at `width` columns, drawn in full."""
    return len(_MEASURE.render_lines(renderable, _MEASURE.options.update(width=width, height=None), pad=False))


def header_text(model: DashboardModel, width: int, with_title: bool = False) -> Text:
    """The header's items, packed into lines of `width` (an item longer than a line wraps)."""
    s, title = model.snapshot, model.title
    state_style = {"playing": "bold green", "stalled": "bold red", "ended": "bold blue", "paused": "bold yellow"}
    items = [Text("abrlab play", style="bold blue")] if with_title else []
    items += [Text.assemble(("content ", "dim"), str(title.get("content", "?"))),
             Text.assemble(("policy ", "dim"), short_policy(str(title.get("policy", "?")))),
             Text.assemble(("state ", "dim"), (model.state, state_style.get(model.state, "bold")))]
    if s.get("live"):
        items.append(Text.assemble(("latency ", "dim"), f"{s.get('live_latency_s') or 0.0:.2f} s", (" → ", "dim"),
                                   f"{s.get('target_latency_s') or 0.0:.2f}", ("  rate ", "dim"),
                                   f"×{s.get('playback_rate', 1.0):.3f}"))
    else:
        items.append(Text.assemble(("playhead ", "dim"), f"{_hms(max(float(s.get('played_s', 0.0)), 0.0))} / "
                                   f"{_hms(title.get('duration_s'))}"))
    L = model.license or {}
    detail = ", ".join(x for x in (L.get("system"), L.get("max_height") and f"≤{L['max_height']}p") if x)
    items += [Text.assemble(("time scale ", "dim"), f"×{title.get('time_scale', 1)}"),
              Text.assemble(("device ", "dim"), str(title.get("device", "none"))),
              Text.assemble(("edge ", "dim"), str(title.get("edge", "?")) + (f" (#{s['edge']})" if s.get("edge") else "")),
              Text.assemble(("license ", "dim"), str(L.get("status", "none (clear content)"))
                            + (f" ({detail})" if detail else "")),
              Text.assemble(("CMCD ", "dim"), str(title.get("cmcd") or "off")),
              Text.assemble(("keys ", "dim"), KEYS)]
    if model.message:
        items.append(Text(model.message, style="italic"))
    out, line_len = Text(), 0
    for item in items:
        n = item.cell_len
        if line_len and line_len + 3 + n > width:
            out.append("\n")
            line_len = 0
        elif line_len:
            out.append("   ")
            line_len += 3
        out.append_text(item)
        line_len += n
    return out


def charts(model: DashboardModel, width: int, rows: int) -> Group:
    """Rates on top (the ladder as reference lines), the buffer (and a live latency) below,
    on one time axis; each with a legend that names its series by glyph and colour."""
    chart_w = max(20, width - 1)
    rate_h = max(MIN_RATE_ROWS, rows * 3 // 5)
    buf_h = max(MIN_BUFFER_ROWS, rows - rate_h)
    t_end = max([model.samples[-1][0] if model.samples else 0.0] + [p[0] for p in list(model.bitrate)[-1:]] + [10.0])
    # a long (live) session: the window the kept samples span
    t_start = model.samples[0][0] if len(model.samples) == model.samples.maxlen else 0.0
    series: dict[str, list] = {}
    if model.capacity_at is not None:
        ts = np.linspace(t_start, t_end, chart_w * 2)
        series["capacity"] = list(zip(ts, model.capacity_at(ts)))
    series["bitrate"] = _steps(list(model.bitrate), t_end)
    series["throughput"] = list(model.throughput)
    ymax = max([1e5] + [y for _, y in series.get("throughput", [])] + [y for _, y in series["bitrate"]]
               + ([max(y for _, y in series["capacity"])] if series.get("capacity") else []))
    ymax = min(ymax, 4 * max([1e5] + [y for _, y in series["bitrate"]] + [y for _, y in series["throughput"]]))
    ladder = tuple(b for b in model.snapshot.get("ladder_bps") or () if b <= ymax * 1.05)
    rate = braille_chart(series, chart_w, rate_h, (t_start, t_end), ymax * 1.05, SERIES_STYLE, looks=SERIES_LOOK,
                         hlines=ladder, hline_style=SERIES_STYLE["ladder"])
    lower = {"target": [(t, c) for t, _, c in model.samples], "buffer": [(t, b) for t, b, _ in model.samples]}
    if model.latency:   # live: the latency and its target on the buffer's axis (seconds both)
        lower = {"latency target": [(t, g) for t, _, g, _ in model.latency], **lower,
                 "latency": [(t, lat) for t, lat, _, _ in model.latency]}
    bmax = max([1.0] + [y for pts in lower.values() for _, y in pts]) * 1.05
    buf = braille_chart(lower, chart_w, buf_h, (t_start, t_end), bmax, SERIES_STYLE, looks=SERIES_LOOK)
    upper_names = [n for n in ("capacity", "throughput", "bitrate") if n in series] + (["ladder"] if ladder else [])
    return Group(legend(upper_names, f" 0–{ymax * 1.05 / 1e6:.1f} Mbit/s"), rate,
                 legend(["buffer", "target"] + (["latency", "latency target"] if model.latency else []),
                        f" 0–{bmax:.0f} s · time {t_start:.0f}–{t_end:.0f} s"), buf)


def now_pairs(model: DashboardModel, short: bool = False) -> list[tuple[str, str]]:
    """What plays and what comes: representation, segment k of N and the download in flight,
    capacity and estimate, buffer, the last decision and the policy's inputs to it (`short`:
    values of at most about 24 characters, for half of an 80-column terminal)."""
    s, title, d = model.snapshot, model.title, model.last_decision
    rep = title.get("representations", {})
    rung = s.get("rung")
    rinfo = rep.get(rung, {}) if isinstance(rep, dict) else {}
    out = [("now playing", "— (no segment yet)" if rung is None or rung < 0 else
            f"rung {rung}: {_mbps(s.get('bitrate_bps'))} Mbit/s"
            + (f", {rinfo.get('width')}x{rinfo.get('height')}" if rinfo.get("width") and not short else ""))]
    n, done, flight = s.get("segments"), s.get("segment"), s.get("in_flight")
    if n is not None and not s.get("live"):
        if flight:
            seg = f"{flight['segment'] + 1}{'/' if short else ' of '}{n}, rung {flight['rung']} in flight"
        else:
            seg = f"all {n} downloaded" if done is not None and done >= n else f"{done or 0} of {n} downloaded"
        out.append(("segment", seg))
    elif flight:
        out.append(("segment", f"{flight['segment'] + 1}, rung {flight['rung']} in flight"))
    out.append(("capacity", "— (trace unknown)" if model.capacity_at is None or s.get("session_s") is None
                else f"{_mbps(float(model.capacity_at(np.array([float(s['session_s'])]))[0]))} Mbit/s now"))
    value, how = throughput_estimate(model)
    out.append(("estimate", f"{_mbps(value)} Mbit/s" + ("" if short else f" ({how})")))
    out.append(("buffer", f"{s.get('buffer_s', 0.0):.1f} s of {s.get('buffer_cap_s') or 0:.0f} s target"))
    if d is not None:
        out.append(("last decision", f"seg {d.segment + 1} → rung {d.rung}" if short else
                     f"segment {d.segment + 1} → rung {d.rung} at buffer {d.buffer_s:.1f} s"))
        for k, v in list(d.inputs.items())[:4]:
            label, text = describe_input(k, v)
            out.append((f"  {label}", text))
    return out


#: a policy's estimate of the throughput, where its inputs carry one (first found)
ESTIMATE_KEYS = ("predicted_bps", "throughput_bps", "harmonic_bps", "safe_throughput_bps")
ESTIMATE_WINDOW = 5


def throughput_estimate(model: DashboardModel) -> tuple[float | None, str]:
    """The policy's throughput estimate if its last decision reports one, else the harmonic
    mean of the last `ESTIMATE_WINDOW` downloads' throughput (and which it is)."""
    d = model.last_decision
    for key in ESTIMATE_KEYS:
        v = d.inputs.get(key) if d is not None else None
        if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
            return float(v), f"policy's {key[:-4].replace('_', ' ')}"
    recent = [y for _, y in list(model.throughput)[-ESTIMATE_WINDOW:] if y > 0]
    if not recent:
        return None, "no download yet"
    return len(recent) / sum(1.0 / y for y in recent), f"harmonic mean of {len(recent)}"


#: policy inputs whose meaning the name does not say: label and how to show the value
INPUT_LABELS: dict[str, tuple[str, Callable[[float], str]]] = {
    "score": ("score", lambda v: f"{v * 1e6:.3g} s per Mbit"),        # BOLA: (V(υ+γp) − Q) / S, S in bits
    "V": ("V", lambda v: f"{v:.3g} s"),                                # BOLA's buffer weight
    "delay_s": ("pause wanted", lambda v: f"{v:.2f} s"),
}


def describe_input(key: str, v: Any) -> tuple[str, str]:
    """A policy input as (label, value with its unit): `_bps` in Mbit/s, `_s` in seconds."""
    if isinstance(v, bool) or v is None:
        return key, {True: "yes", False: "no", None: "—"}[v]
    if isinstance(v, (int, float)):
        v = float(v)
        if not math.isfinite(v):
            return key, "—"
        if key in INPUT_LABELS:
            label, fmt = INPUT_LABELS[key]
            return label, fmt(v)
        if key.endswith("_bps"):
            return key[:-4].replace("_", " "), f"{v / 1e6:.2f} Mbit/s"
        if key.endswith("_s"):
            return key[:-2].replace("_", " "), f"{v:.2f} s"
        return key.replace("_", " "), f"{v:.3g}"
    if isinstance(v, list):
        scale, unit = (1e6, " Mbit/s") if key.endswith("_bps") else (1.0, "")
        shown = ", ".join(f"{x / scale:.3g}" if isinstance(x, (int, float)) else str(x) for x in v[:6])
        return key, f"[{shown}{', …' if len(v) > 6 else ''}]{unit}"
    return key, str(v)


def counter_pairs(model: DashboardModel, short: bool = False) -> list[tuple[str, str]]:
    """Stalls, startup, switches, QoE so far, the prediction once over, bytes, retries (the
    last the first cut on a short terminal; `short`: shorter values)."""
    s, c = model.snapshot, model.counters
    out = [("stalls", f"{c['stalls']} ({c['stall_s']:.1f} s)"),
           ("startup delay", "—" if model.startup_s is None else f"{model.startup_s:.2f} s"),
           ("switches", str(c["switches"])),
           ("bytes", f"{s.get('bytes', 0) / 1e6:.1f} MB ({s.get('wasted_bytes', 0) / 1e6:.2f} wasted)"),
           ("retries", f"{c['retries']}, failovers {c['failovers']}" + ("" if short else f", abandons {c['abandons']}"))]
    q = _qoe_so_far(model)
    if q:   # before the bytes: on a short terminal the last rows are the ones cut
        parts = ("", "", "") if short else ("utility ", "rebuffer ", "switches ")
        out.insert(3, ("QoE (linear)", f"{q[0]:.1f} = {parts[0]}{q[1]:.1f} − {parts[1]}{q[2]:.1f} − "
                                       f"{parts[2]}{q[3]:.1f}"))
    pred = [("prediction" if i == 0 else "", line) for i, line in enumerate(prediction_lines(model.prediction))]
    return out[:4 if q else 3] + pred + out[4 if q else 3:]


def _pairs(pairs: list[tuple[str, str]]) -> Table:
    """Label/value pairs in a grid (labels dim)."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(ratio=1)
    for label, value in pairs:
        grid.add_row(label, value)
    return grid


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
