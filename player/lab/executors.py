"""Where a sweep's chunks run: in-process, a local process pool, or a Dask cluster.

Every executor yields each chunk's rows as the chunk finishes; results are identical
whichever runs them.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterator, Sequence, TypeVar

from netem.errors import InputError
T = TypeVar("T")
R = TypeVar("R")


def run_all(work: Callable[[T], R], chunks: Sequence[T], executor: str = "process",
            jobs: int | None = None) -> Iterator[R]:
    """Yield `work(chunk)` for every chunk as it finishes (in any order).
    executor: inprocess | process | dask://HOST:PORT. `work` must be picklable (a module-level
    function) for the process pool and Dask."""
    if not chunks:
        return
    if executor == "inprocess" or (executor == "process" and (jobs == 1 or len(chunks) == 1)):
        for c in chunks:
            yield work(c)
        return
    if executor == "process":
        workers = jobs or os.cpu_count() or 1
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(work, c) for c in chunks]
            try:
                for f in as_completed(futures):
                    yield f.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return
    if executor.startswith(("dask://", "tcp://")):
        try:
            from distributed import Client, as_completed as dask_completed
        except ImportError:
            raise InputError("the dask executor needs the 'dask' extra: pip install 'abrlab[dask]'") from None
        address = "tcp://" + executor.split("://", 1)[1]
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:
            futures = client.map(work, list(chunks), pure=False)
            for f in dask_completed(futures):
                yield f.result()
        finally:
            client.close()
        return
    raise InputError(f"unknown executor {executor!r}; use inprocess, process or dask://HOST:PORT")
