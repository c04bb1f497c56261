"""Application factory and lifespan.

Every stateful resource (database engine, embedded PostgreSQL, Redis, event log, checkpointer, LLM, memory,
the in-process worker) is created in `lifespan()` (by `services.open_services`), exposed through the typed
`State`, and closed in reverse order on shutdown. Nothing stateful is built at import time.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from agentserver import health, web
from agentserver.admin import endpoints as admin_endpoints
from agentserver.agent_protocol import endpoints as agent_protocol_endpoints
from agentserver.assistants import endpoints as assistants_endpoints
from agentserver.auth import api_key_endpoints
from agentserver.auth import endpoints as auth_endpoints
from agentserver.auth.security import PasswordHasher
from agentserver.chat import endpoints as chat_endpoints
from agentserver.config import Settings, get_settings
from agentserver.documents import endpoints as documents_endpoints
from agentserver.documents import erasure as documents_erasure
from agentserver.kit.errors import install_error_handlers
from agentserver.kit.hardening import install_request_guards, install_security_headers
from agentserver.kit.middleware import RequestContextMiddleware
from agentserver.memory import endpoints as memory_endpoints
from agentserver.observability import http as metrics_endpoint
from agentserver.observability.logging import configure_logging
from agentserver.observability.tracing_sdk import Tracing
from agentserver.openai_compat import endpoints as openai_endpoints
from agentserver.openai_compat.errors import OpenAIErrorShape
from agentserver.ratelimit import RateLimiter
from agentserver.runs import endpoints as runs_endpoints
from agentserver.services import open_services
from agentserver.sessions import endpoints as sessions_endpoints
from agentserver.state import State
from agentserver.usage import endpoints as usage_endpoints

log = structlog.get_logger(__name__)


def lifespan_for(settings: Settings, tracing: Tracing | None = None):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            services = await open_services(settings, stack, worker=settings.run_worker_enabled, tracing=tracing)
            state: State = {
                "settings": settings,
                "engine": services.engine,
                "sessionmaker": services.sessionmaker,
                "readiness_checks": services.readiness_checks,
                "optional_checks": services.optional_checks,
                "redis": services.redis,
                "rate_limiter": RateLimiter(settings, services.redis, key_prefix=settings.redis_key_prefix),
                "cache": services.cache,
                "password_hasher": await PasswordHasher.from_settings(settings),
                "llm": services.llm,
                "agent": services.agent,
                "memory": services.memory,
                "documents": services.documents,
                "listener": services.listener,
                "event_log": services.event_log,
                "live_runs": services.live_runs,
                "run_streams": services.run_streams,
                "worker": services.worker,
                "tasks": services.tasks,
                "user_deletion_hooks": [services.erasure.on_user_deletion, documents_erasure.on_user_deletion],
                "session_deletion_hooks": [
                    services.erasure.on_session_deletion,
                    documents_erasure.on_session_deletion,
                ],
            }
            # What exists now (modules, the graph, clients, pools) lives as long as the app: keep it out of
            # the garbage collector, whose full collections otherwise walk it all and stall the event loop
            # for ~0.7 s under load (bench/results/chat_load.md). Unfrozen on shutdown, so it can go.
            gc.collect()
            gc.freeze()
            stack.callback(gc.unfreeze)
            log.info(
                "app.started",
                environment=settings.environment.value,
                embedded_db=not settings.database_url,
                worker=services.worker is not None,
            )
            yield state
            log.info("app.stopping")

    return lifespan


def create_app(settings: Settings | None = None, *, span_exporter: SpanExporter | None = None) -> FastAPI:
    """The app. `span_exporter` turns tracing on with that exporter (tests: an in-memory one)."""
    settings = settings or get_settings()
    configure_logging(settings)
    # None unless tracing is configured: then nothing about it is created.
    tracing = Tracing.from_settings(settings, exporter=span_exporter)
    app = FastAPI(
        title="agentserver",
        version="0.1.0",
        lifespan=lifespan_for(settings, tracing),
        docs_url="/docs" if settings.debug else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.debug or not settings.is_production else None,
    )
    install_error_handlers(app)
    install_request_guards(app, settings)  # CORS, body size limit, rate limits (+ hosts, HTTPS in production)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(OpenAIErrorShape)  # errors of /v1 in OpenAI's shape, whoever raised them
    install_security_headers(app, settings)  # outermost: every response, the last-resort 500 included
    app.include_router(health.router)
    app.include_router(metrics_endpoint.router)
    app.include_router(auth_endpoints.router)
    app.include_router(api_key_endpoints.router)
    app.include_router(sessions_endpoints.router)
    app.include_router(assistants_endpoints.router)
    app.include_router(chat_endpoints.router)
    app.include_router(runs_endpoints.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    app.include_router(memory_endpoints.router)
    app.include_router(documents_endpoints.router)
    app.include_router(openai_endpoints.router)
    app.include_router(agent_protocol_endpoints.router)
    app.include_router(usage_endpoints.router)
    app.include_router(admin_endpoints.router)
    if tracing is not None:
        tracing.instrument_app(app)  # outermost: the request's span is current in every middleware
    return app
