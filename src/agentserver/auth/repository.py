"""SQL for users and refresh tokens. Repositories never commit: the request's transaction does."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.models import RefreshToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> UserRepository:
        return cls(session)

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        return (await self.session.execute(select(User).where(User.email == email))).scalar_one_or_none()

    async def create(self, *, email: str, password_hash: str) -> User:
        user = User(email=email, password_hash=password_hash)
        self.session.add(user)
        await self.session.flush()
        await self.session.refresh(user, ["created_at"])
        return user

    async def delete(self, user: User) -> None:
        # The foreign keys cascade: sessions, messages and refresh tokens go with the row.
        await self.session.execute(delete(User).where(User.id == user.id))
        # `user` usually comes from the auth dependency's own unit of work: detached, not in this session.
        if user in self.session:
            self.session.expunge(user)


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> RefreshTokenRepository:
        return cls(session)

    async def create(
        self,
        *,
        token_id: uuid.UUID,
        user_id: uuid.UUID,
        family_id: uuid.UUID,
        token_hash: str,
        expires_at: datetime,
    ) -> RefreshToken:
        row = RefreshToken(
            id=token_id, user_id=user_id, family_id=family_id, token_hash=token_hash, expires_at=expires_at
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def get_by_hash_for_update(self, token_hash: str) -> RefreshToken | None:
        # Row lock: two concurrent refreshes with the same token must not both succeed.
        statement = select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_owned_by_hash_for_update(self, user_id: uuid.UUID, token_hash: str) -> RefreshToken | None:
        """The token if it exists and belongs to `user_id`: another user's token is simply not found."""
        statement = (
            select(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.token_hash == token_hash)
            .with_for_update()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def mark_used(self, token: RefreshToken, at: datetime) -> None:
        token.used_at = at
        await self.session.flush()

    async def revoke_family(self, family_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_all_for_user(self, user_id: uuid.UUID, at: datetime) -> None:
        """Every login of the user ends (a disabled account)."""
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=at)
        )
