"""Folding old turns into a running summary, so long conversations keep a bounded prompt.

When the thread holds more than `summary_after_turns` user turns, every turn but the most recent
`keep_turns` is folded into `state["summary"]` by the cheapest configured model and removed from the
message list. The summary is *extended* with the newly folded turns — never recomputed from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, RemoveMessage, SystemMessage
from langchain_core.runnables import Runnable

from agentserver.agent.history import turn_starts

MAX_SUMMARY_CHARS = 3000
MAX_FOLDED_MESSAGE_CHARS = 1500

SUMMARY_INSTRUCTIONS = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Extend the existing summary with the new messages below. Keep every fact about the user "
    "(name, preferences, goals), decisions and open questions; drop small talk. Write in the language "
    "the user writes in. Answer with the updated summary only, at most 12 short sentences."
)


def split_for_summary(
    messages: Sequence[AnyMessage], summary_after_turns: int, keep_turns: int
) -> tuple[list[AnyMessage], list[AnyMessage]]:
    """(messages to fold, messages to keep); nothing to fold until the thread is long enough."""
    starts = turn_starts(messages)
    if len(starts) <= summary_after_turns:
        return [], list(messages)
    cut = starts[-keep_turns]
    return list(messages[:cut]), list(messages[cut:])


def _transcript(messages: Sequence[AnyMessage]) -> str:
    lines = []
    for message in messages:
        text = message.content if isinstance(message.content, str) else str(message.content)
        if isinstance(message, HumanMessage):
            role = "User"
        elif isinstance(message, AIMessage):
            role = "Assistant"
            if message.tool_calls:
                text = (
                    (text + " " if text else "") + "[called " + ", ".join(c["name"] for c in message.tool_calls) + "]"
                )
        else:
            role = "Tool"
        lines.append(f"{role}: {text[:MAX_FOLDED_MESSAGE_CHARS]}")
    return "\n".join(lines)


async def extend_summary(
    model: Runnable[LanguageModelInput, BaseMessage], summary: str, folded: Sequence[AnyMessage]
) -> tuple[str, AIMessage]:
    """The extended summary, and the model's answer (for its usage)."""
    prompt = [
        SystemMessage(SUMMARY_INSTRUCTIONS),
        HumanMessage(f"Existing summary:\n{summary or '(empty)'}\n\nNew messages:\n{_transcript(folded)}"),
    ]
    answer = await model.ainvoke(prompt)
    if not isinstance(answer, AIMessage):
        raise TypeError(f"expected an AIMessage, got {type(answer).__name__}")
    text = answer.content if isinstance(answer.content, str) else str(answer.content)
    return text.strip()[:MAX_SUMMARY_CHARS], answer


def removals(folded: Sequence[AnyMessage]) -> list[RemoveMessage]:
    return [RemoveMessage(id=m.id) for m in folded if m.id]
