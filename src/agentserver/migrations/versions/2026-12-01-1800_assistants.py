"""Assistants: users' own assistants, and the assistant a session is bound to

- `assistants`: a user's named agent configurations (the deployment's come from ASSISTANTS_FILE).
- `chat_sessions.assistant_id`: the session's assistant (NULL: the deployment's default).

Revision ID: 0007_assistants
Revises: 0006_api_keys
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_assistants"
down_revision: str | None = "0006_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assistants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("fallback_models", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tools", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("approval", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("memory", sa.Boolean(), nullable=False),
        sa.Column("summary_after_turns", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assistants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistants")),
        sa.UniqueConstraint("user_id", "name", name="uq_assistants_user_id_name"),
    )
    op.add_column("chat_sessions", sa.Column("assistant_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("chat_sessions", "assistant_id")
    op.drop_table("assistants")
