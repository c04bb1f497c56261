"""The `memory.extract` job: long-term facts from one finished exchange, written after the run ended.

Enqueued in the transaction that ends a run (runs/executor.py) with the ids of the exchange's two
messages, executed by a worker, one job at a time per user (jobs/repository.py). Erasure always wins:

- the account is gone, or the user erased their memories after this job was queued → nothing to do;
- the user erased (or deleted the account) while the extraction ran → what it added is deleted again.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.jobs.handlers import JobHandler, JobSkipped
from agentserver.jobs.repository import ClaimedJob
from agentserver.memory.service import MemoryService
from agentserver.models import Message, User

log = structlog.get_logger(__name__)

MEMORY_EXTRACT_JOB = "memory.extract"


def extraction_handler(memory: MemoryService, sessionmaker: async_sessionmaker[AsyncSession]) -> JobHandler:
    async def extract(job: ClaimedJob) -> None:
        if job.user_id is None:
            raise JobSkipped("no user")
        session_id = uuid.UUID(job.payload["session_id"])
        message_ids = [uuid.UUID(job.payload["user_message_id"]), uuid.UUID(job.payload["assistant_message_id"])]
        async with sessionmaker() as db:
            row = (await db.execute(select(User.memories_erased_at, func.now()).where(User.id == job.user_id))).first()
            if row is None:
                raise JobSkipped("the user is gone")
            erased_at, started_at = row
            if erased_at is not None and erased_at >= job.created_at:
                raise JobSkipped("the user erased their memories after this exchange")
            rows = await db.execute(
                select(Message.id, Message.content).where(Message.id.in_(message_ids), Message.session_id == session_id)
            )
            texts = {row.id: row.content for row in rows}
        if len(texts) != 2:
            raise JobSkipped("the messages are gone")
        added = await memory.extract(job.user_id, session_id, texts[message_ids[0]], texts[message_ids[1]])
        if added:
            async with sessionmaker() as db:
                after = (await db.execute(select(User.memories_erased_at).where(User.id == job.user_id))).first()
            if after is None or (after[0] is not None and after[0] >= started_at):
                removed = await memory.delete_ids(job.user_id, added)
                log.info("memory.extraction_discarded", reason="erased while extracting", removed=removed)

    return extract
