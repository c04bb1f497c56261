"""chat sessions: the active turn claim (one answer at a time per session)

Revision ID: 0003_chat_turn_claim
Revises: 0002_refresh_tokens
Create Date: 2026-11-25 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_chat_turn_claim"
down_revision: str | None = "0002_refresh_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("chat_sessions", sa.Column("active_turn_id", sa.Uuid(), nullable=True))
    op.add_column("chat_sessions", sa.Column("turn_started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("chat_sessions", "turn_started_at")
    op.drop_column("chat_sessions", "active_turn_id")
