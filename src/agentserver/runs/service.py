"""Runs from the API's side: start one for a message, cancel, resume, read; stop a session's runs.

Every method that writes commits its own short transaction before anything waits on a model, so no
request holds a pooled connection while a run executes (the worker does that, elsewhere).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.jobs.repository import WORK_CHANNEL
from agentserver.kit.db import session_scope
from agentserver.kit.pagination import finish_page
from agentserver.kit.pg_listen import notify
from agentserver.models import ChatSession, MultitaskStrategy, Run, RunStatus
from agentserver.observability import tracing
from agentserver.observability.metrics import CHAT_TURNS
from agentserver.runs import events
from agentserver.runs.errors import (
    InvalidResume,
    MessageTooLong,
    RunAlreadyFinished,
    RunNotFound,
    RunNotInterrupted,
    SessionNotFound,
    TurnInProgress,
)
from agentserver.runs.eventlog import EventLog
from agentserver.runs.executor import erase_run
from agentserver.runs.repository import RunRepository
from agentserver.runs.worker import CANCEL_CHANNEL
from agentserver.sessions.repository import ChatSessionRepository
from agentserver.usage.limits import QuotaLimits
from agentserver.usage.service import usage as usage_service

log = structlog.get_logger(__name__)

# Checks a resume decision's edited arguments against the paused tool (raises ValueError/ValidationError).
ArgsValidator = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class StartedRun:
    id: uuid.UUID
    session_id: uuid.UUID
    user_message_id: uuid.UUID


class RunService:
    async def start(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        text: str,
        max_chars: int,
        strategy: MultitaskStrategy = MultitaskStrategy.reject,
        quotas: QuotaLimits | None = None,
        model_options: dict[str, Any] | None = None,
        stream_modes: Sequence[str] | None = None,
    ) -> StartedRun:
        """Store the user message and a pending run for it (404/409/422, and 429 when `quotas` — the
        deployment's default budgets, overridden per user — have no room for it, raise here: nothing stored).

        `model_options`: parameters for the run's model calls (temperature, max_tokens, ...);
        `stream_modes`: extra events for its log (see `RunEvent`: values, updates, message).
        """
        if len(text) > max_chars:
            raise MessageTooLong(max_chars)
        with tracing.span("run.enqueue", {"session.id": str(session_id), "user.id": str(user_id)}) as span:
            run, ended = await self._store(
                sessionmaker, user_id, session_id, text, strategy, quotas, model_options, stream_modes
            )
            span.set_attribute("agentserver.run.id", str(run.id))
        for run_id, reason in ended:
            await announce_end(event_log, run_id, reason)
        return run

    async def _store(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        text: str,
        strategy: MultitaskStrategy,
        quotas: QuotaLimits | None,
        model_options: dict[str, Any] | None,
        stream_modes: Sequence[str] | None,
    ) -> tuple[StartedRun, list[tuple[uuid.UUID, str]]]:
        ended: list[tuple[uuid.UUID, str]] = []
        run_id, message_id = uuid.uuid4(), uuid.uuid4()
        async with session_scope(sessionmaker) as db:
            if quotas is not None:
                # First: it locks the user's row, and deletions lock the user before the sessions too.
                await usage_service.admit(db, user_id=user_id, defaults=quotas)
            # Ownership, the session's lock (concurrent messages to one session queue here) and its
            # "last active" time, in one statement.
            owned = await db.scalar(
                update(ChatSession)
                .where(ChatSession.id == session_id, ChatSession.user_id == user_id)
                .values(updated_at=func.now())
                .returning(ChatSession.id)
            )
            if owned is None:
                raise SessionNotFound()
            runs = RunRepository.from_session(db)
            create = partial(
                runs.create,
                run_id=run_id,
                session_id=session_id,
                user_id=user_id,
                message_id=message_id,
                content=text,
                strategy=strategy.value,
                channel=WORK_CHANNEL,
                # Tracing on: the worker's run span continues this request's trace (None when off).
                traceparent=tracing.current_traceparent(),
                model_options=model_options or None,
                stream_modes=list(stream_modes) if stream_modes else None,
            )
            # The common case in one more round trip: the session is idle, the run goes in.
            if not await create(force=False):
                unfinished = await runs.unfinished_in_session(session_id)
                ended = await self._make_way(db, runs, session_id, unfinished, strategy)
                await create(force=True)
        return StartedRun(run_id, session_id, message_id), ended

    async def _make_way(
        self,
        db: AsyncSession,
        runs: RunRepository,
        session_id: uuid.UUID,
        unfinished: Sequence[Run],
        strategy: MultitaskStrategy,
    ) -> list[tuple[uuid.UUID, str]]:
        """Apply the multitask strategy to the session's unfinished runs; the runs it ended at once."""
        if strategy is MultitaskStrategy.reject:
            CHAT_TURNS.labels(outcome="conflict").inc()
            raise TurnInProgress()
        if strategy is MultitaskStrategy.enqueue:
            return []
        waiting = [r.id for r in unfinished if r.status in (RunStatus.pending, RunStatus.interrupted)]
        cancelled = await runs.cancel_waiting(waiting, strategy.value)
        if strategy is MultitaskStrategy.rollback:
            for run_id in cancelled:
                await erase_run(db, session_id, run_id)
        running = [r.id for r in unfinished if r.status is RunStatus.running]
        for run_id in await runs.request_cancel(running, strategy.value):
            await notify(db, CANCEL_CHANNEL, f"{run_id}:{strategy.value}")
        reason = "rolled_back" if strategy is MultitaskStrategy.rollback else "cancelled"
        return [(run_id, reason) for run_id in cancelled]

    async def cancel(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        *,
        user_id: uuid.UUID,
        run_id: uuid.UUID,
        rollback: bool = False,
    ) -> Run:
        """Stop a run: a waiting one ends now, a running one when its worker notices (well under a second).
        `rollback`: also erase it (its messages and checkpoints), as the rollback strategy does."""
        reason = "rollback" if rollback else "cancel"
        async with session_scope(sessionmaker) as db:
            runs = RunRepository.from_session(db)
            run = await runs.get_owned(user_id, run_id)
            if run is None:
                raise RunNotFound()
            if run.status in (RunStatus.success, RunStatus.error, RunStatus.cancelled):
                raise RunAlreadyFinished()
            cancelled = await runs.cancel_waiting([run_id], reason)
            if cancelled and rollback:
                await erase_run(db, run.session_id, run_id)
            if not cancelled and await runs.request_cancel([run_id], reason):
                await notify(db, CANCEL_CHANNEL, f"{run_id}:{reason}")
            run = await runs.get(run_id)
            assert run is not None
        if cancelled:
            await announce_end(event_log, run_id, "rolled_back" if rollback else "cancelled")
        return run

    async def resume(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        user_id: uuid.UUID,
        run_id: uuid.UUID,
        decision: dict[str, Any],
        validate_args: ArgsValidator,
        quotas: QuotaLimits | None = None,
        stream_modes: Sequence[str] | None = None,
    ) -> Run:
        """Hand a paused run its decision; a worker continues it from the checkpoint (which calls the model
        again: `quotas` admit it like a new run). `stream_modes`: the extra events the resuming client wants
        from here on (None: as the run had them)."""
        async with session_scope(sessionmaker) as db:
            if quotas is not None:
                await usage_service.admit(db, user_id=user_id, defaults=quotas)
            runs = RunRepository.from_session(db)
            run = await runs.get_owned(user_id, run_id)
            if run is None:
                raise RunNotFound()
            if run.status is not RunStatus.interrupted:
                raise RunNotInterrupted()
            if decision["decision"] == "edit":
                tool = str((run.interrupt or {}).get("tool", ""))
                try:
                    validate_args(tool, decision["args"])
                except (ValidationError, ValueError) as exc:
                    raise InvalidResume(f"args: not valid for {tool}: {_first_problem(exc)}") from None
            if not await runs.resume(
                user_id, run_id, decision, stream_modes, traceparent=tracing.current_traceparent()
            ):
                raise RunNotInterrupted()  # resumed or cancelled by a concurrent request
            await notify(db, WORK_CHANNEL, "run")
            run = await runs.get(run_id)
            assert run is not None
        return run

    async def get(self, session: AsyncSession, *, user_id: uuid.UUID, run_id: uuid.UUID) -> Run:
        run = await RunRepository.from_session(session).get_owned(user_id, run_id)
        if run is None:
            raise RunNotFound()
        return run

    async def list_for_session(
        self, session: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID, cursor: str | None, limit: int
    ) -> tuple[list[Run], str | None]:
        if await ChatSessionRepository.from_session(session).get_owned(user_id, session_id) is None:
            raise SessionNotFound()
        rows = await RunRepository.from_session(session).list_for_session(
            user_id, session_id, cursor=cursor, limit=limit
        )
        return finish_page(rows, limit, key=lambda run: (run.created_at, run.id))

    async def cancel_quietly(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        *,
        user_id: uuid.UUID,
        run_id: uuid.UUID,
    ) -> None:
        """Cancel unless it already ended (a client that went away asked for cancel-on-disconnect)."""
        try:
            await self.cancel(sessionmaker, event_log, user_id=user_id, run_id=run_id)
        except (RunAlreadyFinished, RunNotFound):
            pass

    async def stop_for_sessions(self, db: AsyncSession, session_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Inside a deletion's transaction: stop every unfinished run of these sessions (workers are told
        at commit), and return the ids of all their runs (for the erasure job)."""
        if not session_ids:
            return []
        runs = RunRepository.from_session(db)
        unfinished = await runs.unfinished_ids(session_ids=session_ids)
        await runs.cancel_waiting(unfinished, "deleted")
        for run_id in await runs.request_cancel(unfinished, "deleted"):
            await notify(db, CANCEL_CHANNEL, f"{run_id}:deleted")
        return await runs.ids_for_sessions(session_ids)


async def announce_end(event_log: EventLog, run_id: uuid.UUID, reason: str) -> None:
    """The ending of a run no worker held (cancelled while waiting), for anyone following it."""
    try:
        last = await event_log.last(run_id)
        if last is not None and last.terminal:
            return
        await event_log.append(run_id, [events.done(None, {}, reason).with_seq((last.seq if last else 0) + 1)])
        await event_log.expire(run_id)
    except Exception as exc:
        # Followers fall back to the run's row.
        log.warning("runs.announce_failed", run_id=str(run_id), error=type(exc).__name__)


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


runs = RunService()
