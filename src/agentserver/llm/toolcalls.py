"""Tool calls written as text: tolerant parsing, repair, and the guard that keeps tool-call JSON from users.

Small models often answer a tool request with text instead of a structured tool call: `<tool_call>{...}`
tags, a bare JSON object or a ```json fenced block, with the arguments under `arguments`, `parameters` or
`args` (sometimes as a JSON string), schema keywords mixed into the arguments (`"type": "object"`,
`"required": [...]`) and unbalanced brackets. Such text becomes a real `AIMessage.tool_calls` entry when,
after repair (schema keywords dropped, brackets closed), it names a bound tool with arguments valid for that
tool's JSON schema.

Text that *looks* like a tool call but cannot be repaired is never shown to the user: the caller
(`llm.chat_openai`) asks again with a constrained decision, and failing that answers with an apology.

Streaming (`ToolCallGuard`): prose streams as it comes; from the first place where a tool call could start
(`{"name"`, a ```json fence, `<tool_call>`) the text is held back until it is clear whether it is one —
released as text if not, turned into a tool call or withheld if so.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall

from agentserver.llm.jsonschema import schemas_by_name, valid_arguments

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```[a-zA-Z_]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "tool_input", "input")
# Keys that make a JSON object read as a tool call.
_CALL_KEYS = ("name", "function", "tool", "tool_name")
# JSON-schema keywords small models copy from the tool definitions into their arguments.
_SCHEMA_KEYWORDS = frozenset(
    {"type", "required", "properties", "additionalProperties", "description", "title", "$schema", "items", "default"}
)

APOLOGY_EN = "Sorry, I could not complete that request. Please try rephrasing it."
APOLOGY_KO = "죄송합니다. 요청을 처리하지 못했습니다. 다르게 표현해서 다시 말씀해 주세요."
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")


def is_korean(text: str) -> bool:
    """True when the text is mostly Korean (Hangul among its letters), the test the language rule uses."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    return sum(1 for ch in letters if _HANGUL.match(ch)) * 2 >= len(letters)


def last_user_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage) and isinstance(message.content, str):
            return message.content
    return ""


def apology_for(messages: Sequence[BaseMessage]) -> str:
    """A plain apology in the language of the user's latest message."""
    return APOLOGY_KO if is_korean(last_user_text(messages)) else APOLOGY_EN


# --- repair -----------------------------------------------------------------------------------------------------


