"""Chat persistence: the messages of a session (a projection of its runs). Every query is scoped by owner."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.models import ChatSession, Message, Run


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
        """Oldest first, `limit` + 1 rows (the extra one tells there is a next page).

        In conversation order: by the run each message belongs to, then by time. An answer is written when
        its run ends, which can be after the next question arrived (an enqueued or interrupting message):
        it is still listed right after its own question, as in the agent's checkpointed conversation.
        """
        turn_at = func.coalesce(Run.created_at, Message.created_at)
        statement: Any = (
            select(Message)
            .join(ChatSession, ChatSession.id == Message.session_id)
            .outerjoin(Run, Run.id == Message.run_id)
            .where(Message.session_id == session_id, ChatSession.user_id == user_id)
            .order_by(turn_at, Message.created_at, Message.id)
            .limit(limit + 1)
        )
        if after is not None:
            created_at, message_id = after
            cursor_turn_at = func.coalesce(
                select(Run.created_at)
                .join(Message, Message.run_id == Run.id)
                .where(Message.id == message_id)
                .scalar_subquery(),
                created_at,
            )
            statement = statement.where(
                tuple_(turn_at, Message.created_at, Message.id) > tuple_(cursor_turn_at, created_at, message_id)
            )
        return list((await self.session.scalars(statement)).all())
