"""The durable jobs of documents: `documents.ingest` (extract → chunk → embed → store) and `documents.purge`.

Ingestion is enqueued in the upload's transaction and is idempotent: a job taken over from a worker that
died starts again, and its write replaces whatever an earlier attempt left. The file's status says where
it is: pending → processing → ready | failed (reason). A file deleted meanwhile ends the job quietly.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.documents.extract import ExtractionFailed, extract
from agentserver.documents.repository import FileRepository
from agentserver.documents.runtime import Documents
from agentserver.documents.service import INGEST_JOB, PURGE_JOB
from agentserver.documents.types import IMAGE_KINDS
from agentserver.jobs.handlers import JobHandlers, JobSkipped
from agentserver.jobs.repository import ClaimedJob
from agentserver.kit.db import session_scope
from agentserver.models import FileStatus

log = structlog.get_logger(__name__)

NO_TEXT = "no text could be found in the file"
GAVE_UP = "the file could not be processed; delete it and upload it again"


class Ingestion:
    def __init__(self, documents: Documents, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.documents = documents
        self.sessionmaker = sessionmaker

    def register(self, handlers: JobHandlers) -> None:
        handlers.register(INGEST_JOB, self.ingest, on_gave_up=self.ingestion_lost)
        handlers.register(PURGE_JOB, self.purge)

    async def ingestion_lost(self, job: ClaimedJob) -> None:
        """The last attempt's worker died (the reaper failed the job): the file must not stay `processing`."""
        file_id = uuid.UUID(job.payload["file_id"])
        async with session_scope(self.sessionmaker) as db:
            # Unless that attempt got as far as ending the file itself before its worker died.
            await FileRepository.from_session(db).set_status(
                file_id, FileStatus.failed, reason=GAVE_UP, unfinished_only=True
            )
        log.info("documents.ingestion_failed", file_id=str(file_id), reason=GAVE_UP)

    async def ingest(self, job: ClaimedJob) -> None:
        file_id = uuid.UUID(job.payload["file_id"])
        async with session_scope(self.sessionmaker) as db:
            files = FileRepository.from_session(db)
            stored = await files.lock_for_ingestion(file_id)
            if stored is None:
                raise JobSkipped("the file is gone")
            if stored.status in (FileStatus.ready, FileStatus.failed):
                return  # an earlier attempt finished it
            await files.set_status(file_id, FileStatus.processing)
            kind, key = stored.kind, stored.storage_key
        log.info("documents.ingesting", file_id=str(file_id), kind=kind, attempt=job.attempts)
        try:
            chunks, vectors, pages = await self._process(kind, key)
        except ExtractionFailed as exc:
            await self._end(file_id, FileStatus.failed, reason=str(exc))
            log.info("documents.ingestion_failed", file_id=str(file_id), reason=str(exc))
            return
        except Exception:
            if job.attempts >= job.max_attempts:
                await self._end(file_id, FileStatus.failed, reason=GAVE_UP)
            raise  # retried with backoff (or failed for good: the file says so)
        async with session_scope(self.sessionmaker) as db:
            files = FileRepository.from_session(db)
            stored = await files.lock_for_ingestion(file_id)
            if stored is None:
                raise JobSkipped("the file was deleted while it was ingested")
            await files.replace_chunks(stored, chunks, vectors, (await self.documents.embedder()).table)
            await files.set_status(file_id, FileStatus.ready, chunk_count=len(chunks), pages=pages)
        log.info("documents.ingested", file_id=str(file_id), chunks=len(chunks), pages=pages)

    async def _process(self, kind: str, key: str) -> tuple[list[dict[str, object]], list[list[float]], int | None]:
        documents = self.documents
        data = await documents.storage.read(key)
        extracted = await asyncio.to_thread(extract, kind, data, max_pages=documents.settings.documents_max_pages)
        del data
        chunker = await documents.chunker()
        chunks = await asyncio.to_thread(chunker.chunk, extracted.segments)
        if not chunks and kind not in IMAGE_KINDS:
            raise ExtractionFailed(NO_TEXT)
        limit = documents.settings.documents_max_chunks
        if len(chunks) > limit:
            raise ExtractionFailed(f"the file has too much text ({len(chunks)} passages; at most {limit} are indexed)")
        embedder = await documents.embedder()
        vectors = await embedder.aembed([chunk.text for chunk in chunks])
        rows: list[dict[str, object]] = [
            {"content": chunk.text, "page": chunk.page, "section": chunk.section} for chunk in chunks
        ]
        return rows, vectors, extracted.pages

    async def _end(self, file_id: uuid.UUID, status: FileStatus, *, reason: str) -> None:
        async with session_scope(self.sessionmaker) as db:
            await FileRepository.from_session(db).set_status(file_id, status, reason=reason)

    async def purge(self, job: ClaimedJob) -> None:
        """Remove blobs whose rows are gone: listed keys (file or session deletion), or a whole user."""
        storage = self.documents.storage
        for key in job.payload.get("keys", []):
            await storage.delete(key)
        if prefix := job.payload.get("user_prefix"):
            await storage.delete_prefix(prefix)
