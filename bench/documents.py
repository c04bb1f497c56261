"""Documents: ingesting a 100-page text PDF, and search latency at 100k chunks: `python -m bench documents`.

Runs on an embedded PostgreSQL of its own (`.data/bench/postgres`, database `agentserver_bench_documents`),
never on dev data, migrated with the real Alembic chain.

1. Ingestion: a 100-page PDF with a text layer (written by tests/documents/samples.py, ~45 lines a page)
   goes through the real `documents.ingest` handler (read blob → pypdf → token-aware chunks → embedder →
   chunks + vectors + full-text in one transaction), with the default embedder (USE multilingual) on one
   thread. Target ≤ 60 s.
2. Search: 100k chunks over 1,000 users (one "heavy" user holds 5,000; the others 95 each), bulk loaded
   with COPY (random unit vectors: the search, not the embedder, is measured; chunk text from a word list so
   the full-text side has matches), HNSW built once. `DocumentSearch.search` end to end (query embedding +
   vector SQL + full-text SQL + fusion + passages), 100 queries per user kind. Target p95 ≤ 50 ms.
"""

from __future__ import annotations

import asyncio
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from tests.documents.samples import pdf

from agentserver.config import Environment, Settings
from agentserver.documents.extract import extract
from agentserver.documents.jobs import Ingestion
from agentserver.documents.runtime import open_documents
from agentserver.documents.search import DocumentSearch
from agentserver.documents.service import INGEST_JOB
from agentserver.documents.storage import storage_key
from agentserver.jobs.repository import ClaimedJob
from agentserver.kit import migrations
from agentserver.kit.db import create_engine, create_sessionmaker, libpq_url
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.models import FileStatus, StoredFile, User

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "documents.md"
PAGES = 100
USERS = 1_000
HEAVY_CHUNKS = 5_000
TOTAL_CHUNKS = 100_000
QUERIES = 100
WORDS = (
    "policy warranty vacation contract invoice server backup payment refund delivery schedule meeting "
    "employee manager report budget customer product battery network security password training office "
    "휴가 계약 보증 결제 환불 배송 일정 회의 직원 보고서 예산 고객 제품 배터리 보안 교육 사무실"
).split()


# A PDF's standard fonts are Latin-1: the PDF's text is English.
PDF_WORDS = [word for word in WORDS if word.isascii()]


def page_lines(number: int, rng: random.Random) -> list[str]:
    return [
        f"Section {number}.{line}: " + " ".join(rng.choice(PDF_WORDS) for _ in range(11)) + "." for line in range(1, 46)
    ]


