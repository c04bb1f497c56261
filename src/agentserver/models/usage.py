from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base


class UsageCounter(Base):
    """What one user spent in one day or month (UTC), added to in the transaction that ends each run.

    The quota check reads it; it outlives deleted sessions and messages (spent is spent), unlike the usage
    report, which is computed from the stored messages.
    """

    __tablename__ = "usage_counters"
    __table_args__ = (
        # The top spenders of a period (the Grafana top-N gauge, the admin view).
        Index("ix_usage_counters_period_starts_on_cost_usd", "period", "starts_on", "cost_usd"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)  # "day" | "month"
    starts_on: Mapped[date] = mapped_column(Date, primary_key=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), nullable=False, default=Decimal("0"))
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The largest single run of the period: how much room a run is assumed to need (quota admission).
    max_run_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    max_run_cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), nullable=False, default=Decimal("0"))


class UserQuota(Base):
    """An admin's per-user budget overrides. NULL: the deployment default (QUOTA_*); 0: unlimited."""

    __tablename__ = "user_quotas"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    daily_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    monthly_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    daily_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), nullable=True)
    monthly_cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
