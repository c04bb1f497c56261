from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, IdMixin, TimestampMixin


class ChatBinding(IdMixin, TimestampMixin, Base):
    """Which chat session an OpenAI-compatible client's conversation is (openai_compat/sessions.py).

    OpenAI clients resend the whole conversation with every request and name no session; the server keeps
    the conversation, so each request is mapped to one session by a key: an Open WebUI chat id, the
    request's `user` field, or a fingerprint of the history it resends. Only a digest of the key is stored.
    """

    __tablename__ = "chat_bindings"
    __table_args__ = (UniqueConstraint("user_id", "kind", "key_hash", name="uq_chat_bindings_user_id_kind_key_hash"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # openwebui | user | history
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False, index=True
    )
