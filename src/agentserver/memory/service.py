"""`MemoryService`: per-user long-term memory (mem0 on pgvector) for chat runs and the memory endpoints.

Built in the lifespan by `agentserver.memory.backend.start_memory(...)` (stored in `state["memory"]`,
None when MEMORY_ENABLED is false):

    section = await memory.prompt_section(user.id, message)   # before a run: bounded (top-k, MEMORY_MAX_CHARS)
    ids = await memory.extract(user.id, session.id, message, reply)   # the `memory.extract` job, after a run

Extraction is a durable job (memory/jobs.py), written in the transaction that ends the run and executed by
a worker, one job at a time per user. Erasure is SQL in the caller's transaction (`erase`), so forgetting
and deleting an account take effect at once, in every process. mem0 runs on a loop and thread pool of its
own (memory/isolation.py). This module does not import mem0 (seconds of import time).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog
from psycopg import sql
from psycopg_pool import ConnectionPool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.config import Settings
from agentserver.kit.errors import log_failure
from agentserver.memory.errors import MemoryUnavailable
from agentserver.memory.isolation import IsolatedLoop
from agentserver.observability.metrics import MEMORY_LATENCY, MEMORY_OPERATIONS

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

    def delete_ids(self, user_id: str, memory_ids: Sequence[uuid.UUID]) -> int:
        with self.pool.connection() as conn:
            deleted: int = conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = ANY(%s) AND payload->>'user_id' = %s").format(self._name),
                (list(memory_ids), user_id),
            ).rowcount
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

    def __init__(self, memory: Mem0Memory, store: MemoryStore, settings: Settings, isolation: IsolatedLoop) -> None:
        self.memory = memory
        self.store = store
        self.isolation = isolation
        self.top_k = settings.memory_top_k
        self.max_chars = settings.memory_max_chars
        self.search_timeout = settings.memory_search_timeout_seconds

    @property
    def table(self) -> str:
        return self.store.table.name

    # --- the chat run -------------------------------------------------------------------------------------------
    async def recall(self, user_id: uuid.UUID, query: str) -> list[MemoryItem]:
        """The top MEMORY_TOP_K memories for a chat run. Never fails the run: errors and timeouts give []."""
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
        """`recall` + `format_for_prompt`: the system prompt's memory section for this run ("" if none)."""
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

    async def extract(
        self, user_id: uuid.UUID, session_id: uuid.UUID | None, user_message: str, assistant_message: str
    ) -> list[uuid.UUID]:
        """mem0 extraction of one exchange (never the whole thread); the ids of the memories it added."""
        metadata = {"session_id": str(session_id)} if session_id else None
        messages = [
            {"role": "user", "content": user_message[:MAX_EXTRACTION_MESSAGE_CHARS]},
            {"role": "assistant", "content": assistant_message[:MAX_EXTRACTION_MESSAGE_CHARS]},
        ]
        started = time.monotonic()
        with _Timer("add"):
            result = await self.isolation.run(self.memory.add(messages, user_id=str(user_id), metadata=metadata))
        added = [
            uuid.UUID(str(item["id"]))
            for item in result.get("results", [])
            if item.get("id") and item.get("event", "ADD") == "ADD"
        ]
        log.info(
            "memory.extracted", user_id=str(user_id), added=len(added), seconds=round(time.monotonic() - started, 3)
        )
        return added

    # --- the memories endpoints ---------------------------------------------------------------------------------
    async def search(self, user_id: uuid.UUID, query: str, limit: int) -> list[MemoryItem]:
        query = query.strip()[:MAX_QUERY_CHARS]
        if limit <= 0 or not query:
            return []
        try:
            with _Timer("search"):
                result = await self.isolation.run(
                    self.memory.search(query, top_k=limit, filters={"user_id": str(user_id)})
                )
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
        return await self._store_call("delete", self.store.delete, str(user_id), memory_id)

    async def delete_ids(self, user_id: uuid.UUID, memory_ids: Sequence[uuid.UUID]) -> int:
        if not memory_ids:
            return 0
        return await self._store_call("delete", self.store.delete_ids, str(user_id), memory_ids)

    async def erase(self, db: AsyncSession, user_id: uuid.UUID) -> int:
        """Every memory of the user, in the caller's transaction (forget-all, account deletion).

        Also moves the user's erasure mark (when the row still exists): an extraction that was queued
        before it is skipped, and one that was running drops what it inserted (memory/jobs.py).
        """
        params = {"user_id": str(user_id)}
        # Table names come from the settings' embedding model (backend._vector_table), never from input.
        result = await db.execute(text(f"DELETE FROM {self.table} WHERE payload->>'user_id' = :user_id"), params)  # noqa: S608
        entities = f"{self.table}_entities"  # mem0's entity links, if its spaCy features ever ran
        if await db.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": entities}):
            await db.execute(text(f"DELETE FROM {entities} WHERE payload->>'user_id' = :user_id"), params)  # noqa: S608
        await db.execute(text("UPDATE users SET memories_erased_at = now() WHERE id = :id"), {"id": user_id})
        deleted = int(getattr(result, "rowcount", 0) or 0)
        log.info("memory.erased", user_id=str(user_id), deleted=deleted)
        return deleted

    # --- internals ----------------------------------------------------------------------------------------------
    async def _store_call(self, operation: str, call: Callable[..., T], *args: Any) -> T:
        try:
            with _Timer(operation):
                return await self.isolation.call(call, *args)
        except Exception as exc:
            log_failure(log, "memory.store_failed", exc, operation=operation)
            raise MemoryUnavailable() from exc
