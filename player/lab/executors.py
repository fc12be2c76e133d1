"""Where a sweep's chunks run — in-process, a local process pool, or a Dask cluster — and
how a run stops.

`run_all` hands every chunk's result to `on_result` as the chunk finishes (any order);
results are identical whichever executor runs them.

Stopping. SIGINT and SIGTERM (by PID, from a terminal, from a job manager) raise `Stopped`
in the main process (`stop_signals`); a signal that lands while a result is being saved is
held until the save is done (`deferred`), so a row is never torn by our own handler. On the
way out `run_all` saves every chunk that finished meanwhile, then terminates the workers:
nothing waits for a running chunk. Workers ignore SIGINT (the parent decides) and exit by
themselves when the parent is gone, however it went (SIGKILL included): on Linux the kernel
kills them (PR_SET_PDEATHSIG), elsewhere a watchdog thread sees the parent change.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from multiprocessing.connection import wait as wait_ready
from typing import Any, Callable, Iterator, Sequence, TypeVar

from netem.errors import AbrlabError, InputError

T = TypeVar("T")
R = TypeVar("R")

PARENT_POLL_S = 0.5         # how often a worker's watchdog looks for its parent
STOP_GRACE_S = 2.0          # how long a terminated worker may take to go before it is killed
DRAIN_S = 0.5               # on a stop, how long a result already being sent may take to arrive
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by a signal (`signum`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return SIGNAL_EXIT.get(self.signum, 128 + self.signum)


class WorkerError(RuntimeError):
    """A worker failed in a way that is not the user's doing (its traceback is the message)."""


class WorkerLost(AbrlabError):
    """A worker process died (killed, out of memory) while it ran a chunk."""


class _SignalState:
    depth = 0
    pending: int | None = None


_STATE = _SignalState()


