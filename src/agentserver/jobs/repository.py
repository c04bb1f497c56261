"""SQL for durable background jobs: enqueue (inside the caller's transaction), claim, heartbeat, finish.

Claiming follows one rule: a user's jobs run one at a time, in id order (an erasure is never overtaken by
an older extraction, nor followed by a stale one). Jobs without a user run in any order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update

from agentserver.kit.db import Executor
from agentserver.kit.pg_listen import notify
from agentserver.models import Job, JobStatus

WORK_CHANNEL = "agentserver_work"


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    user_id: uuid.UUID | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    created_at: datetime


_CLAIM = text(
    """
    WITH candidates AS (
        SELECT j.id FROM jobs j
        WHERE j.status = 'pending' AND j.run_after <= now()
          AND (j.user_id IS NULL OR (
              NOT EXISTS (SELECT 1 FROM jobs r WHERE r.user_id = j.user_id AND r.status = 'running')
              AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.user_id = j.user_id AND o.status = 'pending'
                                AND o.id < j.id)))
        ORDER BY j.run_after, j.id
        LIMIT :limit
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs SET status = 'running', worker_id = :worker, attempts = jobs.attempts + 1, heartbeat_at = now()
    FROM candidates WHERE jobs.id = candidates.id
    RETURNING jobs.id, jobs.kind, jobs.user_id, jobs.payload, jobs.attempts, jobs.max_attempts, jobs.created_at
    """
)

_REQUEUE_STALE = text(
    """
    UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed'::job_status
                                  ELSE 'pending'::job_status END,
                    error = CASE WHEN attempts >= max_attempts THEN 'worker lost' END,
                    worker_id = NULL, heartbeat_at = NULL
    WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => :stale_seconds)
      AND NOT (id = ANY(CAST(:executing AS bigint[])))
    RETURNING id, kind, user_id, payload, attempts, max_attempts, created_at, status = 'failed' AS gave_up
    """
)


class JobRepository:
    def __init__(self, session: Executor) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: Executor) -> JobRepository:
        return cls(session)

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        user_id: uuid.UUID | None = None,
        delay_seconds: float = 0,
        max_attempts: int = 5,
    ) -> None:
        """Add a job in the caller's transaction: it exists (and wakes the workers) only if that commits."""
        await self.session.execute(
            insert(Job).values(
                kind=kind,
                user_id=user_id,
                payload=payload,
                status=JobStatus.pending,
                attempts=0,
                max_attempts=max_attempts,
                run_after=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, delay_seconds),
            )
        )
        await notify(self.session, WORK_CHANNEL, "job")

    async def claim(self, worker_id: str, limit: int) -> list[ClaimedJob]:
        rows = (await self.session.execute(_CLAIM, {"worker": worker_id, "limit": limit})).mappings().all()
        return [ClaimedJob(**row) for row in rows]

    async def heartbeat(self, worker_id: str, job_ids: Sequence[int]) -> None:
        if job_ids:
            await self.session.execute(
                update(Job)
                .where(Job.id.in_(job_ids), Job.worker_id == worker_id, Job.status == JobStatus.running)
                .values(heartbeat_at=func.now())
            )

    async def complete(self, job_id: int, worker_id: str) -> None:
        """Done jobs are deleted: the table holds only what is still to do (and what failed for good)."""
        await self.session.execute(delete(Job).where(Job.id == job_id, Job.worker_id == worker_id))

    async def retry_or_fail(self, job: ClaimedJob, worker_id: str, error: str, backoff_seconds: float) -> bool:
        """Back to pending after `backoff_seconds`, or failed for good; True if it will be retried."""
        retry = job.attempts < job.max_attempts
        await self.session.execute(
            update(Job)
            .where(Job.id == job.id, Job.worker_id == worker_id, Job.status == JobStatus.running)
            .values(
                status=JobStatus.pending if retry else JobStatus.failed,
                error=error[:2000],
                worker_id=None,
                heartbeat_at=None,
                run_after=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, backoff_seconds),
            )
        )
        return retry

    async def release(self, job_id: int, worker_id: str) -> None:
        """A stopping worker hands the job back without counting the attempt."""
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.running)
            .values(status=JobStatus.pending, worker_id=None, heartbeat_at=None, attempts=Job.attempts - 1)
        )

    async def requeue_stale(self, stale_seconds: float, *, executing: Sequence[int]) -> list[tuple[ClaimedJob, bool]]:
        """Jobs whose worker stopped heartbeating, back to pending — or failed for good once their attempts are
        used up (True beside the job)."""
        params = {"stale_seconds": stale_seconds, "executing": list(executing)}
        rows = (await self.session.execute(_REQUEUE_STALE, params)).mappings().all()
        return [(ClaimedJob(**{k: v for k, v in row.items() if k != "gave_up"}), bool(row["gave_up"])) for row in rows]

    async def depth(self) -> dict[tuple[str, str], int]:
        """Jobs by (kind, status), for the queue metric."""
        rows = await self.session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
        return {(kind, str(status)): count for kind, status, count in rows}

    async def drop_pending_for_user(self, user_id: uuid.UUID, kinds: Sequence[str]) -> None:
        """Forget queued work about a user (their account is being erased)."""
        await self.session.execute(
            delete(Job).where(Job.user_id == user_id, Job.kind.in_(kinds), Job.status == JobStatus.pending)
        )
