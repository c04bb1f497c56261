"""`Documents`: what the files API, the ingestion job and the search tool share, built in the lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from tokenizers import Tokenizer

from agentserver.config import Settings
from agentserver.documents.chunking import Chunker, counting_tokenizer
from agentserver.documents.embedders import DocumentEmbedder, MiniLMDocuments, USEDocuments
from agentserver.documents.storage import FileStorage, LocalFileStorage
from agentserver.memory.embeddings import TOKENIZER_SHA256, LocalEmbedder, _verified, tokenizer_path

log = structlog.get_logger(__name__)


@dataclass
class Documents:
    settings: Settings
    storage: FileStorage
    # Uploads being received are spooled here (same filesystem as the local store: storing is a rename).
    spool_dir: Path
    _embedder: DocumentEmbedder | None = None
    _chunker: Chunker | None = None
    _loading: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def embedder(self) -> DocumentEmbedder:
        """The embedding model (DOCUMENTS_EMBEDDER), loaded on first use (seconds, in a thread): processes
        that never ingest or search (API-only ones, most test apps) never pay for it."""
        async with self._loading:
            if self._embedder is None:
                embedder: DocumentEmbedder
                if self.settings.documents_embedder == "use":
                    embedder = await asyncio.to_thread(USEDocuments.load)
                else:
                    embedder = MiniLMDocuments(await asyncio.to_thread(LocalEmbedder.load))
                log.info("documents.embedder_loaded", embedder=embedder.name)
                self._embedder = embedder
            return self._embedder

    async def chunker(self) -> Chunker:
        """Chunks are counted in MiniLM WordPiece tokens (a fast Rust tokenizer) whichever the embedder:
        USE's own SentencePiece tokenizer is pure Python, and WordPiece splits Korean and English into at
        least as many pieces, so a chunk never passes what either model reads well."""
        if self._chunker is None:
            path = await asyncio.to_thread(_verified, tokenizer_path(), TOKENIZER_SHA256, "MiniLM tokenizer")
            self._chunker = Chunker(
                counting_tokenizer(Tokenizer.from_file(str(path))),
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
