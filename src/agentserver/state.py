"""The typed application state built by the lifespan and reached through request.state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agentserver.agent.runtime import AgentRuntime
from agentserver.auth.security import PasswordHasher
from agentserver.auth.service import UserDeletionHook
from agentserver.cache import ResponseCache
from agentserver.config import Settings
from agentserver.documents.runtime import Documents
from agentserver.kit.pg_listen import PgListener
from agentserver.kit.redis import AsyncRedis
from agentserver.kit.tasks import TaskSet
from agentserver.llm.service import LLMService
from agentserver.memory.service import MemoryService
from agentserver.ratelimit import RateLimiter
from agentserver.runs.eventlog import EventLog
from agentserver.runs.live import LiveRuns
from agentserver.runs.streaming import RunStreams
from agentserver.runs.worker import Worker
from agentserver.sessions.service import SessionDeletionHook

# A readiness check raises (with a message safe to show) when its dependency is not usable.
ReadinessCheck = Callable[[], Awaitable[None]]


class State(TypedDict):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # What the service cannot run without (database, LLM): one failing makes /ready a 503.
    readiness_checks: dict[str, ReadinessCheck]
    # What it runs without, degraded (Redis: rate limits fail open, the cache is skipped): reported by
    # /ready and agentserver_dependency_up, never a 503 (a Redis outage must not unready every replica).
    optional_checks: dict[str, ReadinessCheck]
    redis: AsyncRedis | None  # REDIS_URL set: the shared client (rate limits, cache)
    rate_limiter: RateLimiter
    cache: ResponseCache | None  # CACHE_ENABLED: the model response cache
    password_hasher: PasswordHasher
    # Chat models with tools, retries, fallbacks, usage (llm/service.py); None in an API-only process.
    llm: LLMService | None
    agent: AgentRuntime  # the LangGraph agent and its Postgres checkpointer (agent/runtime.py)
    documents: Documents | None  # uploaded files (documents/); None when DOCUMENTS_ENABLED=false
    memory: MemoryService | None  # long-term memory (memory/service.py); None when MEMORY_ENABLED=false
    listener: PgListener  # LISTEN/NOTIFY wake-ups (new work, cancel requests, new events)
    event_log: EventLog  # every run's events (Redis Streams or PostgreSQL)
    live_runs: LiveRuns  # runs executing in this process
    run_streams: RunStreams  # follow a run's events from anywhere
    worker: Worker | None  # the in-process worker (RUN_WORKER_ENABLED), None in an API-only process
    tasks: TaskSet  # fire-and-forget work of requests (e.g. a cancel after a disconnect), drained at shutdown
    # Run by DELETE /api/v1/auth/me inside its transaction, before the rows go (runs, checkpoints, memories).
    user_deletion_hooks: list[UserDeletionHook]
    # Run by DELETE /api/v1/sessions/{id} inside its transaction, before the row goes.
    session_deletion_hooks: list[SessionDeletionHook]
