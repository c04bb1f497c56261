"""Usage reports and quota status as the API shows them (amounts in US dollars as decimal strings)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentserver.usage.repository import UsageRow
from agentserver.usage.service import QuotaStatus


class UsageFigures(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal
    runs: int = Field(description="Runs that stored an answer (one assistant message each)")
    tool_calls: int

    @classmethod
    def of(cls, row: UsageRow) -> UsageFigures:
        return cls(
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            total_tokens=row.input_tokens + row.output_tokens,
            cost_usd=row.cost_usd,
            runs=row.runs,
            tool_calls=row.tool_calls,
        )


class UsageGroup(UsageFigures):
    key: str = Field(description="The day (YYYY-MM-DD, UTC), model name, session id or user id of the group")

    @classmethod
    def of_row(cls, row: UsageRow) -> UsageGroup:
        return cls(key=row.key, **UsageFigures.of(row).model_dump())


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    group_by: str
    totals: UsageFigures
    groups: list[UsageGroup] = Field(description="At most 1000 groups (by day: oldest first; else costliest first)")


class QuotaPeriod(BaseModel):
    tokens_limit: int = Field(description="0: unlimited")
    cost_usd_limit: Decimal = Field(description="0: unlimited")
    tokens_used: int
    cost_usd_used: Decimal
    runs: int
    resets_at: datetime


class QuotaRead(BaseModel):
    day: QuotaPeriod
    month: QuotaPeriod

    @classmethod
    def of(cls, status: QuotaStatus) -> QuotaRead:
        def period(name: Literal["day", "month"]) -> QuotaPeriod:
            tokens, cost = status.limits.for_period(name)
            used = status.usage[name]
            return QuotaPeriod(
                tokens_limit=tokens,
                cost_usd_limit=cost,
                tokens_used=used.tokens,
                cost_usd_used=used.cost_usd,
                runs=used.runs,
                resets_at=status.resets_at[name],
            )

        return cls(day=period("day"), month=period("month"))
