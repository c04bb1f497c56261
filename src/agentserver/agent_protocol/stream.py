"""A run's events as LangGraph's stream: the SSE frames `langgraph-sdk` and `RemoteGraph` read.

    our log                      stream modes asked → frames
    metadata                     metadata {run_id, attempt}
    values {values}              values → `values` (the state after each step)
    updates {updates}            updates → `updates` ({node: what it wrote}, `__interrupt__` when paused)
    message {id} + token ...     messages-tuple → `messages` [AIMessageChunk, metadata] per token;
                                 messages → `messages/metadata`, `messages/partial` (the message so far)
    tool_call, tool_result       the same modes: the answer's tool calls, the tool's message
    approval_required            values → the last state + `__interrupt__`; updates → `{"__interrupt__": [...]}`
                                 (unless the log already had it)
    error                        error {error, message}

Runs started through this API ask the worker for `values`, `updates` and `message` events (only what
their client asked for); a run started elsewhere (the chat API) has none of them, and its stream here
carries what can be told from its chat events (tokens, tool calls, interrupts).
Every frame built from one of our events ends with that event's `id:`, so `Last-Event-ID` resumes.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessageChunk, ToolMessage

from agentserver.runs.events import RunEvent

Frame = tuple[str, Any]
KEEP_ALIVE = ": heartbeat\n\n"


def log_modes(modes: Collection[str]) -> list[str]:
    """The events a run's log needs for these stream modes."""
    needed = set()
    if "values" in modes:
        needed.add("values")
    if "updates" in modes or "messages" in modes:
        needed.add("updates")
    if "messages" in modes or "messages-tuple" in modes:
        needed.add("message")
    return sorted(needed)


def sse(name: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@dataclass
class StreamFrames:
    modes: frozenset[str]
    run_id: str
    thread_id: str
    _message_id: str | None = None
    _message: AIMessageChunk | None = None
    _counter: int = 0
    _last_values: dict[str, Any] | None = None
    _interrupt_seen: bool = False
    _metadata_sent: bool = False
    _completed: set[str] = field(default_factory=set)

    @classmethod
    def for_modes(cls, modes: Collection[str], run_id: str, thread_id: str) -> StreamFrames:
        return cls(frozenset(modes), run_id, thread_id)

    def start(self) -> list[Frame]:
        """The frame a stream opens with when it does not replay the run's first event."""
        self._metadata_sent = True
        return [("metadata", {"run_id": self.run_id, "attempt": 1})]

    def frames(self, event: RunEvent) -> list[Frame]:
        handler = getattr(self, f"_on_{event.name}", None)
        return handler(event.data) if handler is not None else []

    # --- our events ---------------------------------------------------------------------------------
    def _on_metadata(self, data: dict[str, Any]) -> list[Frame]:
        if self._metadata_sent:
            return []
        return self.start()

    def _on_values(self, data: dict[str, Any]) -> list[Frame]:
        values = data.get("values")
        self._last_values = values if isinstance(values, dict) else None
        return [("values", values)] if "values" in self.modes else []

    def _on_updates(self, data: dict[str, Any]) -> list[Frame]:
        updates = data.get("updates") or {}
        if isinstance(updates, dict) and "__interrupt__" in updates:
            self._interrupt_seen = True
        frames: list[Frame] = [("updates", updates)] if "updates" in self.modes else []
        if "messages" in self.modes and isinstance(updates, dict):
            # Messages a step wrote whole (a tool's answer, a cached answer): complete at once.
            complete = []
            for update in updates.values():
                messages = update.get("messages") if isinstance(update, dict) else None
                for message in messages if isinstance(messages, list) else []:
                    if isinstance(message, dict) and message.get("id") and message["id"] not in self._completed:
                        self._completed.add(message["id"])
                        complete.append(message)
            if complete:
                frames.append(("messages/complete", complete))
        return frames

    def _on_message(self, data: dict[str, Any]) -> list[Frame]:
        self._message_id = str(data.get("id") or "") or None
        self._message = None
        return []

    def _on_token(self, data: dict[str, Any]) -> list[Frame]:
        return self._chunk(AIMessageChunk(content=str(data.get("content", "")), id=self._current_id()))

    def _on_tool_call(self, data: dict[str, Any]) -> list[Frame]:
        call = {"name": data.get("name"), "args": data.get("args") or {}, "id": data.get("id"), "type": "tool_call"}
        frames = self._chunk(AIMessageChunk(content="", id=self._current_id(), tool_calls=[call]))
        self._message_id, self._message = None, None  # the next answer is another message
        return frames

    def _on_tool_result(self, data: dict[str, Any]) -> list[Frame]:
        if "messages-tuple" not in self.modes:
            return []
        message = ToolMessage(
            str(data.get("content", "")),
            tool_call_id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            id=f"tool-{data.get('id', '')}",
        )
        return [("messages", [message.model_dump(), self._metadata("tools")])]

    def _on_approval_required(self, data: dict[str, Any]) -> list[Frame]:
        value = {key: item for key, item in data.items() if key != "run_id"}
        interrupts = [{"value": value, "id": str(data.get("tool_call_id") or self.run_id)}]
        frames: list[Frame] = []
        if "updates" in self.modes and not self._interrupt_seen:
            frames.append(("updates", {"__interrupt__": interrupts}))
        if "values" in self.modes:
            frames.append(("values", {**(self._last_values or {}), "__interrupt__": interrupts}))
        return frames

    def _on_error(self, data: dict[str, Any]) -> list[Frame]:
        return [("error", {"error": data.get("error"), "message": data.get("detail")})]

    # --- messages -----------------------------------------------------------------------------------
    def _current_id(self) -> str:
        if self._message_id is None:
            # A run without `message` events (started elsewhere): one id per answer of this run.
            self._counter += 1
            self._message_id = f"run-{self.run_id}-{self._counter}"
        return self._message_id

    def _metadata(self, node: str) -> dict[str, Any]:
        return {"langgraph_node": node, "run_id": self.run_id, "thread_id": self.thread_id}

    def _chunk(self, chunk: AIMessageChunk) -> list[Frame]:
        frames: list[Frame] = []
        if "messages-tuple" in self.modes:
            frames.append(("messages", [chunk.model_dump(), self._metadata("chat")]))
        if "messages" in self.modes:
            if self._message is None:
                self._message = chunk
                frames.append(("messages/metadata", {chunk.id: {"metadata": self._metadata("chat")}}))
            else:
                self._message = self._message + chunk
            frames.append(("messages/partial", [self._message.model_dump()]))
        return frames
