"""The dashboard's layout at 80×24 and at 200×50, and on a monochrome terminal (issue 18,
items 20–22): nothing of the header is cut, the charts keep their rows, the QoE counters stay,
no speed key is advertised, the numbers a viewer asks for are there (capacity, estimate,
segment k of N, the download in flight, the policy's inputs with units), and the chart's
series differ by glyph, not only by colour. Rendered into rich Consoles; expected values are
worked by hand from the model below.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from rich.console import Console

from player.cli.dashboard import MARKER, DashboardModel, braille_chart, render
from player.core.events import Decision, Download, Startup

LADDER = [300e3, 750e3, 1.2e6, 2.85e6, 4.3e6, 6e6]
POLICY = "rb(window=5, safety=1.0, interval=2, horizon=5, buffer_target_s=None, extra=False)"
MESSAGE = "paused (the network keeps filling the buffer)"
THROUGHPUTS = [3e6, 2e6, 4e6, 4e6, 1e6, 2e6]   # the last five: harmonic mean 5 / (1/2+1/4+1/4+1+1/2) = 2.0 Mbit/s


def model(inputs=None) -> DashboardModel:
    m = DashboardModel(title={"content": "demo-6rung (6 rungs, 120 s)", "policy": POLICY, "duration_s": 120.0,
                              "device": "tv", "edge": "http://127.0.0.1:41234/manifest.mpd", "time_scale": "4",
                              "cmcd": "query",
                              "representations": {i: {"width": 640 + 160 * i, "height": 360 + 90 * i}
                                                  for i in range(len(LADDER))}})
    m.capacity_at = lambda ts: np.full(np.shape(ts), 3.2e6)
    m.on_event(Startup(1.0, startup_s=0.8))
    for i, tp in enumerate(THROUGHPUTS):
        r = [1, 2, 3, 2, 3, 4][i]
        m.on_event(Decision(i * 2.0, segment=i, rung=r, bitrate_bps=LADDER[r], buffer_s=6.0,
                            inputs=inputs if inputs is not None else {"score": 5.22e-07, "V": 2.68, "delay_s": 0.0}))
        m.on_event(Download(i * 2.0 + 1, segment=i, rung=r, bytes=500_000, latency_s=0.05, transfer_s=1.0,
                            throughput_bps=tp, buffer_s=6.0, stall_s=0.0))
        m.on_snapshot({"session_s": i * 2.0 + 1, "buffer_s": 6.0, "buffer_cap_s": 30.0, "played_s": i * 2.0,
                       "playing": True, "rung": r, "bitrate_bps": LADDER[r], "throughput_bps": tp,
                       "ladder_bps": LADDER, "segment": i + 1, "segments": 60, "bytes": 3_000_000,
                       "wasted_bytes": 0, "in_flight": {"segment": i + 1, "rung": 4}, "stall_s": 0.4, "stalls": 1})
    m.paused, m.state, m.message = True, "paused", MESSAGE
    return m


def screen(m: DashboardModel, width: int, height: int, colour: bool = True) -> list[str]:
    console = Console(width=width, height=height, record=True, file=open("/dev/null", "w"),
                      color_system="truecolor" if colour else None, no_color=not colour)
    console.print(render(m, width, height))
    return console.export_text().splitlines()


def chart_rows(lines: list[str], first_legend: str, second_legend: str) -> int:
    """Rows between the rate legend and the buffer legend: the rate chart's height."""
    a = next(i for i, ln in enumerate(lines) if first_legend in ln)
    b = next(i for i, ln in enumerate(lines) if second_legend in ln)
    return b - a - 1


@pytest.mark.parametrize("width, height", [(80, 24), (200, 50)])
def test_what_must_be_visible(width, height):
    lines = screen(model(), width, height)
    text = "\n".join(lines)
    flat = re.sub(r"[\s│]+", " ", text)      # the header may wrap: compare with spaces folded
    assert len(lines) <= height and max(len(ln) for ln in lines) <= width
    assert "…" not in text                                             # nothing cut
    assert "policy rb(window=5, safety=1.0, interval=2, horizon=5)" in flat   # set parameters, all of them
    assert MESSAGE in flat and "state paused" in flat and "time scale ×4" in flat
    assert "license none (clear content)" in flat and "CMCD query" in flat and "device tv" in flat
    assert "q quit · space pause" in flat and "speed" not in text and "+/-" not in text   # item 21
    assert chart_rows(lines, "capacity", "─ buffer") >= 5
    assert re.search(r"QoE \(linear\)\s+-?[0-9.]+ = ", text)
    assert re.search(r"stalls\s+1 \(0\.4 s\)", text)
    assert re.search(r"capacity\s+3\.20 Mbit/s now", text)
    assert re.search(r"estimate\s+2\.00 Mbit/s", text)
    assert re.search(r"segment\s+7(/| of )60, rung 4 in flight", text)


def test_wide_shows_the_policy_inputs_with_units_and_where_the_estimate_comes_from():
    text = "\n".join(screen(model(), 200, 50))
    assert "(harmonic mean of 5)" in text
    assert re.search(r"score\s+0\.522 s per Mbit", text)       # BOLA's score per bit × 1e6
    assert re.search(r"V\s+2\.68 s", text) and re.search(r"pause wanted\s+0\.00 s", text)
    assert re.search(r"now playing\s+rung 4: 4\.30 Mbit/s, 1280x720", text)
    assert "segment 6 → rung 4 at buffer 6.0 s" in text         # segments counted from 1
    wide = "\n".join(screen(model({"predicted_bps": 2.5e6, "safety": 0.9, "window_s": 8.0}), 200, 50))
    assert re.search(r"estimate\s+2\.50 Mbit/s \(policy's predicted\)", wide)
    assert re.search(r"predicted\s+2\.50 Mbit/s", wide) and re.search(r"window\s+8\.00 s", wide)


def test_the_series_differ_without_colour():
    lines = screen(model(), 120, 40, colour=False)
    text = "\n".join(lines)
    assert "┈ capacity" in text and f"{MARKER} throughput" in text and "─ bitrate" in text and "· ladder" in text
    assert "─ buffer" in text and "┈ target" in text
    a = next(i for i, ln in enumerate(lines) if "┈ capacity" in ln)
    assert sum(ln.count(MARKER) for ln in lines[a + 1:a + 20]) == len(THROUGHPUTS)   # one marker per download


def test_braille_line_kinds():
    flat = [(0.0, 10.0), (10.0, 10.0)]     # y = y_max: the top pixel row, 20 pixels wide
    solid = braille_chart({"a": flat}, 10, 2, (0, 10), 10, {}).plain.splitlines()[0]
    dotted = braille_chart({"a": flat}, 10, 2, (0, 10), 10, {}, looks={"a": "dotted"}).plain.splitlines()[0]
    marks = braille_chart({"a": flat}, 10, 2, (0, 10), 10, {}, looks={"a": "marker"}).plain.splitlines()[0]
    assert solid == "⠉" * 10                 # both dots of the top row in every cell
    assert dotted == "⠁" * 10                # every other pixel: the left dot only
    assert marks == MARKER + " " * 8 + MARKER    # the two samples, not joined
    ref = braille_chart({"a": []}, 12, 2, (0, 10), 10, {}, hlines=(10.0,)).plain.splitlines()[0]
    assert ref == "⠁   ⠁   ⠁   "             # a reference level: a dot every fourth cell