def _on_signal(signum: int, frame: Any) -> None:
    if _STATE.depth:
        _STATE.pending = signum
        return
    raise Stopped(signum)


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Stopped` while inside (main thread only; else no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop signal that lands inside until the block is done (saving a result)."""
    _STATE.depth += 1
    try:
        yield
    except BaseException:
        _STATE.depth -= 1
        raise
    _STATE.depth -= 1
    if _STATE.depth == 0 and _STATE.pending is not None:
        signum, _STATE.pending = _STATE.pending, None
        raise Stopped(signum)


def run_all(work: Callable[[T], R], items: Sequence[T], on_result: Callable[[T, R], None],
            executor: str = "process", jobs: int | None = None) -> None:
    """Call `on_result(item, work(item))` for every item as it finishes (in any order).
    executor: inprocess | process | dask://HOST:PORT. `work` must be picklable (a module-level
    function) for the process pool and Dask."""
    if not items:
        return
    if executor == "inprocess" or (executor == "process" and (jobs == 1 or len(items) == 1)):
        for item in items:
            on_result(item, work(item))
        return
    if executor == "process":
        _run_pool(work, items, on_result, jobs or os.cpu_count() or 1)
        return
    if executor.startswith(("dask://", "tcp://")):
        _run_dask(work, items, on_result, "tcp://" + executor.split("://", 1)[1])
        return
    raise InputError(f"unknown executor {executor!r}; use inprocess, process or dask://HOST:PORT")


def check_executor(executor: str) -> None:
    """Fail early (before anything is written) on an executor that cannot be used."""
    if executor in ("inprocess", "process"):
        return
    if not executor.startswith(("dask://", "tcp://")):
        raise InputError(f"unknown executor {executor!r}; use inprocess, process or dask://HOST:PORT")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError("the dask executor needs the 'dask' extra: pip install 'abrlab[dask]'") from None


# -- the local pool ----------------------------------------------------------------------------
def _watch_parent(parent_pid: int) -> None:
    """Make this worker exit when its parent does (the parent may be SIGKILLed)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)   # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog does it
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    if os.getppid() != parent_pid:  # the parent went before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="abrlab-parent-watchdog", daemon=True).start()


def _portable(exc: BaseException) -> BaseException:
    """An exception that survives pickling: ours as they are, anything else with its traceback."""
    if isinstance(exc, AbrlabError):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:  # pragma: no cover
            return AbrlabError(str(exc))
    return WorkerError("".join(traceback.format_exception(exc)).rstrip())


def _worker_main(conn, work: Callable[[Any], Any], parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a terminal's Ctrl-C: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # fresh stream objects: a forked copy may carry the lock of a write another thread of the
    # parent (the progress display) was in the middle of, and block the first warning forever
    sys.stdout = open(os.dup(1), "w", buffering=1)
    sys.stderr = open(os.dup(2), "w", buffering=1)
    _watch_parent(parent_pid)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, item = msg
        try:
            reply = ("ok", index, work(item))
        except Exception as exc:
            reply = ("error", index, _portable(exc))
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


class _Pool:
    """`jobs` worker processes, each with its own pipe; chunks handed out one at a time to
    whichever worker is free (largest first is the caller's order), so the load balances."""

    def __init__(self, work: Callable[[Any], Any], jobs: int) -> None:
        methods = multiprocessing.get_all_start_methods()
        # fork: workers inherit what the parent loaded (traces, content) instead of reloading
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.procs = []
        self.conns = []
        for _ in range(jobs):
            parent_end, child_end = ctx.Pipe()
            p = ctx.Process(target=_worker_main, args=(child_end, work, os.getpid()), daemon=True,
                            name="abrlab-worker")
            p.start()
            child_end.close()
            self.procs.append(p)
            self.conns.append(parent_end)

    def stop(self, graceful: bool) -> None:
        for c in self.conns:
            if graceful:
                try:
                    c.send(None)
                except OSError:
                    pass
        for p in self.procs:
            if not graceful and p.is_alive():
                p.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        for c in self.conns:
            c.close()


def _run_pool(work: Callable[[T], R], items: Sequence[T], on_result: Callable[[T, R], None], jobs: int) -> None:
    todo = deque(range(len(items)))
    pool = _Pool(work, min(jobs, len(items)))
    busy: dict[int, int] = {}          # worker -> item index
    ok = False

    def died(w: int) -> WorkerLost:
        code = pool.procs[w].exitcode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        return WorkerLost(f"a worker process died ({how}); the sessions it was simulating were not saved "
                           "(re-run to resume)")

    draining = [False]                 # stopping: finished results are saved, nothing new goes out

    # A stop signal waits (`deferred`) while a message is half sent or half read, and while a
    # result is saved: a pipe left mid-message would block the drain below forever.
    def hand_out(w: int) -> None:
        if todo and not draining[0]:
            with deferred():
                i = todo.popleft()
                try:
                    pool.conns[w].send((i, items[i]))
                except OSError:
                    raise died(w) from None
                busy[w] = i

    def receive(w: int) -> None:
        with deferred():
            try:
                kind, i, payload = pool.conns[w].recv()
            except (EOFError, OSError):
                raise died(w) from None
            del busy[w]
            if kind == "error":
                raise payload
            hand_out(w)             # the worker goes on while its result is saved here
            on_result(items[i], payload)

    try:
        for w in range(len(pool.procs)):
            hand_out(w)
        while busy:
            conn_of = {pool.conns[w]: w for w in busy}
            ready = wait_ready([*conn_of, *(pool.procs[w].sentinel for w in busy)])
            for c in ready:
                if c in conn_of:
                    receive(conn_of[c])
            for w in list(busy):
                if pool.procs[w].exitcode is not None and not pool.conns[w].poll(0):
                    raise died(w)
        ok = True
    except BaseException:
        # save what finished meanwhile (a result in flight gets DRAIN_S to land), then stop the
        # rest without waiting for them
        draining[0] = True
        while busy:
            ready = wait_ready([pool.conns[w] for w in busy], timeout=DRAIN_S)
            if not ready:
                break
            for w in [w for w in list(busy) if pool.conns[w] in ready]:
                try:
                    receive(w)
                except Exception:  # a dead worker, a failed chunk: the first error is the one reported
                    busy.pop(w, None)
        raise
    finally:
        pool.stop(graceful=ok)


# -- Dask ----------------------------------------------------------------------------------------
def _run_dask(work: Callable[[T], R], items: Sequence[T], on_result: Callable[[T, R], None], address: str) -> None:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise InputError("the dask executor needs the 'dask' extra: pip install 'abrlab[dask]'") from None
    try:
        client = Client(address, timeout="10s")
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        futures = client.map(work, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        saved: set[int] = set()
        try:
            for f in dask_completed(futures):
                i = index[f.key]
                on_result(items[i], f.result())
                saved.add(i)
        except BaseException:
            for i, f in enumerate(futures):
                if i not in saved and f.status == "finished":
                    try:
                        on_result(items[i], f.result())
                    except Exception:  # pragma: no cover
                        pass
            client.cancel(futures)
            raise
    finally:
        client.close()
