"""Erasing LangGraph checkpoints with SQL, inside the caller's transaction.

The checkpointer's tables live in the application database, so deleting a session, an account or a
rolled-back run removes its checkpoints in the same transaction as its rows: there is no moment where one
is gone and the other is not. Every checkpoint of a run carries `metadata.run_id` (the executor passes it in
the run's config), which is how one run is rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_THREAD_TABLES = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")


async def delete_threads(db: AsyncSession, session_ids: Sequence[uuid.UUID]) -> None:
    """Every checkpoint, write and blob of these chat sessions (threads)."""
    if not session_ids:
        return
    thread_ids = [str(s) for s in session_ids]
    for table in _THREAD_TABLES:
        # Table names are constants above, never input.
        await db.execute(text(f"DELETE FROM {table} WHERE thread_id = ANY(:ids)"), {"ids": thread_ids})  # noqa: S608


async def delete_run(db: AsyncSession, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """The checkpoints one run wrote (and their pending writes): the thread is back where it was before it."""
    params = {"thread": str(session_id), "run": str(run_id)}
    await db.execute(
        text(
            "DELETE FROM checkpoint_writes w USING checkpoints c "
            "WHERE c.thread_id = :thread AND c.metadata->>'run_id' = :run AND w.thread_id = c.thread_id "
            "AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id"
        ),
        params,
    )
    await db.execute(text("DELETE FROM checkpoints WHERE thread_id = :thread AND metadata->>'run_id' = :run"), params)


async def count_for_threads(db: AsyncSession, session_ids: Sequence[uuid.UUID]) -> int:
    """Checkpoint rows of any kind left for these sessions (erasure checks)."""
    thread_ids = [str(s) for s in session_ids]
    total = 0
    for table in _THREAD_TABLES:
        total += int(
            await db.scalar(text(f"SELECT count(*) FROM {table} WHERE thread_id = ANY(:ids)"), {"ids": thread_ids})  # noqa: S608
            or 0
        )
    return total
