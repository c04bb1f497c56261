"""Chat is rate-limited per user (RATE_LIMIT_CHAT), over HTTP and WebSocket alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import websockets

from agentserver.config import Settings
from tests.chat.conftest import ChatHarness, serving, start_harness


@pytest.fixture(scope="module")
async def limited(own_chat_settings: Callable[[str], Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    # A key prefix of its own: other test apps (and other runs) must not share these counters.
    settings = (await own_chat_settings("agentserver_chat_limits")).model_copy(
        update={
            "rate_limit_enabled": True,
            "rate_limit_chat": "2/minute",
            "redis_key_prefix": f"test-chat-{id(object())}",
        }
    )
    harness, lifespan = await start_harness(settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


class TestChatRateLimit:
    async def test_the_third_message_in_a_minute_is_429(self, limited: ChatHarness) -> None:
        headers = await limited.new_user()
        session_id = await limited.new_session(headers)
        limited.fake.set_script(["one", "two"])

        async with limited.client() as http:
            statuses = []
            for text in ("a", "b", "c"):
                response = await http.post(
                    "/api/v1/chatbot/chat/stream", json={"session_id": session_id, "message": text}, headers=headers
                )
                statuses.append(response.status_code)

        assert statuses == [200, 200, 429]
        assert response.json()["error"] == "TooManyRequests"
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["x-ratelimit-limit"] == "2"
        assert [m.content for m in await limited.messages(session_id)] == ["a", "one", "b", "two"]

    async def test_another_user_has_their_own_budget(self, limited: ChatHarness) -> None:
        first, second = await limited.new_user(), await limited.new_user()
        limited.fake.set_script(["x", "y", "z"])

        async with limited.client() as http:
            for _ in range(2):
                session_id = await limited.new_session(first)
                await http.post("/api/v1/chatbot/chat", json={"session_id": session_id, "message": "hi"}, headers=first)
            other_session = await limited.new_session(second)
            response = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": other_session, "message": "hi"}, headers=second
            )

        assert response.status_code == 200


class TestWebSocketRateLimit:
    async def test_the_third_message_in_a_minute_is_an_error_event(self, limited: ChatHarness) -> None:
        headers = await limited.new_user()
        session_id = await limited.new_session(headers)
        limited.fake.set_script(["one", "two", "three"])
        token = headers["Authorization"].removeprefix("Bearer ")

        async with serving(limited.asgi) as url:
            ws_url = url.replace("http://", "ws://") + f"/api/v1/chatbot/ws/{session_id}?token={token}"
            async with websockets.connect(ws_url) as ws:
                finals = []
                for text in ("a", "b", "c"):
                    await ws.send(json.dumps({"message": text}))
                    while (frame := json.loads(await ws.recv()))["event"] not in ("done", "error"):
                        pass
                    finals.append(frame)

        assert [f["event"] for f in finals] == ["done", "done", "error"]
        assert finals[2]["data"]["error"] == "TooManyRequests"
        assert [m.content for m in await limited.messages(session_id)] == ["a", "one", "b", "two"]
