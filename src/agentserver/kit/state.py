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
from agentserver.kit.redis import AsyncRedis
from agentserver.llm.service import LLMService
from agentserver.memory.service import MemoryService
from agentserver.ratelimit import RateLimiter
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
    llm: LLMService  # chat models with tools, retries, fallbacks, usage (llm/service.py)
    agent: AgentRuntime  # the LangGraph agent and its Postgres checkpointer (agent/runtime.py)
    memory: MemoryService | None  # long-term memory (memory/service.py); None when MEMORY_ENABLED=false
    # Run by DELETE /api/v1/auth/me to erase what the database cascade cannot reach (checkpoints,
    # memories). Append to it in the lifespan: `state["user_deletion_hooks"].append(hook)`.
    user_deletion_hooks: list[UserDeletionHook]
    # Run by DELETE /api/v1/sessions/{id} after the row is deleted (checkpoints of that thread).
    session_deletion_hooks: list[SessionDeletionHook]
