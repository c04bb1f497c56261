"""Cost of a rate-limit check on the request path, and of a cache lookup.

- `RateLimiter.hit` (moving window: acquire + window stats) on process memory and on the Redis at
  REDIS_TEST_URL (default 127.0.0.1:6379), sequential and 50 concurrent;
- `hit` while Redis is down (fail open: the first failure, then the back-off path);
- `ResponseCache.get` hit on memory and Redis, and `request_key` for a 20-message request with 3 tools.

Single process, bounded loops; writes bench/results/ratelimit.md. Keys use a throwaway prefix and
are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool

from agentserver.cache import ResponseCache, request_key
from agentserver.config import Settings
from agentserver.kit.redis import close_redis, create_redis
from agentserver.ratelimit import Policy, RateLimiter

RESULTS = Path(__file__).resolve().parent / "results" / "ratelimit.md"
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
N = 2000


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return expression


async def _per_call_us(call: Callable[[int], Awaitable[object]], n: int = N) -> float:
    start = time.perf_counter()
    for i in range(n):
        await call(i)
    return (time.perf_counter() - start) / n * 1e6


async def _concurrent_per_call_us(call: Callable[[int], Awaitable[object]], n: int = N, width: int = 50) -> float:
    start = time.perf_counter()
    for batch in range(0, n, width):
        await asyncio.gather(*(call(i) for i in range(batch, batch + width)))
    return (time.perf_counter() - start) / n * 1e6


async def run() -> list[tuple[str, str]]:
    settings = Settings(_env_file=None, rate_limit_default="1000000/minute")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    rows: list[tuple[str, str]] = []

    memory = RateLimiter(settings)
    rows.append(
        ("hit, memory", f"{await _per_call_us(lambda i: memory.hit(Policy.default, 'ip', f'10.0.{i % 50}.1')):.0f} µs")
    )

    redis = create_redis(REDIS_URL)
    try:
        shared = RateLimiter(settings, redis, key_prefix=prefix)
        seq = await _per_call_us(lambda i: shared.hit(Policy.default, "ip", f"10.0.{i % 50}.1"))
        par = await _concurrent_per_call_us(lambda i: shared.hit(Policy.default, "ip", f"10.0.{i % 50}.1"))
        rows.append(("hit, Redis (sequential)", f"{seq:.0f} µs"))
        rows.append(("hit, Redis (50 concurrent, per request)", f"{par:.0f} µs"))

        cache = ResponseCache(60, redis, key_prefix=prefix)
        user = uuid.uuid4()
        await cache.set(user, "k", AIMessage("an answer of some length " * 20))
        rows.append(("cache get hit, Redis", f"{await _per_call_us(lambda i: cache.get(user, 'k'), 500):.0f} µs"))
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await close_redis(redis)

    local = ResponseCache(60)
    await local.set(user, "k", AIMessage("an answer of some length " * 20))
    rows.append(("cache get hit, memory", f"{await _per_call_us(lambda i: local.get(user, 'k'), 500):.0f} µs"))

    messages: list[BaseMessage] = [SystemMessage("You are helpful. " * 50)]
    messages += [HumanMessage(f"question {n} " * 20) if n % 2 else AIMessage(f"answer {n} " * 40) for n in range(19)]

    async def key(_: int) -> str:
        return request_key("model", messages, [calculator] * 3, {"temperature": 0.2})

    rows.append(("request_key, 20 messages + 3 tools", f"{await _per_call_us(key, 500):.0f} µs"))

    dead = create_redis("redis://127.0.0.1:1/0")
    down = RateLimiter(settings, dead)
    first = time.perf_counter()
    await down.hit(Policy.default, "ip", "10.0.0.1")
    rows.append(("hit, Redis down: first request (fails open)", f"{(time.perf_counter() - first) * 1e3:.1f} ms"))
    rows.append(
        (
            "hit, Redis down: during back-off",
            f"{await _per_call_us(lambda i: down.hit(Policy.default, 'ip', 'x')):.1f} µs",
        )
    )
    await close_redis(dead)
    return rows


def main() -> None:
    rows = asyncio.run(run())
    lines = [
        "# Rate limiting and response cache: cost per call",
        "",
        f"`python -m bench ratelimit` on {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (shared with other work), Redis on localhost.",
        "",
        "| operation | time |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "A limited route pays one `hit` per policy key (default per IP, plus per IP and per account on",
        "login/register); each Redis `hit` is two round trips (moving-window acquire + window stats).",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(RESULTS)


if __name__ == "__main__":
    main()
