"""The Agent Server API with REDIS_URL set: stream-mode events go through the Redis event log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from agentserver.config import Settings
from agentserver.runs.eventlog import RedisEventLog
from tests.agent_protocol.conftest import OVERRIDES, new_caller
from tests.agent_protocol.test_sdk import HI
from tests.chat.conftest import ChatHarness, serving, start_harness
from tests.ratelimit.apps import REDIS_TEST_URL

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
async def on_redis(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    prefix = f"agentserver-test-{uuid.uuid4().hex[:12]}"
    settings = await own_database_settings(
        "agentserver_langgraph_redis", **OVERRIDES, redis_url=REDIS_TEST_URL, redis_key_prefix=prefix
    )
    harness, lifespan = await start_harness(settings)
    yield harness
    await lifespan.__aexit__(None, None, None)
    redis = Redis.from_url(REDIS_TEST_URL)
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()  # type: ignore[attr-defined]


class TestOnRedis:
    async def test_a_background_run_is_streamed_from_the_redis_log(self, on_redis: ChatHarness) -> None:
        assert isinstance(on_redis.state["event_log"], RedisEventLog)
        on_redis.fake.set_script(["From Redis"])
        async with serving(on_redis.asgi) as url:
            caller = await new_caller(on_redis, url)
            thread = await caller.client.threads.create()
            run = await caller.client.runs.create(thread["thread_id"], "agent", input=HI)
            await caller.client.runs.join(thread["thread_id"], run["run_id"])

            parts = [
                p
                async for p in caller.client.runs.join_stream(
                    thread["thread_id"], run["run_id"], stream_mode=["values", "messages-tuple"]
                )
            ]
            await caller.client.aclose()

        assert parts[0].event == "metadata"
        assert [(m["type"], m["content"]) for m in parts[-1].data["messages"]] == [
            ("human", "Hi"),
            ("ai", "From Redis"),
        ]
        assert "".join(p.data[0]["content"] for p in parts if p.event == "messages") == "From Redis"
