"""SQL for runs. Every status change of a run happens here, as a guarded UPDATE ... WHERE status = ...

    pending ──claim──► running ──finish──► success | error | cancelled
       ▲                 │  └──pause──► interrupted ──resume──► pending
       └──release/requeue┘                  └──cancel_waiting──► cancelled
    pending ──cancel_waiting──► cancelled

A transition that finds the run in another state changes nothing and says so (None / False), so a cancel,
a takeover and a worker's own end can race without ever finishing a run twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Result, func, literal_column, select, text, update

from agentserver.jobs.repository import WORK_CHANNEL
from agentserver.kit.db import Executor
from agentserver.kit.pagination import keyset_page
from agentserver.models import UNFINISHED_STATUSES, Run, RunStatus
from agentserver.usage.repository import Spent, count_run_sql


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
    # The session's assistant (None: the deployment's default) and, for a user's own, its version: with
    # both, the compiled graph is found without another query (runtime.AgentGraphs).
    assistant_id: uuid.UUID | None = None
    assistant_version: int | None = None
    # The files the session's agent sees, newest first (name, status, pages; at most CLAIM_FILES + 1): read
    # by the claim itself so a turn costs no statement for them (documents/tool.py formats the list).
    files: tuple[dict[str, Any], ...] = ()


CLAIM_FILES = 20


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
    FROM candidates, chat_sessions s WHERE runs.id = candidates.id AND s.id = runs.session_id
    RETURNING runs.id, runs.session_id, runs.user_id, runs.user_message_id, runs.resume, runs.attempt,
              runs.cancel_requested, runs.traceparent, runs.model_options, runs.stream_modes,
              (SELECT m.content FROM messages m WHERE m.id = runs.user_message_id) AS text,
              s.assistant_id, (SELECT a.version FROM assistants a WHERE a.id = s.assistant_id) AS assistant_version,
              (SELECT coalesce(json_agg(json_build_object('name', f.name, 'status', f.status, 'pages', f.pages,
                                                          'kind', f.kind)
                                        ORDER BY f.created_at DESC, f.id DESC), '[]'::json)
               FROM (SELECT name, status, pages, kind, created_at, id FROM files
                     WHERE files.user_id = runs.user_id
                       AND (files.session_id IS NULL OR files.session_id = runs.session_id)
                     ORDER BY created_at DESC, id DESC LIMIT :files_limit) f) AS files
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


# A run and its user message in one round trip; `force` false: only if the session has no unfinished run
# (the caller holds the session's row lock, so this check and the insert cannot race another message).
_CREATE = text(
    """
    WITH run AS (
        INSERT INTO runs (id, session_id, user_id, status, multitask_strategy, user_message_id, attempt, traceparent,
                          model_options, stream_modes)
        SELECT CAST(:run_id AS uuid), CAST(:session_id AS uuid), CAST(:user_id AS uuid), 'pending',
               CAST(:strategy AS varchar), CAST(:message_id AS uuid), 0, CAST(:traceparent AS varchar),
               CAST(:model_options AS jsonb), CAST(:stream_modes AS jsonb)
        WHERE CAST(:force AS boolean) OR NOT EXISTS (
            SELECT 1 FROM runs WHERE session_id = CAST(:session_id AS uuid)
            AND status IN ('pending', 'running', 'interrupted'))
        RETURNING id
    ), message AS (
        INSERT INTO messages (id, session_id, run_id, role, content)
        SELECT CAST(:message_id AS uuid), CAST(:session_id AS uuid), id, 'user', CAST(:content AS text) FROM run
        RETURNING id
    )
    SELECT (SELECT count(*) FROM message) AS created,
           (SELECT pg_notify(CAST(:channel AS text), 'run') FROM message) AS notified
    """
)


# In a run's ending statement: wake the workers when a run waits behind it in its session (enqueued, or
# sent to interrupt/roll it back), so workers need not claim after every run just in case.
_WAKE_QUEUED = (
    f"(SELECT pg_notify('{WORK_CHANNEL}', 'run') WHERE EXISTS "  # noqa: S608 (a constant channel name)
    "(SELECT 1 FROM runs q WHERE q.session_id = runs.session_id AND q.status = 'pending'))"
)

# The end of a run that produced an answer, in one statement: the guarded status change, the assistant
# message (only if the change happened: exactly one answer per run), the memory extraction job, the usage
# counters, and the wake-up of a run queued behind it.
_FINISH_WITH_ANSWER = text(
    f"""
    WITH ended AS (
        UPDATE runs SET status = CAST(:status AS run_status), ended_at = now(), heartbeat_at = NULL,
                        usage = CAST(:usage AS jsonb), assistant_message_id = CAST(:message_id AS uuid)
        WHERE id = :run_id AND status = 'running' AND worker_id = :worker
        RETURNING id, session_id, user_id
    ), answer AS (
        INSERT INTO messages (id, session_id, run_id, role, content, tool_calls, model, input_tokens,
                              output_tokens, cost_usd, finish_reason)
        SELECT CAST(:message_id AS uuid), session_id, id, 'assistant', CAST(:content AS text),
               CAST(:tool_calls AS jsonb), CAST(:model AS varchar), CAST(:input_tokens AS integer),
               CAST(:output_tokens AS integer), CAST(:cost_usd AS numeric), CAST(:finish_reason AS varchar)
        FROM ended WHERE CAST(:message_id AS uuid) IS NOT NULL
        RETURNING id
    ), job AS (
        INSERT INTO jobs (kind, user_id, payload, status, attempts, max_attempts)
        SELECT CAST(:job_kind AS varchar), user_id, CAST(:job_payload AS jsonb), 'pending', 0, 5 FROM ended
        WHERE CAST(:job_kind AS varchar) IS NOT NULL
        RETURNING id
    ), counted AS (
        {count_run_sql("ended")}
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ended) AS ended,
           (SELECT pg_notify(CAST(:job_channel AS text), 'job') FROM job LIMIT 1) AS notified,
           (SELECT pg_notify('{WORK_CHANNEL}', 'run') FROM ended
            WHERE EXISTS (SELECT 1 FROM runs q WHERE q.session_id = ended.session_id AND q.status = 'pending'))
           AS woke
    """  # noqa: S608 (formatted with our own SQL only)
)


# The end of a run that failed: the guarded status change and what its model calls spent before the failure
# (added to the user's counters, like a run that answered), in one statement.
_FAIL = text(
    f"""
    WITH ended AS (
        UPDATE runs SET status = 'error', ended_at = now(), heartbeat_at = NULL, error = CAST(:error AS varchar),
                        error_detail = CAST(:error_detail AS text), usage = CAST(:usage AS jsonb)
        WHERE id = :run_id AND status = 'running' AND worker_id = :worker
        RETURNING id, session_id, user_id
    ), counted AS (
        {count_run_sql("ended")}
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ended) AS ended,
           (SELECT pg_notify('{WORK_CHANNEL}', 'run') FROM ended
            WHERE EXISTS (SELECT 1 FROM runs q WHERE q.session_id = ended.session_id AND q.status = 'pending'))
           AS woke
    """  # noqa: S608 (formatted with our own SQL only)
)


class RunRepository:
    def __init__(self, session: Executor) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: Executor) -> RunRepository:
        return cls(session)

    # --- reads (owner-scoped) ---------------------------------------------------------------------------
    async def get_owned(self, user_id: uuid.UUID, run_id: uuid.UUID) -> Run | None:
        return await self.session.scalar(select(Run).where(Run.id == run_id, Run.user_id == user_id))

    async def get(self, run_id: uuid.UUID) -> Run | None:
        """Any run by id: for workers and event streams that already checked ownership."""
        return await self.session.scalar(select(Run).where(Run.id == run_id).execution_options(populate_existing=True))

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
    async def create(
        self,
        *,
        run_id: uuid.UUID,
        session_id: uuid.UUID,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        content: str,
        strategy: str,
        channel: str,
        force: bool,
        traceparent: str | None = None,
        model_options: dict[str, Any] | None = None,
        stream_modes: list[str] | None = None,
    ) -> bool:
        """Insert a pending run and its user message, and wake the workers; False (nothing inserted) when
        `force` is false and the session has an unfinished run."""
        row = (
            await self.session.execute(
                _CREATE,
                {
                    "run_id": run_id,
                    "session_id": session_id,
                    "user_id": user_id,
                    "message_id": message_id,
                    "content": content,
                    "strategy": strategy,
                    "channel": channel,
                    "force": force,
                    "traceparent": traceparent,
                    "model_options": json.dumps(model_options) if model_options else None,
                    "stream_modes": json.dumps(stream_modes) if stream_modes else None,
                },
            )
        ).one()
        return bool(row.created)

    # --- transitions ----------------------------------------------------------------------------------------
    async def claim(self, worker_id: str, limit: int) -> list[ClaimedRun]:
        """Up to `limit` pending runs, oldest first, at most one per session, none behind an active run."""
        params = {"worker": worker_id, "limit": limit, "files_limit": CLAIM_FILES + 1}
        rows = (await self.session.execute(_CLAIM, params)).mappings().all()
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
                assistant_id=row["assistant_id"],
                assistant_version=row["assistant_version"],
                files=tuple(_json(row["files"])),
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
        ended: Result[Any] = await self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.running, Run.worker_id == worker_id)
            .values(status=status, ended_at=func.now(), heartbeat_at=None, **values)
            .returning(Run.id, literal_column(_WAKE_QUEUED))
        )
        return ended.first() is not None

    async def fail(
        self, run_id: uuid.UUID, worker_id: str, *, error: str, detail: str, usage: dict[str, Any], spent: Spent
    ) -> bool:
        """running → error, with what the run spent before it failed counted against the user's budgets.
        False: the run was not ours to end any more."""
        params = {
            "run_id": run_id,
            "worker": worker_id,
            "error": error,
            "error_detail": detail,
            "usage": json.dumps(usage),
            **spent.params(),
        }
        return bool((await self.session.execute(_FAIL, params)).one().ended)

    async def finish_with_answer(
        self,
        run_id: uuid.UUID,
        worker_id: str,
        status: RunStatus,
        *,
        usage: dict[str, Any],
        message: dict[str, Any] | None,
        job: tuple[str, str, dict[str, Any]] | None,
        spent: Spent,
    ) -> bool:
        """running → success | cancelled with its answer (`message`: the assistant message's columns, None
        for none), an optional job ((kind, wake-up channel, payload)) and what it spent added to the user's
        usage counters of `spent.periods`: all or nothing, in one statement, so a run is counted exactly once.
        False: the run was not ours to end any more, and nothing was written."""
        assert status in (RunStatus.success, RunStatus.cancelled)
        message = message or {}
        row = (
            await self.session.execute(
                _FINISH_WITH_ANSWER,
                {
                    "status": status.value,
                    "usage": json.dumps(usage),
                    "run_id": run_id,
                    "worker": worker_id,
                    "message_id": message.get("id"),
                    "content": message.get("content"),
                    "tool_calls": json.dumps(message["tool_calls"]) if message.get("tool_calls") else None,
                    "model": message.get("model"),
                    "input_tokens": message.get("input_tokens"),
                    "output_tokens": message.get("output_tokens"),
                    "cost_usd": message.get("cost_usd"),
                    "finish_reason": message.get("finish_reason"),
                    "job_kind": job[0] if job else None,
                    "job_channel": job[1] if job else "",
                    "job_payload": json.dumps(job[2]) if job else None,
                    **spent.params(),
                },
            )
        ).one()
        return bool(row.ended)

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


def _json(value: Any) -> list[dict[str, Any]]:
    # asyncpg hands `json` over as text.
    loaded = json.loads(value) if isinstance(value, str) else value
    return list(loaded or [])
