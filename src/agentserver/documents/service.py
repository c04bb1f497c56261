"""The files of one user: upload (streamed, checked, stored, queued for ingestion), list, get, delete."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.documents.errors import FileNotFound, FileTooLarge, InvalidUpload, StorageQuotaExceeded
from agentserver.documents.repository import FileRepository
from agentserver.documents.runtime import Documents
from agentserver.documents.storage import storage_key
from agentserver.documents.types import IMAGE_KINDS, check_type, safe_name
from agentserver.documents.upload import receive_upload
from agentserver.jobs.repository import JobRepository
from agentserver.kit.db import autocommit_session, session_scope
from agentserver.kit.pagination import finish_page
from agentserver.models import FileStatus, StoredFile, User
from agentserver.sessions.repository import ChatSessionRepository
from agentserver.sessions.service import SessionNotFound

log = structlog.get_logger(__name__)

INGEST_JOB = "documents.ingest"
PURGE_JOB = "documents.purge"
INGEST_MAX_ATTEMPTS = 3


class FileService:
    async def upload(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        documents: Documents,
        user: User,
        body: AsyncIterator[bytes],
        content_type: str | None,
    ) -> StoredFile:
        """Receive, check and store one upload; the row and its ingestion job commit together.

        No database connection is held while the body streams: the quota is read before, and checked
        again (under a lock on the user) when the row is written.
        """
        settings = documents.settings
        async with autocommit_session(sessionmaker) as db:
            used = await FileRepository.from_session(db).used_bytes(user.id)
        room = settings.max_files_bytes_per_user - used
        if room <= 0:
            raise StorageQuotaExceeded(used, settings.max_files_bytes_per_user)
        try:
            received = await receive_upload(
                body, content_type, spool_dir=documents.spool_dir, max_bytes=min(settings.max_upload_bytes, room)
            )
        except FileTooLarge:
            if room < settings.max_upload_bytes:
                raise StorageQuotaExceeded(used, settings.max_files_bytes_per_user) from None
            raise FileTooLarge(settings.max_upload_bytes) from None
        file_id = uuid.uuid4()
        key = storage_key(user.id, file_id)
        stored_blob = False
        try:
            session_id = _session_id(received.session_id)
            name = safe_name(received.filename)
            file_type = await asyncio.to_thread(check_type, name, received.head, received.text, received.path)
            await documents.storage.put(key, received.path)
            stored_blob = True
            async with session_scope(sessionmaker) as db:
                stored = await self._insert(
                    db,
                    documents,
                    user,
                    StoredFile(
                        id=file_id,
                        user_id=user.id,
                        session_id=session_id,
                        name=name,
                        kind=file_type.kind,
                        media_type=file_type.media_type,
                        size_bytes=received.size,
                        sha256=received.sha256,
                        storage_key=key,
                        # Images are stored only: there is no text to extract.
                        status=FileStatus.ready if file_type.kind in IMAGE_KINDS else FileStatus.pending,
                        chunk_count=0,
                    ),
                )
        except BaseException:
            with suppress(OSError):
                await asyncio.shield(asyncio.to_thread(received.path.unlink, missing_ok=True))
            if stored_blob:
                await asyncio.shield(documents.storage.delete(key))
            raise
        log.info("documents.uploaded", file_id=str(file_id), kind=stored.kind, size=stored.size_bytes)
        return stored

    async def _insert(self, db: AsyncSession, documents: Documents, user: User, stored: StoredFile) -> StoredFile:
        files = FileRepository.from_session(db)
        if not await files.lock_owner(user.id):
            raise FileNotFound()  # the account went away during the upload
        used = await files.used_bytes(user.id)
        limit = documents.settings.max_files_bytes_per_user
        if used + stored.size_bytes > limit:
            raise StorageQuotaExceeded(used, limit)
        if stored.session_id is not None:
            if await ChatSessionRepository.from_session(db).get_owned(user.id, stored.session_id) is None:
                raise SessionNotFound()
        stored = await files.add(stored)
        if stored.status is FileStatus.pending:
            await JobRepository.from_session(db).enqueue(
                INGEST_JOB, {"file_id": str(stored.id)}, user_id=user.id, max_attempts=INGEST_MAX_ATTEMPTS
            )
        return stored

    async def get(self, db: AsyncSession, user: User, file_id: uuid.UUID) -> StoredFile:
        stored = await FileRepository.from_session(db).get_owned(user.id, file_id)
        if stored is None:
            raise FileNotFound()
        return stored

    async def list(
        self, db: AsyncSession, user: User, *, cursor: str | None, limit: int
    ) -> tuple[list[StoredFile], str | None]:
        rows = await FileRepository.from_session(db).list_owned(user.id, cursor=cursor, limit=limit)
        return finish_page(rows, limit, key=lambda row: (row.created_at, row.id))

    async def delete(self, db: AsyncSession, user: User, file_id: uuid.UUID) -> None:
        """The row (chunks and vectors by cascade) now; the blob by a durable job once this commits."""
        stored = await self.get(db, user, file_id)
        await FileRepository.from_session(db).delete(stored)
        await JobRepository.from_session(db).enqueue(PURGE_JOB, {"keys": [stored.storage_key]}, user_id=user.id)
        log.info("documents.deleted", file_id=str(file_id))


def _session_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidUpload("session_id: not a valid id") from None


files = FileService()
