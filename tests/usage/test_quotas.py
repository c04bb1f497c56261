"""Quotas: a run that would exceed a budget is refused (429) before anything reaches the model; what runs
spend is counted once, in the transaction that ends them; admissions of one user are atomic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from agentserver.kit.db import session_scope
from agentserver.llm.fake import FakeChatModel, status_error, tool_call_turn
from agentserver.models import ChatSession, Message, MessageRole, MultitaskStrategy, Run, RunStatus, UsageCounter
from agentserver.runs.service import runs as runs_service
from agentserver.usage.errors import QuotaExceeded
from agentserver.usage.limits import QuotaLimits, period_end
from agentserver.usage.service import usage as usage_service
from tests.chat.conftest import ChatHarness
from tests.usage.conftest import chat, set_quota, user_id_of

STREAM = "/api/v1/chatbot/chat/stream"


def tomorrow_midnight() -> datetime:
    return period_end("day", datetime.now(UTC))


class TestRefusedBeforeTheModel:
    async def test_the_request_that_crosses_the_budget_is_a_429_and_the_model_is_not_called(
        self, usage_app: ChatHarness, fake: FakeChatModel
    ) -> None:
        fake.set_script(["one two three four five six seven eight nine ten eleven twelve", "never sent"])
        headers = await usage_app.new_user()
        user_id = await user_id_of(usage_app, headers)
        await set_quota(usage_app, user_id, daily_tokens=10)
        session_id = await usage_app.new_session(headers)

        first = await chat(usage_app, headers, session_id, "count")
        calls_before = len(fake.calls)
        second = await chat(usage_app, headers, session_id, "again")

        assert first.status_code == 200
        assert second.status_code == 429
        reset = tomorrow_midnight()
        assert second.json() == {
            "error": "QuotaExceeded",
            "detail": f"Your daily token budget is used up; it resets at {reset.isoformat()}",
            "limit": "daily_tokens",
            "reset_at": reset.isoformat(),
        }
        assert 0 < int(second.headers["retry-after"]) <= 86_400
        assert len(fake.calls) == calls_before == 1
        assert [m.content for m in await usage_app.messages(session_id)][-1] != "again"  # nothing stored

    async def test_a_stream_is_refused_before_it_starts(self, usage_app: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["a b c d e"])
        headers = await usage_app.new_user()
        await set_quota(usage_app, await user_id_of(usage_app, headers), monthly_tokens=3)
        session_id = await usage_app.new_session(headers)
        assert (await chat(usage_app, headers, session_id, "go")).status_code == 200

        async with usage_app.client() as http:
            response = await http.post(STREAM, json={"session_id": session_id, "message": "more"}, headers=headers)

        assert response.status_code == 429
        assert response.json()["limit"] == "monthly_tokens"
        assert len(fake.calls) == 1

    async def test_a_user_without_budgets_is_never_refused(self, usage_app: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["a b c d e", "f g h"])
        headers = await usage_app.new_user()
        session_id = await usage_app.new_session(headers)

        responses = [await chat(usage_app, headers, session_id, text) for text in ("one", "two")]

        assert [r.status_code for r in responses] == [200, 200]


class TestCounters:
    async def test_a_runs_spend_is_added_to_the_day_and_the_month_once(
        self, usage_app: ChatHarness, fake: FakeChatModel
    ) -> None:
        fake.set_script(["a b c", "d e f g"])
        headers = await usage_app.new_user()
        user_id = await user_id_of(usage_app, headers)
        session_id = await usage_app.new_session(headers)
        for text in ("one", "two"):
            assert (await chat(usage_app, headers, session_id, text)).status_code == 200

        async with session_scope(usage_app.state["sessionmaker"]) as db:
            counters = (await db.scalars(select(UsageCounter).where(UsageCounter.user_id == user_id))).all()
            stored = (
                await db.execute(
                    select(func.sum(Message.input_tokens + Message.output_tokens), func.max(Message.output_tokens))
                    .join(ChatSession, ChatSession.id == Message.session_id)
                    .where(ChatSession.user_id == user_id, Message.role == MessageRole.assistant)
                )
            ).one()
        assert sorted(c.period for c in counters) == ["day", "month"]
        for counter in counters:
            assert counter.input_tokens + counter.output_tokens == stored[0]
            assert counter.output_tokens == 7
            assert counter.runs == 2

    async def test_a_failed_runs_spend_before_the_failure_counts_too(
        self, usage_app: ChatHarness, fake: FakeChatModel
    ) -> None:
        """The model asked for a tool (tokens spent), then failed: the run is an error, and what it spent is
        still added to the user's budgets — a failing second call must not make the first one free."""
        fake.set_script(
            [tool_call_turn("calculator", {"expression": "6*7"}), status_error(400, message="context too long")]
        )
        headers = await usage_app.new_user()
        user_id = await user_id_of(usage_app, headers)
        session_id = await usage_app.new_session(headers)

        response = await chat(usage_app, headers, session_id, "What is 6 times 7?")
        await usage_app.settle()

        assert response.status_code == 502, response.text
        async with session_scope(usage_app.state["sessionmaker"]) as db:
            run = await db.scalar(select(Run).where(Run.user_id == user_id))
            counters = (await db.scalars(select(UsageCounter).where(UsageCounter.user_id == user_id))).all()
        assert run is not None
        assert run.status is RunStatus.error
        assert run.usage is not None
        assert run.usage["input_tokens"] > 0
        assert sorted(c.period for c in counters) == ["day", "month"]
        for counter in counters:
            assert (counter.input_tokens, counter.output_tokens, counter.runs) == (
                run.usage["input_tokens"],
                run.usage["output_tokens"],
                1,
            )


