"""Apps of one's own for rate-limit and hardening tests: real `create_app()` + real lifespan, with
settings overrides (limits on, tiny windows, production, Redis), and clients that can pose as any
client address. Shared by tests/ratelimit and tests/security."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.config import Settings
from agentserver.kit.redis import close_redis, create_redis
from agentserver.main import create_app
from tests.harness import StateInjector, share_session

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
# Nothing listens here: "Redis is down" without stopping the Redis other tests share.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


class Apps:
    """Builds started apps and clients; everything is stopped when the test ends."""

    def __init__(self, settings: Settings, stack: AsyncExitStack) -> None:
        self.base_settings = settings
        self.stack = stack
        self.states: dict[int, dict[str, Any]] = {}

    async def app(self, *, setup: Callable[[FastAPI], None] | None = None, **overrides: Any) -> FastAPI:
        """`create_app(settings + overrides)` with its lifespan entered. `setup` may add test routes."""
        settings = self.base_settings.model_copy(update={"rate_limit_enabled": True, **overrides})
        application = create_app(settings)
        if setup is not None:
            setup(application)
        state = await self.stack.enter_async_context(application.router.lifespan_context(application))
        self.states[id(application)] = dict(state or {})
        return application

    async def client(
        self,
        application: FastAPI,
        *,
        client_ip: str = "203.0.113.10",
        session: AsyncSession | None = None,
        base_url: str = "http://testserver",
    ) -> httpx.AsyncClient:
        """A client whose requests come from `client_ip`; with `session`, the DB work is rolled back."""
        if session is not None:
            share_session(application, session)
        transport = httpx.ASGITransport(
            app=StateInjector(application, self.states[id(application)]), client=(client_ip, 40000)
        )
        return await self.stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=base_url))

    def state(self, application: FastAPI) -> dict[str, Any]:
        return self.states[id(application)]


@pytest.fixture
async def apps(settings: Settings) -> AsyncIterator[Apps]:
    async with AsyncExitStack() as stack:
        yield Apps(settings, stack)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A REDIS_KEY_PREFIX of the test's own; its keys are deleted afterwards."""
    prefix = f"agentserver-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = create_redis(REDIS_TEST_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await close_redis(client)


async def redis_keys(prefix: str) -> list[str]:
    client = create_redis(REDIS_TEST_URL)
    try:
        return [key.decode() async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
    finally:
        await close_redis(client)
