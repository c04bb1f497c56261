from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, IdMixin, TimestampMixin


class RunStatus(enum.StrEnum):
    pending = "pending"  # waiting for a worker (new, enqueued, resumed, or released by a stopping worker)
    running = "running"  # a worker executes it and heartbeats
    interrupted = "interrupted"  # paused for a human decision (approval); resumed by POST /runs/{id}/resume
    success = "success"
    error = "error"
    cancelled = "cancelled"


# A session has at most one run in these states: the rest of its runs wait (enqueue) or are refused (reject).
ACTIVE_STATUSES = (RunStatus.running, RunStatus.interrupted)
UNFINISHED_STATUSES = (RunStatus.pending, RunStatus.running, RunStatus.interrupted)
FINISHED_STATUSES = (RunStatus.success, RunStatus.error, RunStatus.cancelled)


class MultitaskStrategy(enum.StrEnum):
    """What a new message does while the session has an unfinished run (LangGraph's names)."""

    reject = "reject"  # 409
    enqueue = "enqueue"  # runs after the current one
    interrupt = "interrupt"  # cancels the current one (its partial answer is kept), then runs
    rollback = "rollback"  # cancels the current one and erases it (messages and checkpoints), then runs


class Run(IdMixin, TimestampMixin, Base):
    """One execution of the agent on a session (a chat turn, or its continuation after an approval).

    Status changes happen only in `runs.repository`, as guarded `UPDATE ... WHERE status = ...` statements.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_session_id_created_at", "session_id", "created_at"),
        # The claim query's candidates, oldest first.
        Index("ix_runs_pending_created_at", "created_at", postgresql_where=text("status = 'pending'")),
        # The reaper's scan for runs whose worker stopped heartbeating.
        Index("ix_runs_running_heartbeat_at", "heartbeat_at", postgresql_where=text("status = 'running'")),
        # One executing (or paused) run per session, whatever races between workers.
        Index(
            "uq_runs_session_id_active",
            "session_id",
            unique=True,
            postgresql_where=text("status IN ('running', 'interrupted')"),
        ),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, name="run_status", values_callable=lambda e: [m.value for m in e]),
        nullable=False,
        default=RunStatus.pending,
    )
    multitask_strategy: Mapped[str] = mapped_column(String(16), nullable=False, default=MultitaskStrategy.reject)
    # The user message this run answers (its row in `messages`, and the HumanMessage id in the checkpoint).
    user_message_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    # A resume decision waiting for a worker: {"decision": "approve"|"reject"|"edit", "args": {...}}.
    resume: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # While interrupted: what the run waits for ({"tool_call_id", "tool", "args"}).
    interrupt: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set by cancel, by the interrupt/rollback strategies and by deletions; the worker stops the run.
    cancel_requested: Mapped[str | None] = mapped_column(String(16), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # error: the AppError class a client sees; error_detail: its message (safe to show).
    error: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    assistant_message_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    # {"model", "input_tokens", "output_tokens", "cost_usd"} of every model call of the run (summaries included).
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # The W3C trace context of the request that queued the run (tracing on): the worker's run span is its
    # child, so one trace holds the request and the run's execution in another process.
    traceparent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Model call parameters the client chose (temperature, max_tokens, top_p, stop), passed to every chat
    # model call of the run.
    model_options: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # Extra events the run's client wants in its log besides the chat events (`values`, `updates`,
    # `message`: the Agent Server API's stream modes); NULL for chat runs, whose log stays as it is.
    stream_modes: Mapped[list[str] | None] = mapped_column(JSONB, nullable=True)
