"""Where a session's events go: the log, the listeners and the event streams.

The player publishes typed events (`player.core.events`) here; a dashboard, the command
line's progress lines and JSON log, or a test subscribes with `add_listener(fn)` (called
at once for every event; an awaitable it returns runs as a task) or reads `stream()` (an
async iterator that ends when the session closes the hub).
"""
from __future__ import annotations

import asyncio
import inspect
from collections import deque
from typing import Any, AsyncIterator, Callable, Coroutine

from player.core.events import Event


#: the newest events the log keeps (a live session runs for hours; listeners see them all)
MAX_LOG_EVENTS = 20_000


class EventHub:
    """Every event published handed to listeners and streams; the newest `MAX_LOG_EVENTS`
    kept, in order (`log`)."""

    def __init__(self) -> None:
        self.log: deque[Event] = deque(maxlen=MAX_LOG_EVENTS)
        self.listeners: list[Callable[[Event], Any]] = []
        self._queues: list[asyncio.Queue] = []
        self._tasks: set[asyncio.Task] = set()

    def add_listener(self, fn: Callable[[Event], Any]) -> None:
        self.listeners.append(fn)

    def publish(self, event: Event) -> None:
        self.log.append(event)
        for fn in list(self.listeners):
            res = fn(event)
            if inspect.isawaitable(res):
                self.spawn(res)
        for q in self._queues:
            q.put_nowait(event)

    async def stream(self) -> AsyncIterator[Event]:
        """Every event from now on, until `close`."""
        q: asyncio.Queue = asyncio.Queue()
        self._queues.append(q)
        try:
            while True:
                event = await q.get()
                if event is None:
                    return
                yield event
        finally:
            if q in self._queues:
                self._queues.remove(q)

    def close(self) -> None:
        """End every stream (after the session's last event)."""
        for q in self._queues:
            q.put_nowait(None)

    def spawn(self, coro: Coroutine | Any) -> asyncio.Task:
        """Run `coro` as a task the hub keeps (and `cancel_tasks` ends)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def tasks(self) -> list[asyncio.Task]:
        return list(self._tasks)
