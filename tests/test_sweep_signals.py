"""Stopping a sweep: SIGTERM and SIGINT by PID stop the workers at once and save every
finished chunk; SIGKILL of `compare` leaves no worker behind (player/lab/executors.py).

Real processes and real signals, every wait bounded."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labdata import REPO, compare_cmd, csv_lines, make_workload
from player.lab import executors
from player.lab.executors import Stopped, run_all
from player.lab.results import CSV_FIELDS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the workers")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, whichever of its threads started them (the
    `task/<pid>/children` file lists only the main thread's)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead child of a dead parent may wait for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture()
def long_sweep(tmp_path):
    """A compare run with two workers that lasts far longer than the test waits (4,000,000
    sessions: about 45 s on two cores at this workload's 90,000 sessions/s; at 400,000 it
    had sometimes ended before a slow poll saw its workers)."""
    traces, movie = make_workload(tmp_path)
    out = tmp_path / "out"
    cmd = compare_cmd(traces, movie, out, "--jobs", "2", "--repeat-to", "2000000", "--chunk-size", "2000",
                      abr="bba,bola")
    procs, workers = [], set()

    def start():
        p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        return p

    def workers_of(p) -> list[int]:
        """The running workers of `p`, remembered so that none outlives the test."""
        found = [w for w in children(p.pid) if running(w)]
        workers.update(found)
        return found

    yield start, workers_of, out
    for p in procs:
        workers_of(p)
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)
    for w in workers:       # only if the code under test left them behind
        if running(w):
            os.kill(w, signal.SIGKILL)


def saved_rows(out: Path) -> int:
    """Rows in sessions.csv, counted by line ends: the file grows by tens of MB/s while the
    tests poll it, and parsing it whole each time had made a poll last as long as the sweep."""
    path = out / "sessions.csv"
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return max(0, sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")) - 1)


def test_workers_exit_when_compare_is_killed(long_sweep):
    start, workers_of, out = long_sweep
    p = start()
    workers = wait_for(lambda: (lambda ws: ws if len(ws) >= 2 else None)(workers_of(p)), 60, "two workers")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    wait_for(lambda: not any(running(w) for w in workers), 10, "the orphaned workers to exit")


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_by_pid_stops_at_once_and_says_what_is_saved(long_sweep, sig, status):
    start, workers_of, out = long_sweep
    p = start()
    wait_for(lambda: saved_rows(out) >= 2000, 120, "the first saved rows")
    workers = workers_of(p)
    assert workers
    p.send_signal(sig)
    _, err = p.communicate(timeout=20)
    assert p.returncode == status, err[-2000:]
    m = re.search(r"stopped by (\w+): ([\d,]+) of 4,000,000 sessions are saved", err)
    assert m, err[-2000:]
    assert m.group(1) == signal.Signals(sig).name
    assert int(m.group(2).replace(",", "")) == saved_rows(out)
    assert all(len(r) == len(CSV_FIELDS) for r in csv_lines(out / "sessions.csv"))
    wait_for(lambda: not any(running(w) for w in workers), 10, "the workers to exit")


def finish(item: str) -> str:
    """Work for the pool test: leave a mark, then return (a module-level function: picklable)."""
    Path(item + ".done").touch()
    return item


def test_results_that_finished_meanwhile_are_saved_on_a_stop(tmp_path):
    items = [str(tmp_path / "a"), str(tmp_path / "b")]
    saved = []

    def on_result(item, result):
        saved.append(result)
        if len(saved) == 1:     # the first result: stop once the other chunk has finished too
            wait_for(lambda: all(Path(i + ".done").exists() for i in items), 30, "both chunks")
            raise Stopped(signal.SIGTERM)

    with pytest.raises(Stopped):
        run_all(finish, items, on_result, "process", jobs=2)
    assert sorted(saved) == sorted(items)


def test_a_worker_that_dies_is_one_line_not_a_hang(tmp_path):
    with pytest.raises(executors.WorkerLost, match="killed by SIGKILL"):
        run_all(die, [1, 2], lambda item, result: None, "process", jobs=2)


def die(item: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return item
