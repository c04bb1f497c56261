"""The system prompt (`system.md`): static instructions, then the per-turn context, rendered per model call.

The two parts are sent apart so a server's prompt cache can keep the longest possible prefix: the static
instructions (identical for every user and turn) go first, the conversation so far next, and the context
(time, memories, summary, the language to answer in: it changes every turn) just before the latest turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files

_TEMPLATE = (files(__package__) / "system.md").read_text(encoding="utf-8")
_STATIC, _CONTEXT = re.split(r"^<!-- context:.*-->\n", _TEMPLATE, maxsplit=1, flags=re.MULTILINE)
SYSTEM_TEMPLATE = _STATIC.rstrip() + "\n"
CONTEXT_TEMPLATE = _CONTEXT
NOTHING_YET = "(nothing yet)"
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")


@dataclass(frozen=True)
class SystemPrompt:
    instructions: str  # static: the same for every user and turn
    context: str  # volatile: this turn's time, memories, summary and language

    def joined(self) -> str:
        return f"{self.instructions}\n{self.context}"


def language_rule(latest_user_message: str) -> str:
    """Which language to answer in, decided here rather than left to a small model's judgement."""
    letters = [ch for ch in latest_user_message if ch.isalpha()]
    hangul = sum(1 for ch in letters if _HANGUL.match(ch))
    if letters and hangul * 2 >= len(letters):
        return "Answer in Korean. 한국어로 답하세요."
    if letters and all(ch.isascii() for ch in letters):
        return "Answer in English."
    return "Answer in the language of the user's latest message."


FILES_HEADING = "# The user's files (search them with `search_documents`; cite file name and page)"


def with_instructions(extra: str) -> str:
    """The static instructions with an assistant's own after them (both static: the cached prefix grows)."""
    extra = extra.strip()
    if not extra:
        return SYSTEM_TEMPLATE
    return f"{SYSTEM_TEMPLATE}\n# Instructions of this assistant\n{extra}\n"


def render_system_prompt(
    *,
    long_term_memory: str,
    conversation_summary: str,
    latest_user_message: str = "",
    now: datetime | None = None,
    files: str = "",
    instructions: str = SYSTEM_TEMPLATE,
) -> SystemPrompt:
    now = now or datetime.now(UTC)
    # str.replace, not str.format: memory and summaries are user-derived text and may contain braces.
    context = (
        CONTEXT_TEMPLATE.replace("{current_time}", now.strftime("%Y-%m-%d %H:%M UTC (%A)"))
        .replace("{long_term_memory}", long_term_memory.strip() or NOTHING_YET)
        .replace("{conversation_summary}", conversation_summary.strip() or NOTHING_YET)
        .replace("{language_rule}", language_rule(latest_user_message))
    )
    if files.strip():
        # Only when the session has files: a turn without any keeps the prompt it always had.
        context = f"{context.rstrip()}\n\n{FILES_HEADING}\n{files.strip()}\n"
    return SystemPrompt(instructions, context)
