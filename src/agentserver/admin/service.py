"""Operator actions on accounts: list, set a role, set budgets, disable and enable.

Used by the `agentserver users` CLI (and by the admin API for budgets). The session is the caller's unit of
work; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.admin.errors import UserNotFound
from agentserver.auth.repository import RefreshTokenRepository, UserRepository
from agentserver.auth.schemas import normalize_email
from agentserver.models import User, UserRole
from agentserver.usage.service import usage as usage_service

log = structlog.get_logger(__name__)


class AdminService:
    async def list_users(self, db: AsyncSession, *, limit: int) -> Sequence[User]:
        return (await db.scalars(select(User).order_by(User.created_at, User.id).limit(limit))).all()

    async def get_by_email(self, db: AsyncSession, email: str) -> User:
        user = await UserRepository.from_session(db).get_by_email(normalize_email(email))
        if user is None:
            raise UserNotFound()
        return user

    async def set_role(self, db: AsyncSession, email: str, role: UserRole) -> User:
        user = await self.get_by_email(db, email)
        user.role = role.value
        log.info("admin.role_set", user_id=str(user.id), role=role.value)
        return user

    async def set_quota(self, db: AsyncSession, email: str, values: dict[str, Any]) -> User:
        """Change only the given overrides (None in `values`: back to the deployment default)."""
        user = await self.get_by_email(db, email)
        await usage_service.set_override(db, user_id=user.id, values=values)
        log.info("admin.quota_set", user_id=str(user.id), fields=sorted(values))
        return user

    async def disable(self, db: AsyncSession, email: str) -> User:
        """The user cannot log in any more, their access tokens fail from the next request, and every
        refresh token is revoked."""
        user = await self.get_by_email(db, email)
        now = datetime.now(UTC)
        user.disabled_at = user.disabled_at or now
        await RefreshTokenRepository.from_session(db).revoke_all_for_user(user.id, now)
        log.info("admin.user_disabled", user_id=str(user.id))
        return user

    async def enable(self, db: AsyncSession, email: str) -> User:
        user = await self.get_by_email(db, email)
        user.disabled_at = None
        log.info("admin.user_enabled", user_id=str(user.id))
        return user


admin = AdminService()
