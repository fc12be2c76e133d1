"""Helpers the tests share: the ../shared folder, bounded event loops, server subprocesses,
event logs, and the agreement tests' constants. Test modules import from here, never from
conftest or from one another (conftest holds only fixtures and the hypothesis profiles)."""
from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from netem.content import Content

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

#: the HTTP-vs-simulator agreement bar, and how often a timing-sensitive case may run
MIN_SAME_RUNG = 0.90
ATTEMPTS = 3          # timing jitter on a shared machine: a case that misses is run again


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the calling test when it does not exist."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


def run_bounded(coro, timeout: float = 30.0):
    """Run a coroutine to completion in a fresh event loop, failing after `timeout` seconds
    (every integration session is bounded)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def first_line(proc, timeout: float = 20.0) -> str:
    """The first line a server subprocess prints (its URL or address), or fail the test."""
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not box:
        proc.kill()
        pytest.fail("no first line on stdout")
    return box[0].strip()


def stop_process(proc, timeout: float = 10.0) -> None:
    """Terminate a server subprocess, kill it if it lingers, and close its stdout."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()


def event_dicts(player) -> list[dict]:
    """A player's events as their JSON lines (`Event.as_dict()`): what `abrlab play --json` prints."""
    return [e.as_dict() for e in player.events_log]


def cbr(c: Content, name: str | None = None) -> Content:
    """`c` with sizes exactly bitrate × duration (what the player estimates from @bandwidth)."""
    sizes = np.rint(c.bitrates_bps[None, :] * c.segment_durations_s[:, None] / 8.0)
    return Content(c.rungs, c.segment_durations_s, sizes, name=name or f"cbr-{c.name}")
