"""The agent's long-lived parts, built once in the app lifespan: checkpointer, HTTP client, tools, graph."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph.state import CompiledStateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from agentserver.agent.graph import AgentDeps, build_graph
from agentserver.agent.tools import build_tools
from agentserver.agent.tools.weather import OpenMeteo
from agentserver.agent.tools.web_search import DuckDuckGoSearch, SearchBackend, SearxngSearch
from agentserver.auth.service import UserDeletion
from agentserver.config import LLMProvider, Settings
from agentserver.kit.db import libpq_url
from agentserver.llm import registry
from agentserver.llm.service import LLMService

log = structlog.get_logger(__name__)

# Room kept free in the model's context for the system prompt, memory and the answer.
CONTEXT_RESERVE_TOKENS = 2048
# Conservative: Korean and code run well under 4 characters per token.
CHARS_PER_TOKEN = 2


@dataclass(frozen=True)
class AgentRuntime:
    graph: CompiledStateGraph[Any, Any, Any, Any]
    checkpointer: AsyncPostgresSaver

    async def delete_thread(self, session_id: uuid.UUID) -> None:
        """Erase the checkpoints (the agent's copy of the conversation) of one chat session."""
        await self.checkpointer.adelete_thread(str(session_id))

    async def delete_threads(self, session_ids: Iterable[uuid.UUID]) -> None:
        for session_id in session_ids:
            await self.delete_thread(session_id)

    async def erase_user(self, deletion: UserDeletion) -> None:
        """User-deletion hook: the checkpoints of every session the user owned."""
        await self.delete_threads(deletion.session_ids)


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


async def open_agent(settings: Settings, database_url: str, llm: LLMService, stack: AsyncExitStack) -> AgentRuntime:
    # LangGraph's checkpointer speaks psycopg; its connections need autocommit and no prepared statements.
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        libpq_url(database_url),
        min_size=1,
        max_size=settings.database_pool_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True, timeout=settings.database_connect_timeout_seconds)
    stack.push_async_callback(pool.close)
    checkpointer = AsyncPostgresSaver(pool)
    # Idempotent table set-up, once per process start (never per request).
    await checkpointer.setup()

    http = httpx.AsyncClient(timeout=10.0, headers={"User-Agent": "agentserver"}, follow_redirects=False)
    stack.push_async_callback(http.aclose)
    tools = build_tools(search=search_backend(settings, http), weather=OpenMeteo(http))
    deps = AgentDeps(
        chat_model=llm.chat_model,
        summary_model=llm.cheap_model,
        tools=tools,
        max_tool_rounds=settings.max_tool_rounds,
        summary_after_turns=settings.summary_after_turns,
        max_history_chars=history_budget_chars(settings, llm.default_model),
        context_in_place=llm.provider is not LLMProvider.anthropic,
    )
    log.info("agent.ready", tools=[t.name for t in tools], model=llm.default_model)
    return AgentRuntime(graph=build_graph(deps, checkpointer), checkpointer=checkpointer)
