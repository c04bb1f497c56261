"""Database engine and the per-request session: one transaction per request.

The session dependency commits when the endpoint returns and rolls back when it raises; nothing else
in the request path commits. Code that outlives the request (streams, background jobs) opens its own
session with `session_scope()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from starlette.requests import HTTPConnection

log = structlog.get_logger(__name__)


class DatabaseUnavailableError(RuntimeError):
    """The configured database cannot be reached; the message says where and what to check."""


def sqlalchemy_url(url: str) -> URL:
    """`postgresql://` (what people and the embedded server write) → the asyncpg driver URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got driver {parsed.drivername!r}")
    return parsed


def libpq_url(url: str) -> str:
    """The plain `postgresql://` form, for psycopg (LangGraph's checkpointer, mem0's pgvector store)."""
    return sqlalchemy_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def describe_url(url: URL) -> str:
    """Where the database is, for error messages: never the password."""
    host = url.query.get("host") or url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{host}{port}/{url.database or ''}"


def create_engine(url: str, *, pool_size: int = 10, connect_timeout: float = 10.0) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": connect_timeout},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the request's commit, when responses serialise.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def wait_for_database(engine: AsyncEngine, within_seconds: float) -> None:
    """Fail start-up with a message that says what to fix instead of a driver stack trace."""
    deadline = asyncio.get_running_loop().time() + within_seconds
    delay = 0.2
    while True:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() >= deadline:
                raise DatabaseUnavailableError(
                    f"cannot connect to PostgreSQL at {describe_url(engine.url)}: "
                    f"{type(exc).__name__}: {exc}. Check that the server is running and reachable, "
                    "and that DATABASE_URL (user, password, host, port, database) is right; "
                    "unset DATABASE_URL to use the embedded database."
                ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


@asynccontextmanager
async def unit_of_work(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit `session` when the block succeeds, roll it back when it raises."""
    try:
        yield session
    except BaseException:
        await session.rollback()
        raise
    else:
        await session.commit()


@asynccontextmanager
async def session_scope(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work on a new session (requests, and work outside a request)."""
    async with sessionmaker() as session, unit_of_work(session):
        yield session


def get_sessionmaker(request: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.state.sessionmaker
    return sessionmaker


# A short unit of work on demand: `async with unit() as session: ...` commits and returns the connection
# at once. For dependencies that must not hold a connection while the endpoint waits (authentication of
# a request that then waits on a model). Tests override `get_unit_of_work` to share their transaction.
UnitOfWork = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def get_unit_of_work(request: HTTPConnection) -> UnitOfWork:
    sessionmaker = get_sessionmaker(request)
    return lambda: session_scope(sessionmaker)


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(get_sessionmaker(request)) as session:
        yield session


# scope="function": commit (or roll back) when the endpoint returns, *before* the response is sent, so a
# client never sees success for a commit that then fails, and a streaming response holds no connection.
SessionDep = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
