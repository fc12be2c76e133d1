"""One run per output directory: an advisory lock (fcntl) on `OUT/.abrlab.lock`.

Two runs appending to the same `sessions.csv` would each compute every missing session and
write it twice. The lock is held for the whole run; the file says who holds it (pid, host,
start time) so a second run can name it. The kernel releases the lock when the holder exits,
however it exits (a SIGKILL included), so a stale file never blocks anyone. Where fcntl is
missing (Windows) runs are not locked.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from netem.errors import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".abrlab.lock"


class OutputBusyError(UsageError):
    """Another run holds the output directory."""


def holder(out_dir: Path) -> str:
    """Who the lock file says holds `out_dir` (a phrase), or "another run" when unknown."""
    try:
        info = json.loads((Path(out_dir) / LOCK_NAME).read_text() or "{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"


@contextmanager
def locked(out_dir: Path, command: str = "compare") -> Iterator[None]:
    """Hold `out_dir` for this process, or raise `OutputBusyError` naming the holder."""
    out_dir = Path(out_dir)
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = out_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(f"{out_dir} is in use by another abrlab run ({holder(out_dir)}); "
                                  "wait for it to finish or choose another --out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        try:
            yield
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:  # pragma: no cover
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
