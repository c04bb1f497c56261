"""Following a run's events from any process: live from memory when it executes here, else from the log.

`follow(run_id, after)` yields every event after `after` in order, exactly once, and stops after the
event the run's stream ends on (`done`, `error`, `approval_required`). It yields None after a stretch of
silence so transports can send a keep-alive. If the log holds no ending (a worker died before writing it,
or the log expired), the run's row tells how it ended.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.kit.db import is_database_outage
from agentserver.kit.errors import DatabaseUnavailable
from agentserver.models import Run, RunStatus
from agentserver.runs import events
from agentserver.runs.eventlog import EventLog
from agentserver.runs.events import RunEvent
from agentserver.runs.live import LiveRuns

T = TypeVar("T")

# The stream of a run that ended is over for a follower that already has its last event.
_NOTHING_MORE = RunEvent("done", {})
IDLE_SECONDS = 15.0  # keep-alive cadence; also how often a silent run's row is looked at
WAIT_SECONDS = 2.0
OUTAGE_PATIENCE_SECONDS = 60.0
LOG_GRACE_SECONDS = 2.0


class RunStreams:
    def __init__(
        self, event_log: EventLog, live_runs: LiveRuns, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self.log = event_log
        self.live = live_runs
        self.sessionmaker = sessionmaker

    async def follow(self, run_id: uuid.UUID, after: int = 0, *, fresh: bool = False) -> AsyncIterator[RunEvent | None]:
        """`fresh`: the run was just created by the caller (nothing to look up before waiting for it)."""
        live = self.live.get(run_id)
        if not fresh and (live is None or not live.covers(after)):
            # Maybe a run that already ended: replay what is after `after` and stop, without waiting.
            found = await self._patiently(partial(self.log.read, run_id, after))
            for event in found:
                yield event
                after = event.seq
                if event.terminal:
                    return
            if not found:
                ending = await self._patiently(partial(self._ending_from_row, run_id, after))
                if ending is _NOTHING_MORE:
                    return
                if ending is not None:
                    async for event in self._rest_of_log(run_id, after):
                        yield event
                        after = event.seq
                        if event.terminal:
                            return
                    yield ending
                    return
        silent = 0.0
        while True:
            live = self.live.get(run_id)
            if live is not None and live.covers(after):
                async for item in live.follow(after, IDLE_SECONDS):
                    yield item
                    if item is None:
                        continue
                    after = item.seq
                    if item.terminal:
                        return
                continue  # it stopped executing here without an ending: handed over, the log goes on
            watcher = self.live.watch(run_id)
            try:
                found = await self._patiently(partial(self.log.wait, run_id, after, WAIT_SECONDS, wake=watcher))
            finally:
                self.live.unwatch(run_id, watcher)
            if found:
                silent = 0.0
                for event in found:
                    yield event
                    after = event.seq
                    if event.terminal:
                        return
                continue
            if watcher.is_set():
                continue
            silent += WAIT_SECONDS
            if silent >= IDLE_SECONDS:
                silent = 0.0
                yield None
            ending = await self._patiently(partial(self._ending_from_row, run_id, after))
            if ending is _NOTHING_MORE:
                return
            if ending is not None:
                async for event in self._rest_of_log(run_id, after):
                    yield event
                    after = event.seq
                    if event.terminal:
                        return
                yield ending
                return

    async def _rest_of_log(self, run_id: uuid.UUID, after: int) -> AsyncIterator[RunEvent]:
        """The row says the run ended; its last events may still be on their way to the log (a worker
        writes them right after the run's transaction): wait for them a little."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOG_GRACE_SECONDS
        while (left := deadline - loop.time()) > 0:
            found = await self._patiently(partial(self.log.wait, run_id, after, left))
            for event in found:
                yield event
                after = event.seq
                if event.terminal:
                    return

    async def _patiently(self, read: Callable[[], Awaitable[T]]) -> T:
        """A read of the log or of the run's row that rides out a database (or Redis) outage: a run outlives
        one (its worker resumes it when the database is back), so its followers wait for it too, up to
        OUTAGE_PATIENCE_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            try:
                return await read()
            except Exception as exc:
                if not _transient(exc):
                    raise
                deadline = deadline or loop.time() + OUTAGE_PATIENCE_SECONDS
                if loop.time() > deadline:
                    raise DatabaseUnavailable() from exc
                await asyncio.sleep(0.5)

    async def _ending_from_row(self, run_id: uuid.UUID, after: int) -> RunEvent | None:
        """How the run ended, if it did (None: still going). `_NOTHING_MORE` when the follower has already
        seen the logged ending."""
        async with self.sessionmaker() as session:
            run = await session.get(Run, run_id)
        if run is None:
            return events.error("RunNotFound", "Run not found")
        ending = ending_of(run)
        if ending is None:
            return None
        last = await self.log.last(run_id)
        if last is not None and last.terminal and last.seq <= after:
            return _NOTHING_MORE
        return ending


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseUnavailable | RedisConnectionError | RedisTimeoutError) or is_database_outage(exc)


def ending_of(run: Run) -> RunEvent | None:
    """The event a run's stream ends on, from its row (None while it is pending or running)."""
    if run.status in (RunStatus.success, RunStatus.cancelled):
        reason = "complete" if run.status is RunStatus.success else "cancelled"
        message_id = str(run.assistant_message_id) if run.assistant_message_id else None
        return events.done(message_id, run.usage or {}, reason)
    if run.status is RunStatus.error:
        return events.error(run.error or "InternalServerError", run.error_detail or "Internal server error")
    if run.status is RunStatus.interrupted:
        return events.approval_required(str(run.id), run.interrupt or {})
    return None
