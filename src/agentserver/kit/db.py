"""Database engine and the per-request session: one transaction per request.

The session dependency commits when the endpoint returns and rolls back when it raises; nothing else
in the request path commits. Code that outlives the request (streams, background jobs) opens its own
session with `session_scope()`; work that must not hold a connection for the whole request (auth,
before a long model wait) opens a short autocommit one with `ShortSessionDep`.

An outage (no free connection within DATABASE_POOL_TIMEOUT_SECONDS, a connection lost, the server
restarting) leaves every unit of work as `DatabaseUnavailable`, a 503 with Retry-After: clients retry,
alerts on 5xx see a 503, and the log gets one line instead of a traceback per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import asyncpg
import psycopg
import structlog
from fastapi import Depends
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from starlette.requests import HTTPConnection

from agentserver.kit.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

# Modules whose bare OSError / TimeoutError means "the database is unreachable": asyncpg raises
# ConnectionRefusedError, FileNotFoundError (Unix socket gone) or TimeoutError from connect(), and
# SQLAlchemy passes them through unwrapped.
_DRIVER_MODULES = ("asyncpg.", "psycopg.", "psycopg_pool.", "sqlalchemy.")
# PostgreSQL error classes that mean "not now" rather than "wrong request": 08 connection exception,
# 53 insufficient resources (too many connections), 57 operator intervention (shutdown, restarting).
_ASYNCPG_OUTAGES = (
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
)


class DatabaseUnreachableError(RuntimeError):
    """At start-up, the configured database cannot be reached; the message says where and what to check."""


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc`, or an exception that caused it, says the database cannot serve right now.

    Those are answered 503 (retry), not 500 (bug): pool checkout timeouts, lost or refused connections,
    a server restarting or out of connection slots, in SQLAlchemy, asyncpg, psycopg and psycopg_pool.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if _is_outage(error):
            return True
        pending += [error.__cause__, error.__context__, getattr(error, "orig", None)]
    return False


def _is_outage(error: BaseException) -> bool:
    # psycopg's OperationalError covers the same SQLSTATE classes (and psycopg_pool.PoolTimeout).
    if isinstance(error, sa_exc.TimeoutError | psycopg.OperationalError) or isinstance(error, _ASYNCPG_OUTAGES):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, OSError | TimeoutError):
        return _raised_in_driver(error)
    return False


def _raised_in_driver(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        if str(traceback.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


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


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: float = 5.0,
    connect_timeout: float = 10.0,
) -> AsyncEngine:
    """The app's engine. `pool_timeout` bounds the wait for a free connection: past it the request is a
    quick 503 instead of a queue that grows until every client times out."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        # No ping on every checkout (a round trip per transaction): a connection that died with a database
        # restart fails its first statement, which invalidates the whole pool at once (SQLAlchemy's
        # disconnect handling), so the next checkouts get new connections. That request is a 503.
        pool_pre_ping=False,
        # Last in, first out: a light load keeps reusing the few connections whose prepared statements and
        # type introspection are warm, instead of cycling every pooled connection through each statement.
        pool_use_lifo=True,
        pool_recycle=1800,
        connect_args={"timeout": connect_timeout},
    )


def psycopg_pool_options(pool_timeout: float) -> dict[str, Any]:
    """Outage behaviour for psycopg_pool pools (LangGraph's checkpointer, mem0's store), like the app pool's.

    Pass `check=<PoolClass>.check_connection` next to these, so a connection that died with a database
    restart is replaced on checkout instead of failing its first query.
    """
    return {
        # The longest wait for a connection, then PoolTimeout (a 503).
        "timeout": pool_timeout,
        # A failed connect is retried with a doubling delay (1, 2, 4 s ...) until this bound; then the
        # next checkout starts over at once. Kept short, so the pool is back seconds after the database.
        "reconnect_timeout": pool_timeout,
    }


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
                raise DatabaseUnreachableError(
                    f"cannot connect to PostgreSQL at {describe_url(engine.url)}: "
                    f"{type(exc).__name__}: {exc}. Check that the server is running and reachable, "
                    "and that DATABASE_URL (user, password, host, port, database) is right; "
                    "unset DATABASE_URL to use the embedded database."
                ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


@asynccontextmanager
async def unit_of_work(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit `session` when the block succeeds, roll it back when it raises.

    A database outage inside the block, or at commit, leaves it as `DatabaseUnavailable`.
    """
    try:
        yield session
    except BaseException as exc:
        try:
            await session.rollback()
        except Exception as rollback_error:
            # The connection is gone: there is nothing to roll back (the server already did).
            if not is_database_outage(rollback_error):
                raise
        if isinstance(exc, Exception) and not isinstance(exc, DatabaseUnavailable) and is_database_outage(exc):
            raise DatabaseUnavailable() from exc
        raise
    try:
        await session.commit()
    except Exception as exc:
        if is_database_outage(exc):
            raise DatabaseUnavailable() from exc
        raise


@asynccontextmanager
async def session_scope(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work on a new session (requests, and work outside a request)."""
    async with sessionmaker() as session, unit_of_work(session):
        yield session


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose every statement commits on its own: one round trip each, no BEGIN/COMMIT.

    For work that is one statement (a CTE can do several things atomically): the hot paths of a run use it.
    A database outage is `DatabaseUnavailable`, as in a unit of work.
    """
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
    except Exception as exc:
        if not isinstance(exc, DatabaseUnavailable) and is_database_outage(exc):
            raise DatabaseUnavailable() from exc
        raise


@asynccontextmanager
async def autocommit_session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """An ORM session over an `autocommit` connection: for reads and single-statement writes on hot paths
    (every request's authentication), where a unit of work would add BEGIN and COMMIT round trips. Never
    for work that must be atomic across statements."""
    async with autocommit(engine_of(sessionmaker)) as conn, sessionmaker(bind=conn) as session:
        yield session


# What a repository runs its statements on: a session (a unit of work), or an autocommit connection.
Executor = AsyncSession | AsyncConnection


def engine_of(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    engine: AsyncEngine = sessionmaker.kw["bind"]
    return engine


def sessionmaker_of(conn: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = conn.state.sessionmaker
    return sessionmaker


# Dependencies are `async def` even when they only read app state: FastAPI runs a plain `def` dependency in
# its thread pool, a thread hand-off per dependency per request.
async def get_sessionmaker(request: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    return sessionmaker_of(request)


async def get_db_session(request: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with session_scope(sessionmaker_of(request)) as session:
        yield session


# Opens a short autocommit session on demand: `async with short_session() as session: ...`.
ShortSession = Callable[[], AbstractAsyncContextManager[AsyncSession]]


async def get_short_session(request: HTTPConnection) -> ShortSession:
    """Short sessions in autocommit (`autocommit_session`), each on a connection held only for the block.

    For dependencies that run before a long wait and need a read or one write (authentication): the
    request's SessionDep of a one-shot chat turn would hold its connection through the whole model call
    (and a burst of turns would drain the pool).
    """
    sessionmaker = sessionmaker_of(request)

    def open_short_session() -> AbstractAsyncContextManager[AsyncSession]:
        return autocommit_session(sessionmaker)

    return open_short_session


# scope="function": commit (or roll back) when the endpoint returns, *before* the response is sent, so a
# client never sees success for a commit that then fails, and a streaming response holds no connection.
SessionDep = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
ShortSessionDep = Annotated[ShortSession, Depends(get_short_session)]
