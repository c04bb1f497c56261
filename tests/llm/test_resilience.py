"""Retries, fallback and deadline against a stub speaking the OpenAI protocol (stream and non-stream)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import tool
from prometheus_client import REGISTRY

from agentserver.llm.errors import LLMRequestRejected, LLMUnavailable
from tests.llm.conftest import RecordingSleep, ServiceFactory
from tests.llm.stub_openai import StubOpenAI, error, text, tool_call

Mode = Literal["invoke", "stream"]
MODES: list[Mode] = ["invoke", "stream"]


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "42"


PROMPT = [HumanMessage("What is 6 * 7?")]


async def run(model: Runnable[Any, BaseMessage], mode: Mode) -> tuple[AIMessage, list[AIMessageChunk]]:
    """The final message, and the token chunks the callbacks saw (stream mode goes through astream_events)."""
    if mode == "invoke":
        message = await model.ainvoke(PROMPT)
        assert isinstance(message, AIMessage)
        return message, []
    chunks: list[AIMessageChunk] = []
    final: Any = None
    async for event in model.astream_events(PROMPT, version="v2"):
        if event["event"] == "on_chat_model_stream":
            chunks.append(event["data"]["chunk"])
        if event["event"] == "on_chain_end" and event["name"] == "ResilientChatModel":
            final = event["data"]["output"]
    assert isinstance(final, AIMessage)
    return final, chunks


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("mode", MODES)
class TestRetry:
    async def test_429_then_success_retries_exactly_once(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory, sleeps: RecordingSleep
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(429), text("It is 42"))

        answer, _ = await run(llm.chat_model([calculator]), mode)

        assert answer.content == "It is 42"
        assert len(stub.requests_for("primary")) == 2
        assert len(sleeps.waits) == 1
        assert stub.requests_for("backup") == []

    async def test_retry_after_is_honoured(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory, sleeps: RecordingSleep
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(429, retry_after="7"), text("ok"))

        await run(llm.chat_model(), mode)

        assert len(sleeps.waits) == 1
        assert sleeps.waits[0] >= 7.0

    async def test_retry_after_longer_than_allowed_falls_back_at_once(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory, sleeps: RecordingSleep
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(429, retry_after="3600"))
        stub.script("backup", text("from backup"))

        answer, _ = await run(llm.chat_model(), mode)

        assert answer.content == "from backup"
        assert sleeps.waits == []

    async def test_400_is_not_retried_and_raises_a_clear_error(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory, sleeps: RecordingSleep
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(400))

        with pytest.raises(LLMRequestRejected) as caught:
            await run(llm.chat_model([calculator]), mode)

        assert caught.value.message == "The language model rejected the request."
        assert len(stub.requests_for("primary")) == 1
        assert stub.requests_for("backup") == []
        assert sleeps.waits == []

    async def test_backoff_grows_between_retries(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory, sleeps: RecordingSleep
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(503), error(503), text("third time"))

        answer, _ = await run(llm.chat_model(), mode)

        assert answer.content == "third time"
        assert len(sleeps.waits) == 2
        # exponential: 0.5 then 1.0 seconds, each plus up to 0.5 s of jitter
        assert 0.5 <= sleeps.waits[0] <= 1.0
        assert 1.0 <= sleeps.waits[1] <= 1.5


@pytest.mark.parametrize("mode", MODES)
class TestFallback:
    async def test_5xx_exhausts_retries_then_fallback_answers_with_tools_bound(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(500), error(502), error(500))
        stub.script("backup", tool_call("calculator", {"expression": "6*7"}))
        fallbacks_before = metric("agentserver_llm_fallbacks_total", from_model="primary", to_model="backup")

        answer, _ = await run(llm.chat_model([calculator]), mode)

        assert [call["name"] for call in answer.tool_calls] == ["calculator"]
        assert answer.tool_calls[0]["args"] == {"expression": "6*7"}
        assert len(stub.requests_for("primary")) == 3
        [backup_request] = stub.requests_for("backup")
        assert backup_request.tool_names == ["calculator"]
        assert answer.response_metadata["model_name"] == "backup"
        assert metric("agentserver_llm_fallbacks_total", from_model="primary", to_model="backup") == (
            fallbacks_before + 1
        )

    async def test_timeout_is_retried_then_falls_back(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory, sleeps: RecordingSleep
    ) -> None:
        llm = await make_service(llm_timeout_seconds=0.2, llm_max_retries=1)
        stub.script("primary", text("too late", delay=1.0), text("too late", delay=1.0))
        stub.script("backup", text("on time"))

        answer, _ = await run(llm.chat_model(), mode)

        assert answer.content == "on time"
        assert len(stub.requests_for("primary")) == 2
        assert len(sleeps.waits) == 1

    async def test_authentication_failure_skips_to_the_fallback_without_retrying(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory, sleeps: RecordingSleep
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(401))
        stub.script("backup", text("backup here"))

        answer, _ = await run(llm.chat_model(), mode)

        assert answer.content == "backup here"
        assert len(stub.requests_for("primary")) == 1
        assert sleeps.waits == []

    async def test_every_model_failing_raises_unavailable(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory
    ) -> None:
        llm = await make_service(llm_max_retries=0)
        stub.script("primary", error(500))
        stub.script("backup", error(503))

        with pytest.raises(LLMUnavailable):
            await run(llm.chat_model(), mode)

        assert len(stub.requests_for("primary")) == 1
        assert len(stub.requests_for("backup")) == 1


class TestDeadline:
    async def test_overall_deadline_stops_the_call(self, stub: StubOpenAI, make_service: ServiceFactory) -> None:
        llm = await make_service(llm_deadline_seconds=0.3, llm_timeout_seconds=5.0)
        stub.script("primary", text("slow", delay=2.0))

        with pytest.raises(LLMUnavailable) as caught:
            await llm.chat_model().ainvoke(PROMPT)

        assert caught.value.message == "The language model did not answer in time; please try again."
        assert stub.requests_for("backup") == []


class TestStreaming:
    async def test_callbacks_see_each_token_through_the_wrapper(
        self, stub: StubOpenAI, make_service: ServiceFactory
    ) -> None:
        llm = await make_service()
        stub.script("primary", text("The answer is 42"))

        answer, chunks = await run(llm.chat_model([calculator]), "stream")

        assert [c.content for c in chunks if c.content] == ["The", " answer", " is", " 42"]
        assert answer.content == "The answer is 42"
        assert stub.requests_for("primary")[0].body["stream"] is True

    async def test_retry_streams_again_under_a_new_message_id(
        self, stub: StubOpenAI, make_service: ServiceFactory
    ) -> None:
        llm = await make_service()
        stub.script("primary", error(500), text("second try"))

        answer, chunks = await run(llm.chat_model(), "stream")

        assert answer.content == "second try"
        assert "".join(str(c.content) for c in chunks) == "second try"


@pytest.mark.parametrize("mode", MODES)
class TestUsage:
    async def test_usage_and_cost_come_from_the_provider_and_registry(
        self, mode: Mode, stub: StubOpenAI, make_service: ServiceFactory
    ) -> None:
        llm = await make_service(
            llm_provider="openai", openai_api_key="sk-test", default_model="gpt-4o-mini", fallback_models=[]
        )
        stub.script("gpt-4o-mini", text("priced", prompt_tokens=1000, completion_tokens=2000))
        cost_before = metric("agentserver_llm_cost_usd_total", model="gpt-4o-mini")

        answer, _ = await run(llm.chat_model(), mode)
        usage = llm.usage_of(answer)

        assert usage.model == "gpt-4o-mini"
        assert (usage.input_tokens, usage.output_tokens) == (1000, 2000)
        # 1000 * $0.15/M + 2000 * $0.60/M
        assert usage.cost_usd == Decimal("0.00135")
        assert answer.response_metadata["provider_model_name"] == "gpt-4o-mini-2026-01-01"
        assert metric("agentserver_llm_cost_usd_total", model="gpt-4o-mini") == pytest.approx(cost_before + 0.00135)
