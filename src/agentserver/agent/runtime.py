"""The agent's long-lived parts, built once in the app lifespan: checkpointer, HTTP client, tools, graph.

A process that runs no worker (API only) builds the same graph without a model: it reads conversations
(state, history) and validates approval decisions, but never executes a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import structlog
from langchain_core.tools import BaseTool
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph.state import CompiledStateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from agentserver.agent.graph import AgentDeps, ChatModel, build_graph
from agentserver.agent.tools import build_tools
from agentserver.agent.tools.weather import OpenMeteo
from agentserver.agent.tools.web_search import DuckDuckGoSearch, SearchBackend, SearxngSearch
from agentserver.cache import ResponseCache
from agentserver.config import LLMProvider, Settings
from agentserver.kit.db import libpq_url, psycopg_pool_options
from agentserver.llm import registry
from agentserver.llm.service import LLMService

log = structlog.get_logger(__name__)

_CHECKPOINT_SETUP_LOCK = 7_312_004_202  # pg_advisory_lock key (memory/backend.py uses ...201)

# Room kept free in the model's context for the system prompt, memory and the answer.
CONTEXT_RESERVE_TOKENS = 2048
# Conservative: Korean and code run well under 4 characters per token.
CHARS_PER_TOKEN = 2


@dataclass(frozen=True)
class AgentRuntime:
    graph: CompiledStateGraph[Any, Any, Any, Any]
    checkpointer: AsyncPostgresSaver
    tools: Sequence[BaseTool]

    def validate_args(self, tool_name: str, args: dict[str, Any]) -> None:
        """Raise (ValueError, pydantic ValidationError) unless `args` are valid arguments of the tool."""
        tool = next((t for t in self.tools if t.name == tool_name), None)
        if tool is None:
            raise ValueError(f"unknown tool {tool_name!r}")
        schema = tool.args_schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            schema.model_validate(args)


def _no_model(*_: Any) -> ChatModel:
    raise RuntimeError("this process runs no worker: it has no model to execute runs with")


@asynccontextmanager
async def _one_at_a_time(url: str, key: int) -> AsyncIterator[None]:
    """Hold a PostgreSQL advisory lock, on a connection of its own (the work inside uses the pool)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
            if row and row[0]:
                break
            await asyncio.sleep(0.2)
        yield


def history_budget_chars(settings: Settings, model: str) -> int:
    info = registry.lookup(model)
    window = info.context_window if info else 8192
    if info is not None and info.provider is LLMProvider.local:
        window = min(window, settings.local_model_context)
    return max(4000, (window - CONTEXT_RESERVE_TOKENS) * CHARS_PER_TOKEN)


def search_backend(settings: Settings, http: httpx.AsyncClient) -> SearchBackend | None:
    if settings.search_provider == "searxng":
        if not settings.searxng_url:
            raise ValueError("SEARCH_PROVIDER=searxng needs SEARXNG_URL")
        return SearxngSearch(settings.searxng_url, http)
    if settings.search_provider == "duckduckgo":
        return DuckDuckGoSearch()
    return None


async def open_agent(
    settings: Settings,
    database_url: str,
    llm: LLMService | None,
    stack: AsyncExitStack,
    *,
    cache: ResponseCache | None = None,
    extra_tools: Sequence[BaseTool] = (),
) -> AgentRuntime:
    # LangGraph's checkpointer speaks psycopg; its connections need autocommit and no prepared statements.
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        libpq_url(database_url),
        min_size=1,
        max_size=settings.database_pool_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
        name="checkpoints",
        check=AsyncConnectionPool.check_connection,
        **psycopg_pool_options(settings.database_pool_timeout_seconds),
    )
    await pool.open(wait=True, timeout=settings.database_connect_timeout_seconds)
    stack.push_async_callback(pool.close)
    checkpointer = AsyncPostgresSaver(pool)
    # Idempotent table set-up, once per process start (never per request). Processes starting together
    # (replicas, workers) take turns: LangGraph's migrations are not safe to run concurrently. The lock is
    # polled, not waited for: a waiting statement is an open transaction, and the migrations' CREATE INDEX
    # CONCURRENTLY would wait for it while it waits for the lock.
    async with _one_at_a_time(libpq_url(database_url), _CHECKPOINT_SETUP_LOCK):
        await checkpointer.setup()

    http = httpx.AsyncClient(timeout=10.0, headers={"User-Agent": "agentserver"}, follow_redirects=False)
    stack.push_async_callback(http.aclose)
    tools = build_tools(search=search_backend(settings, http), weather=OpenMeteo(http), extra=extra_tools)
    model_name = llm.default_model if llm is not None else ""
    unknown = set(settings.tools_requiring_approval) - {t.name for t in tools}
    if unknown:
        log.warning("agent.unknown_approval_tools", tools=sorted(unknown))
    deps = AgentDeps(
        chat_model=llm.chat_model if llm is not None else _no_model,
        summary_model=llm.cheap_model if llm is not None else _no_model,
        tools=tools,
        max_tool_rounds=settings.max_tool_rounds,
        summary_after_turns=settings.summary_after_turns,
        max_history_chars=history_budget_chars(settings, model_name) if llm is not None else 24_000,
        approval_tools=frozenset(settings.tools_requiring_approval),
        cache=cache,
        model_name=model_name,
        context_in_place=llm is None or llm.provider is not LLMProvider.anthropic,
    )
    log.info("agent.ready", tools=[t.name for t in tools], model=model_name or None)
    return AgentRuntime(graph=build_graph(deps, checkpointer), checkpointer=checkpointer, tools=tools)