async def ingest_pdf(settings: Settings, url: str) -> dict[str, float]:
    rng = random.Random(7)
    content = pdf([page_lines(n, rng) for n in range(1, PAGES + 1)])
    documents = await open_documents(settings)
    assert documents is not None
    engine = create_engine(url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    user_id, file_id = uuid.uuid4(), uuid.uuid4()
    key = storage_key(user_id, file_id)
    blob = settings.data_dir / "files" / key
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    async with sessionmaker() as session, session.begin():
        session.add(User(id=user_id, email=f"{user_id}@bench.invalid", password_hash="x"))  # noqa: S106 - never logs in
        await session.flush()
        session.add(
            StoredFile(
                id=file_id,
                user_id=user_id,
                name="bench.pdf",
                kind="pdf",
                media_type="application/pdf",
                size_bytes=len(content),
                sha256="0" * 64,
                storage_key=key,
                status=FileStatus.pending,
                chunk_count=0,
            )
        )
    await documents.embedder()  # loaded once per process: not part of one file's ingestion
    await documents.chunker()
    started = time.perf_counter()
    extracted = extract("pdf", content, max_pages=1000)
    extract_s = time.perf_counter() - started
    job = ClaimedJob(1, INGEST_JOB, user_id, {"file_id": str(file_id)}, 1, 3, datetime.now(UTC))
    started = time.perf_counter()
    await Ingestion(documents, sessionmaker).ingest(job)
    total_s = time.perf_counter() - started
    async with sessionmaker() as session:
        stored = await session.get(StoredFile, file_id)
        assert stored is not None
        assert stored.status is FileStatus.ready, stored.reason
        chunks = stored.chunk_count
    await engine.dispose()
    return {
        "pages": len(extracted.segments),
        "chunks": chunks,
        "total_s": total_s,
        "extract_s": extract_s,
        "bytes": len(content),
    }


def load_chunks(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """1,000 users, one file each, 100k chunks with random unit vectors; (heavy user, a typical user)."""
    rng = np.random.default_rng(3)
    users = [uuid.uuid4() for _ in range(USERS)]
    per_user = [HEAVY_CHUNKS] + [(TOTAL_CHUNKS - HEAVY_CHUNKS) // (USERS - 1)] * (USERS - 1)
    words = np.array(WORDS)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        register_vector(conn)
        with conn.cursor() as cur:
            cur.execute("DROP INDEX IF EXISTS ix_file_chunk_vectors_use_embedding")
            with cur.copy("COPY users (id, email, password_hash) FROM STDIN") as copy:
                for user in users:
                    copy.write_row((user, f"{user}@bench.invalid", "x"))
            with cur.copy(
                "COPY files (id, user_id, name, kind, media_type, size_bytes, sha256, storage_key, status, "
                "chunk_count) FROM STDIN"
            ) as copy:
                files = [uuid.uuid4() for _ in users]
                for user, file in zip(users, files, strict=True):
                    copy.write_row((file, user, "doc.txt", "txt", "text/plain", 1, "0" * 64, "x", "ready", 0))
            with cur.copy("COPY file_chunks (file_id, user_id, ordinal, content) FROM STDIN") as copy:
                picks = rng.integers(0, len(words), size=(TOTAL_CHUNKS, 40))
                row = 0
                for user, file, count in zip(users, files, per_user, strict=True):
                    for ordinal in range(count):
                        copy.write_row((file, user, ordinal, " ".join(words[picks[row]])))
                        row += 1
            cur.execute(
                "SELECT c.id, c.user_id FROM file_chunks c LEFT JOIN file_chunk_vectors_use v ON v.chunk_id = c.id "
                "WHERE v.chunk_id IS NULL ORDER BY c.id"
            )
            rows = cur.fetchall()
            with cur.copy(
                "COPY file_chunk_vectors_use (chunk_id, user_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["bigint", "uuid", "halfvec"])
                for chunk_id, user in rows:
                    vector = rng.standard_normal(512).astype(np.float32)
                    copy.write_row((chunk_id, user, HalfVector(vector / np.linalg.norm(vector))))
            started = time.perf_counter()
            # The graph in memory while it is built (100k × 512 halfs ≈ 100 MB + links): otherwise pgvector builds
            # it on disk, many times slower.
            cur.execute("SET maintenance_work_mem = '1GB'")
            cur.execute(
                "CREATE INDEX ix_file_chunk_vectors_use_embedding ON file_chunk_vectors_use "
                "USING hnsw (embedding halfvec_cosine_ops)"
            )
            print(f"HNSW build {time.perf_counter() - started:.1f} s")
            cur.execute("ANALYZE")
    return users[0], users[1]


async def search_latency(settings: Settings, url: str, user: uuid.UUID) -> tuple[float, float]:
    documents = await open_documents(settings)
    assert documents is not None
    engine = create_engine(url, pool_size=2)
    search = DocumentSearch(create_sessionmaker(engine), documents)
    await search.search(user, uuid.uuid4(), "warm up")
    rng = random.Random(11)
    timings = []
    for _ in range(QUERIES):
        query = " ".join(rng.choice(WORDS) for _ in range(4))
        started = time.perf_counter()
        await search.search(user, uuid.uuid4(), query)
        timings.append((time.perf_counter() - started) * 1000)
    await engine.dispose()
    return statistics.median(timings), statistics.quantiles(timings, n=20)[18]


def main() -> None:
    server = EmbeddedPostgres(ROOT / ".data" / "bench" / "postgres")
    server.start(database="postgres")
    try:
        url = server.ensure_database("agentserver_bench_documents", recreate=True)
        migrations.upgrade(url)
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                _env_file=None,
                environment=Environment.test,
                database_url=url,
                agentserver_data_dir=Path(data_dir),
                log_level="WARNING",
            )
            ingestion = asyncio.run(ingest_pdf(settings, url))
            print(f"ingestion: {ingestion}")
            started = time.perf_counter()
            heavy, typical = load_chunks(url)
            load_s = time.perf_counter() - started
            heavy_ms = asyncio.run(search_latency(settings, url, heavy))
            typical_ms = asyncio.run(search_latency(settings, url, typical))
            print(f"search heavy {heavy_ms}, typical {typical_ms}")
    finally:
        server.stop()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.write_text(
        "\n".join(
            [
                "# Documents: ingestion and search",
                "",
                f"`python -m bench documents` on {platform.machine()}, 2 CPUs (shared with other work), {now}. "
                "Embedded PostgreSQL 18 + pgvector 0.8, embedder USE multilingual v3 (single thread), "
                "chunks of 200 MiniLM tokens with 40 of overlap.",
                "",
                "| ingestion | pages | chunks | PDF bytes | pypdf extraction s | whole job s (target ≤ 60) |",
                "|---|---:|---:|---:|---:|---:|",
                f"| 100-page text PDF | {ingestion['pages']:.0f} | {ingestion['chunks']:.0f} | "
                f"{ingestion['bytes']:.0f} | {ingestion['extract_s']:.1f} | {ingestion['total_s']:.1f} |",
                "",
                f"Search: {TOTAL_CHUNKS:,} chunks of {USERS:,} users (bulk load + HNSW build {load_s:.0f} s), "
                f"`DocumentSearch.search` end to end, {QUERIES} queries each (target p95 ≤ 50 ms).",
                "",
                "| the user's chunks | p50 ms | p95 ms |",
                "|---:|---:|---:|",
                f"| {HEAVY_CHUNKS:,} | {heavy_ms[0]:.1f} | {heavy_ms[1]:.1f} |",
                f"| {(TOTAL_CHUNKS - HEAVY_CHUNKS) // (USERS - 1):,} | {typical_ms[0]:.1f} | {typical_ms[1]:.1f} |",
                "",
            ]
        ),
        encoding="utf-8",
    )
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
