"""Application factory and lifespan.

Every stateful resource (database engine, embedded PostgreSQL, Redis, checkpointer, LLM, memory) is
created in `lifespan()`, exposed through the typed `State`, and closed in reverse order on shutdown.
Nothing stateful is built at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy import text

from agentserver import health
from agentserver.config import Settings, get_settings
from agentserver.kit import migrations
from agentserver.kit.db import create_engine, create_sessionmaker, wait_for_database
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.kit.errors import install_error_handlers
from agentserver.kit.middleware import RequestContextMiddleware
from agentserver.kit.state import State
from agentserver.observability.logging import configure_logging

log = structlog.get_logger(__name__)


async def start_database(settings: Settings, stack: AsyncExitStack) -> str:
    """The configured DATABASE_URL, or an embedded server (stopped when the stack closes) migrated to head."""
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    # Blocking subprocess work (initdb, pg_ctl): keep it off the event loop.
    url = await asyncio.to_thread(embedded.start)
    stack.push_async_callback(asyncio.to_thread, embedded.stop)
    await asyncio.to_thread(migrations.upgrade, url)
    return url


def lifespan_for(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            database_url = await start_database(settings, stack)
            engine = create_engine(
                database_url,
                pool_size=settings.database_pool_size,
                connect_timeout=settings.database_connect_timeout_seconds,
            )
            stack.push_async_callback(engine.dispose)
            await wait_for_database(engine, settings.database_connect_timeout_seconds)

            async def database_ready() -> None:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))

            state: State = {
                "settings": settings,
                "engine": engine,
                "sessionmaker": create_sessionmaker(engine),
                "readiness_checks": {"database": database_ready},
            }
            log.info("app.started", environment=settings.environment.value, embedded_db=not settings.database_url)
            yield state
            log.info("app.stopping")

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    app = FastAPI(
        title="agentserver",
        version="0.1.0",
        lifespan=lifespan_for(settings),
        docs_url="/docs" if settings.debug else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.debug or not settings.is_production else None,
    )
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    return app
