"""Two API processes racing on one user's budget: one run is admitted, whatever the interleaving, and the
budget ends overspent by at most that one run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
from sqlalchemy import select

from agentserver.config import Settings
from agentserver.kit.db import session_scope
from agentserver.models import UsageCounter, UserQuota
from agentserver.usage.service import usage as usage_service
from tests.chat.conftest import CHAT_OVERRIDES, start_harness
from tests.factories import auth_headers_for, create_user
from tests.processes import AgentserverProcess, environment, free_port

STREAM = "/api/v1/chatbot/chat/stream"
LIMIT = 100
SPENT = 60  # one earlier run of 60 tokens: room for one more such run, not two


async def start_turn(url: str, headers: dict[str, str], session_id: str) -> int:
    """The status of a streamed turn's start (200 once the run is stored; 429 when refused)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async with http.stream(
            "POST", STREAM, json={"session_id": session_id, "message": "count to three"}, headers=headers
        ) as response:
            return response.status_code


class TestTwoProcessesOneBudget:
    async def test_one_run_is_admitted_and_the_budget_is_crossed_by_one_run_at_most(
        self, own_database_settings: Callable[..., Awaitable[Settings]]
    ) -> None:
        # No worker anywhere while the requests race: every admitted run stays in flight.
        settings = await own_database_settings("agentserver_quota_race", **CHAT_OVERRIDES, run_worker_enabled=False)
        env = environment(settings, LLM_PROVIDER="fake", MEMORY_ENABLED="false", RUN_WORKER_ENABLED="false")
        ports = [free_port(), free_port()]
        apis = [AgentserverProcess.start(["serve", "--no-run-worker", "--port", str(port)], env) for port in ports]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        harness, lifespan = await start_harness(settings)  # API only: sessions, and the rows to check
        try:
            await asyncio.gather(*(api.wait_until_healthy(url) for api, url in zip(apis, urls, strict=True)))
            async with session_scope(harness.state["sessionmaker"]) as db:
                user = await create_user(db)
                db.add(UserQuota(user_id=user.id, daily_tokens=LIMIT))
                await usage_service.record_run(
                    db, user_id=user.id, input_tokens=SPENT, output_tokens=0, cost_usd=Decimal(0)
                )
            headers = auth_headers_for(settings, user)
            sessions = [await harness.new_session(headers) for _ in range(8)]

            statuses = await asyncio.gather(
                *(start_turn(urls[i % 2], headers, session_id) for i, session_id in enumerate(sessions))
            )
            # Now a worker executes what was admitted (the fake model echoes: "You said: count to three").
            await lifespan.__aexit__(None, None, None)
            worker, lifespan = await start_harness(settings.model_copy(update={"run_worker_enabled": True}))
            await worker.settle(within=30)
            after = await start_turn(urls[0], headers, sessions[0])
            async with session_scope(worker.state["sessionmaker"]) as db:
                day = await db.scalar(
                    select(UsageCounter).where(UsageCounter.user_id == user.id, UsageCounter.period == "day")
                )
        finally:
            await lifespan.__aexit__(None, None, None)
            for api in apis:
                api.stop()

        assert sorted(statuses) == [200] + [429] * 7
        assert day is not None
        assert day.runs == 2
        spent = day.input_tokens + day.output_tokens
        assert LIMIT < spent <= LIMIT + day.max_run_tokens  # crossed, by less than one run
        assert after == 429
