"""The typed application state built by the lifespan and reached through request.state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agentserver.config import Settings

# A readiness check raises (with a message safe to show) when its dependency is not usable.
ReadinessCheck = Callable[[], Awaitable[None]]


class State(TypedDict):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    readiness_checks: dict[str, ReadinessCheck]