def close_brackets(text: str) -> str | None:
    """`text` with unterminated strings, objects and arrays closed; None when the brackets do not nest."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
    tail = ('"' if in_string else "") + "".join(reversed(stack))
    return text.rstrip().rstrip(",") + tail if tail else text


def load_json(text: str) -> Any:
    """Decode JSON, closing what was left open; raises ValueError when that does not help."""
    try:
        return json.loads(text)
    except ValueError:
        repaired = close_brackets(text.strip())
        if repaired is None or repaired == text:
            raise
        return json.loads(repaired)


def _strip_schema_keywords(args: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties") or {}
    cleaned = {key: value for key, value in args.items() if key in properties or key not in _SCHEMA_KEYWORDS}
    # `{"type": "object", "properties": {"expression": "1+1"}}`: the values were written under `properties`.
    nested = args.get("properties")
    if isinstance(nested, dict) and "properties" not in properties:
        for key, value in nested.items():
            if key in properties and key not in cleaned and not isinstance(value, dict):
                cleaned[key] = value
    return cleaned


def _as_call(obj: Any, schemas: dict[str, dict[str, Any]]) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # {"type": "function", "function": {...}}
        obj = obj["function"]
    name = next((obj[key] for key in _CALL_KEYS if isinstance(obj.get(key), str)), None)
    if name is None or name not in schemas:
        return None
    args: Any = next((obj[key] for key in _ARGUMENT_KEYS if key in obj), {})
    if isinstance(args, str):
        try:
            args = load_json(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    args = _strip_schema_keywords(args, schemas[name])
    if not valid_arguments(args, schemas[name]):
        return None
    return ToolCall(name=name, args=args, id=f"call_{uuid.uuid4().hex[:24]}", type="tool_call")


def _calls_in(value: Any, schemas: dict[str, dict[str, Any]]) -> list[ToolCall] | None:
    """All calls in a decoded JSON value (an object or a list of objects), or None if any is not a call."""
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item, schemas) for item in items]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def parse_tool_calls(text: str, tools: Sequence[dict[str, Any]]) -> tuple[str, list[ToolCall]] | None:
    """Tool calls written as text (repaired if need be), and the text left around them; None when there are none."""
    schemas = schemas_by_name(tools)
    if not schemas or not text.strip():
        return None
    for pattern in (_TAGGED, _FENCED):
        calls: list[ToolCall] = []
        spans = []
        for match in pattern.finditer(text):
            try:
                value = load_json(match.group(1))
            except ValueError:
                continue
            found = _calls_in(value, schemas)
            if found:
                calls.extend(found)
                spans.append(match.span())
        if calls:
            return _remove_spans(text, spans), calls
    # Bare JSON: the first JSON value starting at a `{` or `[` that is entirely made of valid calls; an
    # unterminated one at the end of the text is closed first.
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        start = match.start()
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            repaired = close_brackets(text[start:])
            if repaired is None:
                continue
            try:
                value, _ = decoder.raw_decode(repaired)
            except ValueError:
                continue
            end = len(text)
        found = _calls_in(value, schemas)
        if found:
            return _remove_spans(text, [(start, end)]), found
    return None


def _remove_spans(text: str, spans: list[tuple[int, int]]) -> str:
    kept, position = [], 0
    for start, end in spans:
        kept.append(text[position:start])
        position = end
    kept.append(text[position:])
    return "".join(kept).strip()


# --- the guard --------------------------------------------------------------------------------------------------


class _Start(enum.Enum):
    CALL = "call"  # a tool call starts here
    MAYBE = "maybe"  # too early to tell
    NO = "no"


def _classify_object(rest: str) -> _Start:
    """`rest` follows a `{`: does it open with a key that makes the object a tool call?"""
    rest = rest.lstrip()
    if not rest:
        return _Start.MAYBE
    if not rest.startswith('"'):
        return _Start.NO
    match = re.match(r'"([A-Za-z_]*)("?)', rest)
    assert match is not None
    word, closed = match.group(1), bool(match.group(2))
    if closed or len(word) < len(rest) - 1:
        return _Start.CALL if word in _CALL_KEYS else _Start.NO
    return _Start.MAYBE if any(key.startswith(word) for key in _CALL_KEYS) else _Start.NO


def _classify(text: str) -> _Start:
    """Could a tool call start at the beginning of `text`?"""
    if text.startswith("<"):
        marker = "<tool_call>"
        if text.startswith(marker):
            return _Start.CALL
        return _Start.MAYBE if marker.startswith(text) else _Start.NO
    if text.startswith("`"):
        if len(text) < 3:
            return _Start.MAYBE if text == "`" * len(text) else _Start.NO
        if not text.startswith("```"):
            return _Start.NO
        newline = text.find("\n")
        if newline < 0:
            return _Start.MAYBE if len(text) < 16 else _Start.NO
        body = text[newline + 1 :].lstrip()
        return _classify(body) if body else _Start.MAYBE
    if text.startswith("["):
        body = text[1:].lstrip()
        if not body:
            return _Start.MAYBE
        return _classify(body) if body.startswith("{") else _Start.NO
    if text.startswith("{"):
        return _classify_object(text[1:])
    return _Start.NO


def first_call_start(text: str, start: int = 0) -> tuple[int, _Start] | None:
    """The first position at or after `start` where a tool call starts (CALL) or may start (MAYBE)."""
    for match in re.finditer(r"[{\[<`]", text[start:]):
        position = start + match.start()
        kind = _classify(text[position:])
        if kind is not _Start.NO:
            return position, kind
    return None


def _json_at(text: str) -> str:
    """The JSON text a tool-call start points at (past a `<tool_call>` tag, a fence line or a `[`)."""
    if text.startswith("<tool_call>"):
        return text[len("<tool_call>") :].lstrip()
    if text.startswith("```"):
        newline = text.find("\n")
        return text[newline + 1 :].lstrip() if newline >= 0 else ""
    if text.startswith("["):
        return text[1:].lstrip()
    return text


def _call_like(text: str, tool_names: set[str]) -> bool:
    """Is the object at this tool-call start a call (arguments given, or a bound tool named)?

    `{"name": "Ada", "age": 3}` is data, not a call; undecodable JSON counts as a call (hidden, to be safe).
    """
    if text.startswith("<tool_call>"):
        return True
    body = _json_at(text)
    decoder = json.JSONDecoder()
    try:
        value, _ = decoder.raw_decode(body)
    except ValueError:
        repaired = close_brackets(body)
        try:
            value, _ = decoder.raw_decode(repaired) if repaired is not None else (None, 0)
        except ValueError:
            return True
    if not isinstance(value, dict):
        return value is None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    named = next((value[key] for key in _CALL_KEYS if isinstance(value.get(key), str)), None)
    return any(key in value for key in _ARGUMENT_KEYS) or named in tool_names


def looks_like_tool_call(text: str, tools: Sequence[dict[str, Any]] = ()) -> bool:
    """Whether the text contains something written as a tool call (valid or not)."""
    names = set(schemas_by_name(tools))
    position = 0
    while (found := first_call_start(text, position)) is not None:
        start, kind = found
        if kind is _Start.CALL and _call_like(text[start:], names):
            return True
        position = start + 1
    return False


class Verdict(enum.Enum):
    TEXT = "text"  # an ordinary answer
    CALLS = "calls"  # tool calls of bound tools (maybe with text around them)
    BROKEN_CALL = "broken_call"  # written as a tool call, but not a valid call of a bound tool


@dataclass
class Judgement:
    verdict: Verdict
    content: str
    calls: list[ToolCall] = field(default_factory=list)


def judge(text: str, tools: Sequence[dict[str, Any]]) -> Judgement:
    """What a finished answer is: text, valid tool calls, or a tool call that must not be shown."""
    parsed = parse_tool_calls(text, tools) if tools else None
    if parsed is not None:
        content, calls = parsed
        if not looks_like_tool_call(content, tools):
            return Judgement(Verdict.CALLS, content, calls)
    if looks_like_tool_call(text, tools):
        return Judgement(Verdict.BROKEN_CALL, "")
    return Judgement(Verdict.TEXT, text)


class ToolCallGuard:
    """Streaming half of `judge`: what may be shown now, and the judgement at the end."""

    def __init__(self, tools: Sequence[dict[str, Any]]) -> None:
        self.tools = tools
        self.text = ""
        self.released = 0  # characters of `text` already shown
        self.holding_call = False  # a tool call started: hold everything from `released` on

    def feed(self, piece: str) -> str:
        """Add streamed text; returns the part that can be shown now."""
        self.text += piece
        if self.holding_call:
            return ""
        found = first_call_start(self.text, self.released)
        end = len(self.text) if found is None else found[0]
        if found is not None and found[1] is _Start.CALL:
            self.holding_call = True
        out = self.text[self.released : end]
        self.released = end
        return out

    def finish(self) -> tuple[Judgement, str]:
        """The judgement of the whole answer, and the held-back text to show now when it is plain text."""
        judgement = judge(self.text, self.tools)
        held = self.text[self.released :]
        if judgement.verdict is Verdict.TEXT:
            return judgement, held
        if judgement.verdict is Verdict.CALLS:
            shown = self.text[: self.released].strip()
            # Text around the calls that was not shown yet goes with the final chunk.
            rest = judgement.content[len(shown) :] if judgement.content.startswith(shown) else ""
            return Judgement(Verdict.CALLS, rest.strip(), judgement.calls), ""
        return judgement, ""


def apply_to_message(message: BaseMessage, tools: Sequence[dict[str, Any]] | None) -> BaseMessage:
    """The message with text tool calls turned into real ones (unchanged when it has none or has real ones)."""
    if not tools or not isinstance(message, AIMessage) or message.tool_calls or not isinstance(message.content, str):
        return message
    parsed = parse_tool_calls(message.content, tools)
    if parsed is None:
        return message
    content, calls = parsed
    return message.model_copy(update={"content": content, "tool_calls": calls, "invalid_tool_calls": []})
