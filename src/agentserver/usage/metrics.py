"""The top spenders gauge for dashboards: by user id, bounded to USAGE_TOP_USERS series per period.

A counter labelled by user id would grow one series per user forever (and hand Prometheus every user's
id); instead, each worker process periodically reads the top N of the current UTC day and month from the
usage counters (one indexed query each) and replaces the gauge's series. Several workers export the same
figures: dashboards take `max by (user_id)`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.kit.db import session_scope
from agentserver.observability.metrics import USAGE_TOP_USER_COST, USAGE_TOP_USER_TOKENS
from agentserver.usage.limits import PERIODS, period_start
from agentserver.usage.repository import UsageRepository

log = structlog.get_logger(__name__)


async def refresh_top_spenders(sessionmaker: async_sessionmaker[AsyncSession], top: int) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as db:
        repository = UsageRepository.from_session(db)
        found = {period: await repository.top_spenders(period, period_start(period, now), top) for period in PERIODS}
    # Replace, not add: users who left the top N lose their series.
    USAGE_TOP_USER_COST.clear()
    USAGE_TOP_USER_TOKENS.clear()
    for period, spenders in found.items():
        for spender in spenders:
            USAGE_TOP_USER_COST.labels(period=period, user_id=str(spender.user_id)).set(float(spender.cost_usd))
            USAGE_TOP_USER_TOKENS.labels(period=period, user_id=str(spender.user_id)).set(spender.tokens)


async def top_spenders_loop(sessionmaker: async_sessionmaker[AsyncSession], *, top: int, every_seconds: float) -> None:
    """Refresh the gauge every `every_seconds` until cancelled; a failure is logged and retried next time."""
    while True:
        try:
            await refresh_top_spenders(sessionmaker, top)
        except Exception as exc:
            log.warning("usage.top_spenders_failed", error=type(exc).__name__)
        await asyncio.sleep(every_seconds)
