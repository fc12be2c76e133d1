"""The emulated crowd on a terminal, while it runs: the live dashboard (every client's bitrate on
one chart, the link's use below, a row per client), or plain progress lines when the output
is not a terminal. The reports at the end are `player.cli.crowd_report`'s.

The dashboard reads the players' events (decisions, downloads, stalls) and the edge's shaped
bytes; times are the bottleneck's (trace seconds). Keys: q stops every session (each
client's summary covers what it played).
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from typing import Any, Awaitable, Callable

import numpy as np
from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from netem.link import Link
from player.cli.dashboard import KeyReader, braille_chart
from player.core.crowd import Bottleneck

PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta", "bright_green",
           "bright_yellow", "bright_blue", "bright_red")
PROGRESS_EVERY_S = 10.0          # bottleneck seconds between status lines

Start = Callable[[Callable[[int, dict], None], Callable[[Any], None]], Awaitable[Any]]


class CrowdModel:
    """What the screen shows, kept up to date from the players' events."""

    def __init__(self, group: Bottleneck, names: dict) -> None:
        self.group = group
        self.names = names
        n = len(group.clients)
        self.crowd = None
        self.bitrate: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        self.state = ["waiting"] * n
        self.segments = [0] * n
        self.stalls = [0] * n
        self.buffer = [0.0] * n
        self.start_s: list[float | None] = [None] * n
        self.message = ""
        self.link = Link([group.trace])

    def now_s(self) -> float:
        c = self.crowd
        if c is None or not c.sample_log:
            return 0.0
        return c.sample_log[-1][0]

    def on_event(self, i: int, ev: dict) -> None:
        kind = ev["event"]
        c = self.crowd
        player = c.clients[i].player if c is not None else None
        base = c.bottleneck_time_of(player) if player is not None else 0.0
        t = base + ev["t_s"]
        if kind == "manifest":
            self.state[i] = "setup"
        elif kind == "session_start":
            self.state[i] = "playing"
            self.start_s[i] = t
        elif kind == "decision":
            self.bitrate[i].append((t, float(ev.get("bitrate_bps") or 0.0)))
        elif kind == "download":
            self.segments[i] = int(ev["segment"]) + 1
            self.buffer[i] = float(ev["buffer_s"])
        elif kind == "stall_start":
            self.state[i] = "stalled"
            self.stalls[i] += 1
        elif kind == "stall_end":
            self.state[i] = "playing"
        elif kind == "end":
            self.state[i] = "done"
        elif kind == "error":
            self.state[i] = "failed"

    def utilisation(self, bins: int = 120) -> list[tuple[float, float]]:
        """(time, delivered / capacity) per bin so far, from the edge's shaped bytes."""
        c = self.crowd
        if c is None or len(c.sample_log) < 2 or not c.in_process_edge:
            return []
        s = np.array(c.sample_log)
        t, shaped = s[:, 0], s[:, 1]
        step = max(1.0, float(t[-1]) / bins)
        edges = np.arange(0.0, float(t[-1]) + 1e-9, step)
        if edges.size < 2:
            return []
        got = np.diff(np.interp(edges, t, shaped * 8.0))
        cap = self.link.delivered_bits(np.zeros(edges.size - 1, dtype=np.int64), edges[:-1], edges[1:])
        u = np.where(cap > 0, got / np.where(cap > 0, cap, 1.0), 0.0)
        return list(zip(edges[1:].tolist(), np.clip(u, 0.0, 1.2).tolist()))


