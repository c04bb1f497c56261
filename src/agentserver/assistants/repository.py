"""SQL for users' assistants. Every query is scoped to the owner: another user's assistant is not found."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.models import ChatSession, UserAssistant


class UserAssistantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> UserAssistantRepository:
        return cls(session)

    async def get_owned(self, user_id: uuid.UUID, assistant_id: uuid.UUID) -> UserAssistant | None:
        return await self.session.scalar(
            select(UserAssistant).where(UserAssistant.id == assistant_id, UserAssistant.user_id == user_id)
        )

    async def list_owned(self, user_id: uuid.UUID) -> Sequence[UserAssistant]:
        statement = select(UserAssistant).where(UserAssistant.user_id == user_id).order_by(UserAssistant.name)
        return (await self.session.execute(statement)).scalars().all()

    async def count_owned(self, user_id: uuid.UUID) -> int:
        return int(await self.session.scalar(select(func.count()).where(UserAssistant.user_id == user_id)) or 0)

    async def name_taken(self, user_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None) -> bool:
        statement = select(UserAssistant.id).where(UserAssistant.user_id == user_id, UserAssistant.name == name)
        if other_than is not None:
            statement = statement.where(UserAssistant.id != other_than)
        return await self.session.scalar(statement) is not None

    async def add(self, row: UserAssistant) -> UserAssistant:
        self.session.add(row)
        await self.session.flush()
        await self.session.refresh(row, ["created_at", "updated_at"])
        return row

    async def save(self, row: UserAssistant) -> UserAssistant:
        await self.session.flush()
        await self.session.refresh(row, ["updated_at"])
        return row

    async def delete(self, row: UserAssistant) -> None:
        # Its sessions go back to the deployment's default (NULL), rather than pointing at nothing.
        await self.session.execute(
            update(ChatSession)
            .where(ChatSession.user_id == row.user_id, ChatSession.assistant_id == row.id)
            .values(assistant_id=None)
        )
        await self.session.execute(
            delete(UserAssistant).where(UserAssistant.id == row.id, UserAssistant.user_id == row.user_id)
        )
        self.session.expunge(row)
