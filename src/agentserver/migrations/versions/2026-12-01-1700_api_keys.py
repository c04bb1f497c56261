"""API keys, and what the OpenAI-compatible and Agent Server APIs keep

- `api_keys`: users' long-lived keys (hashed), accepted wherever a bearer access token is.
- `chat_bindings`: which session an OpenAI-compatible client's conversation is.
- `chat_sessions.metadata`: a thread's metadata (Agent Server API).
- `runs.model_options`, `runs.stream_modes`: a run's model parameters and the extra events its client
  asked for.

Revision ID: 0006_api_keys
Revises: 0005_usage
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_api_keys"
down_revision: str | None = "0005_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_user_id_created_at", "api_keys", ["user_id", "created_at"])

    op.create_table(
        "chat_bindings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_bindings_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["chat_sessions.id"],
            name=op.f("fk_chat_bindings_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_bindings")),
        sa.UniqueConstraint("user_id", "kind", "key_hash", name="uq_chat_bindings_user_id_kind_key_hash"),
    )
    op.create_index(op.f("ix_chat_bindings_session_id"), "chat_bindings", ["session_id"])

    op.add_column("chat_sessions", sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("runs", sa.Column("model_options", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("runs", sa.Column("stream_modes", postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "stream_modes")
    op.drop_column("runs", "model_options")
    op.drop_column("chat_sessions", "metadata")
    op.drop_index(op.f("ix_chat_bindings_session_id"), table_name="chat_bindings")
    op.drop_table("chat_bindings")
    op.drop_index("ix_api_keys_user_id_created_at", table_name="api_keys")
    op.drop_table("api_keys")
