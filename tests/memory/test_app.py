"""The real app with MEMORY_ENABLED=true, on its own database with real commits: the lifespan starts the
service, the endpoints reach it, DELETE /api/v1/auth/me erases the user's memories (the user-deletion
hook), and chat runs recall memories and extract them in a background job (scripted model) without
touching the network."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langchain_core.messages import BaseMessage, SystemMessage
from sqlalchemy import text

from agentserver.cache import ResponseCache
from agentserver.kit import migrations
from agentserver.kit.db import session_scope
from agentserver.main import create_app
from agentserver.memory.service import MemoryService
from tests.factories import auth_headers_for, create_user
from tests.harness import StateInjector, drain_jobs
from tests.memory.conftest import extraction, memory_settings_for
from tests.memory.netaudit import no_remote_connections

URL = "/api/v1/memories"


@pytest.fixture(scope="module")
async def app_state(
    make_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FastAPI, dict[str, Any]]]:
    url = make_database("agentserver_memory_app")
    await asyncio.to_thread(migrations.upgrade, url)
    settings = memory_settings_for(
        url,
        Path(tmp_path_factory.mktemp("memory-app")),
        rate_limit_enabled=False,
        password_hash_time_cost=1,
        password_hash_memory_kib=64,
        search_provider="none",
        cache_enabled=True,  # cached answers are the user's data too: erased with the account
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        yield app, dict(state)


async def _new_user(state: dict[str, Any]) -> tuple[uuid.UUID, dict[str, str]]:
    async with session_scope(state["sessionmaker"]) as session:
        user = await create_user(session)
    return user.id, auth_headers_for(state["settings"], user)


def _client(app: FastAPI, state: dict[str, Any]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=StateInjector(app, state)), base_url="http://testserver")


def _memory_section(prompt: list[BaseMessage]) -> str:
    """The memory section of the per-turn context (the last system message, right before the user's turn)."""
    context = next(str(m.content) for m in reversed(prompt) if isinstance(m, SystemMessage))
    return context.split("# What you remember about this user\n", 1)[1].split("\n\n", 1)[0]


class TestMemoryEnabledApp:
    async def test_the_lifespan_starts_the_service(self, app_state: tuple[FastAPI, dict[str, Any]]) -> None:
        app, state = app_state
        _, headers = await _new_user(state)

        async with _client(app, state) as http:
            response = await http.get(URL, headers=headers)

        assert isinstance(state["memory"], MemoryService)
        assert response.status_code == 200
        assert response.json() == {"memories": []}

    async def test_deleting_the_account_erases_the_memories(self, app_state: tuple[FastAPI, dict[str, Any]]) -> None:
        app, state = app_state
        memory: MemoryService = state["memory"]
        user_id, headers = await _new_user(state)
        state["llm"].fake.set_script([extraction("User is vegetarian")])
        await memory.extract(user_id, None, "I am vegetarian", "Noted.")
        assert [item.text for item in await memory.list(user_id)] == ["User is vegetarian"]

        async with _client(app, state) as http:
            response = await http.delete("/api/v1/auth/me", headers=headers)

        assert response.status_code == 204
        assert await memory.list(user_id) == []


class TestAccountDeletionWhileStreaming:
    async def test_nothing_of_the_user_is_left_anywhere(self, app_state: tuple[FastAPI, dict[str, Any]]) -> None:
        app, state = app_state
        memory: MemoryService = state["memory"]
        cache: ResponseCache = state["cache"]
        fake = state["llm"].fake
        user_id, headers = await _new_user(state)
        fake.set_script(["Noted, no meat for you.", extraction("User is vegetarian"), "Hello there, this is long"])
        async with _client(app, state) as http:
            session_id = (await http.post("/api/v1/sessions", json={"name": "A"}, headers=headers)).json()["id"]
            await http.post(
                "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "I am vegetarian"}, headers=headers
            )
            await drain_jobs(state["sessionmaker"])
            assert await memory.count(user_id) == 1
            assert cache.memory is not None
            assert any(str(user_id) in key for key in cache.memory.entries)
            fake.gate = asyncio.Event()  # never set: the next answer stalls after its first token
            streaming = asyncio.create_task(
                http.post(
                    "/api/v1/chatbot/chat/stream",
                    json={"session_id": session_id, "message": "dinner ideas?"},
                    headers=headers,
                )
            )
            await fake.wait_streaming()

            deleted = await http.delete("/api/v1/auth/me", headers=headers)
            await asyncio.wait_for(streaming, 15)
        await drain_jobs(state["sessionmaker"])

        assert deleted.status_code == 204
        assert await memory.count(user_id) == 0
        assert not any(str(user_id) in key for key in cache.memory.entries)
        async with state["sessionmaker"]() as session:
            for table in ("checkpoints", "checkpoint_writes", "checkpoint_blobs"):
                left = await session.scalar(
                    text(f"SELECT count(*) FROM {table} WHERE thread_id = :s"),  # noqa: S608
                    {"s": session_id},
                )
                assert left == 0, table
            for table, column in (("messages", "session_id"), ("runs", "session_id"), ("jobs", "user_id")):
                left = await session.scalar(
                    text(f"SELECT count(*) FROM {table} WHERE {column} = CAST(:id AS uuid)"),  # noqa: S608
                    {"id": session_id if column == "session_id" else str(user_id)},
                )
                assert left == 0, table


class TestForgetAll:
    async def test_erases_the_callers_memories_only(self, app_state: tuple[FastAPI, dict[str, Any]]) -> None:
        app, state = app_state
        memory: MemoryService = state["memory"]
        fake = state["llm"].fake
        user_id, headers = await _new_user(state)
        other_id, _ = await _new_user(state)
        fake.set_script([extraction("User is vegetarian", "User lives in Busan"), extraction("User plays the cello")])
        await memory.extract(user_id, None, "I am vegetarian and I live in Busan", "(reply)")
        await memory.extract(other_id, None, "I play the cello", "(reply)")

        async with _client(app, state) as http:
            response = await http.delete(URL, headers=headers)

        assert response.status_code == 204
        assert await memory.list(user_id) == []
        assert [item.text for item in await memory.list(other_id)] == ["User plays the cello"]


class TestChatTurnsUseMemory:
    async def test_a_fact_from_session_a_reaches_the_prompt_in_session_b(
        self, app_state: tuple[FastAPI, dict[str, Any]]
    ) -> None:
        app, state = app_state
        state["memory"]
        fake = state["llm"].fake
        _, headers = await _new_user(state)
        fake.set_script(["Noted, no meat for you.", extraction("User is vegetarian"), "How about a mushroom risotto?"])

        async with _client(app, state) as http:
            session_a = (await http.post("/api/v1/sessions", json={"name": "A"}, headers=headers)).json()["id"]
            first = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": session_a, "message": "I am vegetarian"}, headers=headers
            )
            await drain_jobs(state["sessionmaker"])  # the extraction runs after the reply, as a job
            session_b = (await http.post("/api/v1/sessions", json={"name": "B"}, headers=headers)).json()["id"]
            second = await http.post(
                "/api/v1/chatbot/chat",
                json={"session_id": session_b, "message": "What should I cook for dinner?"},
                headers=headers,
            )

        assert (first.status_code, second.status_code) == (200, 200)
        assert second.json()["message"] == "How about a mushroom risotto?"
        section = _memory_section(fake.prompts[-1])
        assert section == "- User is vegetarian"

    async def test_an_offline_turn_with_memory_opens_no_remote_connection(
        self, app_state: tuple[FastAPI, dict[str, Any]]
    ) -> None:
        app, state = app_state
        memory: MemoryService = state["memory"]
        state["llm"].fake.set_script(["Noted.", extraction("User lives in Busan")])
        user_id, headers = await _new_user(state)

        with no_remote_connections() as seen:
            async with _client(app, state) as http:
                session = (await http.post("/api/v1/sessions", json={"name": "A"}, headers=headers)).json()["id"]
                response = await http.post(
                    "/api/v1/chatbot/chat", json={"session_id": session, "message": "I live in Busan"}, headers=headers
                )
                await drain_jobs(state["sessionmaker"])

        assert response.status_code == 200
        assert [item.text for item in await memory.list(user_id)] == ["User lives in Busan"]
        assert seen.remote == []

    async def test_two_hundred_memories_leave_the_prompt_bounded(
        self, app_state: tuple[FastAPI, dict[str, Any]]
    ) -> None:
        app, state = app_state
        memory: MemoryService = state["memory"]
        settings = state["settings"]
        fake = state["llm"].fake
        user_id, headers = await _new_user(state)
        facts = [
            f"User fact {n}: enjoys hobby number {n} and talks about it at length every weekend" for n in range(200)
        ]
        fake.set_script(["Here are some ideas."])
        # Stored as said (no extraction): the filter would rightly keep at most a few facts per message.
        mem0: Any = memory.memory
        await memory.isolation.run(
            mem0.add([{"role": "user", "content": fact} for fact in facts], user_id=str(user_id), infer=False)
        )

        async with _client(app, state) as http:
            session = (await http.post("/api/v1/sessions", json={"name": "A"}, headers=headers)).json()["id"]
            response = await http.post(
                "/api/v1/chatbot/chat",
                json={"session_id": session, "message": "Which hobby should I pick up?"},
                headers=headers,
            )

        section = _memory_section(fake.prompts[-1])
        assert response.status_code == 200
        assert await memory.count(user_id) == 200
        assert len(section.splitlines()) == settings.memory_top_k
        assert len(section) <= settings.memory_max_chars

    async def test_an_assistant_without_memory_neither_recalls_nor_extracts(
        self, app_state: tuple[FastAPI, dict[str, Any]]
    ) -> None:
        app, state = app_state
        memory: MemoryService = state["memory"]
        fake = state["llm"].fake
        user_id, headers = await _new_user(state)
        fake.set_script(["Noted.", extraction("User is vegetarian"), "Anything you like."])

        async with _client(app, state) as http:
            remembering = (await http.post("/api/v1/sessions", json={}, headers=headers)).json()["id"]
            await http.post(
                "/api/v1/chatbot/chat", json={"session_id": remembering, "message": "I am vegetarian"}, headers=headers
            )
            await drain_jobs(state["sessionmaker"])
            created = await http.post(
                "/api/v1/assistants", json={"name": "forgetful", "memory": False}, headers=headers
            )
            forgetful = (
                await http.post("/api/v1/sessions", json={"assistant_id": "forgetful"}, headers=headers)
            ).json()["id"]
            second = await http.post(
                "/api/v1/chatbot/chat",
                json={"session_id": forgetful, "message": "I am also allergic to nuts. What should I cook?"},
                headers=headers,
            )
            await drain_jobs(state["sessionmaker"])

        assert created.status_code == 201
        assert second.json()["message"] == "Anything you like."
        assert _memory_section(fake.prompts[-1]) == "(nothing yet)"  # the stored fact is not recalled
        assert len(fake.calls) == 3  # two answers and the first turn's extraction: none for the second
        assert [item.text for item in await memory.list(user_id)] == ["User is vegetarian"]
