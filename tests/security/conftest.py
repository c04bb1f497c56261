"""Security tests: the shared `client` (rolled back) for most, `apps` for custom settings, and an app on
a database of its own (real commits) for chat turns, which persist from their own task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.main import create_app
from tests.harness import StateInjector
from tests.ratelimit.apps import apps, redis_prefix

__all__ = ["apps", "redis_prefix"]


@pytest.fixture(scope="package")
async def committing_app(make_database: Callable[[str], str], settings: Settings) -> AsyncIterator[StateInjector]:
    url = make_database("agentserver_security")
    await asyncio.to_thread(migrations.upgrade, url)
    app = create_app(settings.model_copy(update={"database_url": url, "search_provider": "none"}))
    async with app.router.lifespan_context(app) as state:
        yield StateInjector(app, dict(state or {}))


@pytest.fixture
async def committing_client(committing_app: StateInjector) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=committing_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
