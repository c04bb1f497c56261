"""Hybrid retrieval over a user's ready files: vector (HNSW, cosine) + full-text, fused by reciprocal rank.

Both rankings are scoped in SQL to the caller's files that the session may see (the user's own, attached
to no session or to this one); the identity comes from the run, never from the model. Reciprocal rank
fusion (score = Σ 1 / (60 + rank)) needs no score calibration between the two: a passage found by both
rises, one found by either still counts. The full-text side matches any query word (OR), on the `simple`
configuration (words as written: Korean and English alike), Hangul words also by their stem without a
trailing particle (`휴가는` → `휴가:*`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.documents.runtime import Documents
from agentserver.kit.db import session_scope

log = structlog.get_logger(__name__)

RRF_K = 60
# Candidates each side contributes to the fusion.
CANDIDATES = 20
MAX_QUERY_TERMS = 24
_WORD = re.compile(r"\w+", re.UNICODE)
_HANGUL = re.compile(r"[\uac00-\ud7a3]")

# Both rankings see the caller's ready files that this session may see (its own, or attached to none).
# One statement per embedder's table (fixed names, never input).
_VECTOR_USE = text(
    """
    SELECT v.chunk_id FROM file_chunk_vectors_use v
    JOIN file_chunks c ON c.id = v.chunk_id JOIN files f ON f.id = c.file_id
    WHERE v.user_id = :user_id AND f.user_id = :user_id AND f.status = 'ready'
      AND (f.session_id IS NULL OR f.session_id = :session_id)
    ORDER BY v.embedding <=> CAST(:embedding AS halfvec) LIMIT :limit
    """
)

_VECTOR_MINILM = text(
    """
    SELECT v.chunk_id FROM file_chunk_vectors_minilm v
    JOIN file_chunks c ON c.id = v.chunk_id JOIN files f ON f.id = c.file_id
    WHERE v.user_id = :user_id AND f.user_id = :user_id AND f.status = 'ready'
      AND (f.session_id IS NULL OR f.session_id = :session_id)
    ORDER BY v.embedding <=> CAST(:embedding AS vector) LIMIT :limit
    """
)

# Ranking is per matching row: words common to most of a user's chunks would rank them all, so at most
# FULL_TEXT_MATCHES matches are ranked (such words say little; the vector side still sees every chunk).
_FULL_TEXT = text(
    """
    WITH q AS (SELECT to_tsquery('simple', :query) AS q),
    matches AS (
        SELECT c.id, c.tsv FROM file_chunks c JOIN files f ON f.id = c.file_id, q
        WHERE c.user_id = :user_id AND c.tsv @@ q.q AND f.user_id = :user_id AND f.status = 'ready'
          AND (f.session_id IS NULL OR f.session_id = :session_id)
        LIMIT :matches
    )
    SELECT m.id FROM matches m, q ORDER BY ts_rank(m.tsv, q.q) DESC, m.id LIMIT :limit
    """
)
FULL_TEXT_MATCHES = 1000

_PASSAGES = text(
    """
    SELECT c.id, c.content, c.page, c.section, f.name, f.id AS file_id
    FROM file_chunks c JOIN files f ON f.id = c.file_id
    WHERE c.id = ANY(:ids) AND c.user_id = :user_id
    """
)


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    file_id: uuid.UUID
    file_name: str
    page: int | None
    section: str | None
    content: str
    score: float

    @property
    def citation(self) -> str:
        where = f", page {self.page}" if self.page is not None else ""
        where += f", section “{self.section}”" if self.section else ""
        return f"{self.file_name}{where}"


def full_text_query(query: str) -> str:
    """A tsquery matching any word of `query` (safe: words only, quoted), '' when it has none."""
    terms: list[str] = []
    for word in _WORD.findall(query.lower()):
        if len(word) < 2 and not _HANGUL.search(word):
            continue
        quoted = "'" + word.replace("'", "") + "'"
        terms.append(f"{quoted}:*")
        if _HANGUL.search(word) and len(word) >= 3:
            terms.append("'" + word[:-1] + "':*")
    unique = list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]
    return " | ".join(unique)


def fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return scores


class DocumentSearch:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], documents: Documents) -> None:
        self.sessionmaker = sessionmaker
        self.documents = documents

    async def search(self, user_id: uuid.UUID, session_id: uuid.UUID, query: str, *, top_k: int = 5) -> list[Passage]:
        embedder = await self.documents.embedder()
        (embedding,) = await embedder.aembed([query])
        vector_statement = _VECTOR_USE if embedder.name == "use" else _VECTOR_MINILM
        scope = {"user_id": user_id, "session_id": session_id, "limit": CANDIDATES}
        tsquery = full_text_query(query)
        async with session_scope(self.sessionmaker) as db:
            await _iterative_scan(db)
            vector_params = {**scope, "embedding": _literal(embedding)}
            vector_ids = list((await db.execute(vector_statement, vector_params)).scalars().all())
            text_ids: list[int] = []
            if tsquery:
                text_params = {**scope, "query": tsquery, "matches": FULL_TEXT_MATCHES}
                text_ids = list((await db.execute(_FULL_TEXT, text_params)).scalars().all())
            scores = fuse([vector_ids, text_ids])
            best = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:top_k]
            rows = (await db.execute(_PASSAGES, {"ids": best, "user_id": user_id})).mappings().all() if best else []
        by_id = {row["id"]: row for row in rows}
        return [
            Passage(
                chunk_id=chunk_id,
                file_id=by_id[chunk_id]["file_id"],
                file_name=by_id[chunk_id]["name"],
                page=by_id[chunk_id]["page"],
                section=by_id[chunk_id]["section"],
                content=by_id[chunk_id]["content"],
                score=scores[chunk_id],
            )
            for chunk_id in best
            if chunk_id in by_id
        ]


async def _iterative_scan(db: AsyncSession) -> None:
    """pgvector ≥ 0.8: keep scanning the HNSW graph until enough rows pass the owner filter. An older
    pgvector (an external database) refuses the setting: search without it rather than fail."""
    try:
        async with db.begin_nested():
            await db.execute(text("SET LOCAL hnsw.iterative_scan = 'relaxed_order'"))
    except DBAPIError:
        log.warning("documents.no_iterative_scan", detail="pgvector < 0.8: filtered HNSW scans may return fewer rows")


def _literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
