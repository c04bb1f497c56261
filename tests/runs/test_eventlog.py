"""The event log contract, for both backends: PostgreSQL (`run_events` + NOTIFY) and Redis Streams."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from agentserver.runs import events
from agentserver.runs.eventlog import EventLog, PostgresEventLog, RedisEventLog
from agentserver.runs.events import RunEvent
from tests.chat.conftest import ChatHarness
from tests.ratelimit.apps import REDIS_TEST_URL

pytestmark = pytest.mark.redis


def numbered(*items: RunEvent) -> list[RunEvent]:
    return [event.with_seq(seq) for seq, event in enumerate(items, start=1)]


async def new_run(harness: ChatHarness) -> uuid.UUID:
    """A run row (the PostgreSQL log references it)."""
    headers = await harness.new_user()
    session_id = await harness.new_session(headers)
    run_id = uuid.uuid4()
    async with harness.state["sessionmaker"]() as session:
        user_id = await session.scalar(text("SELECT user_id FROM chat_sessions WHERE id = :s"), {"s": session_id})
        await session.execute(
            text(
                "INSERT INTO runs (id, session_id, user_id, status, multitask_strategy, attempt) "
                "VALUES (:id, :s, :u, 'success', 'reject', 1)"
            ),
            {"id": run_id, "s": session_id, "u": user_id},
        )
        await session.commit()
    return run_id


@pytest.fixture(params=["postgres", "redis"])
async def event_log(request: pytest.FixtureRequest, runs: ChatHarness) -> AsyncIterator[EventLog]:
    if request.param == "postgres":
        log: EventLog = PostgresEventLog(runs.state["sessionmaker"], runs.state["listener"])
    else:
        log = RedisEventLog(REDIS_TEST_URL, f"agentserver-test-{uuid.uuid4().hex[:12]}", retention_seconds=60)
    yield log
    await log.close()


class TestEventLogContract:
    async def test_reads_what_was_appended_in_order(self, runs: ChatHarness, event_log: EventLog) -> None:
        run_id = await new_run(runs)
        written = numbered(
            events.metadata("r", "s"), events.token("Hel"), events.token("lo"), events.done("m", {}, "complete")
        )

        await event_log.append(run_id, written[:2])
        await event_log.append(run_id, written[2:])

        assert await event_log.read(run_id, 0) == written
        assert await event_log.read(run_id, 2) == written[2:]
        assert await event_log.read(run_id, 4) == []
        assert await event_log.last(run_id) == written[-1]

    async def test_an_unknown_run_has_no_events(self, event_log: EventLog) -> None:
        assert await event_log.read(uuid.uuid4(), 0) == []
        assert await event_log.last(uuid.uuid4()) is None

    async def test_wait_returns_at_once_when_events_are_there(self, runs: ChatHarness, event_log: EventLog) -> None:
        run_id = await new_run(runs)
        await event_log.append(run_id, numbered(events.token("x")))

        assert [e.seq for e in await event_log.wait(run_id, 0, 5.0)] == [1]

    async def test_wait_wakes_up_for_new_events(self, runs: ChatHarness, event_log: EventLog) -> None:
        run_id = await new_run(runs)
        first, second = numbered(events.token("a"), events.token("b"))
        await event_log.append(run_id, [first])
        waiting = asyncio.create_task(event_log.wait(run_id, 1, 10.0))
        await asyncio.sleep(0.2)

        await event_log.append(run_id, [second])

        assert await asyncio.wait_for(waiting, 5) == [second]

    async def test_wait_gives_up_after_its_time_or_when_woken(self, runs: ChatHarness, event_log: EventLog) -> None:
        run_id = await new_run(runs)
        wake = asyncio.Event()
        woken = asyncio.create_task(event_log.wait(run_id, 0, 30.0, wake=wake))
        await asyncio.sleep(0.1)
        wake.set()

        assert await event_log.wait(run_id, 0, 0.2) == []
        assert await asyncio.wait_for(woken, 5) == []

    async def test_delete_forgets_the_run(self, runs: ChatHarness, event_log: EventLog) -> None:
        run_id = await new_run(runs)
        await event_log.append(run_id, numbered(events.token("x")))

        await event_log.delete([run_id])

        assert await event_log.read(run_id, 0) == []
