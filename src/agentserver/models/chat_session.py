from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, IdMixin, TimestampMixin


class ChatSession(IdMixin, TimestampMixin, Base):
    __tablename__ = "chat_sessions"
    __table_args__ = (
        # The session list: a user's sessions, most recently active first.
        Index(
            "ix_chat_sessions_user_id_updated_at",
            "user_id",
            "updated_at",
            postgresql_ops={"updated_at": "DESC"},
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="New chat")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    # Free-form key/values of the Agent Server API's threads (a thread is a session): set and searched
    # by its clients. (`metadata` is reserved on declarative classes, hence the attribute's name.)
    thread_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB, nullable=True)
    # The assistant the session talks to (agent/assistants.py): a deployment assistant's id (those are not
    # rows, hence no foreign key) or one of the user's; NULL: the deployment's default.
    assistant_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
