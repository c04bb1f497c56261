"""Chat first: background model calls (memory extraction) yield to chat on a model this process runs itself.

The embedded llama.cpp server decodes its slots together, so an extraction running next to a chat answer
halves the answer's speed on a small CPU (measured 6.8 → 2–3 tokens/s on 2 cores). `ModelGate` keeps them
apart: a background call starts only while no chat call is active, and a chat call that starts while a
background call runs cancels it (llama.cpp stops generating when the HTTP request goes away); the background
call waits for the next quiet moment and starts again. Background work is deferred, never lost.

Hosted providers scale on their side: the LLM service uses a gate only for the embedded model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import structlog

from agentserver.observability.metrics import LLM_PREEMPTIONS

log = structlog.get_logger(__name__)

T = TypeVar("T")


class ModelGate:
    """Foreground calls run at once; background calls run only when no foreground call is active."""

    def __init__(self) -> None:
        self._foreground = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running: set[asyncio.Future[object]] = set()
        self._preempted: set[asyncio.Future[object]] = set()

    @property
    def busy(self) -> bool:
        return self._foreground > 0

    @asynccontextmanager
    async def foreground(self) -> AsyncIterator[None]:
        self._foreground += 1
        self._idle.clear()
        for task in list(self._running):
            if task not in self._preempted:
                self._preempted.add(task)
                task.cancel()
                LLM_PREEMPTIONS.inc()
                log.info("llm.background_preempted")
        try:
            yield
        finally:
            self._foreground -= 1
            if self._foreground == 0:
                self._idle.set()

    async def background(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call()` when no foreground call is active; restarted from scratch if a foreground call preempts it."""
        while True:
            await self._idle.wait()
            task: asyncio.Future[T] = asyncio.ensure_future(call())
            self._running.add(task)  # type: ignore[arg-type]
            try:
                return await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task in self._preempted and (current is None or current.cancelling() == 0):
                    continue  # preempted, not cancelled by our caller: wait for the next quiet moment
                raise
            finally:
                self._running.discard(task)
                self._preempted.discard(task)
