"""Background tasks owned by the lifespan: spawned without being awaited, drained at shutdown.

`asyncio.create_task` alone keeps only a weak reference (a task may be garbage-collected mid-flight) and
nothing waits for it at shutdown. `TaskSet.spawn` keeps the reference; `drain()` waits with a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(self._guarded(coroutine, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guarded(coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("tasks.failed", task=name)

    async def drain(self, within: float) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=within)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1)
