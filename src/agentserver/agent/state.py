"""Graph state and the per-turn context the server passes in (never the model)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    # Running summary of turns folded out of `messages`; extended, never recomputed.
    summary: str
    # Tool rounds used by the current turn; reset when a user message arrives.
    tool_rounds: int


async def _no_memory() -> str:
    return ""


async def _no_files() -> str:
    return ""


@dataclass(frozen=True)
class TurnContext:
    """Who is asking and what the server knows; tools and prompts read identity from here only.

    `long_term_memory` is awaited by the chat node, so the memory search started by the service runs
    concurrently with the checkpoint (history) load and the summarize step.
    """

    user_id: uuid.UUID
    session_id: uuid.UUID
    long_term_memory: Callable[[], Awaitable[str]] = field(default=_no_memory)
    # Parameters of the chat model's calls chosen by the run's client (temperature, max_tokens, ...).
    model_options: Mapping[str, Any] = field(default_factory=dict)
    # The files the session's agent can search (a short list for the prompt; "" when there are none).
    files: Callable[[], Awaitable[str]] = field(default=_no_files)


# The turn whose tool calls are running: set by the tools node, read by tools that act for the user
# (search_documents), so identity never travels through the model's arguments.
_current_turn: ContextVar[TurnContext | None] = ContextVar("agentserver_current_turn", default=None)


def current_turn() -> TurnContext | None:
    return _current_turn.get()


def set_current_turn(turn: TurnContext | None) -> Any:
    """Set the turn for the calls about to run; returns the token to reset it with."""
    return _current_turn.set(turn)


def reset_current_turn(token: Any) -> None:
    _current_turn.reset(token)
