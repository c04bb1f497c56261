"""From LangGraph's stream of one run to our events, and from the run's checkpointed state to its result.

The graph is streamed with `stream_mode=["messages", "updates", "values", "custom"]`:

- `messages`: token chunks of the chat node → `token` events. A retry or a fallback model restarts the
  answer under a new message id: if text of the failed attempt was already streamed, a `reset` event
  tells clients to discard it first.
- `updates`: finished steps → `tool_call` (chat), `tool_result` (tools), the give-up message, an answer
  that arrived without streaming (a cache hit) as one `token`, and `__interrupt__` (an approval pause).
- `values`: the whole state after each step; the last one is what the run's result is read from.
- `custom`: `{"usage": ...}` of model calls outside the chat node (summaries).

A run whose client asked for them (`stream_modes`, the Agent Server API) also gets `values` and `updates`
events (the state and the steps, as JSON) and a `message {id}` event before the tokens of each answer,
so that client can tell messages apart; other runs' logs have none of these.

The result (answer text, tool calls with their results, usage, finish reason) is computed from the
messages the run added to the checkpointed conversation, so it is the same whether the run went straight
through, was resumed after an approval, or was taken over by another worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage, ToolMessage

from agentserver.agent.jsonable import jsonable
from agentserver.llm.usage import usage_of
from agentserver.runs import events
from agentserver.runs.emitter import RunEmitter


@dataclass
class RunUsage:
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0")

    def add(self, model: str | None, input_tokens: int, output_tokens: int, cost_usd: Decimal) -> None:
        self.model = model or self.model
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost_usd += cost_usd

    def add_dict(self, usage: dict[str, Any]) -> None:
        self.add(
            None,  # a summary's model is not the model that answered
            int(usage.get("input_tokens", 0)),
            int(usage.get("output_tokens", 0)),
            Decimal(str(usage.get("cost_usd", "0"))),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost_usd": str(self.cost_usd),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunUsage:
        usage = cls()
        if data:
            usage.add(
                data.get("model"),
                int(data.get("input_tokens", 0)),
                int(data.get("output_tokens", 0)),
                Decimal(str(data.get("cost_usd", "0"))),
            )
        return usage


@dataclass
class RunResult:
    """What the assistant produced in one run (possibly cut short)."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: RunUsage = field(default_factory=RunUsage)
    finish_reason: str = "complete"

    @property
    def empty(self) -> bool:
        return not self.content and not self.tool_calls


def run_messages(messages: Sequence[AnyMessage], user_message_id: uuid.UUID | None) -> list[AnyMessage]:
    """The messages a run added after its user message (after the last user message if that one is gone)."""
    anchor = str(user_message_id) if user_message_id else None
    start = None
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, HumanMessage) and (anchor is None or message.id == anchor):
            start = index + 1
            break
    if start is None:
        start = next((i + 1 for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)), 0)
    return list(messages[start:])


def result_of(messages: Sequence[AnyMessage], extra_usage: RunUsage | None = None) -> RunResult:
    """The run's result from the messages it added (see `run_messages`)."""
    result = RunResult()
    results_by_call: dict[str, str] = {
        m.tool_call_id: (m.content if isinstance(m.content, str) else str(m.content))
        for m in messages
        if isinstance(m, ToolMessage)
    }
    last_ai: AIMessage | None = None
    for message in messages:
        if not isinstance(message, AIMessage):
            continue
        last_ai = message
        if message.usage_metadata:
            usage = usage_of(message)
            result.usage.add(usage.model, usage.input_tokens, usage.output_tokens, usage.cost_usd)
        for call in message.tool_calls:
            record: dict[str, Any] = {"id": call["id"], "name": call["name"], "args": call["args"]}
            if call["id"] in results_by_call:
                record["result"] = results_by_call[call["id"]]
            result.tool_calls.append(record)
    if extra_usage is not None:
        result.usage.add(None, extra_usage.input_tokens, extra_usage.output_tokens, extra_usage.cost_usd)
    if last_ai is not None:
        result.content = last_ai.content if isinstance(last_ai.content, str) else ""
        reason = last_ai.response_metadata.get("finish_reason")
        if reason in ("max_tool_rounds", "cancelled"):
            result.finish_reason = str(reason)
    return result


class StreamTranslator:
    """Feeds one run's LangGraph stream into its emitter; see the module docstring."""

    def __init__(self, emitter: RunEmitter, stream_modes: Collection[str] = ()) -> None:
        self.emitter = emitter
        self.stream_modes = frozenset(stream_modes)
        self.streamed: list[str] = []  # text of the answer being streamed right now
        self._streamed_id: str | None = None
        self.extra_usage = RunUsage()
        self.last_values: dict[str, Any] | None = None
        self.interrupt: dict[str, Any] | None = None

    @property
    def partial_text(self) -> str:
        return "".join(self.streamed)

    def feed(self, mode: str, data: Any) -> None:
        if mode == "messages":
            self._on_chunk(*data)
        elif mode == "updates":
            for node, update in (data or {}).items():
                self._on_update(node, update)
            if "updates" in self.stream_modes and isinstance(data, dict):
                self.emitter.emit(events.updates(jsonable(data)))
        elif mode == "values":
            self.last_values = data if isinstance(data, dict) else None
            if "values" in self.stream_modes and self.last_values is not None:
                self.emitter.emit(events.values(jsonable(self.last_values)))
        elif mode == "custom" and isinstance(data, dict) and isinstance(data.get("usage"), dict):
            self.extra_usage.add_dict(data["usage"])

    def _on_chunk(self, chunk: Any, metadata: dict[str, Any]) -> None:
        if metadata.get("langgraph_node") != "chat" or not isinstance(chunk, AIMessageChunk):
            return
        if chunk.id != self._streamed_id:
            if self.streamed:
                # A retry or fallback restarts the answer: what the failed attempt streamed is void.
                self.emitter.emit(events.reset())
                self.streamed.clear()
            self._streamed_id = chunk.id
            self._start_message(chunk.id)
        text = chunk.content if isinstance(chunk.content, str) else ""
        if text:
            self.streamed.append(text)
            self.emitter.token(text)

    def _on_update(self, node: str, update: Any) -> None:
        if node == "__interrupt__":
            for item in update or ():
                value = getattr(item, "value", None)
                if isinstance(value, dict) and self.interrupt is None:
                    self.interrupt = value
            return
        messages = (update.get("messages") or []) if isinstance(update, dict) else []
        if node == "chat":
            for message in messages:
                if not isinstance(message, AIMessage):
                    continue
                text = message.content if isinstance(message.content, str) else ""
                if text and not self.streamed:
                    # Not streamed (a cached answer, a non-streaming model).
                    self._start_message(message.id)
                    self.emitter.token(text)
                self.streamed.clear()
                self._streamed_id = None
                for call in message.tool_calls:
                    self.emitter.emit(events.tool_call(call["id"] or "", call["name"], call["args"]))
        elif node == "tools":
            for message in messages:
                if isinstance(message, ToolMessage):
                    content = message.content if isinstance(message.content, str) else str(message.content)
                    self.emitter.emit(events.tool_result(message.tool_call_id, message.name or "", content))
        elif node == "give_up":
            final = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
            if final is not None:
                self._start_message(final.id)
                self.emitter.token(str(final.content))

    def _start_message(self, message_id: str | None) -> None:
        if "message" in self.stream_modes and message_id:
            self.emitter.emit(events.message(message_id))
