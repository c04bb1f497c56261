"""ResponseCache: the request key, per-user isolation, TTL, LRU bound, both backends, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from prometheus_client import REGISTRY

from agentserver.cache import ResponseCache, request_key
from agentserver.kit.redis import close_redis, create_redis
from tests.ratelimit.apps import DEAD_REDIS_URL, REDIS_TEST_URL, Apps, redis_keys


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return expression


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return city


MESSAGES = [SystemMessage("You are helpful."), HumanMessage("What is 2+2?")]
ANSWER = AIMessage("4", usage_metadata={"input_tokens": 10, "output_tokens": 1, "total_tokens": 11})


def cache_requests(result: str) -> float:
    return REGISTRY.get_sample_value("agentserver_cache_requests_total", {"result": result}) or 0.0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[ResponseCache]:
    if request.param == "memory":
        yield ResponseCache(60)
        return
    client = create_redis(REDIS_TEST_URL)
    yield ResponseCache(60, client, key_prefix=redis_prefix)
    await close_redis(client)


class TestRequestKey:
    def test_is_stable(self) -> None:
        assert request_key("m", MESSAGES, [calculator], {"temperature": 0}) == request_key(
            "m", list(MESSAGES), [calculator], {"temperature": 0}
        )

    @pytest.mark.parametrize(
        "changed",
        [
            {"model": "other-model"},
            {"messages": [SystemMessage("You are helpful."), HumanMessage("What is 2+3?")]},
            {"messages": [SystemMessage("You are terse."), HumanMessage("What is 2+2?")]},
            {"messages": [*MESSAGES, AIMessage("4"), HumanMessage("What is 2+2?")]},
            {"tools": [calculator, get_weather]},
            {"params": {"temperature": 0.7}},
        ],
    )
    def test_changes_with_any_part_of_the_request(self, changed: dict[str, Any]) -> None:
        base: dict[str, Any] = {"model": "m", "messages": MESSAGES, "tools": [calculator], "params": {"temperature": 0}}

        assert request_key(**base) != request_key(**{**base, **changed})

    def test_a_role_change_changes_the_key(self) -> None:
        assert request_key("m", [HumanMessage("hi")]) != request_key("m", [SystemMessage("hi")])

    def test_tool_calls_and_results_are_part_of_the_key(self) -> None:
        call = AIMessage("", tool_calls=[{"id": "c1", "name": "calculator", "args": {"expression": "2+2"}}])
        other = AIMessage("", tool_calls=[{"id": "c1", "name": "calculator", "args": {"expression": "2+3"}}])
        result = ToolMessage("4", tool_call_id="c1")

        assert request_key("m", [*MESSAGES, call, result]) != request_key("m", [*MESSAGES, other, result])
        assert request_key("m", [*MESSAGES, call, result]) != request_key(
            "m", [*MESSAGES, call, ToolMessage("5", tool_call_id="c1")]
        )

    def test_run_ids_and_metadata_do_not_change_the_key(self) -> None:
        first = AIMessage("4", id="run-1", response_metadata={"model_name": "a"})
        second = AIMessage("4", id="run-2", response_metadata={"model_name": "b"})

        assert request_key("m", [*MESSAGES, first]) == request_key("m", [*MESSAGES, second])


class TestResponseCache:
    async def test_miss_then_hit_returns_the_same_message(self, cache: ResponseCache) -> None:
        user, key = uuid.uuid4(), request_key("m", MESSAGES)
        misses, hits = cache_requests("miss"), cache_requests("hit")

        first = await cache.get(user, key)
        await cache.set(user, key, ANSWER)
        second = await cache.get(user, key)

        assert first is None
        assert second == ANSWER
        assert second is not None
        assert second.usage_metadata == ANSWER.usage_metadata
        assert (cache_requests("miss"), cache_requests("hit")) == (misses + 1, hits + 1)

    async def test_never_serves_one_users_answer_to_another(self, cache: ResponseCache) -> None:
        alice, bob, key = uuid.uuid4(), uuid.uuid4(), request_key("m", MESSAGES)
        await cache.set(alice, key, ANSWER)

        assert await cache.get(bob, key) is None

    async def test_tool_calls_survive_the_round_trip(self, cache: ResponseCache) -> None:
        user, key = uuid.uuid4(), request_key("m", MESSAGES, [calculator])
        answer = AIMessage("", tool_calls=[{"id": "c1", "name": "calculator", "args": {"expression": "2+2"}}])
        await cache.set(user, key, answer)

        cached = await cache.get(user, key)

        assert cached is not None
        assert cached.tool_calls == answer.tool_calls

    async def test_clear_user_erases_only_that_user(self, cache: ResponseCache) -> None:
        alice, bob, key = uuid.uuid4(), uuid.uuid4(), request_key("m", MESSAGES)
        await cache.set(alice, key, ANSWER)
        await cache.set(alice, request_key("m2", MESSAGES), ANSWER)
        await cache.set(bob, key, ANSWER)

        removed = await cache.clear_user(alice)

        assert removed == 2
        assert await cache.get(alice, key) is None
        assert await cache.get(bob, key) == ANSWER


class TestExpiry:
    async def test_memory_entries_expire(self) -> None:
        cache = ResponseCache(1)
        user, key = uuid.uuid4(), request_key("m", MESSAGES)
        await cache.set(user, key, ANSWER)

        await asyncio.sleep(1.1)

        assert await cache.get(user, key) is None

    @pytest.mark.redis
    async def test_redis_entries_carry_the_ttl(self, redis_prefix: str) -> None:
        client = create_redis(REDIS_TEST_URL)
        cache = ResponseCache(120, client, key_prefix=redis_prefix)
        await cache.set(uuid.uuid4(), request_key("m", MESSAGES), ANSWER)

        (stored,) = await redis_keys(redis_prefix)
        ttl = await client.ttl(stored)
        await close_redis(client)

        assert 118 <= ttl <= 120

    async def test_memory_is_bounded_least_recently_used_first(self) -> None:
        cache = ResponseCache(60, max_entries=2)
        user = uuid.uuid4()
        keys = [request_key("m", [HumanMessage(str(n))]) for n in range(3)]
        await cache.set(user, keys[0], ANSWER)
        await cache.set(user, keys[1], ANSWER)
        await cache.get(user, keys[0])  # now the most recently used
        await cache.set(user, keys[2], ANSWER)

        assert [await cache.get(user, key) is not None for key in keys] == [True, False, True]


class TestRedisDown:
    async def test_lookups_miss_and_stores_are_skipped(self) -> None:
        client = create_redis(DEAD_REDIS_URL)
        cache = ResponseCache(60, client)
        user, key = uuid.uuid4(), request_key("m", MESSAGES)
        errors = REGISTRY.get_sample_value("agentserver_cache_errors_total") or 0.0

        await cache.set(user, key, ANSWER)
        found = await cache.get(user, key)
        await close_redis(client)

        assert found is None
        assert REGISTRY.get_sample_value("agentserver_cache_errors_total") == errors + 2


class TestLifespan:
    async def test_disabled_by_default(self, apps: Apps) -> None:
        app = await apps.app()

        assert apps.state(app)["cache"] is None

    async def test_enabled_builds_the_cache(self, apps: Apps) -> None:
        app = await apps.app(cache_enabled=True)

        assert isinstance(apps.state(app)["cache"], ResponseCache)
