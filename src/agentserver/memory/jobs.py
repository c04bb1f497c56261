"""The `memory.extract` job: long-term facts from one finished exchange, written after the run ended.

Enqueued in the transaction that ends a run (runs/executor.py) with the ids of the exchange's two
messages, executed by a worker, one job at a time per user (jobs/repository.py). Erasure always wins:

- the account is gone, or the user erased their memories after this job was queued → nothing to do;
- the user erased (or deleted the account) while the extraction ran → what it added is deleted again.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import JSON, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.jobs.handlers import JobHandler, JobSkipped
from agentserver.jobs.repository import ClaimedJob
from agentserver.kit.db import autocommit, engine_of
from agentserver.memory.service import MemoryService
from agentserver.models import User

log = structlog.get_logger(__name__)

MEMORY_EXTRACT_JOB = "memory.extract"

_EXCHANGE = text(
    """
    SELECT u.memories_erased_at, now() AS started_at,
           (SELECT json_object_agg(m.id, m.content) FROM messages m
            WHERE m.id = ANY(CAST(:ids AS uuid[])) AND m.session_id = :session) AS texts
    FROM users u WHERE u.id = :user
    """
).columns(texts=JSON)


def extraction_handler(memory: MemoryService, sessionmaker: async_sessionmaker[AsyncSession]) -> JobHandler:
    async def extract(job: ClaimedJob) -> None:
        if job.user_id is None:
            raise JobSkipped("no user")
        session_id = uuid.UUID(job.payload["session_id"])
        message_ids = [uuid.UUID(job.payload["user_message_id"]), uuid.UUID(job.payload["assistant_message_id"])]
        # One statement in autocommit: the erasure check and the exchange's two texts.
        async with autocommit(engine_of(sessionmaker)) as conn:
            row = (
                await conn.execute(_EXCHANGE, {"user": job.user_id, "ids": message_ids, "session": session_id})
            ).first()
        if row is None:
            raise JobSkipped("the user is gone")
        erased_at, started_at, found = row
        if erased_at is not None and erased_at >= job.created_at:
            raise JobSkipped("the user erased their memories after this exchange")
        texts = {uuid.UUID(key): content for key, content in (found or {}).items()}
        if len(texts) != 2:
            raise JobSkipped("the messages are gone")
        added = await memory.extract(job.user_id, session_id, texts[message_ids[0]], texts[message_ids[1]])
        if added:
            async with autocommit(engine_of(sessionmaker)) as conn:
                after = (await conn.execute(select(User.memories_erased_at).where(User.id == job.user_id))).first()
            if after is None or (after[0] is not None and after[0] >= started_at):
                removed = await memory.delete_ids(job.user_id, added)
                log.info("memory.extraction_discarded", reason="erased while extracting", removed=removed)

    return extract
