"""The terminal client against a real server socket (its HTTP calls run in a thread: it is synchronous)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from agentserver.chat import terminal
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from tests.chat.conftest import ChatHarness, collapse


class TestTerminalClient:
    async def test_registers_creates_a_session_and_streams(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        fake.set_script([tool_call_turn("calculator", {"expression": "40+2"}, call_id="c1"), "It is 42."])
        email = f"term-{uuid.uuid4().hex[:8]}@example.com"

        def conversation() -> list[tuple[str, dict[str, Any]]]:
            with httpx.Client(base_url=live_url, timeout=30) as http:
                token = terminal.login(http, email, "a good long password", register=True)
                http.headers["Authorization"] = f"Bearer {token}"
                session_id = terminal._check(http.post("/api/v1/sessions", json={"name": "t"}))["id"]
                return list(terminal.stream_events(http, session_id, "40 + 2?"))

        events = await asyncio.to_thread(conversation)

        events = collapse(events)
        assert [name for name, _ in events] == ["tool_call", "tool_result", "token", "done"]
        assert events[2][1] == {"content": "It is 42."}

    async def test_a_second_registration_just_logs_in(self, harness: ChatHarness, live_url: str) -> None:
        email = f"term-{uuid.uuid4().hex[:8]}@example.com"

        def twice() -> tuple[str, str]:
            with httpx.Client(base_url=live_url, timeout=30) as http:
                first = terminal.login(http, email, "a good long password", register=True)
                second = terminal.login(http, email, "a good long password", register=True)
                return first, second

        first, second = await asyncio.to_thread(twice)

        assert first != second
