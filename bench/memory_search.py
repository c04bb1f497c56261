"""Memory search latency at 10k and 100k stored memories: `python -m bench memory_search`.

Runs on an embedded PostgreSQL of its own (`.data/bench/postgres`), never on dev data. Rows are bulk
loaded with binary COPY (random unit vectors: 100k real embeddings would take minutes and measure the
embedder, not the search), then the HNSW index is built once. Searches go through `MemoryService.search`
exactly as the endpoint and the chat turn do: a real embedding of the query, mem0's semantic + keyword
search scoped to one user. Also measured on their own: the query embedding, and the vector SQL alone.

Users: most hold 100 memories (a typical long-time user); one "heavy" user holds 5,000, which makes the
planner choose between the owner index and the HNSW index differently.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from agentserver.config import Environment, Settings
from agentserver.kit.db import libpq_url
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.llm.fake import FakeChatModel
from agentserver.memory.backend import start_memory
from agentserver.memory.service import MemoryService, VectorTable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "memory_search.md"
SIZES = (10_000, 100_000)
MEMORIES_PER_USER = 100
HEAVY_USER_MEMORIES = 5_000
QUERIES = 200
TOP_K = 5
NOISE = 0.038  # per dimension: |noise| ~ 0.75, so a row keeps cosine ~0.8 to its topic sentence
TOPICS = [
    "User is vegetarian",
    "User lives in Busan",
    "User likes jazz and plays the cello",
    "User works as a nurse at a hospital",
    "User has a daughter named Mina",
    "User is learning Spanish",
    "User prefers short answers",
    "User is allergic to peanuts",
    "사용자는 커피를 좋아한다",
    "User runs every morning",
]
QUERY_TEXTS = [
    "What should I cook for dinner tonight?",
    "Where does the user live?",
    "Which music does the user like?",
    "오늘 저녁 메뉴 추천해 줘",
    "Remind me what I told you about my job",
]


@dataclass
class Case:
    stored: int
    user_memories: int
    search: list[float]
    vector_sql: list[float]
    plan: str


@dataclass
class SizeResult:
    stored: int
    load_seconds: float
    index_seconds: float
    embed: list[float]
    cases: list[Case]


def _load(
    url: str, table: VectorTable, size: int, topics: npt.NDArray[np.float32]
) -> tuple[list[uuid.UUID], uuid.UUID, float, float]:
    """Fill the table with `size` rows; returns (typical users, the heavy user, load s, index build s).

    Each row is a real sentence embedding (`topics`) plus noise (cosine ~0.8 to it): pure random vectors
    would all score ~0 against a query and fall under mem0's relevance threshold.
    """
    rng = np.random.default_rng(7)
    heavy = uuid.uuid4()
    users = [uuid.uuid4() for _ in range((size - HEAVY_USER_MEMORIES) // MEMORIES_PER_USER)]
    owners = [heavy] * HEAVY_USER_MEMORIES + [user for user in users for _ in range(MEMORIES_PER_USER)]
    now = datetime.now(UTC).isoformat()
    name = sql.Identifier(table.name)
    with psycopg.connect(libpq_url(url)) as conn:
        register_vector(conn)
        conn.execute(sql.SQL("TRUNCATE {}").format(name))
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(f"{table.name}_hnsw_idx")))
        started = time.perf_counter()
        with conn.cursor().copy(
            sql.SQL("COPY {} (id, vector, payload) FROM STDIN WITH (FORMAT BINARY)").format(name)
        ) as copy:
            copy.set_types(["uuid", "vector", "jsonb"])
            for start in range(0, size, 10_000):
                count = min(10_000, size - start)
                noise = rng.standard_normal((count, table.dimensions)).astype(np.float32) * NOISE
                block = topics[rng.integers(0, len(topics), count)] + noise
                block /= np.linalg.norm(block, axis=1, keepdims=True)
                for offset, vector in enumerate(block):
                    n = start + offset
                    text = f"synthetic memory {n} about topic {n % 97}"
                    payload = {
                        "user_id": str(owners[n]),
                        "data": text,
                        "hash": "",
                        "text_lemmatized": text,
                        "created_at": now,
                        "updated_at": now,
                    }
                    copy.write_row((uuid.uuid4(), vector, Jsonb(payload)))
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} USING hnsw (vector vector_cosine_ops)").format(
                sql.Identifier(f"{table.name}_hnsw_idx"), name
            )
        )
        conn.execute(sql.SQL("ANALYZE {}").format(name))
        indexed = time.perf_counter() - started
    return users, heavy, loaded, indexed


def _vector_sql(url: str, table: VectorTable, user: uuid.UUID, vector: list[float]) -> tuple[float, str]:
    """The semantic half of mem0's search on its own: seconds, and the plan the server chose."""
    query = sql.SQL(
        "SELECT id, vector <=> %s::vector AS distance, payload FROM {} WHERE payload->>'user_id' = %s "
        "ORDER BY distance LIMIT %s"
    ).format(sql.Identifier(table.name))
    params = (str(vector), str(user), max(TOP_K * 4, 60))
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        conn.execute(query, params).fetchall()  # warm the connection's caches
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        elapsed = time.perf_counter() - started
        plan = conn.execute(sql.SQL("EXPLAIN (COSTS OFF) ") + query, params).fetchall()
    index_lines = [str(row[0]).strip() for row in plan if "Index" in str(row[0]) or "Scan" in str(row[0])]
    return elapsed, " / ".join(index_lines[:2])


