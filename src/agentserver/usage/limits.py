"""Budgets: the deployment's defaults (QUOTA_*) and an admin's per-user overrides, resolved per user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from agentserver.config import Settings
from agentserver.models import UserQuota


@dataclass(frozen=True)
class QuotaLimits:
    """Budgets of one user per UTC day and month; 0 is unlimited."""

    daily_tokens: int = 0
    monthly_tokens: int = 0
    daily_cost_usd: Decimal = Decimal("0")
    monthly_cost_usd: Decimal = Decimal("0")

    @classmethod
    def from_settings(cls, settings: Settings) -> QuotaLimits:
        return cls(
            daily_tokens=settings.quota_daily_tokens,
            monthly_tokens=settings.quota_monthly_tokens,
            daily_cost_usd=settings.quota_daily_cost_usd,
            monthly_cost_usd=settings.quota_monthly_cost_usd,
        )

    def with_overrides(self, override: UserQuota | None) -> QuotaLimits:
        """An admin's override wins where it is set (not NULL); 0 there means unlimited."""
        if override is None:
            return self
        return QuotaLimits(
            daily_tokens=self.daily_tokens if override.daily_tokens is None else override.daily_tokens,
            monthly_tokens=self.monthly_tokens if override.monthly_tokens is None else override.monthly_tokens,
            daily_cost_usd=self.daily_cost_usd if override.daily_cost_usd is None else override.daily_cost_usd,
            monthly_cost_usd=self.monthly_cost_usd if override.monthly_cost_usd is None else override.monthly_cost_usd,
        )

    @property
    def unlimited(self) -> bool:
        return not (self.daily_tokens or self.monthly_tokens or self.daily_cost_usd or self.monthly_cost_usd)

    def for_period(self, period: str) -> tuple[int, Decimal]:
        """(tokens, cost) budgets of "day" or "month"."""
        if period == "day":
            return self.daily_tokens, self.daily_cost_usd
        return self.monthly_tokens, self.monthly_cost_usd


PERIODS = ("day", "month")


def period_start(period: str, now: datetime) -> date:
    today = now.astimezone(UTC).date()
    return today if period == "day" else today.replace(day=1)


def current_periods(now: datetime) -> list[tuple[str, date]]:
    """Each budget period with the first day of the one containing `now`."""
    return [(period, period_start(period, now)) for period in PERIODS]


def period_end(period: str, now: datetime) -> datetime:
    """When the budget of the period containing `now` resets (midnight UTC)."""
    start = period_start(period, now)
    if period == "day":
        end = start + timedelta(days=1)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime(end.year, end.month, end.day, tzinfo=UTC)
