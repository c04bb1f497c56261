"""`MemoryService`: per-user long-term memory, and the background extraction queue.

Built in the lifespan by `agentserver.memory.backend.start_memory(...)` (stored in `state["memory"]`,
None when MEMORY_ENABLED is false). A chat turn uses it like this:

    section, history = await asyncio.gather(memory.prompt_section(user.id, message), load_history(...))
    system_prompt = template.format(long_term_memory=section, ...)   # bounded: top-k, MEMORY_MAX_CHARS
    ... reply ...
    memory.enqueue_extraction(user.id, session.id, message, reply)   # returns at once

Extraction: `enqueue_extraction` puts the new exchange (never the whole thread) on a bounded in-process
queue served by MEMORY_WORKERS tasks; each job is one mem0 `add` (LLM fact extraction + embedding +
insert), run one at a time per user so two turns cannot insert the same fact twice. A full queue drops the
job (logged, counted as `add/dropped`). Shutdown stops intake and drains the queue for up to
MEMORY_DRAIN_TIMEOUT_SECONDS; what is left is logged and counted. A crash loses queued jobs: the
conversation itself is safe in PostgreSQL, only the facts of the last few turns are not extracted. A
durable hand-off (Redis stream or a DB outbox table) comes with scale-out.

This module does not import mem0 (seconds of import time): the app only pays for it when memory is on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog
from psycopg import sql
from psycopg_pool import ConnectionPool

from agentserver.auth.service import UserDeletion
from agentserver.config import Settings
from agentserver.kit.errors import log_failure
from agentserver.memory.errors import MemoryUnavailable
from agentserver.observability.metrics import MEMORY_LATENCY, MEMORY_OPERATIONS, MEMORY_QUEUE_DEPTH

log = structlog.get_logger(__name__)

# Each message of an exchange is cut to this before extraction: the extraction prompt must fit a small
# local model's context, and the facts worth keeping are rarely in the 5000th character.
MAX_EXTRACTION_MESSAGE_CHARS = 4000
MAX_QUERY_CHARS = 1000
MAX_LIST_LIMIT = 500

T = TypeVar("T")


@dataclass(frozen=True)
class MemoryItem:
    id: uuid.UUID
    text: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    score: float | None = None  # search relevance (0..1); None in listings


@dataclass(frozen=True)
class ExtractionJob:
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    user_message: str
    assistant_message: str
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class VectorTable:
    name: str
    dimensions: int


class Mem0Memory(Protocol):
    """The part of mem0's `AsyncMemory` the service uses."""

    async def add(
        self, messages: list[dict[str, str]], *, user_id: str, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...

    async def search(self, query: str, *, top_k: int, filters: dict[str, Any]) -> dict[str, Any]: ...


# --- direct SQL (listing, ownership-checked deletes, erasure) ------------------------------------------------


class MemoryStore:
    """The SQL mem0 has no API for: ordered listings and deletes scoped to the owner in one statement."""

    def __init__(self, pool: ConnectionPool[Any], table: VectorTable) -> None:
        self.pool = pool
        self.table = table
        self._name = sql.Identifier(table.name)

    def list(self, user_id: str, limit: int) -> list[MemoryItem]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT id, payload FROM {} WHERE payload->>'user_id' = %s "
                    "ORDER BY payload->>'created_at' DESC, id LIMIT %s"
                ).format(self._name),
                (user_id, limit),
            ).fetchall()
        return [_item(row[0], row[1]) for row in rows]

    def count(self, user_id: str) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE payload->>'user_id' = %s").format(self._name), (user_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def delete(self, user_id: str, memory_id: uuid.UUID) -> bool:
        """Delete the memory if it is the user's: ownership is part of the statement, not a prior check."""
        with self.pool.connection() as conn:
            row = conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s AND payload->>'user_id' = %s RETURNING id").format(self._name),
                (memory_id, user_id),
            ).fetchone()
        return row is not None

    def delete_all(self, user_id: str) -> int:
        entities = f"{self.table.name}_entities"  # mem0's entity-link table, if its spaCy features ever ran
        with self.pool.connection() as conn, conn.transaction():
            deleted: int = conn.execute(
                sql.SQL("DELETE FROM {} WHERE payload->>'user_id' = %s").format(self._name), (user_id,)
            ).rowcount
            exists = conn.execute("SELECT to_regclass(%s)", (entities,)).fetchone()
            if exists is not None and exists[0] is not None:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE payload->>'user_id' = %s").format(sql.Identifier(entities)),
                    (user_id,),
                )
        return deleted


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _item(memory_id: Any, payload: dict[str, Any], score: float | None = None) -> MemoryItem:
    return MemoryItem(
        id=uuid.UUID(str(memory_id)),
        text=str(payload.get("data", "")),
        created_at=_parse_time(payload.get("created_at")),
        updated_at=_parse_time(payload.get("updated_at")),
        score=score,
    )


