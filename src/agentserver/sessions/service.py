"""Chat sessions of one user: create, list (cursor-paginated), rename, delete."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.kit.errors import NotFound
from agentserver.kit.pagination import finish_page
from agentserver.models import ChatSession, User
from agentserver.sessions.repository import ChatSessionRepository
from agentserver.sessions.schemas import DEFAULT_SESSION_NAME

# Erases what lives outside our tables for a deleted chat session (the agent's checkpoints).
SessionDeletionHook = Callable[[uuid.UUID], Awaitable[None]]

log = structlog.get_logger(__name__)


class SessionNotFound(NotFound):
    """The chat session does not exist or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("Session not found")


class ChatSessionService:
    async def create(self, session: AsyncSession, user: User, *, name: str | None) -> ChatSession:
        chat_session = await ChatSessionRepository.from_session(session).create(user, name=name or DEFAULT_SESSION_NAME)
        log.info("sessions.created", session_id=str(chat_session.id))
        return chat_session

    async def get(self, session: AsyncSession, user: User, session_id: uuid.UUID) -> ChatSession:
        chat_session = await ChatSessionRepository.from_session(session).get_owned(user.id, session_id)
        if chat_session is None:
            raise SessionNotFound()
        return chat_session

    async def list(
        self, session: AsyncSession, user: User, *, cursor: str | None, limit: int
    ) -> tuple[list[ChatSession], str | None]:
        rows = await ChatSessionRepository.from_session(session).list_owned(user.id, cursor=cursor, limit=limit)
        return finish_page(rows, limit, key=lambda row: (row.updated_at, row.id))

    async def rename(self, session: AsyncSession, user: User, session_id: uuid.UUID, *, name: str) -> ChatSession:
        chat_session = await self.get(session, user, session_id)
        return await ChatSessionRepository.from_session(session).rename(chat_session, name)

    async def delete(
        self,
        session: AsyncSession,
        user: User,
        session_id: uuid.UUID,
        *,
        on_delete: Sequence[SessionDeletionHook] = (),
    ) -> None:
        """Delete the session; messages go by foreign-key cascade, `on_delete` erases the rest (checkpoints)."""
        chat_session = await self.get(session, user, session_id)
        await ChatSessionRepository.from_session(session).delete(chat_session)
        for hook in on_delete:
            await hook(session_id)
        log.info("sessions.deleted", session_id=str(session_id))


chat_session = ChatSessionService()
