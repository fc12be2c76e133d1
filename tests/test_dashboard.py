"""`abrlab play` as a person sees it: the live dashboard in tmux, keys, and the non-TTY path.

Bounded: every wait polls the screen with a deadline and the session is short (40 s of
content at time scale 4), so each test ends by itself in seconds.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from netem.content import save, synthetic
from player.core.events import Decision, Download, LicenseGranted, StallStart
from player.cli.dashboard import DashboardModel, braille_chart, render, short_policy

REPO = Path(__file__).resolve().parent.parent
ABRLAB = [sys.executable, "-m", "player.cli"]


@pytest.fixture()
def short_movie(tmp_path) -> str:
    path = tmp_path / "short.json"
    save(synthetic(duration_s=40, segment_duration_s=4, seed=4, name="short-40s"), path)
    return str(path)


def _wait_for(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last screen:\n{last}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make test installs it when it can)")
def test_dashboard_in_tmux_shows_panels_and_quits_with_summary(short_movie, tmp_path):
    session = f"abrlab-{uuid.uuid4().hex[:8]}"
    done = tmp_path / "exit_code"
    cmd = (f"cd {REPO} && {sys.executable} -m player.cli play --time-scale 4 --movie {short_movie}; "
           f"echo $? > {done}")
    # a fixed 120×42 window whatever the environment (under pytest tmux may otherwise pick 80×24)
    subprocess.run(["tmux", "-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "120", "-y", "42"], check=True)
    subprocess.run(["tmux", "set-option", "-t", session, "window-size", "manual"], check=True)
    subprocess.run(["tmux", "resize-window", "-t", session, "-x", "120", "-y", "42"], check=True)
    subprocess.run(["tmux", "send-keys", "-t", session, cmd, "Enter"], check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout

    try:
        def playing_screen() -> str | None:
            s = screen()
            return s if "last decision" in s and "state playing" in s else None

        first = _wait_for(playing_screen, 30, "the dashboard to show a playing session")
        for panel in ("abrlab play", "network, bitrate and buffer", "representation and decision", "counters"):
            assert panel in first, panel
        assert "policy bola" in first and "time scale ×4" in first and "device" in first and "edge http://127.0.0.1:" in first
        m = re.search(r"buffer\s+([0-9.]+) s of ([0-9.]+) s target", first)
        assert m and 0 <= float(m.group(1)) <= float(m.group(2)) + 4.0
        assert re.search(r"now playing\s+rung \d: [0-9.]+ Mbit/s, \d+x\d+", first)
        assert re.search(r"stalls\s+\d+ \(", first) and "QoE (linear)" in first
        assert "license none (clear content)" in first and "CMCD off" in first   # in the header
        assert re.search(r"prediction\s+after the session", first)
        assert re.search(r"segment\s+\d+ of 10", first) and re.search(r"capacity\s+[0-9.]+ Mbit/s now", first)
        assert "speed" not in first
        # space pauses the playhead; the header says so
        subprocess.run(["tmux", "send-keys", "-t", session, " "], check=True)
        _wait_for(lambda: "state paused" in screen(), 10, "the paused state")
        # a resize re-lays the panels to the new width
        subprocess.run(["tmux", "resize-window", "-t", session, "-x", "96", "-y", "36"], check=True)
        def relaid() -> str | None:
            text = screen()
            widths = {len(line.rstrip()) for line in text.splitlines() if line.strip()}
            return text if max(widths, default=0) == 96 and "counters" in text else None

        _wait_for(relaid, 10, "the layout at 96 columns")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        _wait_for(lambda: done.exists() and done.read_text().strip() != "", 20, "the player to exit")
        assert done.read_text().strip() == "0"
        after = subprocess.run(["tmux", "capture-pane", "-t", session, "-p", "-S", "-100"], capture_output=True,
                               text=True).stdout
        assert "QoE (linear)" in after and "average bitrate" in after   # the summary panel
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_not_a_tty_prints_plain_lines(short_movie):
    r = subprocess.run([*ABRLAB, "play", "--time-scale", "10", "--movie", short_movie], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert any(re.match(r"\[\s*[0-9.]+ s\] segment\s+1 rung \d", ln) for ln in lines)
    assert any("playback started" in ln for ln in lines)
    assert "\x1b[?1049h" not in r.stdout          # no alternate screen, no live layout
    assert "average bitrate" in r.stdout           # the summary at the end


def test_render_fits_any_terminal_size():
    m = DashboardModel(title={"content": "c", "policy": "bola(gp=5.0, x=None)", "duration_s": 60})
    for i in range(30):
        m.on_event(Decision(i * 2.0, segment=i, rung=i % 3, bitrate_bps=1e6 * (1 + i % 3), buffer_s=5.0))
        m.on_snapshot({"session_s": i * 2.0, "buffer_s": 5.0, "buffer_cap_s": 30.0, "played_s": i})
    from rich.console import Console

    for w, h in ((80, 24), (200, 60), (60, 20)):
        console = Console(width=w, height=h, record=True, file=open("/dev/null", "w"))
        console.print(render(m, w, h))
        text = console.export_text()
        assert "abrlab play" in text and "counters" in text
        assert max(len(line) for line in text.splitlines()) <= w


def test_braille_chart_and_policy_label():
    chart = braille_chart({"a": [(0, 0), (10, 10)]}, 10, 3, (0, 10), 10, {"a": ""})
    rows = chart.plain.splitlines()
    assert len(rows) == 3 and all(len(r) == 10 for r in rows)
    assert rows[0][-1] != " " and rows[-1][0] != " "      # a rising line: bottom-left to top-right
    assert short_policy("bola(gp=5.0, buffer_target_s=None, use_segment_sizes=False)") == "bola(gp=5.0)"


def test_model_reads_typed_events():
    m = DashboardModel()
    m.on_event(Decision(1.0, segment=0, rung=2, bitrate_bps=2e6, buffer_s=0.0, session_t_s=0.5))
    m.on_event(Decision(3.0, segment=1, rung=1, bitrate_bps=1e6, buffer_s=2.0, session_t_s=2.5))
    m.on_event(Download(3.5, segment=1, rung=1, bytes=250_000, latency_s=0.1, transfer_s=0.9,
                        throughput_bps=2.2e6, buffer_s=3.0, stall_s=0.0, session_t_s=3.0))
    m.on_event(StallStart(4.0, session_t_s=3.5))
    m.on_event(LicenseGranted(5.0, "clearkey", "http://h/license", 0.2, False, [], {}, 720, None))
    assert m.counters["switches"] == 1 and m.counters["stalls"] == 1 and m.state == "stalled"
    assert list(m.bitrate) == [(0.5, 2e6), (2.5, 1e6)]          # on the session clock
    assert list(m.throughput) == [(3.0, 2.2e6)] and m.downloaded == [1]
    assert m.last_decision.rung == 1
    assert m.license == {"status": "granted", "system": "clearkey", "max_height": 720}


def test_live_snapshots_draw_a_latency_line():
    """A live session's snapshots carry its latency, target and rate: the header shows them and
    the lower chart draws the latency line beside the buffer's."""
    m = DashboardModel(title={"content": "live", "policy": "l2a"})
    for i in range(40):
        m.on_snapshot({"session_s": i * 0.5, "buffer_s": 1.0, "buffer_cap_s": 3.5, "played_s": i * 0.5,
                       "live": True, "live_latency_s": 5.0 - i * 0.04, "target_latency_s": 3.5,
                       "playback_rate": 1.04})
    assert len(m.latency) == 40 and m.latency[-1] == (19.5, pytest.approx(3.44), 3.5, 1.04)
    from rich.console import Console

    console = Console(width=120, height=40, record=True, file=open("/dev/null", "w"))
    console.print(render(m, 120, 40))
    text = console.export_text()
    assert "latency 3.44 s → 3.50" in text and "rate ×1.040" in text
    assert "latency target" in text and "buffer and latency" in text
