"""usage counters and per-user quotas, user roles and disabling, the trace context of runs

Revision ID: 0005_usage
Revises: 0004_runs
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_usage"
down_revision: str | None = "0004_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("role", sa.String(length=16), server_default="user", nullable=False))
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("traceparent", sa.String(length=64), nullable=True))
    op.create_table(
        "usage_counters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(14, 6), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("max_run_tokens", sa.BigInteger(), nullable=False),
        sa.Column("max_run_cost_usd", sa.Numeric(14, 6), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_counters_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "period", "starts_on", name=op.f("pk_usage_counters")),
    )
    op.create_index(
        "ix_usage_counters_period_starts_on_cost_usd", "usage_counters", ["period", "starts_on", "cost_usd"]
    )
    op.create_table(
        "user_quotas",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("daily_tokens", sa.BigInteger(), nullable=True),
        sa.Column("monthly_tokens", sa.BigInteger(), nullable=True),
        sa.Column("daily_cost_usd", sa.Numeric(14, 6), nullable=True),
        sa.Column("monthly_cost_usd", sa.Numeric(14, 6), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_quotas_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_quotas")),
    )


def downgrade() -> None:
    op.drop_table("user_quotas")
    op.drop_index("ix_usage_counters_period_starts_on_cost_usd", table_name="usage_counters")
    op.drop_table("usage_counters")
    op.drop_column("runs", "traceparent")
    op.drop_column("users", "disabled_at")
    op.drop_column("users", "role")
