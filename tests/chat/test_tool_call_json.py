"""Tool-call JSON never reaches a user, streamed or not: a chat app on an OpenAI-compatible server (the stub)
whose model writes a tool call it cannot make."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from agentserver.config import LLMProvider, Settings
from agentserver.llm.toolcalls import APOLOGY_EN
from tests.chat.conftest import ChatHarness, parse_sse, start_harness
from tests.llm.stub_openai import StubOpenAI, text

CHAT = "/api/v1/chatbot/chat"
STREAM = "/api/v1/chatbot/chat/stream"
UNKNOWN_TOOL_CALL = '{"name": "Joke", "arguments": {"text": "Why did the tomato blush?", "type": "object"}}'
CALCULATOR_CALL = '{"name": "calculator", "arguments": {"expression": "1234 * 5678", "required": ["expression"]}}'


@pytest.fixture(scope="module")
async def stub() -> AsyncIterator[StubOpenAI]:
    server = StubOpenAI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def harness(
    own_chat_settings: Callable[[str], Awaitable[Settings]], stub: StubOpenAI
) -> AsyncIterator[ChatHarness]:
    # A database of its own: the package's harness runs a worker too, and would take this app's runs.
    settings = (await own_chat_settings("agentserver_tool_json")).model_copy(
        update={
            "llm_provider": LLMProvider.openai_compatible,
            "llm_base_url": stub.url,
            "default_model": "small",
            "tool_calling": "native",
            "llm_max_retries": 0,
        }
    )
    harness, lifespan = await start_harness(settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture(autouse=True)
def fresh_stub(stub: StubOpenAI) -> None:
    stub.reset()


async def post(harness: ChatHarness, path: str, message: str) -> tuple[int, str]:
    headers = await harness.new_user()
    session_id = await harness.new_session(headers)
    async with harness.client() as http:
        response = await http.post(path, json={"session_id": session_id, "message": message}, headers=headers)
    return response.status_code, response.text


class TestUnrepairableCall:
    async def test_stream_shows_an_apology_and_no_json(self, harness: ChatHarness, stub: StubOpenAI) -> None:
        stub.script("small", text(UNKNOWN_TOOL_CALL), text('{"tool": "none"}'))

        status, body = await post(harness, STREAM, "Tell me a short joke.")

        events = parse_sse(body)
        shown = "".join(data["content"] for name, data in events if name == "token")
        assert (status, shown, events[-1][0]) == (200, APOLOGY_EN, "done")
        assert "Joke" not in body  # not even in a hidden event

    async def test_non_stream_answers_with_an_apology(self, harness: ChatHarness, stub: StubOpenAI) -> None:
        stub.script("small", text(UNKNOWN_TOOL_CALL), text('{"tool": "none"}'))

        status, body = await post(harness, CHAT, "Tell me a short joke.")

        assert status == 200
        assert '"message":"' + APOLOGY_EN + '"' in body


class TestRepairableCall:
    async def test_stream_runs_the_repaired_call_and_shows_only_the_answer(
        self, harness: ChatHarness, stub: StubOpenAI
    ) -> None:
        stub.script("small", text(CALCULATOR_CALL), text("1234 * 5678 = 7006652."))

        status, body = await post(harness, STREAM, "Calculate 1234 * 5678.")

        events = [(name, data) for name, data in parse_sse(body) if name != "metadata"]
        assert status == 200
        assert [name for name, _ in events if name != "token"] == ["tool_call", "tool_result", "done"]
        assert events[0][1]["args"] == {"expression": "1234 * 5678"}
        assert next(data for name, data in events if name == "tool_result")["content"] == "7006652"
        assert "".join(data["content"] for name, data in events if name == "token") == "1234 * 5678 = 7006652."

    async def test_non_stream_runs_the_repaired_call(self, harness: ChatHarness, stub: StubOpenAI) -> None:
        stub.script("small", text(CALCULATOR_CALL), text("It is 7006652."))

        status, body = await post(harness, CHAT, "Calculate 1234 * 5678.")

        assert (status, '"message":"It is 7006652."' in body) == (200, True)
