"""The typed events of a chat turn, shared by SSE and WebSocket (SPEC §3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

EventName = Literal["token", "reset", "tool_call", "tool_result", "done", "error"]


@dataclass(frozen=True)
class ChatEvent:
    name: EventName
    data: dict[str, Any]

    def sse(self) -> str:
        # One JSON line per data field: json.dumps never emits raw newlines, so the frame cannot be split.
        return f"event: {self.name}\ndata: {json.dumps(self.data, ensure_ascii=False, default=str)}\n\n"

    def ws(self) -> dict[str, Any]:
        return {"event": self.name, "data": self.data}


def token(content: str) -> ChatEvent:
    return ChatEvent("token", {"content": content})


def reset() -> ChatEvent:
    """Discard the text streamed so far for the current answer: a retried or fallback attempt restarts it."""
    return ChatEvent("reset", {})


def tool_call(call_id: str, name: str, args: dict[str, Any]) -> ChatEvent:
    return ChatEvent("tool_call", {"id": call_id, "name": name, "args": args})


def tool_result(call_id: str, name: str, content: str) -> ChatEvent:
    return ChatEvent("tool_result", {"id": call_id, "name": name, "content": content})


def done(message_id: str, usage: dict[str, Any]) -> ChatEvent:
    return ChatEvent("done", {"message_id": message_id, "usage": usage})


def error(error_name: str, detail: str) -> ChatEvent:
    return ChatEvent("error", {"error": error_name, "detail": detail})
