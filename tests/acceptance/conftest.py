"""Acceptance tests: the faults found by black-box testing (issue 11), replayed against the real app.

They break things on purpose (stop or kill PostgreSQL, flood the pool), so each test that does runs on
a PostgreSQL server of its own, never the one the rest of the suite shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import session_scope
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.main import create_app
from tests.factories import auth_headers_for, create_user
from tests.harness import StateInjector


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """An embedded server of the test's own (stopped after it), and the URL of its migrated database."""
    server = EmbeddedPostgres(tmp_path / "postgres")
    url = server.start()
    migrations.upgrade(url)
    yield server, url
    server.stop()


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, dict[str, Any]]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        yield app, dict(state or {})


def client_for(app: FastAPI, state: dict[str, Any]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=StateInjector(app, state))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60)


async def new_user_with_session(state: dict[str, Any], http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    async with session_scope(state["sessionmaker"]) as session:
        user = await create_user(session)
    headers = auth_headers_for(state["settings"], user)
    created = await http.post("/api/v1/sessions", json={"name": "load"}, headers=headers)
    assert created.status_code == 201, created.text
    return headers, str(created.json()["id"])


async def poll_until(condition: Any, *, within: float, every: float = 0.1) -> float:
    """Seconds until the async `condition()` is true; fails after `within` seconds (a hang guard)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - polling the app from outside, as a client would
            await asyncio.sleep(every)
    return loop.time() - started
