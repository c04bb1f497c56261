"""Chat request and response bodies. Clients send only their own text (no roles, no extra fields)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agentserver.models import MessageRole, MultitaskStrategy

# A hard ceiling on what is parsed at all; the configured MAX_MESSAGE_CHARS is checked by the service.
MESSAGE_PARSE_LIMIT = 1_000_000


def clean_user_text(value: str) -> str:
    """Stored verbatim except NUL bytes (PostgreSQL text cannot hold them); never HTML-escaped here."""
    value = value.replace("\x00", "")
    if not value.strip():
        raise ValueError("message must not be empty")
    return value


UserText = Annotated[str, Field(min_length=1, max_length=MESSAGE_PARSE_LIMIT), AfterValidator(clean_user_text)]


class ChatRequest(BaseModel):
    # extra="forbid": a smuggled `role`, `system` or `messages` field is a 422, not silently honoured.
    model_config = ConfigDict(extra="forbid")

    session_id: uuid.UUID
    message: UserText
    multitask_strategy: MultitaskStrategy | None = Field(
        default=None,
        description="While the session is still answering: reject (409) | enqueue | interrupt | rollback "
        "(default: DEFAULT_MULTITASK_STRATEGY)",
    )
    on_disconnect: Literal["continue", "cancel"] = Field(
        default="continue",
        description="Streams: whether the run goes on when the client goes away (it can re-join with "
        "GET /api/v1/runs/{run_id}/stream) or is cancelled",
    )


class ChatFrame(BaseModel):
    """A WebSocket frame: the session comes from the URL."""

    model_config = ConfigDict(extra="forbid")

    message: UserText
    multitask_strategy: MultitaskStrategy | None = None


class Usage(BaseModel):
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal("0")


class ChatResponse(BaseModel):
    session_id: uuid.UUID
    run_id: uuid.UUID
    message: str
    message_id: uuid.UUID | None = Field(description="The stored answer; null when the run paused for approval")
    finish_reason: str = Field(description="complete | max_tool_rounds | cancelled | approval_required")
    usage: Usage
    approval: dict[str, Any] | None = Field(
        default=None, description="When the run paused: the tool call waiting for POST /api/v1/runs/{id}/resume"
    )


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: MessageRole
    content: str
    created_at: datetime


class MessagePage(BaseModel):
    messages: list[MessageRead]
    next_cursor: str | None
