"""Uploaded files (documents), their text chunks and the chunks' vectors.

A file belongs to one user and, optionally, to one chat session (then only that session's agent sees it;
without a session, every session of the user does). Its bytes live in the file storage under a key made of
ids (documents/storage.py), never under the client's name. Chunks carry a PostgreSQL full-text column
(`simple` configuration: no stemming, so Korean and English are both split on words) and their vectors
live in a table per embedder (`file_chunk_vectors_use`, `file_chunk_vectors_minilm`): switching embedders
is a re-embed into another table, not a migration of this one.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from agentserver.models.base import Base, IdMixin, TimestampMixin

MINILM_DIMENSIONS = 384
USE_DIMENSIONS = 512


class FileStatus(enum.StrEnum):
    pending = "pending"  # stored, waiting for its ingestion job
    processing = "processing"  # a worker is extracting, chunking and embedding it
    ready = "ready"  # searchable
    failed = "failed"  # see `reason` (e.g. a scanned PDF without a text layer)


class StoredFile(IdMixin, TimestampMixin, Base):
    __tablename__ = "files"
    __table_args__ = (
        # The file list: a user's files, newest first (keyset pagination on (created_at, id)).
        Index("ix_files_user_id_created_at", "user_id", "created_at"),
        Index("ix_files_session_id", "session_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # Set: only this session's agent sees the file. Deleting the session deletes the file (its blob is
    # removed by the session's deletion hook, documents/erasure.py).
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="CASCADE"), nullable=True
    )
    # The client's name, reduced to a safe display name (documents/names.py); never used as a path.
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)  # pdf, txt, md, html, docx, png, jpg
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    storage_key: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[FileStatus] = mapped_column(
        Enum(FileStatus, name="file_status", values_callable=lambda e: [m.value for m in e]),
        nullable=False,
        default=FileStatus.pending,
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class FileChunk(Base):
    __tablename__ = "file_chunks"
    __table_args__ = (
        Index("ix_file_chunks_file_id_ordinal", "file_id", "ordinal", unique=True),
        Index("ix_file_chunks_user_id", "user_id"),
        Index("ix_file_chunks_tsv", "tsv", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), nullable=False)
    # The owner again (no join needed to scope a search); the file's cascade removes the chunk.
    user_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    section: Mapped[str | None] = mapped_column(String(300), nullable=True)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    tsv: Mapped[str] = mapped_column(TSVECTOR, Computed("to_tsvector('simple', content)", persisted=True))


class FileChunkVectorMiniLM(Base):
    """The chunk's all-MiniLM-L6-v2 vector (memory/embeddings.py): cosine distance, HNSW index."""

    __tablename__ = "file_chunk_vectors_minilm"
    __table_args__ = (
        Index(
            "ix_file_chunk_vectors_minilm_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_file_chunk_vectors_minilm_user_id", "user_id"),
    )

    chunk_id: Mapped[int] = mapped_column(ForeignKey("file_chunks.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    embedding: Mapped[list[float]] = mapped_column(Vector(MINILM_DIMENSIONS), nullable=False)


class FileChunkVectorUSE(Base):
    """The chunk's Universal Sentence Encoder multilingual v3 vector (documents/embedders.py), HNSW cosine.

    Stored as halfvec: 512 float32 (2 KiB) would pass PostgreSQL's TOAST threshold, and every exact scan
    of a user's vectors would decompress each one out of line; half precision (1 KiB) stays in the row and
    changes cosine rankings by far less than the embedder's own error.
    """

    __tablename__ = "file_chunk_vectors_use"
    __table_args__ = (
        Index(
            "ix_file_chunk_vectors_use_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "halfvec_cosine_ops"},
        ),
        Index("ix_file_chunk_vectors_use_user_id", "user_id"),
    )

    chunk_id: Mapped[int] = mapped_column(ForeignKey("file_chunks.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    embedding: Mapped[list[float]] = mapped_column(HALFVEC(USE_DIMENSIONS), nullable=False)
