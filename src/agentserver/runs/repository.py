"""SQL for runs. Every status change of a run happens here, as a guarded UPDATE ... WHERE status = ...

    pending ──claim──► running ──finish──► success | error | cancelled
       ▲                 │  └──pause──► interrupted ──resume──► pending
       └──release/requeue┘                  └──cancel_waiting──► cancelled
    pending ──cancel_waiting──► cancelled

A transition that finds the run in another state changes nothing and says so (None / False), so a cancel,
a takeover and a worker's own end can race without ever finishing a run twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.kit.pagination import keyset_page
from agentserver.models import UNFINISHED_STATUSES, Run, RunStatus


@dataclass(frozen=True)
class ClaimedRun:
    """What a worker needs to execute a run it has just claimed."""

    id: uuid.UUID
    session_id: uuid.UUID
    user_id: uuid.UUID
    user_message_id: uuid.UUID | None
    text: str  # the user message's text ("" if it is gone)
    resume: dict[str, Any] | None
    attempt: int
    cancel_requested: str | None
    traceparent: str | None = None  # the W3C trace context of the request that queued it (tracing on)
    model_options: dict[str, Any] | None = None  # parameters of the run's model calls
    stream_modes: tuple[str, ...] = ()  # extra events its client asked for (values, updates, message)


@dataclass(frozen=True)
class StaleRun:
    id: uuid.UUID
    status: RunStatus


_CLAIM = text(
    """
    WITH candidates AS (
        SELECT r.id FROM runs r
        WHERE r.status = 'pending'
          AND NOT EXISTS (
              SELECT 1 FROM runs a WHERE a.session_id = r.session_id AND a.status IN ('running', 'interrupted'))
          AND NOT EXISTS (
              SELECT 1 FROM runs o WHERE o.session_id = r.session_id AND o.status = 'pending'
                AND (o.created_at, o.id) < (r.created_at, r.id))
        ORDER BY r.created_at, r.id
        LIMIT :limit
        FOR UPDATE OF r SKIP LOCKED
    )
    UPDATE runs SET status = 'running', worker_id = :worker, attempt = runs.attempt + 1, heartbeat_at = now(),
                    started_at = coalesce(runs.started_at, now())
    FROM candidates WHERE runs.id = candidates.id
    RETURNING runs.id, runs.session_id, runs.user_id, runs.user_message_id, runs.resume, runs.attempt,
              runs.cancel_requested, runs.traceparent, runs.model_options, runs.stream_modes,
              (SELECT m.content FROM messages m WHERE m.id = runs.user_message_id) AS text
    """
)

# Runs whose worker stopped heartbeating: back to pending (another worker resumes them from their last
# checkpoint), or failed once they have used their attempts, or cancelled when that was asked for.
_REQUEUE_STALE = text(
    """
    UPDATE runs SET
        status = CASE WHEN cancel_requested IS NOT NULL THEN 'cancelled'::run_status
                      WHEN attempt >= :max_attempts THEN 'error'::run_status
                      ELSE 'pending'::run_status END,
        error = CASE WHEN cancel_requested IS NULL AND attempt >= :max_attempts THEN 'WorkerLost' END,
        error_detail = CASE WHEN cancel_requested IS NULL AND attempt >= :max_attempts
                            THEN 'The run was interrupted by a server failure; please send your message again.' END,
        ended_at = CASE WHEN cancel_requested IS NOT NULL OR attempt >= :max_attempts THEN now() END,
        worker_id = NULL, heartbeat_at = NULL
    WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => :stale_seconds)
      AND NOT (id = ANY(CAST(:executing AS uuid[])))
    RETURNING id, status
    """
)


class RunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> RunRepository:
        return cls(session)

    # --- reads (owner-scoped) ---------------------------------------------------------------------------
    async def get_owned(self, user_id: uuid.UUID, run_id: uuid.UUID) -> Run | None:
        return await self.session.scalar(select(Run).where(Run.id == run_id, Run.user_id == user_id))

    async def get(self, run_id: uuid.UUID) -> Run | None:
        """Any run by id: for workers and event streams that already checked ownership."""
        return await self.session.get(Run, run_id, populate_existing=True)

    async def list_for_session(
        self, user_id: uuid.UUID, session_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> Sequence[Run]:
        statement = keyset_page(
            select(Run).where(Run.session_id == session_id, Run.user_id == user_id),
            Run.created_at,
            Run.id,
            cursor=cursor,
            limit=limit,
        )
        return (await self.session.scalars(statement)).all()

    async def unfinished_in_session(self, session_id: uuid.UUID) -> list[Run]:
        statement = (
            select(Run)
            .where(Run.session_id == session_id, Run.status.in_(UNFINISHED_STATUSES))
            .order_by(Run.created_at, Run.id)
        )
        return list((await self.session.scalars(statement)).all())

    async def unfinished_ids(self, *, session_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        statement = select(Run.id).where(Run.session_id.in_(session_ids), Run.status.in_(UNFINISHED_STATUSES))
        return list((await self.session.scalars(statement)).all())

    async def ids_for_sessions(self, session_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        return list((await self.session.scalars(select(Run.id).where(Run.session_id.in_(session_ids)))).all())

    # --- creation -----------------------------------------------------------------------------------------
    async def create(self, run: Run) -> Run:
        self.session.add(run)
        await self.session.flush()
        await self.session.refresh(run, ["created_at"])
        return run

    # --- transitions ----------------------------------------------------------------------------------------
    async def claim(self, worker_id: str, limit: int) -> list[ClaimedRun]:
        """Up to `limit` pending runs, oldest first, at most one per session, none behind an active run."""
        rows = (await self.session.execute(_CLAIM, {"worker": worker_id, "limit": limit})).mappings().all()
        return [
            ClaimedRun(
                id=row["id"],
                session_id=row["session_id"],
                user_id=row["user_id"],
                user_message_id=row["user_message_id"],
                text=row["text"] or "",
                resume=row["resume"],
                attempt=row["attempt"],
                cancel_requested=row["cancel_requested"],
                traceparent=row["traceparent"],
                model_options=row["model_options"],
                stream_modes=tuple(row["stream_modes"] or ()),
            )
            for row in rows
        ]

    async def heartbeat(self, worker_id: str, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        """Refresh the worker's running runs; returns {run id: cancel request} for those still its own."""
        if not run_ids:
            return {}
        rows = await self.session.execute(
            update(Run)
            .where(Run.id.in_(run_ids), Run.worker_id == worker_id, Run.status == RunStatus.running)
            .values(heartbeat_at=func.now())
            .returning(Run.id, Run.cancel_requested)
        )
        return {row.id: row.cancel_requested for row in rows}

    async def requeue_stale(
        self, *, stale_seconds: float, max_attempts: int, executing: Sequence[uuid.UUID]
    ) -> list[StaleRun]:
        """Runs whose worker stopped heartbeating, except those the reaping worker is executing itself (its
        heartbeat may just be late, e.g. when the event loop was busy)."""
        params = {"stale_seconds": stale_seconds, "max_attempts": max_attempts, "executing": list(executing)}
        rows = await self.session.execute(_REQUEUE_STALE, params)
        return [StaleRun(row.id, RunStatus(row.status)) for row in rows]

    async def finish(self, run_id: uuid.UUID, worker_id: str, status: RunStatus, **values: Any) -> bool:
        """running → success | error | cancelled, only for the worker that runs it. False: not ours any more."""
        assert status in (RunStatus.success, RunStatus.error, RunStatus.cancelled)
        row = await self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.running, Run.worker_id == worker_id)
            .values(status=status, ended_at=func.now(), heartbeat_at=None, **values)
            .returning(Run.id)
        )
        return row.first() is not None

    async def pause(self, run_id: uuid.UUID, worker_id: str, interrupt: dict[str, Any], usage: dict[str, Any]) -> bool:
        """running → interrupted (waiting for an approval)."""
        row = await self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.running, Run.worker_id == worker_id)
            .values(
                status=RunStatus.interrupted,
                interrupt=interrupt,
                resume=None,
                worker_id=None,
                heartbeat_at=None,
                usage=usage,
            )
            .returning(Run.id)
        )
        return row.first() is not None

    async def release(self, run_id: uuid.UUID, worker_id: str) -> bool:
        """running → pending: a stopping worker hands the run over; the attempt is not counted as a failure."""
        row = await self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.running, Run.worker_id == worker_id)
            .values(status=RunStatus.pending, worker_id=None, heartbeat_at=None, attempt=Run.attempt - 1)
            .returning(Run.id)
        )
        return row.first() is not None

    async def resume(
        self,
        user_id: uuid.UUID,
        run_id: uuid.UUID,
        decision: dict[str, Any],
        stream_modes: Sequence[str] | None = None,
        *,
        traceparent: str | None = None,
    ) -> bool:
        """interrupted → pending with the decision a worker will resume the graph with (and the trace context
        of the request that decided, which the rest of the run continues)."""
        values: dict[str, Any] = {"status": RunStatus.pending, "resume": decision, "traceparent": traceparent}
        if stream_modes is not None:
            values["stream_modes"] = list(stream_modes) or None
        row = await self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.user_id == user_id, Run.status == RunStatus.interrupted)
            .values(**values)
            .returning(Run.id)
        )
        return row.first() is not None

    async def cancel_waiting(self, run_ids: Sequence[uuid.UUID], reason: str) -> list[uuid.UUID]:
        """pending | interrupted → cancelled: no worker holds them, so they end here."""
        if not run_ids:
            return []
        rows = await self.session.scalars(
            update(Run)
            .where(Run.id.in_(run_ids), Run.status.in_((RunStatus.pending, RunStatus.interrupted)))
            .values(status=RunStatus.cancelled, cancel_requested=reason, ended_at=func.now())
            .returning(Run.id)
        )
        return list(rows.all())

    async def request_cancel(self, run_ids: Sequence[uuid.UUID], reason: str) -> list[uuid.UUID]:
        """Ask the workers of these running runs to stop them (they finish them as cancelled)."""
        if not run_ids:
            return []
        rows = await self.session.scalars(
            update(Run)
            .where(Run.id.in_(run_ids), Run.status == RunStatus.running)
            .values(cancel_requested=reason)
            .returning(Run.id)
        )
        return list(rows.all())
