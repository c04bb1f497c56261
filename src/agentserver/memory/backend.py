"""mem0 wiring: AsyncMemory on pgvector in the application database, with our embedder and LLM.

Storage: mem0's pgvector store, one table per embedding model and dimension (`mem0_minilm_l6_384`,
`mem0_openai_te3_small_1536`), with an HNSW cosine index and an index on the owner, so a per-user search
never walks other users' rows. Everything mem0 keeps lives in that table: its SQLite side store (change
history, each user's last raw messages) is replaced by a stateless one, so erasing a user is one DELETE,
and N API processes share one truth.

No network: telemetry is off (see `agentserver.memory`), the embedder is local ONNX unless
EMBEDDING_PROVIDER=openai, and the LLM is the app's own model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import mem0.memory.telemetry
import mem0.utils.spacy_models
import psycopg
import structlog
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from mem0 import AsyncMemory
from mem0.configs.base import MemoryConfig
from mem0.configs.embeddings.base import BaseEmbedderConfig
from mem0.configs.llms.base import BaseLlmConfig
from mem0.configs.prompts import ADDITIVE_EXTRACTION_PROMPT
from mem0.embeddings.base import EmbeddingBase
from mem0.embeddings.openai import OpenAIEmbedding
from mem0.llms.base import LLMBase
from psycopg import sql
from psycopg_pool import ConnectionPool

from agentserver.config import Settings
from agentserver.kit.db import libpq_url, psycopg_pool_options
from agentserver.memory.embeddings import LocalEmbedder, Mem0LocalEmbedding
from agentserver.memory.extraction import NOTHING, RESPONSE_FORMAT, ExtractionRequest, worth_extracting
from agentserver.memory.isolation import IsolatedLoop
from agentserver.memory.service import MemoryService, MemoryStore, VectorTable

log = structlog.get_logger(__name__)

if mem0.memory.telemetry.MEM0_TELEMETRY:  # pragma: no cover - an import-order bug, see memory/__init__.py
    raise RuntimeError("mem0 was imported before agentserver.memory and has telemetry on; import order is wrong")

# mem0's optional spaCy features (BM25 lemmas, entity links) download a model from the internet on first
# use when spaCy is installed. spaCy is not a dependency; this keeps the behaviour offline even if it is.
mem0.utils.spacy_models._load_failed_full = True
mem0.utils.spacy_models._load_failed_lemma = True

OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
OPENAI_EMBEDDING_DIMENSIONS = 1536
BACKGROUND_WAIT_SECONDS = 3600.0
_SCHEMA_LOCK = 7_312_004_201  # pg_advisory_xact_lock key: concurrent processes create the table once


# --- adapters mem0 calls --------------------------------------------------------------------------------------


class LangChainExtractionLLM(LLMBase):  # type: ignore[misc]
    """mem0's LLM interface over the app's LangChain model (`LLMService.background_model()`).

    mem0 calls `generate_response` from a worker thread. The call is scheduled on the app's event loop,
    so it goes through the model's async client with its retries, fallbacks and metrics, and the worker
    thread waits for the answer. (mem0's own "langchain" provider needs the full `langchain` package.)

    mem0's fact extraction is replaced by ours (`memory/extraction.py`): mem0's ~8k-token prompt is more than
    the embedded model's whole context, and its answers are filtered to facts the user stated. The request's
    `response_format` (our JSON schema for extraction, mem0's own otherwise) reaches the provider.
    """

    def __init__(
        self, model: Runnable[LanguageModelInput, BaseMessage], loop: asyncio.AbstractEventLoop, timeout: float
    ) -> None:
        super().__init__(BaseLlmConfig())
        self.model = model
        self.loop = loop
        self.timeout = timeout
        self._pending: set[concurrent.futures.Future[BaseMessage]] = set()
        self._pending_lock = threading.Lock()
        self._cancelled = False

    def generate_response(
        self,
        messages: list[dict[str, str]],
        response_format: Any = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str = "auto",
        **kwargs: Any,
    ) -> str:
        if _running_loop() is self.loop:
            raise RuntimeError("generate_response() would deadlock on the event loop thread")
        request = ExtractionRequest.from_mem0(messages) if _is_extraction(messages) else None
        if request is not None:
            if not worth_extracting(request.user_message):
                return NOTHING  # a question or a request: no fact to look for, no model call
            prompt = request.prompt()
            response_format = RESPONSE_FORMAT
        else:
            prompt = [_to_langchain(message) for message in messages]
        options = {"response_format": response_format} if response_format else {}
        future = asyncio.run_coroutine_threadsafe(self.model.ainvoke(prompt, **options), self.loop)
        # The coroutine may already be running (and shutdown already under way) before this thread gets
        # here: register and check the flag under one lock so cancel_pending() can never miss a caller.
        with self._pending_lock:
            self._pending.add(future)
            if self._cancelled:
                future.cancel()
        try:
            answer = future.result(timeout=self.timeout)
        except TimeoutError:
            future.cancel()
            raise
        finally:
            with self._pending_lock:
                self._pending.discard(future)
        text = answer.text if isinstance(answer.text, str) else str(answer.content)
        return request.filtered_answer(text) if request is not None else text

    def cancel_pending(self) -> None:
        """Release worker threads waiting for the model, now and from now on (shutdown: jobs given up)."""
        with self._pending_lock:
            self._cancelled = True
            for future in list(self._pending):
                future.cancel()


def _is_extraction(messages: list[dict[str, str]]) -> bool:
    return any(
        m.get("role") == "system" and m.get("content", "").startswith(ADDITIVE_EXTRACTION_PROMPT) for m in messages
    )


def _to_langchain(message: dict[str, str]) -> BaseMessage:
    role, content = message.get("role"), message.get("content", "")
    if role == "system":
        return SystemMessage(content)
    if role == "assistant":
        return AIMessage(content)
    return HumanMessage(content)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _StatelessHistory:
    """Replaces mem0's SQLite side store (change history and each user's last 10 raw messages).

    A file per process would hold personal data outside PostgreSQL, survive user erasure on other hosts
    and disagree between API processes. Extraction gets its context from the exchange we pass instead.
    """

    def add_history(self, *args: Any, **kwargs: Any) -> None:
        return None

    def batch_add_history(self, records: list[dict[str, Any]]) -> None:
        return None

    def get_history(self, memory_id: str) -> list[dict[str, Any]]:
        return []

    def save_messages(self, messages: list[dict[str, Any]], session_scope: str) -> None:
        return None

    def get_last_messages(self, session_scope: str, limit: int = 10) -> list[dict[str, Any]]:
        return []

    def reset(self) -> None:
        return None

    def close(self) -> None:
        return None


# --- construction ---------------------------------------------------------------------------------------------


def _vector_table(settings: Settings) -> VectorTable:
    # Vectors of different models are not comparable even at equal dimensions: one table per model.
    if settings.embedding_provider == "openai":
        return VectorTable(f"mem0_openai_te3_small_{OPENAI_EMBEDDING_DIMENSIONS}", OPENAI_EMBEDDING_DIMENSIONS)
    return VectorTable("mem0_minilm_l6_384", 384)


def _configure_connection(conn: psycopg.Connection[Any]) -> None:
    # With a per-user filter, a plain HNSW scan returns ef_search (40) candidates and filters them
    # afterwards: a user whose memories are not among them would get nothing. Iterative scans (pgvector
    # 0.8) keep scanning until the LIMIT is filled.
    conn.execute("SET hnsw.iterative_scan = relaxed_order")
    conn.commit()


def ensure_schema(pool: ConnectionPool[Any], table: VectorTable) -> None:
    """Create the vector table and its indexes if missing (what mem0 would, plus the owner index)."""
    name = sql.Identifier(table.name)
    with pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (id UUID PRIMARY KEY, vector vector({}), payload JSONB)").format(
                name, sql.Literal(table.dimensions)
            )
        )
        row = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = 'vector'",
            (table.name,),
        ).fetchone()
        if row is None or row[0] != f"vector({table.dimensions})":
            raise RuntimeError(
                f"table {table.name} holds {row[0] if row else 'no vectors'}, not vector({table.dimensions})"
            )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (vector vector_cosine_ops)").format(
                sql.Identifier(f"{table.name}_hnsw_idx"), name
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING gin (to_tsvector('simple', payload->>'text_lemmatized'))"
            ).format(sql.Identifier(f"{table.name}_text_lemmatized_idx"), name)
        )
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ((payload->>'user_id'))").format(
                sql.Identifier(f"{table.name}_user_id_idx"), name
            )
        )


def _build_embedder(settings: Settings) -> EmbeddingBase:
    if settings.embedding_provider == "openai":
        if settings.openai_api_key is None:
            raise RuntimeError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
        # mem0's own OpenAI embedder (it passes `dimensions` to the API when embedding_dims is set).
        return OpenAIEmbedding(
            BaseEmbedderConfig(
                model=OPENAI_EMBEDDING_MODEL,
                api_key=settings.openai_api_key.get_secret_value(),
                embedding_dims=OPENAI_EMBEDDING_DIMENSIONS,
            )
        )
    return Mem0LocalEmbedding(LocalEmbedder.load())


def build_async_memory(
    pool: ConnectionPool[Any], table: VectorTable, embedder: EmbeddingBase, llm: LLMBase
) -> AsyncMemory:
    """mem0's AsyncMemory on our pool, embedder and LLM.

    mem0 2.2 builds its LLM and embedder from provider names only, so it is configured with inert
    placeholders (an OpenAI client that is never called, pointing at a closed loopback port) that are
    replaced right away; construction makes no network call.
    """
    placeholder = {"api_key": "unused", "openai_base_url": "http://127.0.0.1:9/unused"}
    config = MemoryConfig(
        vector_store={
            "provider": "pgvector",
            "config": {
                "collection_name": table.name,
                "embedding_model_dims": table.dimensions,
                "connection_pool": pool,
                "hnsw": True,
            },
        },
        llm={"provider": "openai", "config": placeholder},
        embedder={"provider": "openai", "config": {**placeholder, "embedding_dims": table.dimensions}},
        history_db_path=":memory:",
    )
    memory = AsyncMemory(config)
    memory.db.close()
    memory.db = _StatelessHistory()
    memory.embedding_model = embedder
    memory.llm = llm
    return memory


@asynccontextmanager
async def start_memory(
    settings: Settings, database_url: str, model: Runnable[LanguageModelInput, BaseMessage] | None
) -> AsyncIterator[MemoryService]:
    """The memory service; on exit mem0's loop, its threads and the pool are stopped.

    `model` is the LLM extraction uses (None in processes that run no worker: they only search and list).
    """
    table = _vector_table(settings)
    isolation = IsolatedLoop("mem0", settings.memory_threads)
    isolation.start()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(asyncio.to_thread, isolation.stop)
        embedder = await isolation.call(_build_embedder, settings)
        pool: ConnectionPool[Any] = ConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=settings.memory_threads,
            open=False,
            configure=_configure_connection,
            name="memory",
            check=ConnectionPool.check_connection,
            **psycopg_pool_options(settings.database_pool_timeout_seconds),
        )
        await isolation.call(lambda: pool.open(wait=True, timeout=settings.database_connect_timeout_seconds))
        stack.push_async_callback(isolation.call, pool.close)
        await isolation.call(ensure_schema, pool, table)
        # The model call itself is bounded by LLM_DEADLINE_SECONDS once it starts; on the embedded model it first
        # waits for chat to go quiet (llm/priority.py), which under steady chat can take long: bound only that.
        llm: LLMBase = (
            LangChainExtractionLLM(model, asyncio.get_running_loop(), timeout=BACKGROUND_WAIT_SECONDS)
            if model is not None
            else _NoExtractionLLM()
        )
        memory = await isolation.call(build_async_memory, pool, table, embedder, llm)
        if isinstance(llm, LangChainExtractionLLM):
            # A thread still blocked on the model would otherwise hold up process exit.
            stack.callback(llm.cancel_pending)
        log.info("memory.started", table=table.name, embedding_provider=settings.embedding_provider)
        yield MemoryService(memory, MemoryStore(pool, table), settings, isolation)


class _NoExtractionLLM(LLMBase):  # type: ignore[misc]
    """The LLM of a process that runs no worker: extraction happens elsewhere, so it is never called."""

    def __init__(self) -> None:
        super().__init__(BaseLlmConfig())

    def generate_response(self, messages: list[dict[str, str]], *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("memory extraction runs in workers; this process has no model for it")
