"""SQL for chat sessions. Every query is scoped to its owner: another user's session simply is not found."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.kit.pagination import keyset_page
from agentserver.models import ChatSession, User


class ChatSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ChatSessionRepository:
        return cls(session)

    @staticmethod
    def owned_statement(user_id: uuid.UUID) -> Select[ChatSession]:
        """The base of every read: only this user's sessions exist."""
        return select(ChatSession).where(ChatSession.user_id == user_id)

    async def get_owned(
        self, user_id: uuid.UUID, session_id: uuid.UUID, *, for_update: bool = False
    ) -> ChatSession | None:
        """The session if it exists and belongs to `user_id`; None otherwise (callers answer 404, never 403).

        `for_update` locks the row until the transaction ends (e.g. one chat turn per session at a time).
        """
        statement = self.owned_statement(user_id).where(ChatSession.id == session_id)
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def list_owned(self, user_id: uuid.UUID, *, cursor: str | None, limit: int) -> Sequence[ChatSession]:
        """Up to `limit + 1` sessions after `cursor`, most recently updated first (see kit.pagination)."""
        statement = keyset_page(
            self.owned_statement(user_id), ChatSession.updated_at, ChatSession.id, cursor=cursor, limit=limit
        )
        return (await self.session.execute(statement)).scalars().all()

    async def list_ids_for_user(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        statement = select(ChatSession.id).where(ChatSession.user_id == user_id)
        return list((await self.session.execute(statement)).scalars().all())

    async def create(self, user: User, *, name: str, assistant_id: uuid.UUID | None = None) -> ChatSession:
        chat_session = ChatSession(user_id=user.id, name=name, assistant_id=assistant_id)
        self.session.add(chat_session)
        await self.session.flush()
        # Server-side defaults (timestamps) are loaded now, while we are in async code.
        await self.session.refresh(chat_session, ["created_at", "updated_at"])
        return chat_session

    async def rename(self, chat_session: ChatSession, name: str) -> ChatSession:
        chat_session.name = name
        await self.session.flush()
        await self.session.refresh(chat_session, ["updated_at"])
        return chat_session

    async def delete(self, chat_session: ChatSession) -> None:
        # The user_id filter repeats the ownership rule even for a row we already hold.
        await self.session.execute(
            delete(ChatSession).where(ChatSession.id == chat_session.id, ChatSession.user_id == chat_session.user_id)
        )
        self.session.expunge(chat_session)