# --- the service ---------------------------------------------------------------------------------------------------


class _Timer:
    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> _Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            return  # abandoned by the caller (a timeout or shutdown), which counts it as such
        MEMORY_LATENCY.labels(self.operation).observe(time.perf_counter() - self.started)
        MEMORY_OPERATIONS.labels(self.operation, "error" if exc_type else "success").inc()


class MemoryService:
    """Long-term memory of one app process. See the module docstring."""

    def __init__(self, memory: Mem0Memory, store: MemoryStore, settings: Settings) -> None:
        self.memory = memory
        self.store = store
        self.top_k = settings.memory_top_k
        self.max_chars = settings.memory_max_chars
        self.search_timeout = settings.memory_search_timeout_seconds
        self.drain_timeout = settings.memory_drain_timeout_seconds
        self.worker_count = settings.memory_workers
        self._queue: asyncio.Queue[ExtractionJob] = asyncio.Queue(maxsize=settings.memory_queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._accepting = False
        # Per-user serialisation of writes (extraction vs. extraction, extraction vs. erasure).
        self._user_locks: dict[uuid.UUID, tuple[asyncio.Lock, list[int]]] = {}
        # When each user last erased their memories: jobs queued before that are skipped.
        self._erased_at: dict[uuid.UUID, float] = {}
        self.failed_jobs = 0
        self.dropped_jobs = 0

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._accepting = True
        self._workers = [
            asyncio.create_task(self._work(), name=f"memory-extraction-{n}") for n in range(self.worker_count)
        ]

    async def close(self) -> None:
        """Stop intake, drain the queue for up to MEMORY_DRAIN_TIMEOUT_SECONDS, then stop the workers."""
        self._accepting = False
        pending = self._queue.qsize()
        try:
            await asyncio.wait_for(self._queue.join(), timeout=self.drain_timeout)
        except TimeoutError:
            log.warning("memory.drain_timeout", timeout_seconds=self.drain_timeout)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        dropped = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            dropped += 1
        if dropped:
            self._count_dropped(dropped)
            log.error("memory.jobs_dropped_at_shutdown", dropped=dropped)
        log.info("memory.stopped", drained=pending - dropped, dropped=dropped)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def join(self) -> None:
        """Wait until every queued job has run (tests, and callers that need read-your-writes)."""
        await self._queue.join()

    # --- the chat turn ------------------------------------------------------------------------------------------
    async def recall(self, user_id: uuid.UUID, query: str) -> list[MemoryItem]:
        """The top MEMORY_TOP_K memories for a chat turn. Never fails the turn: errors and timeouts give []."""
        if self.top_k == 0 or not query.strip():
            return []
        try:
            return await asyncio.wait_for(self.search(user_id, query, self.top_k), timeout=self.search_timeout)
        except TimeoutError:
            MEMORY_OPERATIONS.labels("search", "timeout").inc()
            log.warning("memory.recall_timeout", user_id=str(user_id), timeout_seconds=self.search_timeout)
        except MemoryUnavailable:
            pass  # logged and counted by search()
        return []

    async def prompt_section(self, user_id: uuid.UUID, query: str) -> str:
        """`recall` + `format_for_prompt`: the system prompt's memory section for this turn ("" if none)."""
        return self.format_for_prompt(await self.recall(user_id, query))

    def format_for_prompt(self, memories: Sequence[MemoryItem], max_chars: int | None = None) -> str:
        """The memories as `- fact` lines, best first, within `max_chars` (MEMORY_MAX_CHARS by default)."""
        budget = self.max_chars if max_chars is None else max_chars
        lines: list[str] = []
        used = 0
        for memory in memories:
            # One line per memory: a stored fact cannot add structure (headings, fake turns) to the prompt.
            line = "- " + " ".join(memory.text.split())
            cost = len(line) + (1 if lines else 0)
            if used + cost > budget:
                if not lines and budget > 3:
                    lines.append(line[: budget - 1] + "…")
                break
            lines.append(line)
            used += cost
        return "\n".join(lines)

    def enqueue_extraction(
        self, user_id: uuid.UUID, session_id: uuid.UUID | None, user_message: str, assistant_message: str
    ) -> bool:
        """Queue mem0 extraction of one exchange; returns at once. False (logged, counted) if not queued."""
        if not self._accepting:
            self._count_dropped(1)
            log.warning("memory.job_dropped", reason="stopped", user_id=str(user_id))
            return False
        job = ExtractionJob(
            user_id=user_id,
            session_id=session_id,
            user_message=user_message[:MAX_EXTRACTION_MESSAGE_CHARS],
            assistant_message=assistant_message[:MAX_EXTRACTION_MESSAGE_CHARS],
        )
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._count_dropped(1)
            log.error("memory.job_dropped", reason="queue_full", user_id=str(user_id), size=self._queue.maxsize)
            return False
        MEMORY_QUEUE_DEPTH.inc()
        return True

    # --- the memories endpoints ---------------------------------------------------------------------------------
    async def search(self, user_id: uuid.UUID, query: str, limit: int) -> list[MemoryItem]:
        query = query.strip()[:MAX_QUERY_CHARS]
        if limit <= 0 or not query:
            return []
        try:
            with _Timer("search"):
                result = await self.memory.search(query, top_k=limit, filters={"user_id": str(user_id)})
        except Exception as exc:
            log_failure(log, "memory.search_failed", exc, user_id=str(user_id))
            raise MemoryUnavailable() from exc
        return [_item(hit["id"], {**hit, "data": hit["memory"]}, hit.get("score")) for hit in result["results"]]

    async def list(self, user_id: uuid.UUID, limit: int = 100) -> list[MemoryItem]:
        """The user's memories, newest first."""
        return await self._store_call("list", self.store.list, str(user_id), min(max(limit, 1), MAX_LIST_LIMIT))

    async def count(self, user_id: uuid.UUID) -> int:
        return await self._store_call("list", self.store.count, str(user_id))

    async def delete(self, user_id: uuid.UUID, memory_id: uuid.UUID) -> bool:
        """Delete one memory of the user's; False if there is none with that id (or it is someone else's)."""
        async with self._user_lock(user_id):
            return await self._store_call("delete", self.store.delete, str(user_id), memory_id)

    async def delete_all(self, user_id: uuid.UUID) -> int:
        """Erase every memory of the user, including extraction jobs queued before now; returns the count."""
        # Marked before waiting for the lock: jobs queued (or waiting on the lock) from now on see it and are
        # skipped; a job already running finishes first, and its output goes with the rest.
        self._erased_at[user_id] = time.monotonic()
        async with self._user_lock(user_id):
            deleted = await self._store_call("delete", self.store.delete_all, str(user_id))
        log.info("memory.erased", user_id=str(user_id), deleted=deleted)
        return deleted

    async def delete_user(self, user_id: uuid.UUID) -> int:
        """Erase the user's memories (idempotent): what deleting the account must do."""
        return await self.delete_all(user_id)

    async def erase_user(self, deletion: UserDeletion) -> None:
        """The `UserDeletionHook` registered in the lifespan (DELETE /api/v1/auth/me)."""
        await self.delete_user(deletion.user_id)

    # --- internals ----------------------------------------------------------------------------------------------
    async def _store_call(self, operation: str, call: Callable[..., T], *args: Any) -> T:
        try:
            with _Timer(operation):
                return await asyncio.to_thread(call, *args)
        except Exception as exc:
            log_failure(log, "memory.store_failed", exc, operation=operation)
            raise MemoryUnavailable() from exc

    @asynccontextmanager
    async def _user_lock(self, user_id: uuid.UUID) -> AsyncIterator[None]:
        lock, users = self._user_locks.setdefault(user_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._user_locks[user_id]

    def _count_dropped(self, n: int) -> None:
        self.dropped_jobs += n
        MEMORY_OPERATIONS.labels("add", "dropped").inc(n)

    async def _work(self) -> None:
        while True:
            try:
                job = await self._queue.get()
            except asyncio.CancelledError:
                break
            try:
                await self._extract(job)
            except asyncio.CancelledError:
                # Shutdown gave up waiting on this job (drain timeout): it is lost, and counted as such.
                self._count_dropped(1)
                log.error("memory.job_dropped", reason="shutdown", user_id=str(job.user_id))
                self._queue.task_done()
                MEMORY_QUEUE_DEPTH.dec()
                break
            except Exception as exc:
                self.failed_jobs += 1
                log_failure(log, "memory.extraction_failed", exc, user_id=str(job.user_id))
            self._queue.task_done()
            MEMORY_QUEUE_DEPTH.dec()

    async def _extract(self, job: ExtractionJob) -> None:
        async with self._user_lock(job.user_id):
            if job.enqueued_at <= self._erased_at.get(job.user_id, float("-inf")):
                log.info("memory.job_skipped", reason="erased", user_id=str(job.user_id))
                return
            metadata = {"session_id": str(job.session_id)} if job.session_id else None
            messages = [
                {"role": "user", "content": job.user_message},
                {"role": "assistant", "content": job.assistant_message},
            ]
            with _Timer("add"):
                result = await self.memory.add(messages, user_id=str(job.user_id), metadata=metadata)
        log.info(
            "memory.extracted",
            user_id=str(job.user_id),
            added=len(result.get("results", [])),
            waited_seconds=round(time.monotonic() - job.enqueued_at, 3),
        )
