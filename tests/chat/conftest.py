"""Chat tests run against an app on a database of their own, with real commits.

A chat turn persists from its own task and LangGraph's checkpointer uses its own connections, so the
rolled-back per-test transaction cannot hold them. Every test creates its own users and sessions.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from agentserver.chat.repository import ChatRepository
from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import session_scope
from agentserver.llm.fake import FakeChatModel
from agentserver.llm.service import LLMService
from agentserver.main import create_app
from agentserver.models import ChatSession, Message, Run, RunStatus
from tests.factories import auth_headers_for, create_user
from tests.harness import StateInjector


@pytest.fixture(scope="package")
async def chat_database(make_database: Callable[[str], str]) -> str:
    url = make_database("agentserver_chat")
    await asyncio.to_thread(migrations.upgrade, url)
    return url


@pytest.fixture(scope="package")
def chat_settings(settings: Settings, chat_database: str) -> Settings:
    return settings.model_copy(update={"database_url": chat_database, **CHAT_OVERRIDES})


# Chat settings on a database of their own (for apps that run beside the package's harness).
CHAT_OVERRIDES = {"summary_after_turns": 4, "max_tool_rounds": 2, "search_provider": "none"}


@pytest.fixture(scope="package")
def own_chat_settings(
    own_database_settings: Callable[..., Awaitable[Settings]],
) -> Callable[[str], Awaitable[Settings]]:
    async def make(name: str) -> Settings:
        return await own_database_settings(name, **CHAT_OVERRIDES)

    return make


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

    async def new_api_key(self, headers: dict[str, str]) -> tuple[str, str]:
        """(key, key id) of a new API key of the user with these headers."""
        async with self.client() as http:
            created = await http.post("/api/v1/auth/api-keys", json={"name": "test"}, headers=headers)
        assert created.status_code == 201, created.text
        return str(created.json()["key"]), str(created.json()["id"])

    async def new_session(self, headers: dict[str, str]) -> str:
        async with self.client() as http:
            response = await http.post("/api/v1/sessions", json={"name": "test"}, headers=headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def settle(self, *, within: float = 15.0) -> None:
        """Wait until no run of this app's database is waiting or executing.

        Runs outlive the requests that started them (a client that went away, an enqueued message): a test
        that scripts the shared fake model must not have its script eaten by a run of the previous test.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            async with self.state["sessionmaker"]() as session:
                busy = await session.scalar(
                    select(func.count()).select_from(Run).where(Run.status.in_((RunStatus.pending, RunStatus.running)))
                )
            if not busy:
                return
            if loop.time() > deadline:
                raise AssertionError(f"{busy} runs still waiting or executing after {within} s")
            await asyncio.sleep(0.02)

    async def messages(self, session_id: str) -> list[Message]:
        """The session's messages in conversation order (as the API lists them)."""
        async with session_scope(self.state["sessionmaker"]) as session:
            owner = await session.scalar(select(ChatSession.user_id).where(ChatSession.id == session_id))
            if owner is None:
                return []
            return await ChatRepository.from_session(session).list_messages(owner, uuid.UUID(session_id), 1000, None)


async def start_harness(settings: Settings, **app_options: Any) -> tuple[ChatHarness, Any]:
    """The real app and its lifespan (`app_options` go to `create_app`, e.g. `span_exporter`)."""
    app = create_app(settings, **app_options)
    lifespan = app.router.lifespan_context(app)
    state = dict(await lifespan.__aenter__() or {})
    return ChatHarness(app, state, StateInjector(app, state), settings), lifespan


@pytest.fixture(scope="package")
async def harness(chat_settings: Settings) -> AsyncIterator[ChatHarness]:
    harness, lifespan = await start_harness(chat_settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def fake(harness: ChatHarness) -> FakeChatModel:
    await harness.settle()
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


def parse_sse_frames(body: str) -> list[tuple[int | None, str, dict[str, Any]]]:
    """(id, event, data) of every SSE frame; comments (keep-alives) are skipped."""
    frames = []
    for block in body.strip().split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        frame_id = int(fields["id"]) if "id" in fields else None
        frames.append((frame_id, fields["event"], json.loads(fields["data"])))
    return frames


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, data) for _, name, data in parse_sse_frames(body)]


def collapse(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Consecutive `token` events joined into one, `metadata` dropped: what a client shows.

    The server coalesces tokens that arrive close together, so how many `token` events carry a text
    depends on timing; their joined text and the other events do not.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    for name, data in events:
        if name == "metadata":
            continue
        if name == "token" and out and out[-1][0] == "token":
            out[-1] = ("token", {"content": out[-1][1]["content"] + data["content"]})
        else:
            out.append((name, data))
    return out


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
