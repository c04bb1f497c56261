"""Deleting a chat session or an account: nothing of theirs is left, in any store, on any process.

Inside the deletion's own transaction (so it is all or nothing):
    1. their unfinished runs are cancelled (workers are told at commit, and stop within a heartbeat),
    2. the rows go (sessions, messages, runs, their PostgreSQL event logs: foreign-key cascades),
    3. the LangGraph checkpoints go (SQL on the checkpointer's tables, same database),
    4. for an account, the long-term memories go (SQL on mem0's table, same database), and
    5. a durable sweep job is enqueued (ordered after the user's other jobs, delayed past two heartbeats).

The sweep then removes what lives outside PostgreSQL's transaction (cached answers, Redis event logs) and
sweeps checkpoints and memories once more, in case a run that was streaming wrote one last checkpoint
before its worker noticed (the worker also erases them itself when it stops).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.agent import checkpoints
from agentserver.auth.service import UserDeletion
from agentserver.cache import ResponseCache
from agentserver.jobs.handlers import JobHandlers
from agentserver.jobs.repository import ClaimedJob, JobRepository
from agentserver.kit.db import session_scope
from agentserver.memory.jobs import MEMORY_EXTRACT_JOB
from agentserver.memory.service import MemoryService
from agentserver.runs.eventlog import EventLog
from agentserver.runs.service import runs as runs_service
from agentserver.sessions.service import SessionDeletion

log = structlog.get_logger(__name__)

SESSION_ERASE_JOB = "session.erase"
USER_ERASE_JOB = "user.erase"


@dataclass
class Erasure:
    sessionmaker: async_sessionmaker[AsyncSession]
    event_log: EventLog
    memory: MemoryService | None
    cache: ResponseCache | None
    # Sweeps wait this long: by then a worker has noticed that its run's session is gone.
    sweep_delay_seconds: float

    # --- in the deletion's transaction -------------------------------------------------------------------
    async def on_session_deletion(self, deletion: SessionDeletion) -> None:
        db, session_id = deletion.db, deletion.session_id
        run_ids = await runs_service.stop_for_sessions(db, [session_id])
        await checkpoints.delete_threads(db, [session_id])
        await JobRepository.from_session(db).enqueue(
            SESSION_ERASE_JOB,
            {"session_ids": [str(session_id)], "run_ids": [str(r) for r in run_ids]},
            user_id=deletion.user_id,
            delay_seconds=self.sweep_delay_seconds,
        )

    async def on_user_deletion(self, deletion: UserDeletion) -> None:
        db = deletion.db
        run_ids = await runs_service.stop_for_sessions(db, deletion.session_ids)
        await checkpoints.delete_threads(db, deletion.session_ids)
        if self.memory is not None:
            await self.memory.erase(db, deletion.user_id)
        jobs = JobRepository.from_session(db)
        await jobs.drop_pending_for_user(deletion.user_id, [MEMORY_EXTRACT_JOB])
        await jobs.enqueue(
            USER_ERASE_JOB,
            {"session_ids": [str(s) for s in deletion.session_ids], "run_ids": [str(r) for r in run_ids]},
            user_id=deletion.user_id,
            delay_seconds=self.sweep_delay_seconds,
        )

    # --- the sweep jobs ---------------------------------------------------------------------------------
    def register(self, handlers: JobHandlers) -> None:
        handlers.register(SESSION_ERASE_JOB, self.sweep)
        handlers.register(USER_ERASE_JOB, self.sweep)

    async def sweep(self, job: ClaimedJob) -> None:
        session_ids = [uuid.UUID(s) for s in job.payload.get("session_ids", [])]
        run_ids = [uuid.UUID(r) for r in job.payload.get("run_ids", [])]
        async with session_scope(self.sessionmaker) as db:
            await checkpoints.delete_threads(db, session_ids)
            if job.kind == USER_ERASE_JOB and job.user_id is not None and self.memory is not None:
                await self.memory.erase(db, job.user_id)
        if job.kind == USER_ERASE_JOB and job.user_id is not None and self.cache is not None:
            await self.cache.clear_user(job.user_id)
        await self.event_log.delete(run_ids)
        log.info("erasure.swept", kind=job.kind, sessions=len(session_ids), runs=len(run_ids))
