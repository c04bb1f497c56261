"""100 concurrent chat turns on one process with the default pool settings (issue 11, case 1).

Mixed one-shot `/chat` and `/chat/stream`, 20 users, a model that takes 0.5 s (the OpenAI protocol stub),
real PostgreSQL and Redis (rate limits on, shared storage): no 5xx, and every acknowledged answer is
stored. Before the fix, ~20 concurrent one-shot turns drained the pool and the rest failed with 500s.

`/health` stays fast meanwhile: measured by `python -m bench chat_load` (bench/results/chat_load.md),
not asserted here (the machine is shared).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agentserver.config import LLMProvider, Settings
from agentserver.kit import migrations
from agentserver.models import Message, MessageRole
from tests.acceptance.conftest import client_for, running_app
from tests.chat.conftest import parse_sse
from tests.factories import auth_headers_for, create_user
from tests.llm.stub_openai import Reply, StubOpenAI
from tests.ratelimit.apps import REDIS_TEST_URL, redis_prefix

__all__ = ["redis_prefix"]
pytestmark = pytest.mark.redis

TURNS = 100
USERS = 20
MODEL_DELAY_SECONDS = 0.5
ANSWER = "a stubbed answer"


@pytest.fixture
async def slow_model() -> AsyncIterator[StubOpenAI]:
    stub = StubOpenAI(default=Reply(text=ANSWER, delay=MODEL_DELAY_SECONDS))
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
async def load_database(make_database: Callable[[str], str]) -> str:
    url = make_database("agentserver_load")
    await asyncio.to_thread(migrations.upgrade, url)
    return url


async def _turn(http: httpx.AsyncClient, headers: dict[str, str], session_id: str, stream: bool) -> dict[str, Any]:
    """One turn; what the client was told: status, and the stored answer's id when acknowledged."""
    body = {"session_id": session_id, "message": f"hello {session_id[:8]}"}
    if not stream:
        response = await http.post("/api/v1/chatbot/chat", json=body, headers=headers)
        acked = response.json().get("message_id") if response.status_code == 200 else None
        return {"session_id": session_id, "status": response.status_code, "message_id": acked, "answer": ANSWER}
    response = await http.post("/api/v1/chatbot/chat/stream", json=body, headers=headers)
    events = parse_sse(response.text) if response.status_code == 200 else []
    done = [data for name, data in events if name == "done"]
    shown = "".join(data["content"] for name, data in events if name == "token")
    return {
        "session_id": session_id,
        "status": response.status_code,
        "message_id": done[0]["message_id"] if done else None,
        "answer": shown,
    }


class TestConcurrentTurns:
    async def test_100_mixed_turns_no_5xx_and_every_acknowledged_answer_is_stored(
        self, settings: Settings, load_database: str, slow_model: StubOpenAI, redis_prefix: str
    ) -> None:
        app_settings = settings.model_copy(
            update={
                "database_url": load_database,
                "llm_provider": LLMProvider.openai_compatible,
                "llm_base_url": slow_model.url,
                "default_model": "stub",
                "fallback_models": [],
                "search_provider": "none",
                "redis_url": REDIS_TEST_URL,
                "redis_key_prefix": redis_prefix,
                "rate_limit_enabled": True,
            }
        )
        async with running_app(app_settings) as (app, state), client_for(app, state) as http:
            users = []
            async with state["sessionmaker"]() as session:
                for _ in range(USERS):
                    users.append(auth_headers_for(app_settings, await create_user(session)))
            turns = []
            for n in range(TURNS):
                headers = users[n % USERS]
                created = await http.post("/api/v1/sessions", json={"name": f"load {n}"}, headers=headers)
                assert created.status_code == 201, created.text
                turns.append((headers, str(created.json()["id"]), n % 2 == 1))

            results = await asyncio.gather(*(_turn(http, *turn) for turn in turns))

            async with state["sessionmaker"]() as session:
                rows = (
                    await session.execute(
                        select(Message.session_id, Message.role, Message.id, Message.content).order_by(
                            Message.created_at
                        )
                    )
                ).all()

        statuses = [result["status"] for result in results]
        assert [status for status in statuses if status >= 500] == []
        assert statuses == [200] * TURNS
        stored: dict[str, list[tuple[MessageRole, uuid.UUID, str]]] = {}
        for session_id, role, message_id, content in rows:
            stored.setdefault(str(session_id), []).append((role, message_id, content))
        for result in results:
            roles = [role for role, _, _ in stored[result["session_id"]]]
            assert roles == [MessageRole.user, MessageRole.assistant]
            _, message_id, content = stored[result["session_id"]][1]
            assert str(message_id) == result["message_id"]
            assert content == result["answer"] == ANSWER
        assert len(slow_model.requests) == TURNS
