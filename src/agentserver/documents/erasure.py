"""Deletion hooks: a deleted session or account leaves no stored file behind.

The rows go by foreign-key cascade (files → chunks → vectors) in the deletion's transaction; the blobs,
which live outside PostgreSQL, are removed by a `documents.purge` job enqueued in that same transaction
(so it exists exactly when the deletion committed). Queued ingestions of an erased account are dropped.
"""

from __future__ import annotations

from agentserver.auth.service import UserDeletion
from agentserver.documents.repository import FileRepository
from agentserver.documents.service import INGEST_JOB, PURGE_JOB
from agentserver.documents.storage import user_prefix
from agentserver.jobs.repository import JobRepository
from agentserver.sessions.service import SessionDeletion


async def on_session_deletion(deletion: SessionDeletion) -> None:
    keys = await FileRepository.from_session(deletion.db).keys_of_session(deletion.session_id)
    if keys:
        await JobRepository.from_session(deletion.db).enqueue(PURGE_JOB, {"keys": keys}, user_id=deletion.user_id)


async def on_user_deletion(deletion: UserDeletion) -> None:
    jobs = JobRepository.from_session(deletion.db)
    await jobs.drop_pending_for_user(deletion.user_id, [INGEST_JOB])
    await jobs.enqueue(PURGE_JOB, {"user_prefix": user_prefix(deletion.user_id)}, user_id=deletion.user_id)
