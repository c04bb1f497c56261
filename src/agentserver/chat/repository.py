"""Chat persistence: messages, and the per-session turn claim. Every query is scoped by owner."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
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

    async def claim_turn(
        self, user_id: uuid.UUID, session_id: uuid.UUID, turn_id: uuid.UUID, stale_after: timedelta
    ) -> bool:
        """Atomically mark the user's session as answering `turn_id`; False if it is busy or not theirs."""
        result = await self.session.execute(
            update(ChatSession)
            .where(
                ChatSession.id == session_id,
                ChatSession.user_id == user_id,
                or_(
                    ChatSession.active_turn_id.is_(None),
                    ChatSession.turn_started_at < func.now() - stale_after,
                ),
            )
            .values(active_turn_id=turn_id, turn_started_at=func.now(), updated_at=func.now())
            .returning(ChatSession.id)
        )
        return result.scalar_one_or_none() is not None

    async def release_turn(self, session_id: uuid.UUID, turn_id: uuid.UUID) -> None:
        # Only the claimant releases: a stale claim taken over by a newer turn stays with the new turn.
        await self.session.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id, ChatSession.active_turn_id == turn_id)
            .values(active_turn_id=None, turn_started_at=None)
        )

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
