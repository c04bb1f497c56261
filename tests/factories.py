"""Small async factories for tests: `await create_user(session, email=...)`.

They commit, which inside the `session` fixture only releases a savepoint: rows stay in the test's
rolled-back outer transaction, and survive a request that fails and rolls back its own work.
They return loaded objects. Override any column with a keyword argument.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.auth.security import PasswordHasher, TokenType, issue_token
from agentserver.config import Settings
from agentserver.models import ChatSession, Message, MessageRole, User

DEFAULT_PASSWORD = "correct horse battery staple"

# The cheapest argon2id: the app verifies any argon2 hash regardless of the parameters it was made with.
_hasher = PasswordHasher(time_cost=1, memory_kib=64)
_hashes: dict[str, str] = {}


async def password_hash(password: str = DEFAULT_PASSWORD) -> str:
    if password not in _hashes:
        _hashes[password] = await _hasher.hash(password)
    return _hashes[password]


async def create_user(session: AsyncSession, *, password: str = DEFAULT_PASSWORD, **overrides: Any) -> User:
    values: dict[str, Any] = {"email": f"user-{uuid.uuid4().hex[:12]}@example.com"}
    values.update(overrides)
    user = User(password_hash=await password_hash(password), **values)
    session.add(user)
    await session.commit()
    await session.refresh(user)
    return user


async def create_chat_session(session: AsyncSession, user: User, **overrides: Any) -> ChatSession:
    values: dict[str, Any] = {"name": "A chat"}
    values.update(overrides)
    if "updated_at" in values and "created_at" not in values:
        values["created_at"] = values["updated_at"]
    chat_session = ChatSession(user_id=user.id, **values)
    session.add(chat_session)
    await session.commit()
    await session.refresh(chat_session)
    return chat_session


async def create_message(session: AsyncSession, chat_session: ChatSession, **overrides: Any) -> Message:
    values: dict[str, Any] = {"role": MessageRole.user, "content": "hello"}
    values.update(overrides)
    message = Message(session_id=chat_session.id, **values)
    session.add(message)
    await session.commit()
    await session.refresh(message)
    return message


def access_token_for(settings: Settings, user: User, *, now: datetime | None = None) -> str:
    return issue_token(settings, user.id, TokenType.access, now=now or datetime.now(UTC)).token


def auth_headers_for(settings: Settings, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token_for(settings, user)}"}
