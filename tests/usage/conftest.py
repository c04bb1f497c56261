"""Usage and quota tests: an app on a database of its own (real commits, its own worker and fake model)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agentserver.config import Settings
from agentserver.kit.db import session_scope
from agentserver.llm.fake import FakeChatModel
from agentserver.models import User, UserQuota
from tests.chat.conftest import CHAT_OVERRIDES, ChatHarness, start_harness
from tests.factories import auth_headers_for, create_user

ADMIN_EMAIL = "operator@example.com"


@pytest.fixture(scope="package")
async def usage_app(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    settings = await own_database_settings("agentserver_usage", **CHAT_OVERRIDES, admin_emails=[ADMIN_EMAIL])
    harness, lifespan = await start_harness(settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def fake(usage_app: ChatHarness) -> FakeChatModel:
    await usage_app.settle()
    usage_app.fake.set_script([])
    return usage_app.fake


async def chat(harness: ChatHarness, headers: dict[str, str], session_id: str, message: str) -> httpx.Response:
    async with harness.client() as http:
        return await http.post(
            "/api/v1/chatbot/chat", json={"session_id": session_id, "message": message}, headers=headers
        )


async def user_id_of(harness: ChatHarness, headers: dict[str, str]) -> uuid.UUID:
    async with harness.client() as http:
        response = await http.get("/api/v1/auth/me", headers=headers)
    return uuid.UUID(response.json()["id"])


async def set_quota(harness: ChatHarness, user_id: uuid.UUID, **values: Any) -> None:
    async with session_scope(harness.state["sessionmaker"]) as db:
        db.add(UserQuota(user_id=user_id, **values))


async def make_admin(harness: ChatHarness, headers: dict[str, str]) -> None:
    user_id = await user_id_of(harness, headers)
    async with session_scope(harness.state["sessionmaker"]) as db:
        user = await db.scalar(select(User).where(User.id == user_id))
        assert user is not None
        user.role = "admin"


ZERO = Decimal("0")


async def admin_headers(harness: ChatHarness) -> dict[str, str]:
    """The operator named in ADMIN_EMAILS (created once; its stored role stays "user")."""
    async with session_scope(harness.state["sessionmaker"]) as db:
        user = await db.scalar(select(User).where(User.email == ADMIN_EMAIL))
        if user is None:
            user = await create_user(db, email=ADMIN_EMAIL)
    return auth_headers_for(harness.settings, user)
