"""Memory extraction requests carry their JSON schema (`response_format`) to the provider: the stub OpenAI server
records the request mem0's extraction call produces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agentserver.config import Environment, Settings
from agentserver.llm.service import LLMService
from agentserver.memory.backend import LangChainExtractionLLM
from agentserver.memory.extraction import NOTHING, RESPONSE_FORMAT
from tests.llm.stub_openai import StubOpenAI, text
from tests.memory.test_extraction import mem0_messages


@pytest.fixture(scope="module")
async def stub() -> AsyncIterator[StubOpenAI]:
    server = StubOpenAI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def extraction_llm(stub: StubOpenAI) -> AsyncIterator[LangChainExtractionLLM]:
    stub.reset()
    settings = Settings(
        _env_file=None,
        environment=Environment.test,
        llm_provider="openai_compatible",
        llm_base_url=stub.url,
        default_model="small",
        llm_max_retries=0,
        memory_enabled=False,
    )
    llm = await LLMService.start(settings)
    yield LangChainExtractionLLM(llm.background_model(), asyncio.get_running_loop(), timeout=30)
    await llm.aclose()


class TestExtractionRequest:
    async def test_carries_the_json_schema_to_the_provider(
        self, stub: StubOpenAI, extraction_llm: LangChainExtractionLLM
    ) -> None:
        stub.script("small", text('{"memory": [{"id": "0", "text": "User said: I am vegetarian"}]}'))

        answer = await asyncio.to_thread(
            extraction_llm.generate_response,
            messages=mem0_messages("I am vegetarian", "Noted."),
            response_format={"type": "json_object"},
        )

        assert stub.requests_for("small")[0].body["response_format"] == RESPONSE_FORMAT
        assert answer == '{"memory": [{"id": "0", "text": "User said: I am vegetarian"}]}'

    async def test_other_mem0_calls_keep_mem0s_response_format(
        self, stub: StubOpenAI, extraction_llm: LangChainExtractionLLM
    ) -> None:
        stub.script("small", text('{"ok": true}'))

        await asyncio.to_thread(
            extraction_llm.generate_response,
            messages=[{"role": "user", "content": "Summarise."}],
            response_format={"type": "json_object"},
        )

        assert stub.requests_for("small")[0].body["response_format"] == {"type": "json_object"}

    async def test_a_question_makes_no_request(self, stub: StubOpenAI, extraction_llm: LangChainExtractionLLM) -> None:
        answer = await asyncio.to_thread(
            extraction_llm.generate_response, messages=mem0_messages("What is my name?", "I don't know yet.")
        )

        assert (answer, stub.requests_for("small")) == (NOTHING, [])
