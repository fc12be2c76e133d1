"""Shared test fixtures: the ../shared data folder (skip when absent) and hypothesis profiles.

Profiles: `ci` (default, used by `make test`) keeps the property suite short; `thorough`
runs many more examples: `HYPOTHESIS_PROFILE=thorough make test`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests using it skip cleanly on a fresh clone."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (public research data is not part of the repository)")
    return SHARED


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the calling test when it does not exist."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


def run_bounded(coro, timeout: float = 30.0):
    """Run a coroutine to completion in a fresh event loop, failing after `timeout` seconds
    (every integration session is bounded)."""
    import asyncio

    return asyncio.run(asyncio.wait_for(coro, timeout))


def first_line(proc, timeout: float = 20.0) -> str:
    """The first line a server subprocess prints (its URL or address), or fail the test."""
    import threading

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
    import subprocess

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
