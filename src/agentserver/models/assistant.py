from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, IdMixin, TimestampMixin


class UserAssistant(IdMixin, TimestampMixin, Base):
    """A user's own assistant (the deployment's live in memory, from ASSISTANTS_FILE: agent/assistants.py)."""

    __tablename__ = "assistants"
    # One name per owner: the name is what OpenAI clients send as `model`.
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_assistants_user_id_name"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    instructions: Mapped[str] = mapped_column(Text, nullable=False, default="")
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fallback_models: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    tools: Mapped[list[str] | None] = mapped_column(JSONB, nullable=True)  # None: the built-ins
    approval: Mapped[list[str] | None] = mapped_column(JSONB, nullable=True)  # None: TOOLS_REQUIRING_APPROVAL
    memory: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    summary_after_turns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Bumped by every change: compiled graphs are cached per (id, version).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
