"""Admin API bodies."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from agentserver.usage.schemas import QuotaRead


class QuotaOverrides(BaseModel):
    """A user's own budgets: a number replaces the deployment default (0: unlimited), null restores it."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    daily_tokens: int | None = Field(default=None, ge=0, le=10**15)
    monthly_tokens: int | None = Field(default=None, ge=0, le=10**15)
    daily_cost_usd: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=6)
    monthly_cost_usd: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=6)


class UserQuotaRead(BaseModel):
    overrides: QuotaOverrides
    effective: QuotaRead
