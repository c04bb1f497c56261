"""Password hashing: off the event loop, and the same work for unknown emails as for wrong passwords."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.auth.dependencies import get_current_user, get_password_hasher
from agentserver.auth.security import PasswordHasher
from agentserver.config import Settings
from agentserver.kit.db import unit_of_work
from agentserver.models import User
from tests.factories import DEFAULT_PASSWORD, access_token_for, create_user

LOGIN = "/api/v1/auth/login"


class BlockingHasher(PasswordHasher):
    """Verifies like the real one, but only once the test releases it."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_kib=64)
        self.entered = threading.Event()
        self.release = threading.Event()

    def _verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        self.entered.set()
        # Bounded so a broken test cannot hang the run.
        self.release.wait(timeout=30)
        return super()._verify(password, password_hash)


class RecordingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_kib=64)
        self.verified: list[str] = []

    def _verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        self.verified.append(password_hash)
        return super()._verify(password, password_hash)


@pytest.fixture
def use_hasher(app: FastAPI) -> Iterator[list[PasswordHasher]]:
    """Put a hasher in the list to make the app use it."""
    chosen: list[PasswordHasher] = []
    app.dependency_overrides[get_password_hasher] = lambda: chosen[0]
    yield chosen
    app.dependency_overrides.pop(get_password_hasher, None)


class TestHashingIsOffTheEventLoop:
    async def test_health_answers_while_a_login_is_hashing(
        self, client: httpx.AsyncClient, user: User, use_hasher: list[PasswordHasher]
    ) -> None:
        hasher = BlockingHasher()
        use_hasher.append(hasher)
        login = asyncio.create_task(client.post(LOGIN, data={"username": user.email, "password": DEFAULT_PASSWORD}))
        try:
            assert await asyncio.to_thread(hasher.entered.wait, 10)

            health = await asyncio.wait_for(client.get("/health"), timeout=10)

            assert health.status_code == 200
            assert not login.done()
        finally:
            hasher.release.set()
        assert (await login).status_code == 200


class TestLoginTiming:
    async def test_an_unknown_email_still_verifies_a_hash(
        self, client: httpx.AsyncClient, use_hasher: list[PasswordHasher]
    ) -> None:
        hasher = RecordingHasher()
        use_hasher.append(hasher)

        response = await client.post(LOGIN, data={"username": "nobody@example.com", "password": DEFAULT_PASSWORD})

        assert response.status_code == 401
        assert len(hasher.verified) == 1
        assert hasher.verified[0].startswith("$argon2id$")

    async def test_a_wrong_password_verifies_exactly_one_hash(
        self, client: httpx.AsyncClient, user: User, use_hasher: list[PasswordHasher]
    ) -> None:
        hasher = RecordingHasher()
        use_hasher.append(hasher)
        email, stored_hash = user.email, user.password_hash

        await client.post(LOGIN, data={"username": email, "password": "wrong password"})

        assert hasher.verified == [stored_hash]


class TestPasswordHasher:
    async def test_hash_then_verify(self) -> None:
        hasher = PasswordHasher(time_cost=1, memory_kib=64)

        hashed = await hasher.hash("pässwörd with ünïcode")

        assert hashed.startswith("$argon2id$")
        assert await hasher.verify("pässwörd with ünïcode", hashed) == (True, None)
        assert (await hasher.verify("other", hashed))[0] is False

    async def test_an_outdated_hash_is_upgraded(self) -> None:
        old = await PasswordHasher(time_cost=1, memory_kib=64).hash("secret-password")

        matches, new_hash = await PasswordHasher(time_cost=2, memory_kib=128).verify("secret-password", old)

        assert matches is True
        assert new_hash is not None
        assert "m=128,t=2" in new_hash

    async def test_login_stores_the_upgraded_hash(
        self, client: httpx.AsyncClient, session: AsyncSession, use_hasher: list[PasswordHasher]
    ) -> None:
        user = await create_user(session)
        use_hasher.append(PasswordHasher(time_cost=2, memory_kib=128))

        await client.post(LOGIN, data={"username": user.email, "password": DEFAULT_PASSWORD})

        stored = (await session.execute(select(User.password_hash).where(User.id == user.id))).scalar_one()
        assert "m=128,t=2" in stored

    async def test_from_settings_uses_the_configured_cost(self, settings: Settings) -> None:
        hasher = await PasswordHasher.from_settings(settings)

        hashed = await hasher.hash("secret-password")

        assert f"m={settings.password_hash_memory_kib},t={settings.password_hash_time_cost}" in hashed


class TestCurrentUserLogContext:
    async def test_binds_the_user_id_for_the_rest_of_the_request(
        self, session: AsyncSession, settings: Settings, user: User
    ) -> None:
        structlog.contextvars.clear_contextvars()
        try:
            found = await get_current_user(lambda: unit_of_work(session), settings, access_token_for(settings, user))

            assert found.id == user.id
            assert structlog.contextvars.get_contextvars()["user_id"] == str(user.id)
        finally:
            structlog.contextvars.clear_contextvars()
