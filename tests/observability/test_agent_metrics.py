"""LLM, tool, chat and stream metrics after real chat requests through the app (scripted fake model).

Chat turns persist from their own task and LangGraph checkpoints on its own connections, so these tests
run an app of their own on a database of their own (real commits), like tests/chat.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import REGISTRY

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import session_scope
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from agentserver.main import create_app
from tests.factories import auth_headers_for, create_user
from tests.harness import StateInjector


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class ChatApp:
    http: httpx.AsyncClient
    fake: FakeChatModel
    headers: dict[str, str]

    async def new_session(self) -> str:
        response = await self.http.post("/api/v1/sessions", json={"name": "metrics"}, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture(scope="module")
async def chat_app(make_database: Callable[[str], str], settings: Settings) -> AsyncIterator[ChatApp]:
    url = make_database("agentserver_observability")
    await asyncio.to_thread(migrations.upgrade, url)
    app_settings = settings.model_copy(update={"database_url": url, "search_provider": "none"})
    app = create_app(app_settings)
    async with app.router.lifespan_context(app) as lifespan_state:
        assert lifespan_state is not None
        state = dict(lifespan_state)
        async with session_scope(state["sessionmaker"]) as session:
            user = await create_user(session)
        transport = httpx.ASGITransport(app=StateInjector(app, state))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield ChatApp(http, state["llm"].fake, auth_headers_for(app_settings, user))


@pytest.fixture
def fake(chat_app: ChatApp) -> FakeChatModel:
    chat_app.fake.set_script([])
    return chat_app.fake


class TestLLMMetrics:
    async def test_a_turn_counts_the_call_and_its_tokens(self, chat_app: ChatApp, fake: FakeChatModel) -> None:
        session_id = await chat_app.new_session()
        fake.set_script(["four words of answer"])
        calls = _value("agentserver_llm_calls_total", model="fake", outcome="success")
        tokens_in = _value("agentserver_llm_tokens_total", model="fake", direction="input")
        tokens_out = _value("agentserver_llm_tokens_total", model="fake", direction="output")

        response = await chat_app.http.post(
            "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "hi"}, headers=chat_app.headers
        )

        usage = response.json()["usage"]
        assert response.status_code == 200, response.text
        assert _value("agentserver_llm_calls_total", model="fake", outcome="success") == calls + 1
        assert (
            _value("agentserver_llm_tokens_total", model="fake", direction="input") == tokens_in + usage["input_tokens"]
        )
        assert _value("agentserver_llm_tokens_total", model="fake", direction="output") == tokens_out + 4

    async def test_a_completed_turn_is_counted_by_outcome(self, chat_app: ChatApp, fake: FakeChatModel) -> None:
        session_id = await chat_app.new_session()
        before = _value("agentserver_chat_turns_total", outcome="complete")

        await chat_app.http.post(
            "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "hi"}, headers=chat_app.headers
        )

        assert _value("agentserver_chat_turns_total", outcome="complete") == before + 1

    async def test_the_chat_route_is_counted_under_its_template(self, chat_app: ChatApp, fake: FakeChatModel) -> None:
        session_id = await chat_app.new_session()
        before = _value("agentserver_http_requests_total", method="POST", route="/api/v1/chatbot/chat", status="200")

        await chat_app.http.post(
            "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "hi"}, headers=chat_app.headers
        )

        after = _value("agentserver_http_requests_total", method="POST", route="/api/v1/chatbot/chat", status="200")
        assert after == before + 1


class TestToolMetrics:
    async def test_a_tool_call_is_counted_by_tool_and_outcome(self, chat_app: ChatApp, fake: FakeChatModel) -> None:
        session_id = await chat_app.new_session()
        fake.set_script([tool_call_turn("calculator", {"expression": "2+3"}), "It is 5."])
        before = _value("agentserver_tool_calls_total", tool="calculator", outcome="success")
        latency_before = _value("agentserver_tool_duration_seconds_count", tool="calculator")

        response = await chat_app.http.post(
            "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "2+3?"}, headers=chat_app.headers
        )

        assert response.json()["message"] == "It is 5."
        assert _value("agentserver_tool_calls_total", tool="calculator", outcome="success") == before + 1
        assert _value("agentserver_tool_duration_seconds_count", tool="calculator") == latency_before + 1


class TestStreamMetrics:
    async def test_the_stream_gauge_is_back_where_it_was_after_a_stream(
        self, chat_app: ChatApp, fake: FakeChatModel
    ) -> None:
        session_id = await chat_app.new_session()
        before = _value("agentserver_active_streams", transport="sse")

        response = await chat_app.http.post(
            "/api/v1/chatbot/chat/stream", json={"session_id": session_id, "message": "hi"}, headers=chat_app.headers
        )

        assert "event: done" in response.text
        assert _value("agentserver_active_streams", transport="sse") == before

    async def test_a_stream_is_timed_under_its_route(self, chat_app: ChatApp, fake: FakeChatModel) -> None:
        session_id = await chat_app.new_session()
        labels = {"method": "POST", "route": "/api/v1/chatbot/chat/stream"}
        before = _value("agentserver_http_request_duration_seconds_count", **labels)

        await chat_app.http.post(
            "/api/v1/chatbot/chat/stream", json={"session_id": session_id, "message": "hi"}, headers=chat_app.headers
        )

        assert _value("agentserver_http_request_duration_seconds_count", **labels) == before + 1
