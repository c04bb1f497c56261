"""Documents: uploaded files, their text chunks (full-text) and the chunks' MiniLM vectors (HNSW)

- `files`: a user's uploads (optionally attached to a chat session), their ingestion status and reason.
- `file_chunks`: extracted text, page/section, and a generated `simple`-configuration tsvector (GIN).
- `file_chunk_vectors_use` (the default embedder, USE multilingual v3, 512 dims) and
  `file_chunk_vectors_minilm` (all-MiniLM-L6-v2, 384 dims): one vector per chunk, HNSW on cosine distance.
  Each embedder has its table (switching DOCUMENTS_EMBEDDER is a re-embed, not a migration).

Revision ID: 0008_documents
Revises: 0007_assistants
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy.dialects import postgresql

revision: str = "0008_documents"
down_revision: str | None = "0007_assistants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILE_STATUS = postgresql.ENUM("pending", "processing", "ready", "failed", name="file_status", create_type=False)


def upgrade() -> None:
    FILE_STATUS.create(op.get_bind(), checkfirst=True)
    op.create_table(
        "files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("status", FILE_STATUS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_files_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["chat_sessions.id"], name=op.f("fk_files_session_id_chat_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index("ix_files_user_id_created_at", "files", ["user_id", "created_at"])
    op.create_index("ix_files_session_id", "files", ["session_id"])

    op.create_table(
        "file_chunks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("section", sa.String(length=300), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('simple', content)", persisted=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_file_chunks_file_id_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_chunks")),
    )
    op.create_index("ix_file_chunks_file_id_ordinal", "file_chunks", ["file_id", "ordinal"], unique=True)
    op.create_index("ix_file_chunks_user_id", "file_chunks", ["user_id"])
    op.create_index("ix_file_chunks_tsv", "file_chunks", ["tsv"], postgresql_using="gin")

    op.create_table(
        "file_chunk_vectors_minilm",
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["file_chunks.id"],
            name=op.f("fk_file_chunk_vectors_minilm_chunk_id_file_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_file_chunk_vectors_minilm")),
    )
    op.create_index(
        "ix_file_chunk_vectors_minilm_embedding",
        "file_chunk_vectors_minilm",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index("ix_file_chunk_vectors_minilm_user_id", "file_chunk_vectors_minilm", ["user_id"])

    op.create_table(
        "file_chunk_vectors_use",
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        # halfvec: 512 float32 would be TOASTed (out of line, compressed); half precision stays in the row.
        sa.Column("embedding", HALFVEC(512), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["file_chunks.id"],
            name=op.f("fk_file_chunk_vectors_use_chunk_id_file_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_file_chunk_vectors_use")),
    )
    op.create_index(
        "ix_file_chunk_vectors_use_embedding",
        "file_chunk_vectors_use",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "halfvec_cosine_ops"},
    )
    op.create_index("ix_file_chunk_vectors_use_user_id", "file_chunk_vectors_use", ["user_id"])


def downgrade() -> None:
    op.drop_table("file_chunk_vectors_use")
    op.drop_table("file_chunk_vectors_minilm")
    op.drop_table("file_chunks")
    op.drop_table("files")
    FILE_STATUS.drop(op.get_bind(), checkfirst=True)
