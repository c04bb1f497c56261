"""Tolerant tool-call parsing: tags, bare JSON and fenced JSON become tool calls only when valid."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import SecretStr

from agentserver.llm.toolcalls import TolerantChatOpenAI, parse_tool_calls
from tests.llm.stub_openai import StubOpenAI, text


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "42"


@tool
def get_weather(city: str, days: int = 1) -> str:
    """Weather forecast for a city."""
    return "sunny"


TOOLS = [convert_to_openai_tool(calculator), convert_to_openai_tool(get_weather)]


def parsed(text: str) -> tuple[str, list[tuple[str, dict[str, Any]]]] | None:
    result = parse_tool_calls(text, TOOLS)
    if result is None:
        return None
    content, calls = result
    return content, [(call["name"], call["args"]) for call in calls]


class TestParse:
    def test_tool_call_tags(self) -> None:
        assert parsed('<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+2"}}\n</tool_call>') == (
            "",
            [("calculator", {"expression": "2+2"})],
        )

    def test_unterminated_tag_at_the_end(self) -> None:
        assert parsed('<tool_call>{"name": "calculator", "arguments": {"expression": "1"}}') == (
            "",
            [("calculator", {"expression": "1"})],
        )

    def test_bare_json_object(self) -> None:
        assert parsed('{"name": "calculator", "arguments": {"expression": "1234 * 5678"}}') == (
            "",
            [("calculator", {"expression": "1234 * 5678"})],
        )

    def test_fenced_json_with_surrounding_text(self) -> None:
        text = 'Let me check.\n```json\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n```'

        assert parsed(text) == ("Let me check.", [("get_weather", {"city": "Paris"})])

    def test_arguments_as_a_json_string(self) -> None:
        assert parsed('{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\", \\"days\\": 3}"}') == (
            "",
            [("get_weather", {"city": "Oslo", "days": 3})],
        )

    def test_openai_function_shape(self) -> None:
        text = '{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "3"}}}'

        assert parsed(text) == ("", [("calculator", {"expression": "3"})])

    def test_list_of_calls(self) -> None:
        text = (
            '[{"name": "calculator", "args": {"expression": "1"}}, {"name": "get_weather", "args": {"city": "Rome"}}]'
        )

        assert parsed(text) == ("", [("calculator", {"expression": "1"}), ("get_weather", {"city": "Rome"})])

    @pytest.mark.parametrize(
        "text",
        [
            "The capital of France is Paris.",
            '{"name": "delete_everything", "arguments": {}}',  # not a bound tool
            '{"name": "calculator", "arguments": {}}',  # required argument missing
            '{"name": "calculator", "arguments": {"expression": 5}}',  # wrong type
            '{"name": "calculator", "arguments": {"expression": "1", "shell": "rm"}}',  # unknown argument
            '{"name": "get_weather", "arguments": {"city": "Paris", "days": true}}',  # bool is not an integer
            '```json\n{"answer": 42}\n```',  # JSON, but not a call
            '{"name": "calculator", "arguments": {"expression": "1"',  # truncated
        ],
    )
    def test_anything_else_stays_text(self, text: str) -> None:
        assert parsed(text) is None

    def test_no_tools_bound_means_no_parsing(self) -> None:
        assert parse_tool_calls('{"name": "calculator", "arguments": {"expression": "1"}}', []) is None


@pytest.fixture
def model(stub: StubOpenAI) -> TolerantChatOpenAI:
    return TolerantChatOpenAI(
        model="small", base_url=stub.url, api_key=SecretStr("k"), max_retries=0, stream_usage=True
    )


BARE = '{"name": "calculator", "arguments": {"expression": "6*7"}}'


class TestTolerantChatOpenAI:
    async def test_non_streaming_answer_becomes_a_tool_call(self, stub: StubOpenAI, model: TolerantChatOpenAI) -> None:
        stub.script("small", text(BARE))

        answer = await model.bind_tools([calculator]).ainvoke([HumanMessage("6*7?")])

        assert isinstance(answer, AIMessage)
        assert [(c["name"], c["args"]) for c in answer.tool_calls] == [("calculator", {"expression": "6*7"})]
        assert answer.content == ""

    async def test_streamed_tool_call_is_held_back_and_aggregates(
        self, stub: StubOpenAI, model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(BARE))

        chunks = [c async for c in model.bind_tools([calculator]).astream([HumanMessage("6*7?")])]
        merged = AIMessageChunk(content="")
        for chunk in chunks:
            assert isinstance(chunk, AIMessageChunk)
            merged = merged + chunk

        assert all(not c.content for c in chunks)  # no JSON shown as text
        assert isinstance(merged, AIMessageChunk)
        assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("calculator", {"expression": "6*7"})]
        assert merged.usage_metadata is not None

    async def test_streamed_prose_flows_token_by_token(self, stub: StubOpenAI, model: TolerantChatOpenAI) -> None:
        stub.script("small", text("Paris is the capital"))

        chunks = [c async for c in model.bind_tools([calculator]).astream([HumanMessage("capital?")])]

        assert [c.content for c in chunks if c.content] == ["Paris", " is", " the", " capital"]
        assert all(not c.tool_call_chunks for c in chunks if isinstance(c, AIMessageChunk))

    async def test_streamed_json_that_is_not_a_call_is_released_as_text(
        self, stub: StubOpenAI, model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text('{"answer": 42}'))

        chunks = [c async for c in model.bind_tools([calculator]).astream([HumanMessage("json please")])]

        assert "".join(str(c.content) for c in chunks) == '{"answer": 42}'

    async def test_streamed_tool_call_tags_become_a_tool_call(
        self, stub: StubOpenAI, model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(f"<tool_call> {BARE} </tool_call>"))

        merged = AIMessageChunk(content="")
        async for chunk in model.bind_tools([calculator]).astream([HumanMessage("6*7?")]):
            assert isinstance(chunk, AIMessageChunk)
            assert not chunk.content
            merged = merged + chunk

        assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("calculator", {"expression": "6*7"})]

    async def test_call_after_streamed_prose_is_added_at_the_end(
        self, stub: StubOpenAI, model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(f"Let me compute that: {BARE}"))

        chunks = [c async for c in model.bind_tools([calculator]).astream([HumanMessage("6*7?")])]
        merged = AIMessageChunk(content="")
        for chunk in chunks:
            assert isinstance(chunk, AIMessageChunk)
            merged = merged + chunk

        assert chunks[1].content == "Let"  # prose streamed as it came (after the role chunk)
        assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("calculator", {"expression": "6*7"})]

    async def test_without_tools_text_is_left_alone(self, stub: StubOpenAI, model: TolerantChatOpenAI) -> None:
        stub.script("small", text(BARE))

        answer = await model.ainvoke([HumanMessage("show me json")])

        assert isinstance(answer, AIMessage)
        assert answer.tool_calls == []
        assert answer.content == BARE
