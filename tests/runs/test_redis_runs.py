"""Runs with REDIS_URL set: the event log is a Redis stream, and everything else works the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from agentserver.models import RunStatus
from agentserver.runs.eventlog import RedisEventLog
from tests.chat.conftest import ChatHarness, collapse, parse_sse, start_harness
from tests.ratelimit.apps import REDIS_TEST_URL
from tests.runs.conftest import RUN_OVERRIDES, latest_run_id, replay, stream_turn, wait_for_status

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
async def on_redis(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    prefix = f"agentserver-test-{uuid.uuid4().hex[:12]}"
    settings = await own_database_settings(
        "agentserver_runs_redis", **RUN_OVERRIDES, redis_url=REDIS_TEST_URL, redis_key_prefix=prefix
    )
    harness, lifespan = await start_harness(settings)
    yield harness
    await lifespan.__aexit__(None, None, None)
    redis = Redis.from_url(REDIS_TEST_URL)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def fake(on_redis: ChatHarness) -> FakeChatModel:
    await on_redis.settle()
    on_redis.fake.set_script([])
    return on_redis.fake


class TestRunsOnRedis:
    async def test_the_log_is_a_redis_stream_that_replays_from_any_event(
        self, on_redis: ChatHarness, fake: FakeChatModel
    ) -> None:
        assert isinstance(on_redis.state["event_log"], RedisEventLog)
        fake.set_script(["The answer is here."])
        headers = await on_redis.new_user()
        session_id = await on_redis.new_session(headers)
        live = await stream_turn(on_redis, headers, session_id, "question")
        run_id = live.headers["x-run-id"]

        everything = await replay(on_redis, headers, run_id)
        after_one = await replay(on_redis, headers, run_id, after=1)
        redis_log: RedisEventLog = on_redis.state["event_log"]

        assert [(name, data) for _, name, data in everything] == parse_sse(live.text)
        assert after_one == everything[1:]
        assert await redis_log.redis.xlen(redis_log.key(uuid.UUID(run_id))) == len(everything)
        ttl = await redis_log.redis.ttl(redis_log.key(uuid.UUID(run_id)))
        assert 0 < ttl <= on_redis.settings.run_events_retention_seconds

    async def test_cancel(self, on_redis: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["Hello there, this is long"], gate=asyncio.Event())
        headers = await on_redis.new_user()
        session_id = await on_redis.new_session(headers)
        streaming = asyncio.create_task(stream_turn(on_redis, headers, session_id, "talk"))
        await fake.wait_streaming()
        run_id = await latest_run_id(on_redis, headers, session_id)

        async with on_redis.client() as http:
            await http.post(f"/api/v1/runs/{run_id}/cancel", headers=headers)
        events = collapse(parse_sse((await streaming).text))

        assert events[-1][1]["finish_reason"] == "cancelled"
        assert (await wait_for_status(on_redis, run_id, RunStatus.cancelled)).status is RunStatus.cancelled
