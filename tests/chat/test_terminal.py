"""The terminal client against a real server socket (its HTTP calls run in a thread: it is synchronous)."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import httpx
from rich.console import Console

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


def _rendered(events: list[tuple[str, dict[str, object]]]) -> str:
    output = io.StringIO()
    terminal.render_events(Console(file=output, force_terminal=False, width=120), events)
    return output.getvalue()


class TestRenderEvents:
    def test_reset_discards_what_the_failed_attempt_streamed(self) -> None:
        events: list[tuple[str, dict[str, object]]] = [
            ("token", {"content": "Echo:"}),
            ("token", {"content": " one"}),
            ("reset", {}),
            ("token", {"content": "Echo:"}),
            ("token", {"content": " one two"}),
            ("done", {"usage": {"output_tokens": 3, "model": "fake"}}),
        ]

        assert _rendered(events) == "agent> Echo: one two\n(3 tokens, fake)\n"

    def test_text_before_a_tool_call_is_kept(self) -> None:
        events: list[tuple[str, dict[str, object]]] = [
            ("token", {"content": "Let me compute."}),
            ("tool_call", {"id": "c1", "name": "calculator", "args": {"expression": "6*7"}}),
            ("tool_result", {"id": "c1", "name": "calculator", "content": "42"}),
            ("token", {"content": "broken"}),
            ("reset", {}),
            ("token", {"content": "It is 42."}),
            ("done", {"usage": {"output_tokens": 9, "model": "fake"}}),
        ]

        assert _rendered(events) == (
            'agent> Let me compute.\n  → calculator({"expression": "6*7"})\n  ← 42\nIt is 42.\n(9 tokens, fake)\n'
        )
