"""Chat persistence: the messages of a session (a projection of its runs). Every query is scoped by owner."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.models import ChatSession, Message


class ChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ChatRepository:
        return cls(session)

    async def owns_session(self, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(ChatSession.id).where(ChatSession.id == session_id, ChatSession.user_id == user_id)
        )
        return found is not None

    async def add_message(self, message: Message) -> Message:
        self.session.add(message)
        await self.session.flush()
        return message

    async def list_messages(
        self, user_id: uuid.UUID, session_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[Message]:
        """Oldest first, `limit` + 1 rows (the extra one tells there is a next page)."""
        statement: Any = (
            select(Message)
            .join(ChatSession, ChatSession.id == Message.session_id)
            .where(Message.session_id == session_id, ChatSession.user_id == user_id)
            .order_by(Message.created_at, Message.id)
            .limit(limit + 1)
        )
        if after is not None:
            created_at, message_id = after
            statement = statement.where(
                or_(Message.created_at > created_at, and_(Message.created_at == created_at, Message.id > message_id))
            )
        return list((await self.session.scalars(statement)).all())
