"""Keeping the model's input valid and bounded, whatever is in the checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage


def message_chars(message: AnyMessage) -> int:
    text = message.content if isinstance(message.content, str) else str(message.content)
    calls = sum(len(str(c.get("args", ""))) + len(c.get("name", "")) for c in getattr(message, "tool_calls", []))
    return len(text) + calls


def drop_dangling_tool_calls(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """Remove tool calls that never got a result (a turn cancelled mid-tool), and orphaned results.

    Providers reject a history where an assistant tool call has no matching tool message.
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    called: set[str] = set()
    cleaned: list[AnyMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            kept = [c for c in message.tool_calls if c.get("id") in answered]
            called.update(c["id"] for c in kept if c["id"])
            if len(kept) != len(message.tool_calls):
                if not kept and not message.content:
                    continue
                message = message.model_copy(update={"tool_calls": kept})
        elif isinstance(message, ToolMessage) and message.tool_call_id not in called:
            continue
        cleaned.append(message)
    return cleaned


def turn_starts(messages: Sequence[AnyMessage]) -> list[int]:
    """Indexes of the human messages: the only places history can be cut without splitting a tool exchange."""
    return [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]


def fit_to_budget(messages: Sequence[AnyMessage], max_chars: int) -> list[AnyMessage]:
    """The most recent whole turns that fit in `max_chars` (the last turn is always kept)."""
    messages = list(messages)
    starts = turn_starts(messages)
    suffix = sum(message_chars(m) for m in messages)
    cut = 0
    for start in (s for s in starts if s > 0):
        if suffix <= max_chars:
            break
        suffix -= sum(message_chars(m) for m in messages[cut:start])
        cut = start
    return messages[cut:]
