"""SQL for usage: per-period counters (quotas, top spenders) and reports from the stored messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Select, and_, case, cast, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Date, String

from agentserver.models import ChatSession, Message, MessageRole, Run, RunStatus, UsageCounter, User, UserQuota

GroupBy = Literal["day", "model", "session", "user", "total"]
# A report never returns more groups than this (sessions and users can be many).
MAX_GROUPS = 1000


@dataclass(frozen=True)
class PeriodUsage:
    """What a user spent in one period, and the largest run of it (quota admission's estimate)."""

    tokens: int = 0
    cost_usd: Decimal = Decimal("0")
    runs: int = 0
    max_run_tokens: int = 0
    max_run_cost_usd: Decimal = Decimal("0")


@dataclass(frozen=True)
class UsageRow:
    key: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    runs: int
    tool_calls: int


@dataclass(frozen=True)
class TopSpender:
    user_id: uuid.UUID
    cost_usd: Decimal
    tokens: int


@dataclass(frozen=True)
class Spent:
    """What one run spent, to add to its user's counters of each (period, first day) in `periods`."""

    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    periods: Sequence[tuple[str, date]]

    def params(self) -> dict[str, Any]:
        return {
            "spent_input": self.input_tokens,
            "spent_output": self.output_tokens,
            "spent_cost": self.cost_usd,
            "spent_periods": [period for period, _ in self.periods],
            "spent_starts": [starts_on for _, starts_on in self.periods],
        }


def count_run_sql(source: str) -> str:
    """The upsert adding a run's `Spent` (its params) to the counters of the user in the `user_id` column
    of `source` (a CTE name). One statement: concurrent run ends of one user add up, whichever process."""
    return f"""
        INSERT INTO usage_counters AS counter (user_id, period, starts_on, input_tokens, output_tokens, cost_usd,
                                               runs, max_run_tokens, max_run_cost_usd)
        SELECT {source}.user_id, p.period, p.starts_on, CAST(:spent_input AS bigint), CAST(:spent_output AS bigint),
               CAST(:spent_cost AS numeric), 1, CAST(:spent_input AS bigint) + CAST(:spent_output AS bigint),
               CAST(:spent_cost AS numeric)
        FROM {source}, unnest(CAST(:spent_periods AS varchar[]), CAST(:spent_starts AS date[])) AS p(period, starts_on)
        ON CONFLICT (user_id, period, starts_on) DO UPDATE SET
            input_tokens = counter.input_tokens + excluded.input_tokens,
            output_tokens = counter.output_tokens + excluded.output_tokens,
            cost_usd = counter.cost_usd + excluded.cost_usd,
            runs = counter.runs + 1,
            max_run_tokens = greatest(counter.max_run_tokens, excluded.max_run_tokens),
            max_run_cost_usd = greatest(counter.max_run_cost_usd, excluded.max_run_cost_usd)
    """  # noqa: S608 (source is a CTE name from our own SQL, never input)


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> UsageRepository:
        return cls(session)

    # --- counters -------------------------------------------------------------------------------------
    async def record_run(self, user_id: uuid.UUID, spent: Spent) -> None:
        """Add one finished run to the user's counters (in the transaction ending it). Runs end with
        `count_run_sql` inside their ending statement; this is the same upsert on its own."""
        sql = f"WITH spender AS (SELECT CAST(:user_id AS uuid) AS user_id) {count_run_sql('spender')}"
        await self.session.execute(text(sql), {"user_id": user_id, **spent.params()})

    async def period_usage(self, user_id: uuid.UUID, periods: Sequence[tuple[str, date]]) -> dict[str, PeriodUsage]:
        rows = (
            await self.session.execute(
                select(UsageCounter).where(
                    UsageCounter.user_id == user_id,
                    or_(*(and_(UsageCounter.period == p, UsageCounter.starts_on == d) for p, d in periods)),
                )
            )
        ).scalars()
        found = {
            row.period: PeriodUsage(
                tokens=row.input_tokens + row.output_tokens,
                cost_usd=row.cost_usd,
                runs=row.runs,
                max_run_tokens=row.max_run_tokens,
                max_run_cost_usd=row.max_run_cost_usd,
            )
            for row in rows
        }
        return {period: found.get(period, PeriodUsage()) for period, _ in periods}

    async def runs_in_flight(self, user_id: uuid.UUID) -> int:
        """The user's runs waiting for or held by a worker: admitted, not ended, spending or about to."""
        count = await self.session.scalar(
            select(func.count())
            .select_from(Run)
            .where(Run.user_id == user_id, Run.status.in_((RunStatus.pending, RunStatus.running)))
        )
        return int(count or 0)

    async def lock_user(self, user_id: uuid.UUID) -> bool:
        """Serialise quota admissions of one user across processes until the transaction ends.

        FOR NO KEY UPDATE: inserts that reference the user (runs, messages) are not blocked by it.
        """
        row = await self.session.scalar(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
        return row is not None

    async def top_spenders(self, period: str, starts_on: date, limit: int) -> list[TopSpender]:
        rows = await self.session.execute(
            select(
                UsageCounter.user_id,
                UsageCounter.cost_usd,
                (UsageCounter.input_tokens + UsageCounter.output_tokens).label("tokens"),
            )
            .where(UsageCounter.period == period, UsageCounter.starts_on == starts_on)
            .order_by(UsageCounter.cost_usd.desc(), (UsageCounter.input_tokens + UsageCounter.output_tokens).desc())
            .limit(limit)
        )
        return [TopSpender(row.user_id, row.cost_usd, int(row.tokens)) for row in rows]

    # --- quota overrides ------------------------------------------------------------------------------
    async def get_override(self, user_id: uuid.UUID) -> UserQuota | None:
        return await self.session.get(UserQuota, user_id, populate_existing=True)

    async def set_override(self, user_id: uuid.UUID, values: dict[str, Any]) -> UserQuota:
        """Create the user's overrides, or change the given ones (None: back to the deployment default)."""
        statement = insert(UserQuota).values(user_id=user_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[UserQuota.__table__.c.user_id], set_={**values, "updated_at": func.now()}
        )
        await self.session.execute(statement)
        override = await self.get_override(user_id)
        assert override is not None
        return override

    # --- reports (from the stored messages) ----------------------------------------------------------------
    async def report(
        self,
        *,
        user_id: uuid.UUID | None,
        start: datetime,
        end: datetime,
        group_by: GroupBy,
    ) -> list[UsageRow]:
        """Sums over the assistant messages stored in [start, end), grouped; `user_id` None: every user."""
        key: Any
        if group_by == "day":
            key = cast(func.date_trunc("day", func.timezone("UTC", Message.created_at)), Date)
        elif group_by == "model":
            key = func.coalesce(Message.model, "unknown")
        elif group_by == "session":
            key = Message.session_id
        elif group_by == "user":
            key = ChatSession.user_id
        else:
            key = literal("total")
        cost = func.coalesce(func.sum(Message.cost_usd), 0)
        tool_calls = case(
            (func.jsonb_typeof(Message.tool_calls) == "array", func.jsonb_array_length(Message.tool_calls)), else_=0
        )
        statement: Select[Any] = (
            select(
                cast(key, String).label("key"),
                func.coalesce(func.sum(Message.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(Message.output_tokens), 0).label("output_tokens"),
                cost.label("cost_usd"),
                func.count().label("runs"),
                func.coalesce(func.sum(tool_calls), 0).label("tool_calls"),
            )
            .select_from(Message)
            .join(ChatSession, ChatSession.id == Message.session_id)
            .where(Message.role == MessageRole.assistant, Message.created_at >= start, Message.created_at < end)
            .limit(MAX_GROUPS)
        )
        if group_by != "total":
            statement = statement.group_by(key)
        if user_id is not None:
            # Ownership by construction: only the caller's sessions' messages are summed.
            statement = statement.where(ChatSession.user_id == user_id)
        if group_by == "day":
            statement = statement.order_by(key)
        elif group_by != "total":
            statement = statement.order_by(cost.desc(), key)
        rows = await self.session.execute(statement)
        return [
            UsageRow(
                key=str(row.key),
                input_tokens=int(row.input_tokens),
                output_tokens=int(row.output_tokens),
                cost_usd=Decimal(row.cost_usd),
                runs=int(row.runs),
                tool_calls=int(row.tool_calls),
            )
            for row in rows
        ]
