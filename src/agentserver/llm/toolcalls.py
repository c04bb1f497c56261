"""Tolerant tool-call parsing for small models, and the ChatOpenAI subclass that applies it.

Small local models often answer a tool request with text instead of a structured tool call:
`<tool_call>{...}</tool_call>` tags, a bare JSON object, or a ```json fenced block, with the arguments
under `arguments`, `parameters` or `args` (sometimes as a JSON string). Such text becomes a proper
`AIMessage.tool_calls` entry only when it names a tool bound to this call and its arguments are valid
for that tool's JSON schema; anything else stays text.

Streaming: when an answer *starts* like a tool call (`{`, `[`, a fence or `<tool_call>`), its chunks are
held back until the answer is complete, then released either as one tool-call chunk or, if it was not
a tool call after all, as the text it was. An answer that starts as prose streams as it comes; a tool
call found at its end is added as a final tool-call chunk (its JSON text was already shown).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall, ToolCallChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```[a-zA-Z_]*\s*\n?(.*?)```", re.DOTALL)
_HOLD_PREFIXES = ("{", "[", "```", "<tool_call>")

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _schemas(tools: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool name -> JSON schema of its arguments, from OpenAI-format tool dicts (what bind_tools passes)."""
    out = {}
    for tool in tools:
        function = tool.get("function", tool)
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            out[function["name"]] = function.get("parameters") or {"type": "object", "properties": {}}
    return out


def _valid_value(value: Any, schema: dict[str, Any]) -> bool:
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind is None:
        return True
    kinds = kind if isinstance(kind, list) else [kind]
    for name in kinds:
        types = _JSON_TYPES.get(name)
        if types is None:
            return True  # a type we do not check
        if isinstance(value, bool) and name in ("number", "integer"):
            continue
        if isinstance(value, types):
            return True
        if name == "integer" and isinstance(value, float) and value.is_integer():
            return True
    return False


def valid_arguments(args: Any, schema: dict[str, Any]) -> bool:
    """A small JSON-schema check: required keys present, no unknown keys, top-level value types."""
    if not isinstance(args, dict):
        return False
    properties: dict[str, Any] = schema.get("properties") or {}
    if any(key not in args for key in schema.get("required") or ()):
        return False
    if properties and schema.get("additionalProperties") is not True:
        if any(key not in properties for key in args):
            return False
    return all(_valid_value(value, properties[key]) for key, value in args.items() if key in properties)


