"""The event log of every run: what the SSE and WebSocket endpoints replay and follow.

Redis Streams when REDIS_URL is set (one stream per run, ids `0-<seq>`, expired some time after the run
ends), PostgreSQL otherwise (`run_events`, with LISTEN/NOTIFY wake-ups, old rows swept by the workers).
Both keep exactly the events the run's emitter numbered, so `Last-Event-ID: n` means "the events after n"
whichever process answers. Runs executing in this process are also followed straight from memory
(`runs.live`), so the log is written in batches off the token path.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.kit.db import autocommit, engine_of, session_scope
from agentserver.kit.pg_listen import PgListener
from agentserver.kit.redis import AsyncRedis
from agentserver.models import RunEventRow
from agentserver.runs.events import RunEvent

log = structlog.get_logger(__name__)

EVENTS_CHANNEL = "agentserver_run_events"
REDIS_BLOCK_SLICE_SECONDS = 0.25


class EventLog(Protocol):
    async def append(self, run_id: uuid.UUID, events: Sequence[RunEvent]) -> None: ...

    async def read(self, run_id: uuid.UUID, after: int) -> list[RunEvent]: ...

    async def wait(
        self, run_id: uuid.UUID, after: int, within: float, wake: asyncio.Event | None = None
    ) -> list[RunEvent]:
        """The events after `after`, waiting up to `within` seconds for the first one ([] if none came, or
        if `wake` was set first)."""
        ...

    async def last(self, run_id: uuid.UUID) -> RunEvent | None: ...

    async def expire(self, run_id: uuid.UUID) -> None:
        """The run has ended: its log may go after the retention period."""
        ...

    async def delete(self, run_ids: Sequence[uuid.UUID]) -> None: ...

    async def close(self) -> None: ...


def _event(name: str, data: Any, seq: int) -> RunEvent:
    return RunEvent(name, data if isinstance(data, dict) else {}, seq)  # type: ignore[arg-type]


async def _first_set(event: asyncio.Event, other: asyncio.Event | None, within: float) -> bool:
    """Wait until `event` or `other` is set; False on timeout."""
    if other is None:
        try:
            await asyncio.wait_for(event.wait(), within)
        except TimeoutError:
            return False
        return True
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(other.wait())]
    try:
        done, _ = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    return bool(done)


_APPEND = text(
    """
    WITH appended AS (
        INSERT INTO run_events (run_id, seq, event, data)
        SELECT CAST(:run_id AS uuid), seq, name, CAST(data AS jsonb)
        FROM unnest(CAST(:seqs AS integer[]), CAST(:names AS varchar[]), CAST(:datas AS text[])) AS e(seq, name, data)
        RETURNING 1
    )
    SELECT pg_notify(CAST(:channel AS text), CAST(:payload AS text)) FROM (SELECT 1 FROM appended LIMIT 1) AS any_row
    """
)


class PostgresEventLog:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], listener: PgListener | None) -> None:
        self.sessionmaker = sessionmaker
        self.engine = engine_of(sessionmaker)
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        if listener is not None:
            listener.on(EVENTS_CHANNEL, self._wake)
            listener.on_reconnect(self._wake_all)

    def _wake(self, payload: str) -> None:
        try:
            run_id = uuid.UUID(payload)
        except ValueError:
            return
        for waiter in self._waiters.get(run_id, ()):
            waiter.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.set()

    async def append(self, run_id: uuid.UUID, events: Sequence[RunEvent]) -> None:
        if not events:
            return
        params = {
            "run_id": run_id,
            "seqs": [e.seq for e in events],
            "names": [e.name for e in events],
            "datas": [e.json_data() for e in events],
            "channel": EVENTS_CHANNEL,
            "payload": str(run_id),
        }
        try:
            # One statement, committed on its own: a batch of events and the wake-up of their followers.
            async with autocommit(self.engine) as conn:
                await conn.execute(_APPEND, params)
        except IntegrityError:
            # The run was deleted with its session, or these events were already written: nothing to keep.
            log.info("runs.events_not_logged", run_id=str(run_id), events=len(events))

    async def read(self, run_id: uuid.UUID, after: int) -> list[RunEvent]:
        async with autocommit(self.engine) as conn:  # one statement: no BEGIN/ROLLBACK round trips
            rows = await conn.execute(
                select(RunEventRow.seq, RunEventRow.event, RunEventRow.data)
                .where(RunEventRow.run_id == run_id, RunEventRow.seq > after)
                .order_by(RunEventRow.seq)
            )
            return [_event(row.event, row.data, row.seq) for row in rows]

    async def wait(
        self, run_id: uuid.UUID, after: int, within: float, wake: asyncio.Event | None = None
    ) -> list[RunEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        waiter = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(waiter)
        try:
            while True:
                waiter.clear()
                events = await self.read(run_id, after)
                if events or (wake is not None and wake.is_set()):
                    return events
                # Woken with nothing new (the listener reconnected, or another run's wake-up): wait on.
                remaining = deadline - loop.time()
                if remaining <= 0 or not await _first_set(waiter, wake, remaining) or not waiter.is_set():
                    return []
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[run_id]

    async def last(self, run_id: uuid.UUID) -> RunEvent | None:
        async with autocommit(self.engine) as conn:
            row = (
                await conn.execute(
                    select(RunEventRow.seq, RunEventRow.event, RunEventRow.data)
                    .where(RunEventRow.run_id == run_id)
                    .order_by(RunEventRow.seq.desc())
                    .limit(1)
                )
            ).first()
        return _event(row.event, row.data, row.seq) if row else None

    async def expire(self, run_id: uuid.UUID) -> None:
        return None  # swept by `sweep()` once the run is older than the retention period

    async def delete(self, run_ids: Sequence[uuid.UUID]) -> None:
        if run_ids:
            async with session_scope(self.sessionmaker) as session:
                await session.execute(delete(RunEventRow).where(RunEventRow.run_id.in_(run_ids)))

    async def sweep(self, retention_seconds: float) -> int:
        """Delete the logs of runs that ended more than `retention_seconds` ago."""
        async with session_scope(self.sessionmaker) as session:
            result = await session.execute(
                text(
                    "DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE ended_at IS NOT NULL "
                    "AND ended_at < now() - make_interval(secs => :seconds))"
                ),
                {"seconds": retention_seconds},
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def close(self) -> None:
        self._wake_all()


class RedisEventLog:
    """One Redis stream per run. A client of its own: blocking reads must not share the fail-fast one."""

    def __init__(self, url: str, key_prefix: str, retention_seconds: int) -> None:
        self.redis: AsyncRedis = Redis.from_url(url, socket_timeout=30, socket_connect_timeout=2)
        self.prefix = key_prefix
        self.retention_seconds = retention_seconds

    def key(self, run_id: uuid.UUID) -> str:
        return f"{self.prefix}:run:{run_id}:events"

    @staticmethod
    def _parse(entries: Any) -> list[RunEvent]:
        events = []
        for entry_id, fields in entries or ():
            raw_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            seq = int(raw_id.split("-", 1)[1])
            name = fields[b"e"].decode()
            events.append(_event(name, json.loads(fields[b"d"]), seq))
        return events

    async def append(self, run_id: uuid.UUID, events: Sequence[RunEvent]) -> None:
        if not events:
            return
        key = self.key(run_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(key, {"e": event.name, "d": event.json_data()}, id=f"0-{event.seq}")
            # Until the run ends (expire() shortens it): a log left behind by a crashed worker still goes.
            pipe.expire(key, max(self.retention_seconds, 86_400))
            results = await pipe.execute(raise_on_error=False)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            log.warning("runs.events_not_logged", run_id=str(run_id), error=type(failed[0]).__name__)

    async def read(self, run_id: uuid.UUID, after: int) -> list[RunEvent]:
        return self._parse(await self.redis.xrange(self.key(run_id), min=f"(0-{after}", max="+"))

    async def wait(
        self, run_id: uuid.UUID, after: int, within: float, wake: asyncio.Event | None = None
    ) -> list[RunEvent]:
        # A blocking XREAD cannot be interrupted cleanly: block in short slices and look at `wake` between.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            block = min(REDIS_BLOCK_SLICE_SECONDS, deadline - loop.time())
            if block <= 0 or (wake is not None and wake.is_set()):
                return []
            result = await self.redis.xread({self.key(run_id): f"0-{after}"}, block=max(1, int(block * 1000)))
            if result:
                return self._parse(result[0][1])

    async def last(self, run_id: uuid.UUID) -> RunEvent | None:
        events = self._parse(await self.redis.xrevrange(self.key(run_id), max="+", min="-", count=1))
        return events[0] if events else None

    async def expire(self, run_id: uuid.UUID) -> None:
        await self.redis.expire(self.key(run_id), self.retention_seconds)

    async def delete(self, run_ids: Sequence[uuid.UUID]) -> None:
        if run_ids:
            await self.redis.delete(*(self.key(run_id) for run_id in run_ids))

    async def close(self) -> None:
        await self.redis.aclose()  # type: ignore[attr-defined]
