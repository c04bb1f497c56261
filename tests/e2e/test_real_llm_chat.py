"""A whole chat through the HTTP API on the real default embedded model (Qwen2.5-Coder-1.5B, llama.cpp)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agentserver.config import LLMProvider, Settings
from agentserver.kit import migrations
from tests.chat.conftest import ChatHarness, parse_sse, start_harness

pytestmark = pytest.mark.llm

ROOT = Path(__file__).resolve().parents[2]
# Shared with tests/llm and `make run`: the GGUF is assembled once per machine.
MODEL_DATA_DIR = Path(os.environ.get("AGENTSERVER_TEST_MODEL_DIR", ROOT / ".data"))


@pytest.fixture(scope="module")
async def real_harness(settings: Settings, make_database: Callable[[str], str]) -> AsyncIterator[ChatHarness]:
    url = make_database("agentserver_real_llm")
    await asyncio.to_thread(migrations.upgrade, url)
    real = settings.model_copy(
        update={
            "database_url": url,
            "llm_provider": LLMProvider.local,
            "agentserver_data_dir": MODEL_DATA_DIR,
            "local_model_context": 4096,
            "search_provider": "none",
        }
    )
    harness, lifespan = await start_harness(real)
    yield harness
    await lifespan.__aexit__(None, None, None)


class TestRealModelChat:
    async def test_the_second_turn_uses_the_first(self, real_harness: ChatHarness) -> None:
        headers = await real_harness.new_user()
        session_id = await real_harness.new_session(headers)

        async with real_harness.client() as http:
            first = await http.post(
                "/api/v1/chatbot/chat",
                json={"session_id": session_id, "message": "My name is Chul-soo."},
                headers=headers,
                timeout=300,
            )
            second = await http.post(
                "/api/v1/chatbot/chat",
                json={"session_id": session_id, "message": "What is my name?"},
                headers=headers,
                timeout=300,
            )

        assert first.status_code == 200, first.text
        assert second.status_code == 200, second.text
        assert "chul-soo" in second.json()["message"].lower().replace("chulsoo", "chul-soo")
        usage = second.json()["usage"]
        assert usage["model"] == "qwen2.5-coder-1.5b"
        assert usage["input_tokens"] > 0
        assert usage["output_tokens"] > 0

    async def test_the_model_calls_the_calculator_and_answers_with_its_number(self, real_harness: ChatHarness) -> None:
        headers = await real_harness.new_user()
        session_id = await real_harness.new_session(headers)

        async with real_harness.client() as http:
            response = await http.post(
                "/api/v1/chatbot/chat/stream",
                json={"session_id": session_id, "message": "Calculate 1234 * 5678."},
                headers=headers,
                timeout=300,
            )

        events = parse_sse(response.text)
        calls = [data for name, data in events if name == "tool_call"]
        results = [data for name, data in events if name == "tool_result"]
        answer = "".join(data["content"] for name, data in events if name == "token")
        assert response.status_code == 200
        assert [(call["name"], call["args"]) for call in calls] == [("calculator", {"expression": "1234 * 5678"})]
        assert [result["content"] for result in results] == ["7006652"]
        assert "7006652" in answer.replace(",", "")
        assert "{" not in answer
