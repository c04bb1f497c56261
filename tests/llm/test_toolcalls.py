"""Tolerant tool-call parsing: tags, bare JSON and fenced JSON become tool calls only when valid."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import SecretStr

from agentserver.llm.chat_openai import (
    TolerantChatOpenAI,
    checked_tool_answer,
    tool_failure_reply,
    tool_results_as_text,
)
from agentserver.llm.toolcalls import (
    APOLOGY_EN,
    APOLOGY_KO,
    Judgement,
    ToolCallGuard,
    Verdict,
    close_brackets,
    judge,
    parse_tool_calls,
)
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
        ],
    )
    def test_anything_else_stays_text(self, text: str) -> None:
        assert parsed(text) is None

    def test_no_tools_bound_means_no_parsing_at_all(self) -> None:
        assert parse_tool_calls('{"name": "calculator", "arguments": {"expression": "1"}}', []) is None


class TestRepair:
    def test_schema_keys_mixed_into_the_arguments_are_dropped(self) -> None:
        text = '{"name": "calculator", "arguments": {"expression": "1234 * 5678", "required": ["expression"]}}'

        assert parsed(text) == ("", [("calculator", {"expression": "1234 * 5678"})])

    def test_a_type_key_is_dropped(self) -> None:
        text = '{"name": "get_weather", "arguments": {"city": "Seoul", "type": "object"}}'

        assert parsed(text) == ("", [("get_weather", {"city": "Seoul"})])

    def test_values_written_under_properties_are_lifted(self) -> None:
        text = '{"name": "calculator", "arguments": {"type": "object", "properties": {"expression": "9*9"}}}'

        assert parsed(text) == ("", [("calculator", {"expression": "9*9"})])

    def test_unbalanced_brackets_are_closed(self) -> None:
        assert parsed('{"name": "calculator", "arguments": {"expression": "1"') == (
            "",
            [("calculator", {"expression": "1"})],
        )

    def test_an_unterminated_string_is_closed(self) -> None:
        assert parsed('```json\n{"name": "calculator", "arguments": {"expression": "2+2') == (
            "",
            [("calculator", {"expression": "2+2"})],
        )

    def test_brackets_that_do_not_nest_are_not_repaired(self) -> None:
        assert close_brackets('{"a": [1}') is None


class TestJudge:
    def test_prose_is_text(self) -> None:
        assert judge("Paris is the capital of France.", TOOLS) == Judgement(
            Verdict.TEXT, "Paris is the capital of France."
        )

    def test_a_valid_call_is_a_call(self) -> None:
        judgement = judge(BARE, TOOLS)

        assert (judgement.verdict, [(c["name"], c["args"]) for c in judgement.calls]) == (
            Verdict.CALLS,
            [("calculator", {"expression": "6*7"})],
        )

    def test_a_call_of_an_unbound_tool_is_broken(self) -> None:
        assert judge('{"name": "Joke", "arguments": {"message": "Why did..."}}', TOOLS).verdict is Verdict.BROKEN_CALL

    def test_tool_call_tags_around_garbage_are_broken(self) -> None:
        assert judge("<tool_call> not json at all", TOOLS).verdict is Verdict.BROKEN_CALL

    def test_json_data_with_a_name_key_is_text(self) -> None:
        assert judge('{"name": "Ada", "age": 3}', TOOLS).verdict is Verdict.TEXT

    def test_without_tools_a_call_shaped_answer_is_still_broken(self) -> None:
        assert judge(BARE, []).verdict is Verdict.BROKEN_CALL


class TestGuard:
    def feed(self, *pieces: str) -> tuple[str, Judgement, str]:
        guard = ToolCallGuard(TOOLS)
        shown = "".join(guard.feed(piece) for piece in pieces)
        judgement, held = guard.finish()
        return shown, judgement, held

    def test_prose_is_shown_as_it_comes(self) -> None:
        guard = ToolCallGuard(TOOLS)

        assert [guard.feed(piece) for piece in ["Par", "is is", " nice."]] == ["Par", "is is", " nice."]

    def test_text_after_prose_that_turns_into_a_call_is_held(self) -> None:
        shown, judgement, held = self.feed(
            "Let me compute: {", '"na', 'me": "calculator", ', '"arguments": {"expression": "6*7"}}'
        )

        assert (shown, judgement.verdict, judgement.content, held) == ("Let me compute: ", Verdict.CALLS, "", "")

    def test_a_brace_that_is_not_a_call_is_released(self) -> None:
        shown, judgement, held = self.feed("Use {x} in f-strings.")

        assert (shown, judgement.verdict, held) == ("Use {x} in f-strings.", Verdict.TEXT, "")

    def test_a_code_fence_is_released_once_it_is_not_json(self) -> None:
        shown, judgement, held = self.feed("``", "`python\n", "print(1)\n```")

        assert shown + held == "```python\nprint(1)\n```"
        assert judgement.verdict is Verdict.TEXT

    def test_a_broken_call_shows_nothing(self) -> None:
        shown, judgement, held = self.feed('{"name": "Joke", ', '"arguments": {"text": "a pun"}}')

        assert (shown, judgement.verdict, held) == ("", Verdict.BROKEN_CALL, "")


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

        assert "".join(str(c.content) for c in chunks) == "Let me compute that: "  # the JSON is never shown
        assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("calculator", {"expression": "6*7"})]

    async def test_without_tools_text_is_left_alone(self, stub: StubOpenAI, model: TolerantChatOpenAI) -> None:
        stub.script("small", text(BARE))

        answer = await model.ainvoke([HumanMessage("show me json")])

        assert isinstance(answer, AIMessage)
        assert answer.tool_calls == []
        assert answer.content == BARE


JOKE_AS_A_CALL = '{"name": "Joke", "arguments": {"text": "Why did the tomato blush?"}}'
DECIDED_CALCULATOR = '{"tool": "calculator", "arguments": {"expression": "6*7"}}'
DECIDED_NONE = '{"tool": "none"}'


async def streamed(model: Any, prompt: list[Any]) -> tuple[str, AIMessageChunk]:
    text_parts: list[str] = []
    merged = AIMessageChunk(content="")
    async for chunk in model.astream(prompt):
        assert isinstance(chunk, AIMessageChunk)
        text_parts.append(str(chunk.content))
        merged = merged + chunk
    return "".join(text_parts), merged


class TestBrokenCallsAreNeverShown:
    async def test_non_streaming_retries_constrained_and_gets_a_call(
        self, stub: StubOpenAI, model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(JOKE_AS_A_CALL), text(DECIDED_CALCULATOR))

        answer = await model.bind_tools([calculator]).ainvoke([HumanMessage("6*7?")])

        assert isinstance(answer, AIMessage)
        assert (answer.content, [(c["name"], c["args"]) for c in answer.tool_calls]) == (
            "",
            [("calculator", {"expression": "6*7"})],
        )
        retry = stub.requests_for("small")[1].body
        assert retry["response_format"]["type"] == "json_schema"
        assert "tools" not in retry

    async def test_non_streaming_apologises_when_the_retry_names_no_tool(
        self, stub: StubOpenAI, model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(JOKE_AS_A_CALL), text(DECIDED_NONE))

        answer = await model.bind_tools([calculator]).ainvoke([HumanMessage("Tell me a joke")])

        assert isinstance(answer, AIMessage)
        assert (answer.content, answer.tool_calls) == (APOLOGY_EN, [])

    async def test_streaming_apologises_without_showing_the_json(
        self, stub: StubOpenAI, model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(JOKE_AS_A_CALL), text(DECIDED_NONE))

        shown, merged = await streamed(model.bind_tools([calculator]), [HumanMessage("Tell me a joke")])

        assert (shown, merged.tool_calls) == (APOLOGY_EN, [])

    async def test_streaming_retry_can_produce_the_call(self, stub: StubOpenAI, model: TolerantChatOpenAI) -> None:
        stub.script("small", text(JOKE_AS_A_CALL), text(DECIDED_CALCULATOR))

        shown, merged = await streamed(model.bind_tools([calculator]), [HumanMessage("6*7?")])

        assert (shown, [(c["name"], c["args"]) for c in merged.tool_calls]) == (
            "",
            [("calculator", {"expression": "6*7"})],
        )

    async def test_the_apology_follows_the_users_language(self, stub: StubOpenAI, model: TolerantChatOpenAI) -> None:
        stub.script("small", text(JOKE_AS_A_CALL), text(DECIDED_NONE))

        answer = await model.bind_tools([calculator]).ainvoke([HumanMessage("농담 하나 해줘")])

        assert answer.content == APOLOGY_KO


@pytest.fixture
def constrained_model(stub: StubOpenAI) -> TolerantChatOpenAI:
    return TolerantChatOpenAI(
        model="small",
        base_url=stub.url,
        api_key=SecretStr("k"),
        max_retries=0,
        stream_usage=True,
        tool_calling="constrained",
    )


class TestConstrainedToolCalling:
    async def test_the_decision_is_a_tool_call(self, stub: StubOpenAI, constrained_model: TolerantChatOpenAI) -> None:
        stub.script("small", text(DECIDED_CALCULATOR))

        answer = await constrained_model.bind_tools([calculator]).ainvoke([HumanMessage("6*7?")])

        assert isinstance(answer, AIMessage)
        assert [(c["name"], c["args"]) for c in answer.tool_calls] == [("calculator", {"expression": "6*7"})]
        assert len(stub.requests_for("small")) == 1

    async def test_the_decision_request_carries_the_schema_of_each_bound_tool(
        self, stub: StubOpenAI, constrained_model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(DECIDED_CALCULATOR))

        await constrained_model.bind_tools([calculator, get_weather]).ainvoke([HumanMessage("6*7?")])

        body = stub.requests_for("small")[0].body
        options = body["response_format"]["json_schema"]["schema"]["anyOf"]
        assert [option["properties"]["tool"]["const"] for option in options] == ["none", "calculator", "get_weather"]
        assert options[1]["properties"]["arguments"] == {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
            "additionalProperties": False,
        }
        assert (body["temperature"], "tools" in body, body["messages"][-1]) == (
            0,
            False,
            {"role": "user", "content": "6*7?"},
        )

    async def test_no_tool_means_an_answer_generated_without_tool_definitions(
        self, stub: StubOpenAI, constrained_model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(DECIDED_NONE), text("Why did the tomato blush?"))

        answer = await constrained_model.bind_tools([calculator]).ainvoke([HumanMessage("Tell me a joke")])

        assert (answer.content, "tools" in stub.requests_for("small")[1].body) == ("Why did the tomato blush?", False)

    async def test_usage_of_both_requests_is_counted(
        self, stub: StubOpenAI, constrained_model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(DECIDED_NONE, prompt_tokens=100, completion_tokens=5), text("Hi!"))

        answer = await constrained_model.bind_tools([calculator]).ainvoke([HumanMessage("hello")])

        assert isinstance(answer, AIMessage)
        assert answer.usage_metadata is not None
        assert (answer.usage_metadata["input_tokens"], answer.usage_metadata["output_tokens"]) == (111, 12)

    async def test_streamed_answer_after_no_tool_flows_token_by_token(
        self, stub: StubOpenAI, constrained_model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text(DECIDED_NONE), text("Paris is the capital"))

        chunks = [c async for c in constrained_model.bind_tools([calculator]).astream([HumanMessage("capital?")])]

        assert [c.content for c in chunks if c.content] == ["Paris", " is", " the", " capital"]

    async def test_after_a_tool_result_no_decision_is_asked(
        self, stub: StubOpenAI, constrained_model: TolerantChatOpenAI
    ) -> None:
        stub.script("small", text("6*7 is 42."))
        history = [
            HumanMessage("6*7?"),
            AIMessage("", tool_calls=[{"name": "calculator", "args": {"expression": "6*7"}, "id": "c1"}]),
            ToolMessage("42", tool_call_id="c1"),
        ]

        answer = await constrained_model.bind_tools([calculator]).ainvoke(history)

        assert answer.content == "6*7 is 42."
        assert [("response_format" in r.body, "tools" in r.body) for r in stub.requests_for("small")] == [
            (False, False)
        ]


class TestAnswerAfterTools:
    def history(self, result: str, status: str = "success") -> list[Any]:
        return [
            HumanMessage("What is 6*7?", id="h1"),
            AIMessage("", tool_calls=[{"name": "calculator", "args": {"expression": "6*7"}, "id": "c1"}]),
            ToolMessage(result, tool_call_id="c1", name="calculator", status=status),
        ]

    def test_the_result_is_written_next_to_the_question(self) -> None:
        folded = tool_results_as_text(self.history("42"))

        assert [(type(m).__name__, m.content) for m in folded] == [
            ("HumanMessage", "What is 6*7?\n\n(Tool result: calculator(6*7) → 42)")
        ]

    def test_a_turn_whose_tools_all_failed_gets_a_plain_reply(self) -> None:
        history = self.history("Error: division by zero", status="error")

        assert (
            tool_failure_reply(history) == "Sorry, the calculator could not complete that request (division by zero)."
        )

    def test_an_unreachable_service_is_said_so_in_korean(self) -> None:
        history = [
            HumanMessage("부산 날씨 어때?"),
            AIMessage("", tool_calls=[{"name": "get_weather", "args": {"location": "부산"}, "id": "w1"}]),
            ToolMessage(
                "Error: weather service unavailable: it cannot be reached.",
                tool_call_id="w1",
                name="get_weather",
                status="error",
            ),
        ]

        assert (
            tool_failure_reply(history)
            == "죄송합니다. 지금은 날씨 서비스에 연결할 수 없어 답을 드릴 수 없습니다. 잠시 후 다시 시도해 주세요."
        )

    def test_a_successful_tool_means_the_model_answers(self) -> None:
        assert tool_failure_reply(self.history("42")) is None

    def test_an_answer_with_the_calculators_number_is_kept(self) -> None:
        assert checked_tool_answer("6*7 is 42.", self.history("42")) == "6*7 is 42."

    def test_an_answer_with_a_different_number_gets_the_result_instead(self) -> None:
        assert checked_tool_answer("6*7 is 40.", self.history("42")) == "6*7 = 42"

    def test_an_answer_that_repeats_the_note_gets_the_result_instead(self) -> None:
        history = self.history("42")
        history[0] = HumanMessage("6 곱하기 7은?")

        assert checked_tool_answer("6 곱하기 7은?\n\n(Tool result: ...)", history) == "6*7의 결과는 42입니다."
