"""The real embedded model (Qwen2.5-Coder-0.5B on llama.cpp): few, short requests; they run in CI.

The model file is assembled once per machine under `.data/models/` at the repository root (or under
$AGENTSERVER_TEST_MODEL_DIR), the same place `make run` uses.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from agentserver.config import Environment, Settings
from agentserver.llm import model_files
from agentserver.llm.errors import ModelFileError
from agentserver.llm.registry import MODELS
from agentserver.llm.service import LLMService
from tests.llm.test_model_files import tamper

pytestmark = pytest.mark.llm

ROOT = Path(__file__).resolve().parents[2]
MODEL_DATA_DIR = Path(os.environ.get("AGENTSERVER_TEST_MODEL_DIR", ROOT / ".data"))
MODEL = MODELS["qwen2.5-coder-0.5b"]


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 1234 * 5678 and return the result."""
    return "7006652"


@pytest.fixture(scope="session")
async def local_llm() -> AsyncIterator[LLMService]:
    settings = Settings(
        _env_file=None,
        environment=Environment.test,
        llm_provider="local",
        local_model=MODEL.name,  # the small one: these tests check the plumbing, fast
        agentserver_data_dir=MODEL_DATA_DIR,
        local_model_context=2048,
        llm_max_retries=0,
    )
    service = await LLMService.start(settings)
    yield service
    await service.aclose()


async def slots_busy(llm: LLMService) -> bool:
    server = llm.local_server
    assert server is not None
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.root_url}/slots", headers={"Authorization": f"Bearer {server.api_key}"})
    response.raise_for_status()
    return any(slot.get("is_processing") for slot in response.json())


class TestAnswers:
    async def test_capital_of_france_streams_paris(self, local_llm: LLMService) -> None:
        chunks: list[str] = []
        answer = None
        async for event in local_llm.chat_model().astream_events(
            [HumanMessage("What is the capital of France?")], version="v2", temperature=0, max_tokens=16
        ):
            if event["event"] == "on_chat_model_stream" and event["data"]["chunk"].content:
                chunks.append(event["data"]["chunk"].content)
            if event["event"] == "on_chain_end" and event["name"] == "ResilientChatModel":
                answer = event["data"]["output"]

        assert isinstance(answer, AIMessage)
        assert "Paris" in str(answer.content)
        assert len(chunks) > 1  # real tokens, not one final blob
        usage = local_llm.usage_of(answer)
        assert usage.model == "qwen2.5-coder-0.5b"
        assert usage.input_tokens > 0
        assert 0 < usage.output_tokens <= 16
        assert usage.cost_usd == 0

    async def test_calculator_request_yields_a_parsed_tool_call(self, local_llm: LLMService) -> None:
        answer = await local_llm.chat_model([calculator]).ainvoke(
            [HumanMessage("What is 1234 * 5678? Use the calculator tool.")], temperature=0, max_tokens=48
        )

        assert isinstance(answer, AIMessage)
        assert [call["name"] for call in answer.tool_calls] == ["calculator"]
        assert set(answer.tool_calls[0]["args"]) == {"expression"}


class TestServer:
    async def test_readiness_check_passes(self, local_llm: LLMService) -> None:
        await local_llm.check()

    def test_context_window_is_the_configured_one(self, local_llm: LLMService) -> None:
        assert local_llm.context_window == 2048

    async def test_concurrent_requests_are_all_served(self, local_llm: LLMService) -> None:
        model = local_llm.chat_model()
        prompts = [[HumanMessage(f"Say the number {n}.")] for n in (1, 2, 3)]

        answers = await asyncio.gather(*(model.ainvoke(p, temperature=0, max_tokens=6) for p in prompts))

        assert all(isinstance(a, AIMessage) and a.content for a in answers)

    async def test_cancelled_request_stops_generating(self, local_llm: LLMService) -> None:
        first_token = asyncio.Event()

        async def long_answer() -> None:
            async for event in local_llm.chat_model().astream_events(
                [HumanMessage("Write a very long story about a dragon.")], version="v2", max_tokens=400
            ):
                if event["event"] == "on_chat_model_stream" and event["data"]["chunk"].content:
                    first_token.set()

        task = asyncio.create_task(long_answer())
        await asyncio.wait_for(first_token.wait(), timeout=120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        # llama.cpp notices the closed stream on its next write; give it a moment, never 400 tokens' time.
        for _ in range(50):
            if not await slots_busy(local_llm):
                break
            await asyncio.sleep(0.1)
        assert not await slots_busy(local_llm)


class TestModelFile:
    def test_tampered_gguf_is_refused(self, local_llm: LLMService, tmp_path: Path) -> None:
        assert MODEL.local_file is not None
        server = local_llm.local_server
        assert server is not None
        copy = tmp_path / "tampered.gguf"
        shutil.copyfile(server.path, copy)
        tamper(copy)

        with pytest.raises(ModelFileError, match="does not match sha256"):
            model_files.verify_or_remove(copy, MODEL.local_file)

        assert not copy.exists()
