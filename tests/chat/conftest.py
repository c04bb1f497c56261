"""Chat tests run against an app on a database of their own, with real commits.

A chat turn persists from its own task and LangGraph's checkpointer uses its own connections, so the
rolled-back per-test transaction cannot hold them. Every test creates its own users and sessions.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import session_scope
from agentserver.llm.fake import FakeChatModel
from agentserver.llm.service import LLMService
from agentserver.main import create_app
from agentserver.models import Message
from tests.factories import auth_headers_for, create_user
from tests.harness import StateInjector


@pytest.fixture(scope="package")
async def chat_database(make_database: Callable[[str], str]) -> str:
    url = make_database("agentserver_chat")
    await asyncio.to_thread(migrations.upgrade, url)
    return url


@pytest.fixture(scope="package")
def chat_settings(settings: Settings, chat_database: str) -> Settings:
    return settings.model_copy(
        update={
            "database_url": chat_database,
            "summary_after_turns": 4,
            "max_tool_rounds": 2,
            "search_provider": "none",
        }
    )


@dataclass
class ChatHarness:
    app: FastAPI
    state: dict[str, Any]
    asgi: StateInjector
    settings: Settings

    @property
    def fake(self) -> FakeChatModel:
        llm: LLMService = self.state["llm"]
        return llm.fake

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.asgi), base_url="http://testserver")

    async def new_user(self) -> dict[str, str]:
        async with session_scope(self.state["sessionmaker"]) as session:
            user = await create_user(session)
        return auth_headers_for(self.settings, user)

    async def new_session(self, headers: dict[str, str]) -> str:
        async with self.client() as http:
            response = await http.post("/api/v1/sessions", json={"name": "test"}, headers=headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def messages(self, session_id: str) -> list[Message]:
        async with session_scope(self.state["sessionmaker"]) as session:
            rows = await session.scalars(
                select(Message).where(Message.session_id == session_id).order_by(Message.created_at)
            )
            return list(rows.all())


async def start_harness(settings: Settings) -> tuple[ChatHarness, Any]:
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    state = dict(await lifespan.__aenter__() or {})
    return ChatHarness(app, state, StateInjector(app, state), settings), lifespan


@pytest.fixture(scope="package")
async def harness(chat_settings: Settings) -> AsyncIterator[ChatHarness]:
    harness, lifespan = await start_harness(chat_settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture
def fake(harness: ChatHarness) -> FakeChatModel:
    harness.fake.set_script([])
    return harness.fake


@asynccontextmanager
async def serving(asgi: StateInjector) -> AsyncIterator[str]:
    """The app on a real socket: needed where the client must really go away mid-stream, or for WebSocket."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn.Server exposes only this flag
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live_url(harness: ChatHarness) -> AsyncIterator[str]:
    async with serving(harness.asgi) as url:
        yield url


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def shown_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    """The answer a client that honours `reset` shows: `reset` drops what the current model call streamed."""
    kept, attempt = "", ""
    for name, data in events:
        if name == "token":
            attempt += data["content"]
        elif name == "reset":
            attempt = ""
        elif name == "tool_call":
            kept, attempt = kept + attempt, ""
    return kept + attempt
