"""The worker: claims runs and jobs from PostgreSQL, executes them, heartbeats, takes over the dead.

`agentserver serve` runs one in the API process (RUN_WORKER_ENABLED, the default); `agentserver worker`
runs one alone, so API processes and workers scale separately. Any number of workers share one database:

- Claims are `FOR UPDATE SKIP LOCKED` (repository.py): a run goes to exactly one worker; a session's runs
  execute one at a time in order, and a user's jobs too.
- Wake-ups: NOTIFY on new work (channel `agentserver_work`) and on cancel requests
  (`agentserver_run_cancel`), with a slow poll as the safety net.
- Heartbeats every RUN_HEARTBEAT_SECONDS for the runs and jobs it holds; the answer also says which runs
  were cancelled (stop them) or are gone (their session was deleted: stop them).
- The reaper (every worker) hands runs and jobs whose worker missed two heartbeats to another worker; a
  run resumes from its last checkpoint (up to RUN_MAX_ATTEMPTS), then fails with `WorkerLost`.
- Stop: no new claims, running runs get RUN_DRAIN_SECONDS to finish, the rest are handed back as pending
  (resumed elsewhere or after a restart), jobs likewise.

We use our own queue on PostgreSQL rather than a job library: a run is more than a job (its session
ordering, an `interrupted` state that waits for a human, takeover that resumes a LangGraph checkpoint,
cancellation with a reason), and a generic queue would hold a pointer to state we keep anyway.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.jobs.handlers import JobHandlers, JobSkipped
from agentserver.jobs.repository import WORK_CHANNEL, ClaimedJob, JobRepository
from agentserver.kit.db import autocommit, engine_of, is_database_outage, session_scope
from agentserver.kit.errors import DatabaseUnavailable, log_failure
from agentserver.kit.pg_listen import PgListener
from agentserver.models import Run, RunStatus
from agentserver.observability.metrics import JOBS, JOBS_QUEUED, RUNS_ACTIVE, RUNS_RECOVERED
from agentserver.runs import events
from agentserver.runs.eventlog import EventLog, PostgresEventLog
from agentserver.runs.executor import Execution, RunExecutor, StopReason
from agentserver.runs.repository import RunRepository

log = structlog.get_logger(__name__)

CANCEL_CHANNEL = "agentserver_run_cancel"
# Failures reaching the database while claiming: wait a little longer each time, up to this.
MAX_CLAIM_BACKOFF_SECONDS = 5.0
SWEEP_EVERY_SECONDS = 300.0
QUEUE_GAUGE_SECONDS = 1.0
# Label sets the queue gauge has shown: they read 0 when their jobs are gone (never vanish from /metrics).
JOBS_QUEUED_SEEN: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class WorkerConfig:
    run_concurrency: int = 16
    job_concurrency: int = 2
    heartbeat_seconds: float = 5.0
    max_attempts: int = 3
    drain_seconds: float = 20.0
    poll_seconds: float = 2.0
    events_retention_seconds: int = 86_400

    @property
    def stale_seconds(self) -> float:
        """A worker that missed two heartbeats is presumed dead."""
        return 2 * self.heartbeat_seconds


def new_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        *,
        config: WorkerConfig,
        sessionmaker: async_sessionmaker[AsyncSession],
        executor: RunExecutor,
        handlers: JobHandlers,
        event_log: EventLog,
        listener: PgListener | None,
    ) -> None:
        self.config = config
        self.sessionmaker = sessionmaker
        self.executor = executor
        self.handlers = handlers
        self.log = event_log
        self.id = executor.worker_id
        self._executions: dict[uuid.UUID, Execution] = {}
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._wake_runs = asyncio.Event()
        self._wake_jobs = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        if listener is not None:
            listener.on(WORK_CHANNEL, self._on_work)
            listener.on(CANCEL_CHANNEL, self._on_cancel)
            listener.on_reconnect(self.wake)

    # --- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop("runs"), name="worker-runs"),
            asyncio.create_task(self._claim_loop("jobs"), name="worker-jobs"),
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._reaper_loop(), name="worker-reaper"),
            asyncio.create_task(self._queue_gauge_loop(), name="worker-queue-gauge"),
        ]
        log.info("worker.started", worker_id=self.id, concurrency=self.config.run_concurrency)

    async def stop(self) -> None:
        """Drain: finish what runs within RUN_DRAIN_SECONDS, hand the rest back as pending."""
        self._stopping.set()
        self.wake()
        claimers = self._loops[:2]
        await asyncio.gather(*claimers, return_exceptions=True)
        running = [e.task for e in self._executions.values() if e.task is not None] + list(self._jobs.values())
        if running:
            log.info("worker.draining", runs=len(self._executions), jobs=len(self._jobs))
            _, late = await asyncio.wait(running, timeout=self.config.drain_seconds)
            if late:
                log.warning("worker.drain_timeout", handed_back=len(late))
                for execution in list(self._executions.values()):
                    execution.stop(StopReason.shutdown)
                for task in self._jobs.values():
                    task.cancel()
                await asyncio.wait(late, timeout=10)
        for task in self._loops[2:]:
            task.cancel()
        await asyncio.gather(*self._loops[2:], return_exceptions=True)
        log.info("worker.stopped", worker_id=self.id)

    def wake(self) -> None:
        self._wake_runs.set()
        self._wake_jobs.set()

    @property
    def active_runs(self) -> int:
        return len(self._executions)

    # --- notifications ----------------------------------------------------------------------------------
    def _on_work(self, payload: str) -> None:
        (self._wake_jobs if payload == "job" else self._wake_runs).set()

    def _on_cancel(self, payload: str) -> None:
        run_id, _, reason = payload.partition(":")
        try:
            execution = self._executions.get(uuid.UUID(run_id))
            stop_reason = StopReason(reason)
        except ValueError:
            return
        if execution is not None:
            execution.stop(stop_reason)

    def cancel_local(self, run_id: uuid.UUID, reason: StopReason) -> None:
        """Stop a run if it executes here (the NOTIFY does the same for every worker)."""
        execution = self._executions.get(run_id)
        if execution is not None:
            execution.stop(reason)

    # --- claiming ---------------------------------------------------------------------------------------
    async def _claim_loop(self, what: str) -> None:
        wake = self._wake_runs if what == "runs" else self._wake_jobs
        backoff = 0.1
        while not self._stopping.is_set():
            wake.clear()
            try:
                claimed, asked = await (self._claim_runs() if what == "runs" else self._claim_jobs())
                backoff = 0.1
            except IntegrityError:
                # Two claims raced on one session: the unique index refused one; look again.
                claimed, asked = 0, 0
            except Exception as exc:
                # The database is down or restarting (or something unexpected): this loop must outlive it.
                if is_database_outage(exc) or isinstance(exc, DatabaseUnavailable):
                    log.warning("worker.claim_failed", what=what, error=type(exc).__name__, retry_in=backoff)
                else:
                    log_failure(log, "worker.claim_failed", exc, what=what, retry_in=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, MAX_CLAIM_BACKOFF_SECONDS)
                continue
            if claimed and claimed == asked and self._has_room(what):
                continue  # the claim was cut by our room, not by what was waiting: there may be more
            try:
                await asyncio.wait_for(wake.wait(), self.config.poll_seconds)
            except TimeoutError:
                pass

    def _has_room(self, what: str) -> bool:
        if what == "runs":
            return len(self._executions) < self.config.run_concurrency
        return len(self._jobs) < self.config.job_concurrency

    async def _claim_runs(self) -> tuple[int, int]:
        """(claimed, asked for). One statement in autocommit: no BEGIN/COMMIT round trips."""
        room = self.config.run_concurrency - len(self._executions)
        if room <= 0:
            return 0, 0
        async with autocommit(engine_of(self.sessionmaker)) as conn:
            claimed = await RunRepository.from_session(conn).claim(self.id, room)
        for run in claimed:
            execution = Execution(run)
            self._executions[run.id] = execution
            execution.task = asyncio.create_task(self._execute(execution), name=f"run-{run.id}")
        RUNS_ACTIVE.set(len(self._executions))
        return len(claimed), room

    async def _execute(self, execution: Execution) -> None:
        try:
            await self.executor.execute(execution)
        except BaseException as exc:
            log_failure(log, "worker.execution_crashed", exc, run_id=str(execution.run.id))
        finally:
            was_full = not self._has_room("runs")
            self._executions.pop(execution.run.id, None)
            RUNS_ACTIVE.set(len(self._executions))
            # A run queued behind this one in its session is announced by the statement that ended this one
            # (NOTIFY); a claim is only owed here when a full worker may have left pending runs unclaimed.
            if was_full:
                self._wake_runs.set()

    async def _claim_jobs(self) -> tuple[int, int]:
        """(claimed, asked for), as `_claim_runs`."""
        room = self.config.job_concurrency - len(self._jobs)
        if room <= 0:
            return 0, 0
        async with autocommit(engine_of(self.sessionmaker)) as conn:
            claimed = await JobRepository.from_session(conn).claim(self.id, room)
        for job in claimed:
            self._jobs[job.id] = asyncio.create_task(self._run_job(job), name=f"job-{job.kind}-{job.id}")
        return len(claimed), room

    async def _run_job(self, job: ClaimedJob) -> None:
        structlog.contextvars.bind_contextvars(job_id=job.id, job_kind=job.kind)
        try:
            handler = self.handlers.get(job.kind)
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            try:
                await handler(job)
                outcome = "done"
            except JobSkipped as skipped:
                log.info("jobs.skipped", reason=str(skipped))
                outcome = "skipped"
            async with autocommit(engine_of(self.sessionmaker)) as conn:
                await JobRepository.from_session(conn).complete(job.id, self.id)
            JOBS.labels(kind=job.kind, outcome=outcome).inc()
        except asyncio.CancelledError:
            await asyncio.shield(self._release_job(job))
        except Exception as exc:
            backoff = min(2.0**job.attempts, 300.0) * (0.5 + random.random() / 2)  # noqa: S311 - jitter
            log_failure(log, "jobs.failed", exc, attempt=job.attempts)
            try:
                async with session_scope(self.sessionmaker) as db:
                    retried = await JobRepository.from_session(db).retry_or_fail(
                        job, self.id, f"{type(exc).__name__}: {exc}", backoff
                    )
                JOBS.labels(kind=job.kind, outcome="retried" if retried else "failed").inc()
            except Exception as failure:
                log_failure(log, "jobs.failure_not_recorded", failure)  # the reaper retries it
        finally:
            self._jobs.pop(job.id, None)
            self._wake_jobs.set()

    async def _release_job(self, job: ClaimedJob) -> None:
        try:
            async with session_scope(self.sessionmaker) as db:
                await JobRepository.from_session(db).release(job.id, self.id)
        except Exception as exc:
            log_failure(log, "jobs.release_failed", exc)

    # --- heartbeats and takeover -------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker.heartbeat_failed", error=type(exc).__name__)

    async def _heartbeat(self) -> None:
        run_ids = [run_id for run_id, e in self._executions.items() if not e.finishing]
        # Independent statements, each committing on its own (no BEGIN/COMMIT round trips every few seconds).
        async with autocommit(engine_of(self.sessionmaker)) as db:
            ours = await RunRepository.from_session(db).heartbeat(self.id, run_ids)
            missing = [run_id for run_id in run_ids if run_id not in ours]
            existing = set((await db.scalars(select(Run.id).where(Run.id.in_(missing)))).all()) if missing else set()
            await JobRepository.from_session(db).heartbeat(self.id, list(self._jobs))
        for run_id in missing:
            execution = self._executions.get(run_id)
            if execution is not None:
                # Gone: its session was deleted. Still there: another worker took it over (we were too slow).
                execution.stop(StopReason.lost if run_id in existing else StopReason.deleted)
        for run_id, requested in ours.items():
            if requested is not None and (execution := self._executions.get(run_id)) is not None:
                execution.stop(StopReason(requested))

    async def _reaper_loop(self) -> None:
        swept_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # Jittered, so the workers of one deployment do not all scan at the same moment.
            await asyncio.sleep(self.config.heartbeat_seconds * (0.75 + random.random() / 2))  # noqa: S311
            try:
                await self._reap()
                if isinstance(self.log, PostgresEventLog) and loop.time() - swept_at > SWEEP_EVERY_SECONDS:
                    swept_at = loop.time()
                    await self.log.sweep(self.config.events_retention_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker.reaper_failed", error=type(exc).__name__)

    async def _reap(self) -> None:
        async with autocommit(engine_of(self.sessionmaker)) as db:  # two independent statements
            stale = await RunRepository.from_session(db).requeue_stale(
                stale_seconds=self.config.stale_seconds,
                max_attempts=self.config.max_attempts,
                executing=list(self._executions),
            )
            jobs = await JobRepository.from_session(db).requeue_stale(
                self.config.stale_seconds, executing=list(self._jobs)
            )
        for run in stale:
            RUNS_RECOVERED.labels(outcome=run.status.value).inc()
            log.warning("worker.run_recovered", run_id=str(run.id), status=run.status.value)
            if run.status is not RunStatus.pending:
                await self._append_end(run.id, run.status)
        if jobs:
            log.warning("worker.jobs_recovered", jobs=len(jobs), failed=sum(gave_up for _, gave_up in jobs))
            self._wake_jobs.set()
        for job, gave_up in jobs:
            on_gave_up = self.handlers.gave_up(job.kind) if gave_up else None
            if on_gave_up is not None:
                try:
                    await on_gave_up(job)
                except Exception as exc:
                    log_failure(log, "jobs.gave_up_hook_failed", exc, job_kind=job.kind)
        if stale:
            self._wake_runs.set()

    async def _queue_gauge_loop(self) -> None:
        """agentserver_jobs_queued, refreshed every second (one small GROUP BY on the jobs table)."""
        while True:
            await asyncio.sleep(QUEUE_GAUGE_SECONDS)
            try:
                async with autocommit(engine_of(self.sessionmaker)) as conn:
                    depth = await JobRepository.from_session(conn).depth()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker.queue_gauge_failed", error=type(exc).__name__)
                continue
            for kind, status in list(JOBS_QUEUED_SEEN):
                if (kind, status) not in depth:
                    JOBS_QUEUED.labels(kind=kind, status=status).set(0)
            for (kind, status), count in depth.items():
                JOBS_QUEUED_SEEN.add((kind, status))
                JOBS_QUEUED.labels(kind=kind, status=status).set(count)

    async def _append_end(self, run_id: uuid.UUID, status: RunStatus) -> None:
        """The terminal event of a run that ended without its worker (followers are waiting for it)."""
        last = await self.log.last(run_id)
        if last is not None and last.terminal:
            return
        seq = (last.seq if last else 0) + 1
        if status is RunStatus.cancelled:
            event = events.done(None, {}, "cancelled")
        else:
            event = events.error(
                "WorkerLost", "The run was interrupted by a server failure; please send your message again."
            )
        await self.log.append(run_id, [event.with_seq(seq)])
        await self.log.expire(run_id)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass
