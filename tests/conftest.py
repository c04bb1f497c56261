"""Shared fixtures: a real PostgreSQL, one transaction per test, the app on an ASGI client.

The database is the embedded server (under `.data/test-postgres`, reused between runs) unless
TEST_DATABASE_URL points at another PostgreSQL with pgvector. A fresh database is created and migrated
with the real Alembic chain once per run; every test then runs inside an outer transaction that is
rolled back, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from agentserver.config import Environment, Settings
from agentserver.kit import migrations
from agentserver.kit.db import create_engine
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.main import create_app
from tests.harness import StateInjector, share_session, unshare_session

# Fixtures other domains share (auth: `user`, `auth_headers`, `other_user`, `other_auth_headers`).
pytest_plugins = ["tests.fixtures.auth", "tests.fixtures.logs"]

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = ROOT / ".data" / "test"


# Several test runs may share the embedded server (developers, CI): every database name carries this
# run's id, and the run drops its databases at the end.
RUN_ID = f"{os.getpid()}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres | None]:
    """The embedded server, or None when TEST_DATABASE_URL is given."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    server = EmbeddedPostgres(TEST_DATA_DIR / "postgres")
    server.start(database="postgres")
    # Statement counts (tests/runs/test_statement_budget.py); a restart the first time only.
    server.ensure_preloaded("pg_stat_statements")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_database(postgres_server: EmbeddedPostgres | None) -> Iterator[Callable[[str], str]]:
    """Factory for an empty database of one's own (migration and commit-visibility tests)."""
    created: list[str] = []

    def make(name: str) -> str:
        if postgres_server is None:
            pytest.skip("needs the embedded server to create extra databases")
        full_name = f"{name}_{RUN_ID}"
        created.append(full_name)
        return postgres_server.ensure_database(full_name, recreate=True)

    yield make
    if postgres_server is not None:
        for name in created:
            postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def database_url(postgres_server: EmbeddedPostgres | None, make_database: Callable[[str], str]) -> str:
    url = os.environ["TEST_DATABASE_URL"] if postgres_server is None else make_database("agentserver_test")
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,
        environment=Environment.test,
        database_url=database_url,
        agentserver_data_dir=tmp_path_factory.mktemp("data"),
        log_level="WARNING",
        llm_provider="fake",
        memory_enabled=False,
        # argon2id at its cheapest: the tests exercise the flow, not the cost (bench/login_lag.py does that).
        password_hash_time_cost=1,
        password_hash_memory_kib=64,
        # Every test client is 127.0.0.1: shared limits would make unrelated tests 429 each other.
        # tests/ratelimit/ builds its own apps with limits on.
        rate_limit_enabled=False,
        # Workers notice takeovers and deletions within a second or two, and sweeps wait 2.5 s, not 12.5.
        run_heartbeat_seconds=1.0,
        run_poll_seconds=0.5,
    )


@pytest.fixture(scope="session")
def own_database_settings(
    make_database: Callable[[str], str], settings: Settings
) -> Callable[..., Awaitable[Settings]]:
    """Factory: the test settings on a new, migrated database of their own, with `overrides`.

    Every app runs a worker, and workers sharing a database take each other's runs: a test that scripts
    its own app's model needs a database no other app's worker looks at.
    """

    async def make(name: str, **overrides: Any) -> Settings:
        url = make_database(name)
        await asyncio.to_thread(migrations.upgrade, url)
        return settings.model_copy(update={"database_url": url, **overrides})

    return make


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session inside the test's outer transaction: its commits become savepoints, rolled back after."""
    session = AsyncSession(
        bind=connection, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
    )
    yield session
    await session.close()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The real app, with its real lifespan, once per test run."""
    application = create_app(settings)
    async with application.router.lifespan_context(application) as state:
        application.state.lifespan_state = state
        yield application


@pytest.fixture
async def client(app: FastAPI, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests share the test's transaction."""

    share_session(app, session)
    transport = httpx.ASGITransport(app=StateInjector(app, app.state.lifespan_state))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    unshare_session(app)