def render(model: CrowdModel, width: int, height: int) -> Layout:
    n = len(model.group.clients)
    t_end = max(10.0, model.now_s())
    layout = Layout()
    rows = min(n, max(3, height // 3))
    layout.split_column(Layout(name="header", size=4), Layout(name="chart", ratio=1),
                        Layout(name="clients", size=rows + 6))
    active = sum(s in ("playing", "stalled", "setup") for s in model.state)
    head = Table.grid(expand=True)
    head.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    head.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    head.add_row(Text.assemble(("trace ", "dim"), str(model.names.get("trace")), ("   mean ", "dim"),
                               f"{model.names.get('capacity_bps', 0) / 1e6:.2f} Mbit/s"),
                 Text.assemble(("clients ", "dim"), f"{active} active / {n}", ("   t ", "dim"), f"{t_end:.1f} s"))
    head.add_row(Text.assemble(("policies ", "dim"), ", ".join(model.names.get("policies", []))),
                 Text.assemble(("bulk ", "dim"), str(len(model.group.bulk)), ("   keys ", "dim"), "q stop",
                               ("  " + model.message, "italic")))
    layout["header"].update(Panel(head, title="abrlab crowd", border_style="blue"))
    chart_w = max(20, width - 6)
    chart_h = max(4, height - 4 - (rows + 6) - 5)
    rate_h = max(2, chart_h * 2 // 3)
    util_h = max(2, chart_h - rate_h)
    series, styles = {}, {}
    for i, pts in enumerate(model.bitrate):
        if pts:
            name = f"c{i + 1}"
            series[name] = _held(pts, t_end)
            styles[name] = PALETTE[i % len(PALETTE)]
    ymax = max([1e5] + [y for pts in series.values() for _, y in pts]) * 1.05
    rate = braille_chart(series, chart_w, rate_h, (0.0, t_end), ymax, styles)
    util = braille_chart({"use": model.utilisation()}, chart_w, util_h, (0.0, t_end), 1.05, {"use": "white"})
    legend = Text.assemble(("bitrate per client ", "bold"), (f"0–{ymax / 1e6:.1f} Mbit/s", "dim"))
    legend2 = Text.assemble(("link utilisation ", "bold"), ("0–100 % of the trace's capacity", "dim"))
    layout["chart"].update(Panel(Group(legend, rate, legend2, util), title="every client, one chart",
                                 border_style="cyan"))
    table = Table(expand=True, padding=(0, 1))
    for col in ("#", "policy", "state", "start s", "segments", "Mbit/s", "buffer s", "stalls"):
        table.add_column(col, justify="left" if col in ("policy", "state") else "right")
    order = sorted(range(n), key=lambda i: (model.state[i] not in ("playing", "stalled"), i))[:rows]
    for i in order:
        last = model.bitrate[i][-1][1] if model.bitrate[i] else None
        st = model.start_s[i]
        table.add_row(Text(str(i + 1), style=PALETTE[i % len(PALETTE)]), model.group.clients[i].abr,
                      model.state[i], "—" if st is None else f"{st:.1f}", str(model.segments[i]),
                      "—" if last is None else f"{last / 1e6:.2f}", f"{model.buffer[i]:.1f}", str(model.stalls[i]))
    layout["clients"].update(Panel(table, title="clients", border_style="green"))
    return layout


def _held(points: list[tuple[float, float]], t_end: float) -> list[tuple[float, float]]:
    """Each bitrate held until the next decision (or `t_end`): a step line."""
    t, y = np.array(points, dtype=np.float64).T
    until = np.maximum(t, np.append(t[1:], t_end) - 1e-6)
    return list(zip(np.column_stack([t, until]).ravel().tolist(), np.repeat(y, 2).tolist()))


async def with_dashboard(group: Bottleneck, names: dict, start: Start, stop: asyncio.Event):
    """Run the emulated crowd under the live dashboard."""
    console = Console()
    model = CrowdModel(group, names)

    def on_start(crowd) -> None:
        model.crowd = crowd

    task = asyncio.ensure_future(start(model.on_event, on_start))

    def on_key(ch: str) -> None:
        if ch in "qQ":
            model.message = "stopping…"
            stop.set()

    with contextlib.ExitStack() as stack:
        if sys.stdin.isatty():
            stack.enter_context(KeyReader(on_key))
        live = stack.enter_context(Live(console=console, screen=True, auto_refresh=False, transient=False))
        while not task.done():
            live.update(render(model, console.width, console.height), refresh=True)
            await asyncio.wait({task}, timeout=0.25)
    return await task


async def with_progress_lines(group: Bottleneck, start: Start, out=None):
    """Run the emulated crowd printing a line per arrival, stall and end, and a status line
    every `PROGRESS_EVERY_S` bottleneck seconds."""
    out = out or sys.stdout
    model = CrowdModel(group, {})

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    def on_event(i: int, ev: dict) -> None:
        model.on_event(i, ev)
        line = progress_line(model, i, ev)
        if line:
            say(line)

    def on_start(crowd) -> None:
        model.crowd = crowd

    task = asyncio.ensure_future(start(on_event, on_start))
    next_line = PROGRESS_EVERY_S
    while not task.done():
        await asyncio.wait({task}, timeout=0.25)
        t = model.now_s()
        if t >= next_line and not task.done():
            next_line = (math.floor(t / PROGRESS_EVERY_S) + 1) * PROGRESS_EVERY_S
            say(status_line(model))
    return await task


def progress_line(model: CrowdModel, i: int, ev: dict) -> str | None:
    kind = ev["event"]
    t = model.now_s()
    who = f"client {i + 1} ({model.group.clients[i].abr})"
    if kind == "session_start":
        return f"[{t:8.2f} s] {who} starts"
    if kind == "stall_start":
        return f"[{t:8.2f} s] {who} STALL"
    if kind == "summary":
        s = ev["summary"]
        return (f"[{t:8.2f} s] {who} done: {s['segments']} segments, {s['avg_bitrate_bps'] / 1e6:.2f} Mbit/s, "
                f"rebuffer {s['rebuffer_s']:.1f} s, {s['switches']} switches, QoE {s['qoe']['total']:.1f}")
    if kind == "error":
        return f"[{t:8.2f} s] {who} failed: {ev['message']}"
    return None


def status_line(model: CrowdModel) -> str:
    t = model.now_s()
    active = sum(s in ("playing", "stalled") for s in model.state)
    rates = [pts[-1][1] for pts, s in zip(model.bitrate, model.state) if pts and s in ("playing", "stalled")]
    use = model.utilisation(bins=max(1, int(t / PROGRESS_EVERY_S)))
    u = f", link {100 * use[-1][1]:.0f} % used" if use else ""
    mean = f", mean {np.mean(rates) / 1e6:.2f} Mbit/s" if rates else ""
    return f"[{t:8.2f} s] {active} playing of {len(model.state)}{mean}{u}"
