"""Application factory and lifespan.

Every stateful resource (database engine, embedded PostgreSQL, Redis, checkpointer, LLM, memory) is
created in `lifespan()`, exposed through the typed `State`, and closed in reverse order on shutdown.
Nothing stateful is built at import time.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy import text

from agentserver import health, web
from agentserver.agent.runtime import open_agent
from agentserver.auth import endpoints as auth_endpoints
from agentserver.auth.security import PasswordHasher
from agentserver.cache import ResponseCache
from agentserver.chat import endpoints as chat_endpoints
from agentserver.config import Settings, get_settings
from agentserver.kit import migrations
from agentserver.kit.db import create_engine, create_sessionmaker, wait_for_database
from agentserver.kit.embedded_postgres import EmbeddedPostgres, PostgresSupervisor
from agentserver.kit.errors import install_error_handlers
from agentserver.kit.hardening import install_request_guards, install_security_headers
from agentserver.kit.middleware import RequestContextMiddleware
from agentserver.kit.redis import redis_readiness, start_redis
from agentserver.kit.state import State
from agentserver.llm.service import LLMService
from agentserver.memory import endpoints as memory_endpoints
from agentserver.memory.runtime import open_memory
from agentserver.observability import http as metrics_endpoint
from agentserver.observability.db_pool import pool_collector, sqlalchemy_pool_sampler
from agentserver.observability.logging import configure_logging
from agentserver.ratelimit import RateLimiter
from agentserver.sessions import endpoints as sessions_endpoints

log = structlog.get_logger(__name__)


async def start_database(settings: Settings, stack: AsyncExitStack) -> str:
    """The configured DATABASE_URL, or an embedded server migrated to head, supervised (restarted if it
    dies) while the app runs and stopped when the stack closes."""
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    # Blocking subprocess work (initdb, pg_ctl): keep it off the event loop.
    url = await asyncio.to_thread(embedded.start)
    stack.push_async_callback(asyncio.to_thread, embedded.stop)
    await asyncio.to_thread(migrations.upgrade, url)
    # Entered after the stop callback, so it exits first: no restart can race the shutdown.
    await stack.enter_async_context(PostgresSupervisor(embedded).running())
    return url


def lifespan_for(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            database_url = await start_database(settings, stack)
            engine = create_engine(
                database_url,
                pool_size=settings.database_pool_size,
                max_overflow=settings.database_max_overflow,
                pool_timeout=settings.database_pool_timeout_seconds,
                connect_timeout=settings.database_connect_timeout_seconds,
            )
            stack.push_async_callback(engine.dispose)
            stack.enter_context(pool_collector.track("app", sqlalchemy_pool_sampler(engine)))
            await wait_for_database(engine, settings.database_connect_timeout_seconds)

            async def database_ready() -> None:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))

            redis = await start_redis(settings, stack)
            # LLM_PROVIDER=local (or auto without keys) assembles the model if missing and loads it (seconds).
            log.info("app.starting", step="llm", detail="starting the language model (the embedded one: seconds)")
            llm = await LLMService.start(settings)
            stack.push_async_callback(llm.aclose)
            # After the LLM (extraction uses it), so shutdown drains the memory queue while the LLM is up.
            if settings.memory_enabled:
                log.info("app.starting", step="memory", detail="loading the embedding model and mem0: a few seconds")
            memory = await open_memory(settings, database_url, llm, stack)
            agent = await open_agent(settings, database_url, llm, stack)
            cache = (
                ResponseCache(settings.cache_ttl_seconds, redis, key_prefix=settings.redis_key_prefix)
                if settings.cache_enabled
                else None
            )
            state: State = {
                "settings": settings,
                "engine": engine,
                "sessionmaker": create_sessionmaker(engine),
                "readiness_checks": {"database": database_ready},
                "optional_checks": {},
                "redis": redis,
                "rate_limiter": RateLimiter(settings, redis, key_prefix=settings.redis_key_prefix),
                "cache": cache,
                "password_hasher": await PasswordHasher.from_settings(settings),
                "llm": llm,
                "agent": agent,
                "memory": memory,
                "user_deletion_hooks": [],
                "session_deletion_hooks": [],
            }
            if redis is not None:
                state["optional_checks"]["redis"] = redis_readiness(redis)
            state["readiness_checks"]["llm"] = llm.check
            state["user_deletion_hooks"].append(agent.erase_user)
            state["session_deletion_hooks"].append(agent.delete_thread)
            if memory is not None:
                state["user_deletion_hooks"].append(memory.erase_user)
            if cache is not None:
                state["user_deletion_hooks"].append(cache.erase_user)
            # What exists now (modules, the graph, clients, pools) lives as long as the app: keep it out of
            # the garbage collector, whose full collections otherwise walk it all and stall the event loop
            # for ~0.7 s under load (bench/results/chat_load.md). Unfrozen on shutdown, so it can go.
            gc.collect()
            gc.freeze()
            stack.callback(gc.unfreeze)
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
    install_request_guards(app, settings)  # CORS, body size limit, rate limits (+ hosts, HTTPS in production)
    app.add_middleware(RequestContextMiddleware)
    install_security_headers(app, settings)  # outermost: every response, the last-resort 500 included
    app.include_router(health.router)
    app.include_router(metrics_endpoint.router)
    app.include_router(auth_endpoints.router)
    app.include_router(sessions_endpoints.router)
    app.include_router(chat_endpoints.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    app.include_router(memory_endpoints.router)
    return app
