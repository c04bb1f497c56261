"""CACHE_ENABLED: model calls go through the response cache (keyed by the whole request and the user)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from agentserver.agent import graph, prompts
from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness, start_harness
from tests.runs.conftest import RUN_OVERRIDES


@pytest.fixture(scope="module")
async def cached(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    settings = await own_database_settings("agentserver_cached", **RUN_OVERRIDES, cache_enabled=True)
    harness, lifespan = await start_harness(settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


async def ask(harness: ChatHarness, headers: dict[str, str], session_id: str, message: str) -> str:
    async with harness.client() as http:
        response = await http.post(
            "/api/v1/chatbot/chat", json={"session_id": session_id, "message": message}, headers=headers
        )
    assert response.status_code == 200, response.text
    return str(response.json()["message"])


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system prompt carries the time to the minute: two requests straddling a minute would differ."""
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(graph, "render_system_prompt", functools.partial(prompts.render_system_prompt, now=at))


class TestResponseCache:
    async def test_the_same_request_of_the_same_user_is_answered_from_the_cache(self, cached: ChatHarness) -> None:
        fake: FakeChatModel = cached.fake
        fake.set_script(["First answer.", "Not used."])
        headers = await cached.new_user()

        # Two fresh sessions: the model would see exactly the same request (same minute, same history).
        first = await ask(cached, headers, await cached.new_session(headers), "What is a monad?")
        second = await ask(cached, headers, await cached.new_session(headers), "What is a monad?")

        assert first == second == "First answer."
        assert len(fake.calls) == 1

    async def test_another_user_never_gets_a_cached_answer(self, cached: ChatHarness) -> None:
        fake: FakeChatModel = cached.fake
        fake.set_script(["For the first user.", "For the second user."])

        first_user, second_user = await cached.new_user(), await cached.new_user()
        first = await ask(cached, first_user, await cached.new_session(first_user), "Same question?")
        second = await ask(cached, second_user, await cached.new_session(second_user), "Same question?")

        assert (first, second) == ("For the first user.", "For the second user.")
