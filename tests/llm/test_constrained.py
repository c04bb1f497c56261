"""The constrained tool decision: its JSON schema, its prompt, and how its answer is read."""

from __future__ import annotations

import json

from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agentserver.agent.tools import CalculatorArgs
from agentserver.llm import constrained


@tool(args_schema=CalculatorArgs)
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression with numbers."""
    return "1"


@tool
def get_weather(location: str) -> str:
    """Current weather for a city or place."""
    return "sunny"


@tool
def web_search(query: str) -> str:
    """Search the web for current information."""
    return "nothing"


TOOLS = [convert_to_openai_tool(calculator), convert_to_openai_tool(get_weather)]


class TestDecisionSchema:
    def test_offers_no_tool_and_each_bound_tool(self) -> None:
        options = constrained.decision_schema(TOOLS)["anyOf"]

        assert [option["properties"]["tool"]["const"] for option in options] == ["none", "calculator", "get_weather"]

    def test_keeps_the_argument_bounds_and_forbids_other_keys(self) -> None:
        calculator_option = constrained.decision_schema(TOOLS)["anyOf"][1]

        assert calculator_option["properties"]["arguments"] == {
            "type": "object",
            "properties": {"expression": {"type": "string", "maxLength": 200}},
            "required": ["expression"],
            "additionalProperties": False,
        }
        assert calculator_option["additionalProperties"] is False

    def test_is_sent_as_an_openai_json_schema_response_format(self) -> None:
        response_format = constrained.response_format(TOOLS)

        assert response_format["type"] == "json_schema"
        assert response_format["json_schema"]["schema"] == constrained.decision_schema(TOOLS)


class TestInstructions:
    def test_list_the_bound_tools_with_their_arguments(self) -> None:
        text = constrained.instructions(TOOLS)

        assert "- calculator(expression): Evaluate an arithmetic expression with numbers." in text
        assert "- get_weather(location): Current weather for a city or place." in text

    def test_show_examples_only_for_bound_tools(self) -> None:
        text = constrained.instructions(TOOLS[:1])

        assert '"tool": "calculator"' in text
        assert "get_weather" not in text
        assert "web_search" not in text

    def test_are_the_same_text_every_time(self) -> None:
        assert constrained.instructions(TOOLS) == constrained.instructions(list(TOOLS))

    def test_the_user_message_comes_last(self) -> None:
        messages = constrained.decision_messages(TOOLS, "What is 2 + 2?")

        assert [m.content for m in messages[1:]] == ["What is 2 + 2?"]


class TestParseDecision:
    def test_a_bound_tool_with_valid_arguments_is_a_call(self) -> None:
        call = constrained.parse_decision(json.dumps({"tool": "get_weather", "arguments": {"location": "Oslo"}}), TOOLS)

        assert call is not None
        assert (call["name"], call["args"]) == ("get_weather", {"location": "Oslo"})

    def test_none_is_no_call(self) -> None:
        assert constrained.parse_decision('{"tool": "none"}', TOOLS) is None

    def test_an_unbound_tool_is_no_call(self) -> None:
        assert constrained.parse_decision('{"tool": "web_search", "arguments": {"query": "x"}}', TOOLS) is None

    def test_invalid_arguments_are_no_call(self) -> None:
        assert constrained.parse_decision('{"tool": "calculator", "arguments": {"expr": "1"}}', TOOLS) is None

    def test_text_that_is_not_json_is_no_call(self) -> None:
        assert constrained.parse_decision("calculator please", TOOLS) is None

    def test_arguments_copied_from_the_examples_are_no_call(self) -> None:
        decision = json.dumps({"tool": "get_weather", "arguments": {"location": "Rome"}})

        assert constrained.parse_decision(decision, TOOLS, "Which city do I live in?") is None

    def test_an_example_argument_the_user_wrote_is_kept(self) -> None:
        decision = json.dumps({"tool": "get_weather", "arguments": {"location": "Rome"}})

        call = constrained.parse_decision(decision, TOOLS, "Weather in Rome?")
        assert call is not None
        assert call["args"] == {"location": "Rome"}

    def test_a_search_with_a_copied_query_searches_for_the_message(self) -> None:
        search = convert_to_openai_tool(web_search)
        decision = json.dumps({"tool": "web_search", "arguments": {"query": "electric cars news"}})

        call = constrained.parse_decision(decision, [search], "오늘 주요 뉴스 찾아줘")
        assert call is not None
        assert call["args"] == {"query": "오늘 주요 뉴스 찾아줘"}

    def test_a_tool_the_message_gives_no_cue_for_is_no_call(self) -> None:
        decision = json.dumps({"tool": "get_weather", "arguments": {"location": "Paris"}})

        assert constrained.parse_decision(decision, TOOLS, "What is the capital of France?") is None
