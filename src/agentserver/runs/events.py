"""The typed events of a run, shared by SSE, WebSocket and the event log (SPEC §3).

Every event of a run gets an increasing `seq` (1, 2, ...) when the worker emits it; SSE frames carry it as
`id:` and WebSocket frames as `"id"`, so a client that reconnects with `Last-Event-ID` (or `?after=`)
receives exactly the events it missed.

    metadata          {run_id, session_id}                  first event of a run
    token             {content}                             a piece of the answer
    tool_call         {id, name, args}                      the model called a tool
    tool_result       {id, name, content}                   what the tool returned
    reset             {}                                    discard the answer text streamed so far (a retry,
                                                            a fallback model, or a worker takeover restarts it)
    approval_required {run_id, tool_call_id, tool, args}    the run paused for a decision (POST .../resume)
    done              {message_id, usage, finish_reason}    the run ended; the answer is stored
    error             {error, detail}                       the run failed; nothing half-done is stored

Only in the log of a run whose client asked for them (`Run.stream_modes`, the Agent Server API's stream
modes; a chat run's log never has them):

    values            {values}                              the graph's whole state after a step
    updates           {updates}                             what a step changed, by node
    message           {id}                                  the `token`s that follow belong to this message
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal

EventName = Literal[
    "metadata",
    "token",
    "tool_call",
    "tool_result",
    "reset",
    "approval_required",
    "done",
    "error",
    "values",
    "updates",
    "message",
]
# The extra events a run's client may ask for (Run.stream_modes).
STREAM_MODE_EVENTS: frozenset[str] = frozenset({"values", "updates", "message"})
# After these a run's stream ends (approval_required: until the run is resumed).
TERMINAL_EVENTS: frozenset[str] = frozenset({"done", "error", "approval_required"})


@dataclass(frozen=True)
class RunEvent:
    name: EventName
    data: dict[str, Any]
    seq: int = 0  # assigned by the run's emitter; 0 for events not from a log (e.g. a WebSocket refusal)

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL_EVENTS

    def with_seq(self, seq: int) -> RunEvent:
        return replace(self, seq=seq)

    def json_data(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, default=str)

    def sse(self) -> str:
        # One JSON line per data field: json.dumps never emits raw newlines, so the frame cannot be split.
        head = f"id: {self.seq}\n" if self.seq else ""
        return f"{head}event: {self.name}\ndata: {self.json_data()}\n\n"

    def ws(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"event": self.name, "data": self.data}
        if self.seq:
            frame["id"] = self.seq
        return frame


def metadata(run_id: str, session_id: str) -> RunEvent:
    return RunEvent("metadata", {"run_id": run_id, "session_id": session_id})


def token(content: str) -> RunEvent:
    return RunEvent("token", {"content": content})


def tool_call(call_id: str, name: str, args: dict[str, Any]) -> RunEvent:
    return RunEvent("tool_call", {"id": call_id, "name": name, "args": args})


def tool_result(call_id: str, name: str, content: str) -> RunEvent:
    return RunEvent("tool_result", {"id": call_id, "name": name, "content": content})


def reset() -> RunEvent:
    return RunEvent("reset", {})


def approval_required(run_id: str, interrupt: dict[str, Any]) -> RunEvent:
    return RunEvent("approval_required", {"run_id": run_id, **interrupt})


def done(message_id: str | None, usage: dict[str, Any], finish_reason: str) -> RunEvent:
    return RunEvent("done", {"message_id": message_id, "usage": usage, "finish_reason": finish_reason})


def error(error_name: str, detail: str) -> RunEvent:
    return RunEvent("error", {"error": error_name, "detail": detail})


def values(state: dict[str, Any]) -> RunEvent:
    return RunEvent("values", {"values": state})


def updates(by_node: dict[str, Any]) -> RunEvent:
    return RunEvent("updates", {"updates": by_node})


def message(message_id: str) -> RunEvent:
    return RunEvent("message", {"id": message_id})
