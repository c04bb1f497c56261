"""`Documents`: what the files API, the ingestion job and the search tool share, built in the lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from agentserver.config import Settings
from agentserver.documents.chunking import Chunker, counting_tokenizer
from agentserver.documents.storage import FileStorage, LocalFileStorage
from agentserver.memory.embeddings import LocalEmbedder

log = structlog.get_logger(__name__)


@dataclass
class Documents:
    settings: Settings
    storage: FileStorage
    # Uploads being received are spooled here (same filesystem as the local store: storing is a rename).
    spool_dir: Path
    _embedder: LocalEmbedder | None = None
    _chunker: Chunker | None = None
    _loading: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def embedder(self) -> LocalEmbedder:
        """The embedding model, loaded on first use (seconds, in a thread): processes that never ingest or
        search (API-only ones, most test apps) never pay for it."""
        async with self._loading:
            if self._embedder is None:
                self._embedder = await asyncio.to_thread(LocalEmbedder.load)
                log.info("documents.embedder_loaded")
            return self._embedder

    async def chunker(self) -> Chunker:
        if self._chunker is None:
            embedder = await self.embedder()
            self._chunker = Chunker(
                counting_tokenizer(embedder.tokenizer),
                max_tokens=self.settings.documents_chunk_tokens,
                overlap=self.settings.documents_chunk_overlap_tokens,
            )
        return self._chunker


def file_storage(settings: Settings) -> FileStorage:
    # FILE_STORAGE picks the implementation; `local` is the one shipped (see storage.py for S3).
    return LocalFileStorage(settings.data_dir / "files")


async def open_documents(settings: Settings) -> Documents | None:
    if not settings.documents_enabled:
        return None
    spool_dir = settings.data_dir / "files" / ".incoming"
    await asyncio.to_thread(spool_dir.mkdir, parents=True, exist_ok=True)
    return Documents(settings=settings, storage=file_storage(settings), spool_dir=spool_dir)
