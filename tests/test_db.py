"""The per-request session: commit on success, roll back on error; an outage is a 503 (real commits, own database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import (
    DatabaseUnreachableError,
    SessionDep,
    create_engine,
    create_sessionmaker,
    is_database_outage,
    session_scope,
    wait_for_database,
)
from agentserver.kit.errors import Conflict, DatabaseUnavailable
from agentserver.main import create_app
from agentserver.models import User
from tests.factories import auth_headers_for, create_user
from tests.harness import StateInjector


@pytest.fixture(scope="module")
async def commit_database(make_database: Callable[[str], str]) -> str:
    url = make_database("agentserver_commit")
    await asyncio.to_thread(migrations.upgrade, url)
    return url


@pytest.fixture(scope="module")
async def committing_app(commit_database: str, settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"database_url": commit_database}))

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
    async with _client(app) as http:
        return await http.post(path)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=StateInjector(app, app.state.lifespan_state)), base_url="http://t"
    )


class TestRequestTransaction:
    async def test_commits_when_the_endpoint_succeeds(self, committing_app: FastAPI) -> None:
        response = await _post(committing_app, "/users-ok")

        assert response.status_code == 200
        assert await _count(committing_app, "ok@example.com") == 1

    async def test_rolls_back_when_the_endpoint_raises(self, committing_app: FastAPI) -> None:
        response = await _post(committing_app, "/users-fail")

        assert response.status_code == 409
        assert await _count(committing_app, "fail@example.com") == 0


@pytest.fixture(scope="module")
async def one_connection_app(commit_database: str, settings: Settings) -> AsyncIterator[FastAPI]:
    """An app whose pool has one connection and waits at most 0.2 s for it."""
    overrides = {
        "database_url": commit_database,
        "database_pool_size": 1,
        "database_max_overflow": 0,
        "database_pool_timeout_seconds": 0.2,
    }
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app) as state:
        app.state.lifespan_state = state
        yield app


class TestPoolExhaustion:
    @pytest.mark.parametrize("path", ["/api/v1/auth/me", "/api/v1/sessions"])
    async def test_no_free_connection_is_a_503_with_retry_after(
        self, one_connection_app: FastAPI, settings: Settings, path: str
    ) -> None:
        state = one_connection_app.state.lifespan_state
        async with session_scope(state["sessionmaker"]) as session:
            user = await create_user(session)
        headers = auth_headers_for(settings, user)

        async with state["engine"].connect() as held, _client(one_connection_app) as http:
            await held.execute(text("SELECT 1"))  # the pool's only connection, busy
            response = await http.get(path, headers=headers)

        assert response.status_code == 503
        assert response.json() == {
            "error": "DatabaseUnavailable",
            "detail": "The database is temporarily unavailable; please retry shortly",
        }
        assert response.headers["retry-after"] == "2"

    async def test_the_connection_is_served_again_once_free(
        self, one_connection_app: FastAPI, settings: Settings
    ) -> None:
        state = one_connection_app.state.lifespan_state
        async with session_scope(state["sessionmaker"]) as session:
            user = await create_user(session)

        async with _client(one_connection_app) as http:
            response = await http.get("/api/v1/auth/me", headers=auth_headers_for(settings, user))

        assert response.status_code == 200


class TestOutageClassification:
    async def test_a_refused_connection_is_an_outage(self) -> None:
        engine = create_engine("postgresql://app@127.0.0.1:1/appdb", pool_size=1, connect_timeout=1)
        try:
            with pytest.raises(ConnectionRefusedError) as caught:
                async with engine.connect():
                    pass
        finally:
            await engine.dispose()

        assert is_database_outage(caught.value)

    async def test_a_unit_of_work_on_a_dead_server_is_database_unavailable(self) -> None:
        engine = create_engine("postgresql://app@127.0.0.1:1/appdb", pool_size=1, connect_timeout=1)
        try:
            with pytest.raises(DatabaseUnavailable):
                async with session_scope(create_sessionmaker(engine)) as session:
                    await session.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    def test_a_constraint_violation_is_not_an_outage(self) -> None:
        error = sa_exc.IntegrityError("INSERT ...", {}, Exception("duplicate key"))

        assert not is_database_outage(error)


class TestUnreachableDatabase:
    async def test_error_names_host_port_and_what_to_check(self) -> None:
        engine = create_engine("postgresql://app:topsecret@127.0.0.1:1/appdb", pool_size=1, connect_timeout=1)
        try:
            with pytest.raises(DatabaseUnreachableError) as caught:
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
