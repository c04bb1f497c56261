from __future__ import annotations

import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, Integer, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, IdMixin, TimestampMixin


class MessageRole(enum.StrEnum):
    user = "user"
    assistant = "assistant"
    tool = "tool"


class Message(IdMixin, TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A session's history in order; also serves cursor pagination.
        Index("ix_messages_session_id_created_at", "session_id", "created_at"),
        # Exactly one answer per run, whatever races between cancel, disconnect, takeover and shutdown.
        Index("uq_messages_run_id_assistant", "run_id", unique=True, postgresql_where=text("role = 'assistant'")),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False)
    # The run that wrote (assistant) or was started by (user) this message.
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), nullable=True)
    role: Mapped[MessageRole] = mapped_column(
        Enum(MessageRole, name="message_role", values_callable=lambda e: [m.value for m in e]), nullable=False
    )
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # Assistant messages: what the model did and what it cost.
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    input_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 6), nullable=True)
    # "complete", or why the answer stopped early ("cancelled", "max_tool_rounds", ...).
    finish_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)
