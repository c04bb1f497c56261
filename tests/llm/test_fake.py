"""The scripted fake model: text, tool calls, failures, per-token streaming, usage, recording, gating."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypedDict, cast

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from agentserver.config import Environment, Settings
from agentserver.llm.errors import LLMUnavailable
from agentserver.llm.fake import (
    FakeChatModel,
    broken_stream,
    count_tokens,
    split_tokens,
    status_error,
    tool_call_turn,
)
from agentserver.llm.service import LLMService
from tests.llm.conftest import RecordingSleep


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "4"


@pytest.fixture
async def llm(sleeps: RecordingSleep) -> Any:
    settings = Settings(_env_file=None, environment=Environment.test, llm_provider="fake", llm_max_retries=1)
    service = await LLMService.start(settings, sleep=sleeps)
    yield service
    await service.aclose()


class TestScript:
    async def test_text_turn(self) -> None:
        fake = FakeChatModel(script=["Hello there"])

        answer = await fake.ainvoke([HumanMessage("hi")])

        assert answer.content == "Hello there"
        assert answer.response_metadata["model_name"] == "fake"

    async def test_tool_call_turn(self) -> None:
        fake = FakeChatModel(script=[tool_call_turn("calculator", {"expression": "2+2"}, call_id="call_1")])

        answer = await fake.bind_tools([calculator]).ainvoke([HumanMessage("2+2?")])

        assert isinstance(answer, AIMessage)
        assert answer.tool_calls == [
            {"name": "calculator", "args": {"expression": "2+2"}, "id": "call_1", "type": "tool_call"}
        ]

    async def test_failure_turn_raises_the_given_exception(self) -> None:
        fake = FakeChatModel(script=[RuntimeError("boom")])

        with pytest.raises(RuntimeError, match="boom"):
            await fake.ainvoke([HumanMessage("hi")])

    async def test_exhausted_script_echoes_the_last_human_message(self) -> None:
        fake = FakeChatModel()

        answer = await fake.ainvoke([HumanMessage("ping")])

        assert answer.content == "You said: ping"

    async def test_strict_mode_fails_when_exhausted(self) -> None:
        fake = FakeChatModel(echo_when_exhausted=False)

        with pytest.raises(AssertionError, match="exhausted"):
            await fake.ainvoke([HumanMessage("ping")])


class TestRecording:
    async def test_prompts_are_recorded_with_the_bound_tools(self) -> None:
        fake = FakeChatModel(script=["a", "b"])
        bound = fake.bind_tools([calculator])

        await bound.ainvoke([SystemMessage("be brief"), HumanMessage("one")])
        await fake.ainvoke([HumanMessage("two")])

        assert [[m.content for m in prompt] for prompt in fake.prompts] == [["be brief", "one"], ["two"]]
        assert [call.tools for call in fake.calls] == [["calculator"], []]
        assert fake.bound_tools == [["calculator"]]

    async def test_usage_counts_whitespace_tokens(self) -> None:
        fake = FakeChatModel(script=["three word answer"])

        answer = await fake.ainvoke([SystemMessage("two words"), HumanMessage("and three more")])

        assert isinstance(answer, AIMessage)
        assert answer.usage_metadata == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
        assert fake.get_num_tokens("two words") == 2

    def test_tokens_rejoin_to_the_text(self) -> None:
        text = "  Hello,  world!\nbye "

        assert "".join(split_tokens(text)) == text
        assert count_tokens(text) == 4

    async def test_set_script_resets_recording(self) -> None:
        fake = FakeChatModel(script=["a"])
        await fake.ainvoke([HumanMessage("x")])

        fake.set_script(["b"])

        assert fake.calls == []
        assert fake.remaining == 1


class TestStreaming:
    async def test_astream_yields_one_chunk_per_word(self) -> None:
        fake = FakeChatModel(script=["one two three"])

        chunks = [chunk async for chunk in fake.astream([HumanMessage("count")])]

        assert [c.content for c in chunks if c.content] == ["one", " two", " three"]

    async def test_a_broken_stream_yields_its_words_then_raises(self) -> None:
        fake = FakeChatModel(script=[broken_stream("half an", ConnectionResetError("dropped"))])
        received: list[str] = []

        async def consume() -> None:
            async for chunk in fake.astream([HumanMessage("go")]):
                received.append(str(chunk.content))

        with pytest.raises(ConnectionResetError):
            await consume()

        assert received == ["half", " an"]

    async def test_a_broken_stream_called_without_streaming_raises_at_once(self) -> None:
        fake = FakeChatModel(script=[broken_stream("half an")])

        with pytest.raises(openai.APIConnectionError):
            await fake.ainvoke([HumanMessage("go")])

    async def test_streamed_tool_call_aggregates_to_a_tool_call(self) -> None:
        fake = FakeChatModel(script=[tool_call_turn("calculator", {"expression": "1+1"}, call_id="c1")])

        merged: AIMessageChunk | None = None
        async for chunk in fake.bind_tools([calculator]).astream([HumanMessage("1+1")]):
            assert isinstance(chunk, AIMessageChunk)
            merged = chunk if merged is None else merged + chunk

        assert merged is not None
        assert merged.tool_calls == [
            {"name": "calculator", "args": {"expression": "1+1"}, "id": "c1", "type": "tool_call"}
        ]
        assert merged.usage_metadata is not None

    async def test_gate_holds_the_stream_between_chunks(self) -> None:
        gate = asyncio.Event()
        fake = FakeChatModel(script=["first second"], gate=gate)
        seen: list[str] = []

        async def consume() -> None:
            async for chunk in fake.astream([HumanMessage("go")]):
                seen.append(str(chunk.content))

        task = asyncio.create_task(consume())
        await fake.wait_streaming()
        await asyncio.sleep(0.01)
        assert seen == ["first"]
        gate.set()
        await task
        assert "".join(seen) == "first second"

    async def test_langgraph_messages_mode_streams_tokens_through_the_service(self, llm: LLMService) -> None:
        llm.fake.set_script(["streamed by tokens"])

        class State(TypedDict):
            messages: Annotated[list[BaseMessage], add_messages]

        async def chat(state: State) -> dict[str, list[BaseMessage]]:
            return {"messages": [await llm.chat_model([calculator]).ainvoke(state["messages"])]}

        graph = StateGraph(State).add_node("chat", chat).add_edge(START, "chat").add_edge("chat", END).compile()
        tokens = []
        async for item in graph.astream({"messages": [HumanMessage("hi")]}, stream_mode="messages"):
            message, metadata = cast(tuple[BaseMessage, dict[str, Any]], item)
            if isinstance(message, AIMessageChunk) and message.content:
                assert metadata["langgraph_node"] == "chat"
                tokens.append(message.content)

        assert tokens == ["streamed", " by", " tokens"]


class TestThroughTheService:
    async def test_scripted_failures_are_retried(self, llm: LLMService, sleeps: RecordingSleep) -> None:
        llm.fake.set_script([status_error(503), "recovered"])

        answer = await llm.chat_model().ainvoke([HumanMessage("hi")])

        assert answer.content == "recovered"
        assert len(sleeps.waits) == 1

    async def test_persistent_failure_is_unavailable(self, llm: LLMService) -> None:
        llm.fake.set_script([status_error(500), status_error(500)])

        with pytest.raises(LLMUnavailable):
            await llm.chat_model().ainvoke([HumanMessage("hi")])

    async def test_cheap_model_answers(self, llm: LLMService) -> None:
        llm.fake.set_script(["summary"])

        answer = await llm.cheap_model().ainvoke([HumanMessage("summarise")])

        assert isinstance(answer, AIMessage)
        assert answer.content == "summary"
        assert llm.usage_of(answer).model == "fake"
