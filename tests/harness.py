"""What tests need to drive the real app without a server: lifespan state per request, shared sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.kit.db import get_db_session, get_short_session, unit_of_work
from agentserver.models import Job, JobStatus


class StateInjector:
    """What uvicorn does with lifespan state: copy it (shallowly) into every request's scope.

    httpx's ASGITransport does not run the lifespan, so tests run it themselves and wrap the app in this.
    """

    def __init__(self, app: FastAPI, state: Mapping[str, Any]) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["state"] = dict(self.state)
        await self.app(scope, receive, send)


def share_session(app: FastAPI, session: AsyncSession) -> None:
    """Make every request of `app` use `session` (the test's rolled-back transaction).

    Like the real dependency, a request's work is committed (a savepoint here) or rolled back.
    """

    async def test_session() -> AsyncIterator[AsyncSession]:
        async with unit_of_work(session):
            yield session
        session.expunge_all()

    def test_short_session() -> Any:
        # Short sessions (auth) join the same transaction; the request's session expunges after.
        return lambda: unit_of_work(session)

    app.dependency_overrides[get_db_session] = test_session
    app.dependency_overrides[get_short_session] = test_short_session


def unshare_session(app: FastAPI) -> None:
    """Undo `share_session`: requests open their own sessions again."""
    app.dependency_overrides.pop(get_db_session, None)
    app.dependency_overrides.pop(get_short_session, None)


async def drain_jobs(sessionmaker: async_sessionmaker[AsyncSession], *, within: float = 20.0) -> None:
    """Wait until the background jobs (memory extraction, erasure sweeps) of this database have run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with sessionmaker() as session:
            left = await session.scalar(
                select(func.count()).select_from(Job).where(Job.status.in_((JobStatus.pending, JobStatus.running)))
            )
        if not left:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{left} background jobs still waiting after {within} s")
        await asyncio.sleep(0.05)
