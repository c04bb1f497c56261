from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Enum, Identity, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, TimestampMixin


class JobStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    failed = "failed"  # gave up after max_attempts (kept for inspection); done jobs are deleted


class Job(TimestampMixin, Base):
    """A durable background job (memory extraction, erasure sweeps), claimed by workers.

    Jobs of one user run one at a time in id order, so an erasure is never followed by a stale extraction.
    `user_id` has no foreign key on purpose: erasure jobs must outlive the user they erase.
    Payloads hold ids, never personal text.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_pending", "run_after", "id", postgresql_where=text("status = 'pending'")),
        Index("ix_jobs_user_id_id", "user_id", "id", postgresql_where=text("status IN ('pending', 'running')")),
        Index("ix_jobs_running_heartbeat_at", "heartbeat_at", postgresql_where=text("status = 'running'")),
    )

    # An identity, not a uuid: ids give the per-user order.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, name="job_status", values_callable=lambda e: [m.value for m in e]),
        nullable=False,
        default=JobStatus.pending,
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
