"""Graph state and the per-turn context the server passes in (never the model)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
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
