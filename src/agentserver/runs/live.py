"""Runs executing in this process, followed straight from memory (no log round trip on the token path).

The worker opens a `LiveRun` when it starts executing a run and publishes every numbered event to it;
subscribers of this process follow it from any position within the current execution. When the run
stops here (ended, paused, or handed to another worker), the log has every event and followers continue
from it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from agentserver.runs.events import RunEvent


class LiveRun:
    def __init__(self, run_id: uuid.UUID, first_seq: int) -> None:
        self.run_id = run_id
        self.first_seq = first_seq  # the seq of the first event this execution publishes
        self.events: list[RunEvent] = []
        self.closed = False
        self._signal = asyncio.Event()

    def covers(self, after: int) -> bool:
        """Whether every event after `after` is (or will be) here."""
        return after >= self.first_seq - 1

    def publish(self, event: RunEvent) -> None:
        self.events.append(event)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        signal, self._signal = self._signal, asyncio.Event()
        signal.set()

    async def follow(self, after: int, idle_seconds: float) -> AsyncIterator[RunEvent | None]:
        """The events after `after`, live, until the run stops executing here; None after each
        `idle_seconds` without one (streams send a keep-alive)."""
        index = next((i for i, e in enumerate(self.events) if e.seq > after), len(self.events))
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.closed:
                return
            try:
                await asyncio.wait_for(self._signal.wait(), idle_seconds)
            except TimeoutError:
                yield None


class LiveRuns:
    def __init__(self) -> None:
        self._runs: dict[uuid.UUID, LiveRun] = {}
        self._watchers: dict[uuid.UUID, set[asyncio.Event]] = {}

    def open(self, run_id: uuid.UUID, first_seq: int) -> LiveRun:
        live = LiveRun(run_id, first_seq)
        self._runs[run_id] = live
        for watcher in self._watchers.get(run_id, ()):
            watcher.set()
        return live

    def watch(self, run_id: uuid.UUID) -> asyncio.Event:
        """An event set when `run_id` starts executing in this process (followers stop waiting on the log)."""
        watcher = asyncio.Event()
        self._watchers.setdefault(run_id, set()).add(watcher)
        return watcher

    def unwatch(self, run_id: uuid.UUID, watcher: asyncio.Event) -> None:
        watchers = self._watchers.get(run_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[run_id]

    def get(self, run_id: uuid.UUID) -> LiveRun | None:
        return self._runs.get(run_id)

    def close(self, live: LiveRun) -> None:
        if self._runs.get(live.run_id) is live:
            del self._runs[live.run_id]
        live.close()
