"""The system prompt template (`system.md`), rendered per model call."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files

SYSTEM_TEMPLATE = (files(__package__) / "system.md").read_text(encoding="utf-8")
NOTHING_YET = "(nothing yet)"


def render_system_prompt(*, long_term_memory: str, conversation_summary: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    # str.replace, not str.format: memory and summaries are user-derived text and may contain braces.
    return (
        SYSTEM_TEMPLATE.replace("{current_time}", now.strftime("%Y-%m-%d %H:%M UTC (%A)"))
        .replace("{long_term_memory}", long_term_memory.strip() or NOTHING_YET)
        .replace("{conversation_summary}", conversation_summary.strip() or NOTHING_YET)
    )