def _as_call(obj: Any, schemas: dict[str, dict[str, Any]]) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name", obj.get("tool"))
    if not isinstance(name, str) or name not in schemas:
        return None
    args: Any = next((obj[key] for key in ("arguments", "parameters", "args", "tool_input", "input") if key in obj), {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
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
    """Tool calls written as text, and the text left around them; None when there are none."""
    schemas = _schemas(tools)
    if not schemas or not text.strip():
        return None
    decoder = json.JSONDecoder()
    for pattern in (_TAGGED, _FENCED):
        calls: list[ToolCall] = []
        spans = []
        for match in pattern.finditer(text):
            try:
                value = json.loads(match.group(1))
            except ValueError:
                continue
            found = _calls_in(value, schemas)
            if found:
                calls.extend(found)
                spans.append(match.span())
        if calls:
            return _remove_spans(text, spans), calls
    # Bare JSON: the first JSON value starting at a `{` or `[` that is entirely made of valid calls.
    for match in re.finditer(r"[{\[]", text):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        found = _calls_in(value, schemas)
        if found:
            return _remove_spans(text, [(match.start(), end)]), found
    return None


def _remove_spans(text: str, spans: list[tuple[int, int]]) -> str:
    kept, position = [], 0
    for start, end in spans:
        kept.append(text[position:start])
        position = end
    kept.append(text[position:])
    return "".join(kept).strip()


def apply_to_message(message: BaseMessage, tools: Sequence[dict[str, Any]] | None) -> BaseMessage:
    """The message with text tool calls turned into real ones (unchanged when it has none or has real ones)."""
    if not tools or not isinstance(message, AIMessage) or message.tool_calls or not isinstance(message.content, str):
        return message
    parsed = parse_tool_calls(message.content, tools)
    if parsed is None:
        return message
    content, calls = parsed
    return message.model_copy(update={"content": content, "tool_calls": calls, "invalid_tool_calls": []})


def _call_chunks(calls: list[ToolCall]) -> list[ToolCallChunk]:
    return [
        ToolCallChunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i, type="tool_call_chunk")
        for i, call in enumerate(calls)
    ]


class _StreamFilter:
    """Holds back chunks of an answer that starts like a tool call; see the module docstring."""

    def __init__(self, tools: Sequence[dict[str, Any]]) -> None:
        self.tools = tools
        self.text = ""
        self.held: list[ChatGenerationChunk] = []
        self.holding: bool | None = None  # None: undecided yet
        self.native = False  # the server parsed tool calls itself: pass everything through

    def feed(self, chunk: ChatGenerationChunk) -> list[ChatGenerationChunk]:
        message = chunk.message
        if self.native or (isinstance(message, AIMessageChunk) and message.tool_call_chunks):
            self.native = True
            released, self.held = [*self.held, chunk], []
            return released
        if isinstance(message.content, str):
            self.text += message.content
        if self.holding is False:
            return [chunk]
        self.held.append(chunk)
        start = self.text.lstrip()
        if not start:
            return []
        if start.startswith(_HOLD_PREFIXES):
            self.holding = True
        elif not any(prefix.startswith(start) for prefix in _HOLD_PREFIXES):
            self.holding = False
            released, self.held = self.held, []
            return released
        return []

    def finish(self) -> list[ChatGenerationChunk]:
        if self.native:
            return []
        parsed = parse_tool_calls(self.text, self.tools)
        if parsed is None:
            released, self.held = self.held, []
            return released
        content, calls = parsed
        if not self.held:  # the text already streamed: only add the calls
            return [ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=_call_chunks(calls)))]
        merged: AIMessageChunk | None = None
        for chunk in self.held:
            if isinstance(chunk.message, AIMessageChunk):
                merged = chunk.message if merged is None else merged + chunk.message
        self.held = []
        replacement = AIMessageChunk(
            content=content,
            tool_call_chunks=_call_chunks(calls),
            usage_metadata=merged.usage_metadata if merged else None,
            response_metadata=merged.response_metadata if merged else {},
            id=merged.id if merged else None,
        )
        return [ChatGenerationChunk(message=replacement)]


class TolerantChatOpenAI(ChatOpenAI):
    """ChatOpenAI for local and OpenAI-compatible servers: also recognises tool calls written as text."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _fix_result(super()._generate(messages, stop, run_manager, **kwargs), kwargs.get("tools"))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _fix_result(await super()._agenerate(messages, stop, run_manager, **kwargs), kwargs.get("tools"))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        tools = kwargs.get("tools")
        if not tools:
            yield from super()._stream(messages, stop, run_manager, **kwargs)
            return
        filt = _StreamFilter(tools)
        for chunk in super()._stream(messages, stop, run_manager, **kwargs):
            yield from filt.feed(chunk)
        yield from filt.finish()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        tools = kwargs.get("tools")
        if not tools:
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                yield chunk
            return
        filt = _StreamFilter(tools)
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            for released in filt.feed(chunk):
                yield released
        for released in filt.finish():
            yield released


def _fix_result(result: ChatResult, tools: Sequence[dict[str, Any]] | None) -> ChatResult:
    if not tools:
        return result
    generations = [
        ChatGeneration(message=apply_to_message(g.message, tools), generation_info=g.generation_info)
        for g in result.generations
    ]
    return ChatResult(generations=generations, llm_output=result.llm_output)
