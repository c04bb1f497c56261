from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, IdMixin, TimestampMixin


class UserRole(enum.StrEnum):
    user = "user"
    admin = "admin"  # operators: /api/v1/admin/* (also every email in ADMIN_EMAILS)


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    # Stored normalised (trimmed, lower-cased) so uniqueness is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    # When the user last erased their memories: extraction jobs from before it are skipped, and one that was
    # running deletes what it inserted (see memory/jobs.py).
    memories_erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # "user" | "admin" (set with `agentserver users set-role`; ADMIN_EMAILS are admins whatever this says).
    role: Mapped[str] = mapped_column(String(16), nullable=False, default=UserRole.user, server_default="user")
    # Disabled accounts cannot log in, and their access and refresh tokens stop working at once.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
