"""Quotas and usage: admit a run within the caller's budgets, count what a run spent, report usage.

Admission (`admit`, inside the transaction that stores the run, before anything reaches a model):

    budgets = QUOTA_* defaults, overridden per user by an admin ──► all unlimited: admitted, no query more
    lock the user's row (FOR NO KEY UPDATE): admissions of one user are serialised across processes
    spent   = the user's counters of this UTC day and month (added to when each run ends)
    spent >= budget                                 ──► 429 QuotaExceeded, Retry-After: until the reset
    no run of the user in flight                    ──► admitted (this run may cross the budget: by one run)
    in flight, and spent + (in flight + 1) × largest run of the period fits ──► admitted
    otherwise                                       ──► 429 QuotaExceeded, Retry-After: a few seconds

So a budget is crossed by at most one run — a run is only admitted beside others while the budget has
room for all of them at the size of the period's largest run — and the lock makes that hold for
concurrent requests on any number of API processes. The worker does not check again: the admission
holds the run's place.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.observability.metrics import QUOTA_REFUSALS
from agentserver.usage.errors import QuotaExceeded
from agentserver.usage.limits import PERIODS, QuotaLimits, current_periods, period_end
from agentserver.usage.repository import GroupBy, PeriodUsage, Spent, UsageRepository, UsageRow

log = structlog.get_logger(__name__)

# How long to wait before trying again when the budget has room for one run at a time and one is running.
BUSY_RETRY_SECONDS = 5.0

_PERIOD_WORDS = {"day": "daily", "month": "monthly"}


@dataclass(frozen=True)
class QuotaStatus:
    """A user's budgets and what they spent in the current day and month."""

    limits: QuotaLimits
    usage: dict[str, PeriodUsage]
    resets_at: dict[str, datetime]


class UsageService:
    # --- admission ------------------------------------------------------------------------------------
    async def admit(
        self, db: AsyncSession, *, user_id: uuid.UUID, defaults: QuotaLimits, now: datetime | None = None
    ) -> None:
        """Raise QuotaExceeded unless one more run of the user fits its budgets (see the module docstring).

        Call inside the transaction that stores the run: the row lock taken here lasts until it ends.
        """
        repository = UsageRepository.from_session(db)
        limits = defaults.with_overrides(await repository.get_override(user_id))
        if limits.unlimited:
            return
        now = now or datetime.now(UTC)
        await repository.lock_user(user_id)
        periods = current_periods(now)
        spent = await repository.period_usage(user_id, periods)
        for period, _ in periods:
            token_limit, cost_limit = limits.for_period(period)
            usage = spent[period]
            if (token_limit and usage.tokens >= token_limit) or (cost_limit and usage.cost_usd >= cost_limit):
                reset = period_end(period, now)
                kind = "tokens" if token_limit and usage.tokens >= token_limit else "cost_usd"
                self._refused(period, kind, "spent")
                raise QuotaExceeded(
                    f"Your {_PERIOD_WORDS[period]} {'token' if kind == 'tokens' else 'cost'} budget is used up; "
                    f"it resets at {reset.isoformat()}",
                    limit=f"{_PERIOD_WORDS[period]}_{kind}",
                    reset_at=reset,
                    retry_after_seconds=(reset - now).total_seconds(),
                )
        in_flight = await repository.runs_in_flight(user_id)
        if in_flight == 0:
            return
        # The largest run of the month (today's are in it) is the room one more run is assumed to need.
        month = spent["month"]
        for period, _ in periods:
            token_limit, cost_limit = limits.for_period(period)
            usage = spent[period]
            needed = in_flight + 1
            fits_tokens = not token_limit or (
                month.max_run_tokens > 0 and usage.tokens + needed * month.max_run_tokens <= token_limit
            )
            fits_cost = not cost_limit or (
                month.max_run_cost_usd > 0 and usage.cost_usd + needed * month.max_run_cost_usd <= cost_limit
            )
            if not (fits_tokens and fits_cost):
                kind = "tokens" if not fits_tokens else "cost_usd"
                self._refused(period, kind, "busy")
                raise QuotaExceeded(
                    f"Your {_PERIOD_WORDS[period]} {'token' if kind == 'tokens' else 'cost'} budget has room for one "
                    "run at a time; retry when your current run has finished",
                    limit=f"{_PERIOD_WORDS[period]}_{kind}",
                    reset_at=period_end(period, now),
                    retry_after_seconds=BUSY_RETRY_SECONDS,
                )

    @staticmethod
    def _refused(period: str, kind: str, reason: str) -> None:
        QUOTA_REFUSALS.labels(period=period, kind=kind, reason=reason).inc()
        log.info("usage.quota_exceeded", period=period, kind=kind, reason=reason)

    # --- accounting -----------------------------------------------------------------------------------
    async def record_run(
        self,
        db: AsyncSession,
        *,
        user_id: uuid.UUID,
        input_tokens: int,
        output_tokens: int,
        cost_usd: Decimal,
        now: datetime | None = None,
    ) -> None:
        """Count a finished run in the user's day and month (call in the transaction that ends the run)."""
        now = now or datetime.now(UTC)
        spent = Spent(input_tokens, output_tokens, cost_usd, current_periods(now))
        await UsageRepository.from_session(db).record_run(user_id, spent)

    # --- reading ----------------------------------------------------------------------------------------
    async def status(
        self, db: AsyncSession, *, user_id: uuid.UUID, defaults: QuotaLimits, now: datetime | None = None
    ) -> QuotaStatus:
        now = now or datetime.now(UTC)
        repository = UsageRepository.from_session(db)
        limits = defaults.with_overrides(await repository.get_override(user_id))
        periods = current_periods(now)
        return QuotaStatus(
            limits=limits,
            usage=await repository.period_usage(user_id, periods),
            resets_at={period: period_end(period, now) for period in PERIODS},
        )

    async def report(
        self, db: AsyncSession, *, user_id: uuid.UUID | None, start: datetime, end: datetime, group_by: GroupBy
    ) -> list[UsageRow]:
        return await UsageRepository.from_session(db).report(user_id=user_id, start=start, end=end, group_by=group_by)

    async def set_override(self, db: AsyncSession, *, user_id: uuid.UUID, values: dict[str, Any]) -> None:
        """Set these overrides of the user (the others keep their value; None: the deployment default)."""
        await UsageRepository.from_session(db).set_override(user_id, values)


usage = UsageService()
