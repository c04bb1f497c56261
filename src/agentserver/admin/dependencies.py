"""`AdminUser`: the current user, if an operator (403 otherwise)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agentserver.admin.errors import AdminRequired
from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.config import Settings
from agentserver.models import User, UserRole


def is_admin(user: User, settings: Settings) -> bool:
    """The stored role, or an email listed in ADMIN_EMAILS (a deployment's first operator needs no SQL)."""
    return user.role == UserRole.admin or user.email in settings.admin_emails


async def get_admin_user(user: CurrentUser, settings: SettingsDep) -> User:
    if not is_admin(user, settings):
        raise AdminRequired()
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