async def _timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def _case(
    memory: MemoryService, url: str, users: list[uuid.UUID], user_memories: int, stored: int, rng: random.Random
) -> Case:
    search: list[float] = []
    vector_sql: list[float] = []
    plan = ""
    embedder = memory.memory.embedding_model  # type: ignore[attr-defined]
    for n in range(QUERIES):
        user = rng.choice(users)
        text = QUERY_TEXTS[n % len(QUERY_TEXTS)]
        hits: list[Any] = []

        async def run(user: uuid.UUID = user, text: str = text, hits: list[Any] = hits) -> None:
            hits.extend(await memory.search(user, text, TOP_K))

        search.append(await _timed(run))
        if not hits:
            raise RuntimeError(f"search found nothing for a user with {user_memories} memories")
        if n % 10 == 0:
            vector = await asyncio.to_thread(embedder.embed, text, "search")
            elapsed, plan = await asyncio.to_thread(_vector_sql, url, memory.store.table, user, vector)
            vector_sql.append(elapsed)
    return Case(stored=stored, user_memories=user_memories, search=search, vector_sql=vector_sql, plan=plan)


async def _measure(url: str, size: int, data_dir: Path) -> SizeResult:
    settings = Settings(
        _env_file=None,
        environment=Environment.test,
        database_url=url,
        agentserver_data_dir=data_dir,
        log_level="WARNING",
        llm_provider="fake",
        memory_enabled=True,
    )
    async with start_memory(settings, url, FakeChatModel()) as memory:
        embedder = memory.memory.embedding_model  # type: ignore[attr-defined]
        topics = np.array(await asyncio.to_thread(embedder.embed_batch, TOPICS), dtype=np.float32)
        users, heavy, loaded, indexed = await asyncio.to_thread(_load, url, memory.store.table, size, topics)
        rng = random.Random(size)
        for _ in range(10):  # warm-up: connections, plan caches, ONNX session
            await memory.search(rng.choice(users), QUERY_TEXTS[0], TOP_K)
        embed: list[float] = []
        for n in range(QUERIES):
            started = time.perf_counter()
            await asyncio.to_thread(embedder.embed, QUERY_TEXTS[n % len(QUERY_TEXTS)], "search")
            embed.append(time.perf_counter() - started)
        typical = await _case(memory, url, users, MEMORIES_PER_USER, size, rng)
        heavy_case = await _case(memory, url, [heavy], HEAVY_USER_MEMORIES, size, rng)
    return SizeResult(stored=size, load_seconds=loaded, index_seconds=indexed, embed=embed, cases=[typical, heavy_case])


def _ms(samples: list[float], quantile: int) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"{cuts[quantile - 1] * 1000:.1f}"


def _report(results: list[SizeResult]) -> str:
    lines = [
        "# Memory search latency",
        "",
        f"`python -m bench memory_search` on {platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Embedded PostgreSQL 18 + pgvector 0.8, "
        f"HNSW (m=16, ef_construction=64, iterative scan), local int8 MiniLM embedder, top_k={TOP_K}, "
        f"{QUERIES} searches per row.",
        "",
        "`search` is `MemoryService.search` end to end (query embedding + mem0's semantic and keyword "
        "queries + scoring), what GET /api/v1/memories/search and a chat turn's recall pay. `vector SQL` is "
        "the semantic query alone (every 10th search).",
        "",
        "| stored memories | the user's memories | search p50 ms | search p95 ms | vector SQL p50 ms "
        "| vector SQL p95 ms | plan chosen |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        for case in result.cases:
            lines.append(
                f"| {case.stored:,} | {case.user_memories:,} | {_ms(case.search, 50)} | {_ms(case.search, 95)} "
                f"| {_ms(case.vector_sql, 50)} | {_ms(case.vector_sql, 95)} | {case.plan} |"
            )
    lines += [
        "",
        "| stored memories | query embedding p50 ms | p95 ms | COPY load s | HNSW build s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.stored:,} | {_ms(result.embed, 50)} | {_ms(result.embed, 95)} "
            f"| {result.load_seconds:.1f} | {result.index_seconds:.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


async def _run() -> list[SizeResult]:
    server = EmbeddedPostgres(ROOT / ".data" / "bench" / "postgres")
    await asyncio.to_thread(server.start, "postgres")
    results = []
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            for size in SIZES:
                url = await asyncio.to_thread(server.ensure_database, "bench_memory", recreate=True)
                results.append(await _measure(url, size, Path(data_dir)))
                print(f"memory_search: {size:,} memories measured")
    finally:
        await asyncio.to_thread(server.stop)
    return results


def main() -> None:
    results = asyncio.run(_run())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(_report(results), encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
