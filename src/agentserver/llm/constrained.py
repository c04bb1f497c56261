"""Constrained tool choice: a short, schema-constrained "which tool, with which arguments" decision.

Small local models (Qwen2.5-Coder 0.5B/1.5B) do not use their chat template's `<tool_call>` format: shown
tool definitions they answer nearly everything with bare or fenced JSON, often malformed, and llama.cpp's lazy
tool grammar (triggered by `<tool_call>`) never engages. Asked instead a narrow question — "which of these tools
does this message need, if any?" — with the answer constrained to a JSON schema, they choose well and their
arguments are valid by construction: the server (llama.cpp, vLLM, Ollama, OpenAI) compiles the schema into a
grammar, so only `{"tool": "none"}` or `{"tool": <a bound tool>, "arguments": <its argument schema>}` can be
sampled.

The decision prompt is static for a given tool set (instructions, tools, examples), and the user's message comes
last, so the server's prompt cache serves everything but the message itself.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolCall

from agentserver.llm.jsonschema import schemas_by_name, valid_arguments

NO_TOOL = "none"
# Bounds for the decision answer: arguments are short; the longest schema string bound applies on top.
DECISION_MAX_TOKENS = 96
MAX_DECISION_MESSAGE_CHARS = 2000

# Schema keywords llama.cpp's json-schema-to-grammar (and OpenAI's strict mode) understand; anything else in
# a tool's parameter schema (titles, descriptions, defaults) is dropped from the decision schema.
_KEPT_KEYWORDS = frozenset(
    {"type", "properties", "required", "items", "enum", "const", "minLength", "maxLength", "minimum", "maximum"}
)

# Routing examples for the built-in tools, shown only for tools that are bound. They are questions, not facts
# about anyone, and differ from the eval cases (evals/cases.py) so the eval measures the model, not recall.
_EXAMPLES: dict[str, list[tuple[str, dict[str, str]]]] = {
    "calculator": [("what's 17 + 25?", {"expression": "17 + 25"}), ("3.5 곱하기 12는?", {"expression": "3.5 * 12"})],
    "get_weather": [("weather in Paris today", {"location": "Paris"}), ("로마 날씨 알려줘", {"location": "Rome"})],
    "web_search": [
        ("latest news about electric cars", {"query": "electric cars news"}),
        ("오늘 증시 뉴스 찾아줘", {"query": "오늘 증시 뉴스"}),
    ],
}
_NO_TOOL_EXAMPLES = [
    "hi there",
    "who painted the Mona Lisa?",
    "I have two cats",
    "write a haiku about rain",
    "고마워요",
    "파이썬에서 딕셔너리를 정렬하는 법",
]


def _clean_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _KEPT_KEYWORDS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _clean_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = _clean_schema(value)
        else:
            out[key] = value
    if out.get("type") == "object":
        out["additionalProperties"] = False
        out.setdefault("properties", {})
    return out


def decision_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`{"tool": "none"}` or `{"tool": name, "arguments": {...}}` for exactly the bound tools' argument schemas."""
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": NO_TOOL}},
            "required": ["tool"],
            "additionalProperties": False,
        }
    ]
    for name, schema in schemas_by_name(tools).items():
        arguments = _clean_schema(schema) or {"type": "object", "properties": {}, "additionalProperties": False}
        arguments.setdefault("type", "object")
        arguments.setdefault("required", [])
        options.append(
            {
                "type": "object",
                "properties": {"tool": {"const": name}, "arguments": arguments},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": options}


def response_format(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAI `response_format` carrying the decision schema."""
    return {"type": "json_schema", "json_schema": {"name": "tool_decision", "schema": decision_schema(tools)}}


def _describe(tool: dict[str, Any]) -> str:
    function = tool.get("function", tool)
    params = (function.get("parameters") or {}).get("properties") or {}
    args = ", ".join(params) or "no arguments"
    return f"- {function['name']}({args}): {function.get('description', '').strip()}"


def instructions(tools: Sequence[dict[str, Any]]) -> str:
    """The decision prompt for a tool set (stable text: the server caches it across requests and users)."""
    names = list(schemas_by_name(tools))
    lines = [
        "You decide whether the user's latest message needs one of these tools:",
        *(_describe(tool) for tool in tools if tool.get("function", tool).get("name") in names),
        "",
        "Use a tool only when the message clearly asks for what the tool does. Everything else needs no tool:",
        "greetings, thanks, jokes, stories, code, explanations, general knowledge, and anything the user tells",
        "about themselves.",
        "",
        "Examples:",
    ]
    examples: list[str] = []
    for name in names:
        for message, arguments in _EXAMPLES.get(name, []):
            call = {"tool": name, "arguments": arguments}
            examples.append(f"{json.dumps(message, ensure_ascii=False)} -> {json.dumps(call, ensure_ascii=False)}")
    no_tool = json.dumps({"tool": NO_TOOL})
    examples.extend(f"{json.dumps(message, ensure_ascii=False)} -> {no_tool}" for message in _NO_TOOL_EXAMPLES)
    # Interleave so neither kind of answer dominates the end of the prompt.
    half = len(examples) // 2
    interleaved = [item for pair in zip(examples[:half], examples[half:], strict=False) for item in pair]
    interleaved += examples[2 * (len(examples) // 2) :] if len(examples) % 2 else []
    lines.extend(interleaved)
    lines += ["", "Answer with the JSON only."]
    return "\n".join(lines)


def latest_user_text(messages: Sequence[BaseMessage]) -> str | None:
    """The text of the last message when it is the user's (a fresh request); None otherwise."""
    if not messages or not isinstance(messages[-1], HumanMessage):
        return None
    content = messages[-1].content
    return content if isinstance(content, str) else None


def decision_messages(tools: Sequence[dict[str, Any]], user_text: str) -> list[BaseMessage]:
    return [SystemMessage(instructions(tools)), HumanMessage(user_text[:MAX_DECISION_MESSAGE_CHARS])]


# What a message that needs a built-in tool always has: a decision for the tool without it is a small model's
# guess (the capital of France looked up as the weather in Paris) and counts as no tool.
_CUES: dict[str, re.Pattern[str]] = {
    "calculator": re.compile(
        r"\d|\b(?:plus|minus|times|divided|multipl\w*|squared|power|percent|sqrt|root)\b|더하|빼|곱|나누|제곱|퍼센트|루트",
        re.IGNORECASE,
    ),
    "get_weather": re.compile(
        r"\b(?:weather|rain\w*|snow\w*|temperature|forecast|sunny|cloudy|windy?|humid\w*|hot|cold)\b|"
        r"날씨|기온|온도|비가|비 와|눈이|눈 와|바람|습도|덥|춥|맑",
        re.IGNORECASE,
    ),
    "web_search": re.compile(
        r"\b(?:search\w*|look up|google|find|news|latest|recent\w*|today'?s?|current\w*|now|prices?|headlines?)\b|"
        r"검색|찾아|뉴스|최신|최근|오늘|요즘|현재|지금|가격|시세",
        re.IGNORECASE,
    ),
}

# Tools whose argument may be the user's whole message when the model copied an example instead.
_MESSAGE_AS_ARGUMENT = {"web_search": "query"}


def _max_length(schema: dict[str, Any], key: str) -> int:
    value = ((schema.get("properties") or {}).get(key) or {}).get("maxLength")
    return int(value) if isinstance(value, int) else MAX_DECISION_MESSAGE_CHARS


def _copied_from_examples(args: dict[str, Any], user_text: str) -> bool:
    """An argument taken from the prompt's examples rather than the message (the weather in "Rome" for anything)."""
    seen = {
        str(value).lower() for examples in _EXAMPLES.values() for _, example in examples for value in example.values()
    }
    message = user_text.lower()
    return any(str(value).lower() in seen and str(value).lower() not in message for value in args.values())


def parse_decision(text: str, tools: Sequence[dict[str, Any]], user_text: str | None = None) -> ToolCall | None:
    """The tool call the decision names (checked again against the schema), or None for "no tool"/garbage.

    With `user_text`, a decision whose arguments were copied from the prompt's examples counts as no tool.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    name = value.get("tool")
    schemas = schemas_by_name(tools)
    if not isinstance(name, str) or name not in schemas:
        return None
    args = value.get("arguments")
    if not isinstance(args, dict) or not valid_arguments(args, schemas[name]):
        return None
    cue = _CUES.get(name)
    if user_text is not None and cue is not None and not cue.search(user_text):
        return None
    if user_text is not None and _copied_from_examples(args, user_text):
        if name not in _MESSAGE_AS_ARGUMENT:
            return None
        # The right tool with an example's words: the user's own message is a faithful search query.
        args = {_MESSAGE_AS_ARGUMENT[name]: user_text[: _max_length(schemas[name], _MESSAGE_AS_ARGUMENT[name])]}
    return ToolCall(name=name, args=args, id=f"call_{uuid.uuid4().hex[:24]}", type="tool_call")
