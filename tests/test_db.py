"""The per-request session: commit on success, roll back on error (real commits, own database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import DatabaseUnavailableError, SessionDep, create_engine, wait_for_database
from agentserver.kit.errors import Conflict
from agentserver.main import create_app
from agentserver.models import User


@pytest.fixture(scope="module")
async def committing_app(make_database: Callable[[str], str], settings: Settings) -> AsyncIterator[FastAPI]:
    url = make_database("agentserver_commit")
    await asyncio.to_thread(migrations.upgrade, url)
    app = create_app(settings.model_copy(update={"database_url": url}))

    @app.post("/users-ok")
    async def create_ok(session: SessionDep, email: str = "ok@example.com") -> dict[str, str]:
        session.add(User(email=email, password_hash="x"))
        return {"status": "created"}

    @app.post("/users-fail")
    async def create_then_fail(session: SessionDep) -> None:
        session.add(User(email="fail@example.com", password_hash="x"))
        await session.flush()
        raise Conflict("something conflicted after the insert")

    async with app.router.lifespan_context(app) as state:
        app.state.lifespan_state = state
        yield app


async def _count(app: FastAPI, email: str) -> int:
    async with app.state.lifespan_state["sessionmaker"]() as session:
        return int((await session.execute(select(func.count()).where(User.email == email))).scalar_one())


async def _post(app: FastAPI, path: str) -> httpx.Response:
    state = app.state.lifespan_state

    async def with_state(scope, receive, send):  # type: ignore[no-untyped-def]
        scope["state"] = dict(state)
        await app(scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=with_state), base_url="http://t") as http:
        return await http.post(path)


class TestRequestTransaction:
    async def test_commits_when_the_endpoint_succeeds(self, committing_app: FastAPI) -> None:
        response = await _post(committing_app, "/users-ok")

        assert response.status_code == 200
        assert await _count(committing_app, "ok@example.com") == 1

    async def test_rolls_back_when_the_endpoint_raises(self, committing_app: FastAPI) -> None:
        response = await _post(committing_app, "/users-fail")

        assert response.status_code == 409
        assert await _count(committing_app, "fail@example.com") == 0


class TestUnreachableDatabase:
    async def test_error_names_host_port_and_what_to_check(self) -> None:
        engine = create_engine("postgresql://app:topsecret@127.0.0.1:1/appdb", pool_size=1, connect_timeout=1)
        try:
            with pytest.raises(DatabaseUnavailableError) as caught:
                await wait_for_database(engine, 0.5)
        finally:
            await engine.dispose()

        message = str(caught.value)
        assert "127.0.0.1:1/appdb" in message
        assert "DATABASE_URL" in message
        assert "topsecret" not in message


class TestCommitBeforeResponse:
    async def test_the_commit_happens_before_the_response_is_sent(self, committing_app: FastAPI) -> None:
        seen_at_send: list[int] = []
        state = committing_app.state.lifespan_state

        async def app_checking_at_send(scope, receive, send):  # type: ignore[no-untyped-def]
            scope["state"] = dict(state)

            async def send_after_checking(message):  # type: ignore[no-untyped-def]
                if message["type"] == "http.response.start":
                    # Another connection must already see the row when the response starts.
                    seen_at_send.append(await _count(committing_app, "early@example.com"))
                await send(message)

            await committing_app(scope, receive, send_after_checking)

        transport = httpx.ASGITransport(app=app_checking_at_send)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.post("/users-ok", params={"email": "early@example.com"})

        assert response.status_code == 200
        assert seen_at_send == [1]
