"""runs (durable chat turns), their PostgreSQL event log, and durable background jobs

Replaces the per-session turn claim (chat_sessions.active_turn_id) with the `runs` table.

Revision ID: 0004_runs
Revises: 0003_chat_turn_claim
Create Date: 2026-12-01 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_runs"
down_revision: str | None = "0003_chat_turn_claim"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_STATUSES = ("pending", "running", "interrupted", "success", "error", "cancelled")
JOB_STATUSES = ("pending", "running", "failed")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Enum(*RUN_STATUSES, name="run_status"), nullable=False),
        sa.Column("multitask_strategy", sa.String(length=16), nullable=False),
        sa.Column("user_message_id", sa.Uuid(), nullable=True),
        sa.Column("resume", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("interrupt", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=100), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.String(length=16), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=100), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("assistant_message_id", sa.Uuid(), nullable=True),
        sa.Column("usage", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["chat_sessions.id"], name=op.f("fk_runs_session_id_chat_sessions"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_runs_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_session_id_created_at", "runs", ["session_id", "created_at"])
    op.create_index(op.f("ix_runs_user_id"), "runs", ["user_id"])
    op.create_index(
        "ix_runs_pending_created_at", "runs", ["created_at"], postgresql_where=sa.text("status = 'pending'")
    )
    op.create_index(
        "ix_runs_running_heartbeat_at", "runs", ["heartbeat_at"], postgresql_where=sa.text("status = 'running'")
    )
    op.create_index(
        "uq_runs_session_id_active",
        "runs",
        ["session_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('running', 'interrupted')"),
    )

    op.create_table(
        "run_events",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_events_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "seq", name=op.f("pk_run_events")),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Enum(*JOB_STATUSES, name="job_status"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("worker_id", sa.String(length=100), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_pending", "jobs", ["run_after", "id"], postgresql_where=sa.text("status = 'pending'"))
    op.create_index(
        "ix_jobs_user_id_id", "jobs", ["user_id", "id"], postgresql_where=sa.text("status IN ('pending', 'running')")
    )
    op.create_index(
        "ix_jobs_running_heartbeat_at", "jobs", ["heartbeat_at"], postgresql_where=sa.text("status = 'running'")
    )

    op.add_column("messages", sa.Column("run_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(op.f("fk_messages_run_id_runs"), "messages", "runs", ["run_id"], ["id"], ondelete="SET NULL")
    op.create_index(
        "uq_messages_run_id_assistant",
        "messages",
        ["run_id"],
        unique=True,
        postgresql_where=sa.text("role = 'assistant'"),
    )
    op.add_column("users", sa.Column("memories_erased_at", sa.DateTime(timezone=True), nullable=True))

    op.drop_column("chat_sessions", "turn_started_at")
    op.drop_column("chat_sessions", "active_turn_id")


def downgrade() -> None:
    op.add_column("chat_sessions", sa.Column("active_turn_id", sa.Uuid(), nullable=True))
    op.add_column("chat_sessions", sa.Column("turn_started_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_column("users", "memories_erased_at")
    op.drop_index("uq_messages_run_id_assistant", table_name="messages")
    op.drop_constraint(op.f("fk_messages_run_id_runs"), "messages", type_="foreignkey")
    op.drop_column("messages", "run_id")
    op.drop_table("jobs")
    op.drop_table("run_events")
    op.drop_table("runs")
    sa.Enum(name="job_status").drop(op.get_bind(), checkfirst=True)
    sa.Enum(name="run_status").drop(op.get_bind(), checkfirst=True)