async def admit(harness: ChatHarness, user_id: uuid.UUID, limits: QuotaLimits) -> None:
    async with session_scope(harness.state["sessionmaker"]) as db:
        await usage_service.admit(db, user_id=user_id, defaults=limits)


async def spent(harness: ChatHarness, user_id: uuid.UUID, tokens: int, cost: str = "0") -> None:
    async with session_scope(harness.state["sessionmaker"]) as db:
        await usage_service.record_run(
            db, user_id=user_id, input_tokens=tokens, output_tokens=0, cost_usd=Decimal(cost)
        )


@asynccontextmanager
async def running_run(harness: ChatHarness, headers: dict[str, str]) -> AsyncIterator[None]:
    """A run of the user held by a worker elsewhere (stored as such; ended when the block ends)."""
    user_id = await user_id_of(harness, headers)
    session_id = uuid.UUID(await harness.new_session(headers))
    run_id = uuid.uuid4()
    async with session_scope(harness.state["sessionmaker"]) as db:
        db.add(
            Run(
                id=run_id,
                session_id=session_id,
                user_id=user_id,
                status=RunStatus.running,
                multitask_strategy="reject",
                attempt=1,
                worker_id="elsewhere",
                heartbeat_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    try:
        yield
    finally:
        async with session_scope(harness.state["sessionmaker"]) as db:
            await db.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.cancelled))


class TestAdmission:
    async def test_a_spent_cost_budget_refuses_until_the_month_ends(self, usage_app: ChatHarness) -> None:
        user_id = await user_id_of(usage_app, await usage_app.new_user())
        await spent(usage_app, user_id, 10, cost="1.50")

        with pytest.raises(QuotaExceeded) as refused:
            await admit(usage_app, user_id, QuotaLimits(monthly_cost_usd=Decimal("1.5")))

        assert refused.value.extra == {
            "limit": "monthly_cost_usd",
            "reset_at": period_end("month", datetime.now(UTC)).isoformat(),
        }

    async def test_an_override_of_zero_is_unlimited_whatever_the_default(self, usage_app: ChatHarness) -> None:
        user_id = await user_id_of(usage_app, await usage_app.new_user())
        await set_quota(usage_app, user_id, daily_tokens=0)
        await spent(usage_app, user_id, 1000)

        await admit(usage_app, user_id, QuotaLimits(daily_tokens=10))

    async def test_beside_a_running_run_it_is_refused_when_two_runs_may_not_fit(self, usage_app: ChatHarness) -> None:
        headers = await usage_app.new_user()
        user_id = await user_id_of(usage_app, headers)
        await spent(usage_app, user_id, 40)  # the largest run of the month: 40 tokens
        async with running_run(usage_app, headers):
            with pytest.raises(QuotaExceeded) as refused:
                await admit(usage_app, user_id, QuotaLimits(daily_tokens=100))  # 40 + 2 × 40 > 100

        assert refused.value.extra is not None
        assert refused.value.extra["limit"] == "daily_tokens"
        assert refused.value.headers == {"Retry-After": "5"}

    async def test_beside_a_running_run_it_is_admitted_when_both_fit(self, usage_app: ChatHarness) -> None:
        headers = await usage_app.new_user()
        user_id = await user_id_of(usage_app, headers)
        await spent(usage_app, user_id, 40)
        async with running_run(usage_app, headers):
            await admit(usage_app, user_id, QuotaLimits(daily_tokens=120))  # 40 + 2 × 40 <= 120

    async def test_concurrent_starts_on_one_budget_admit_one_run(self, usage_app: ChatHarness) -> None:
        headers = await usage_app.new_user()
        user_id = await user_id_of(usage_app, headers)
        await spent(usage_app, user_id, 60)  # room for one more 60-token run at most, not two
        sessions = [uuid.UUID(await usage_app.new_session(headers)) for _ in range(6)]
        limits = QuotaLimits(daily_tokens=100)
        # Admitted runs stay in flight (their model never answers) until every start was decided: a run that
        # ended in between would free room in the budget and rightly admit another.
        gate = asyncio.Event()
        usage_app.fake.set_script([], gate=gate)

        async def start(session_id: uuid.UUID) -> str:
            try:
                await runs_service.start(
                    usage_app.state["sessionmaker"],
                    usage_app.state["event_log"],
                    user_id=user_id,
                    session_id=session_id,
                    text="hi",
                    max_chars=100,
                    strategy=MultitaskStrategy.reject,
                    quotas=limits,
                )
            except QuotaExceeded:
                return "refused"
            return "admitted"

        outcomes = await asyncio.gather(*(start(s) for s in sessions))
        gate.set()
        await usage_app.settle()

        assert sorted(outcomes) == ["admitted"] + ["refused"] * 5
