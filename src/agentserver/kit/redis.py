"""The shared Redis client (rate limits, response cache), created in the lifespan when REDIS_URL is set.

Timeouts are short and retries few on purpose: Redis backs best-effort features that fail open, so a
dead or unreachable Redis must cost a request milliseconds, not redis-py's default ten retries.
Start-up does not wait for Redis: the app serves (rate limits failing open) and `/ready` reports it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Annotated, TypeAlias

import structlog
from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from agentserver.config import Settings

log = structlog.get_logger(__name__)

SOCKET_TIMEOUT_SECONDS = 1.0
RETRIES = 1

# redis-py's asyncio client; one connection pool per process, shared by every feature. (Generic only in
# the stubs: at run time the class is not subscriptable.)
if TYPE_CHECKING:
    AsyncRedis: TypeAlias = Redis[bytes]
else:
    AsyncRedis = Redis


def create_redis(url: str) -> AsyncRedis:
    """A client for `url` (redis://, rediss://, unix://). Connects lazily, on first use."""
    client: AsyncRedis = Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), RETRIES),
        health_check_interval=30,
    )
    return client


async def start_redis(settings: Settings, stack: AsyncExitStack) -> AsyncRedis | None:
    """The client for REDIS_URL (closed when the stack closes), or None when it is unset."""
    if not settings.redis_url:
        return None
    client = create_redis(settings.redis_url)
    stack.push_async_callback(close_redis, client)
    log.info("redis.configured", key_prefix=settings.redis_key_prefix)
    return client


async def close_redis(client: AsyncRedis) -> None:
    # types-redis predates redis-py 5's `aclose()` (`close()` is deprecated in redis-py 8).
    await client.aclose()  # type: ignore[attr-defined]


def redis_readiness(client: AsyncRedis) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        await client.ping()

    return check


async def get_redis(request: Request) -> AsyncRedis | None:
    redis: AsyncRedis | None = request.state.redis
    return redis


RedisDep = Annotated[AsyncRedis | None, Depends(get_redis)]
