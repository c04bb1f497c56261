"""Chat sessions of one user: create, list (cursor-paginated), rename, delete."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.kit.errors import NotFound
from agentserver.kit.pagination import finish_page
from agentserver.models import ChatSession, User
from agentserver.sessions.repository import ChatSessionRepository
from agentserver.sessions.schemas import DEFAULT_SESSION_NAME


@dataclass(frozen=True, slots=True)
class SessionDeletion:
    """What a deletion hook gets: the session being deleted, inside the deletion's transaction (`db`)."""

    db: AsyncSession
    user_id: uuid.UUID
    session_id: uuid.UUID


# Stops the session's runs and erases what lives outside its rows (the agent's checkpoints). Hooks run in
# the deletion's transaction, before the row goes: a failing hook rolls the deletion back.
SessionDeletionHook = Callable[[SessionDeletion], Awaitable[None]]

log = structlog.get_logger(__name__)


class SessionNotFound(NotFound):
    """The chat session does not exist or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("Session not found")


class ChatSessionService:
    async def create(
        self, session: AsyncSession, user: User, *, name: str | None, assistant_id: uuid.UUID | None = None
    ) -> ChatSession:
        """A new session, bound to `assistant_id` (one the caller may use: see agent.assistants.find_assistant)."""
        chat_session = await ChatSessionRepository.from_session(session).create(
            user, name=name or DEFAULT_SESSION_NAME, assistant_id=assistant_id
        )
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
        """Delete the session; messages and runs go by foreign-key cascade, `on_delete` erases the rest."""
        chat_session = await self.get(session, user, session_id)
        deletion = SessionDeletion(db=session, user_id=user.id, session_id=session_id)
        for hook in on_delete:
            await hook(deletion)
        await ChatSessionRepository.from_session(session).delete(chat_session)
        log.info("sessions.deleted", session_id=str(session_id))


chat_session = ChatSessionService()
