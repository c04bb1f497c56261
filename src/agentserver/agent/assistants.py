"""The assistants a user can talk to, as the protocol APIs name them: OpenAI's models, LangGraph's assistants.

Today there is one, the deployment's agent. `list_assistants`, `find_assistant` and `assistant_of_session`
are the only way the protocol layers (openai_compat/, agent_protocol/) learn about assistants, so a table
of assistants can back them later without touching those layers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

# LangGraph's default graph name; also the model name the OpenAI-compatible API lists.
DEFAULT_GRAPH_ID = "agent"
# Stable across processes and restarts (LangGraph derives a graph's default assistant id the same way).
DEFAULT_ASSISTANT_ID = uuid.uuid5(uuid.NAMESPACE_DNS, "agentserver.default-assistant")
_DEFAULT_CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Assistant:
    id: uuid.UUID
    name: str  # what OpenAI clients send as `model`
    graph_id: str
    description: str | None = None
    created_at: datetime = _DEFAULT_CREATED_AT
    updated_at: datetime = _DEFAULT_CREATED_AT
    metadata: dict[str, Any] = field(default_factory=dict)


DEFAULT_ASSISTANT = Assistant(
    id=DEFAULT_ASSISTANT_ID,
    name=DEFAULT_GRAPH_ID,
    graph_id=DEFAULT_GRAPH_ID,
    description="The deployment's agent: chat with tools and long-term memory.",
    metadata={"created_by": "system"},
)


async def list_assistants(db: AsyncSession, user_id: uuid.UUID) -> list[Assistant]:
    """Every assistant `user_id` may use, the default first."""
    return [DEFAULT_ASSISTANT]


async def find_assistant(db: AsyncSession, user_id: uuid.UUID, ref: str) -> Assistant | None:
    """The assistant `ref` names (its id, or its name as LangGraph's graph id or OpenAI's model), if the
    user may use it."""
    for assistant in await list_assistants(db, user_id):
        if ref in (str(assistant.id), assistant.name, assistant.graph_id):
            return assistant
    return None


async def assistant_of_session(db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID) -> Assistant:
    """The assistant a session talks to (its runs' assistant)."""
    return DEFAULT_ASSISTANT
