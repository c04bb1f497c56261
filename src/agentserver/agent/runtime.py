"""The agent's long-lived parts, built once in the app lifespan: checkpointer, HTTP client, tools, graph.

A process that runs no worker (API only) builds the same graph without a model: it reads conversations
(state, history) and validates approval decisions, but never executes a run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
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

from agentserver.agent.assistants import (
    BUILTIN_TOOLS,
    Assistant,
    AssistantCatalog,
    AssistantsFile,
    load_assistants_file,
    tools_of,
)
from agentserver.agent.graph import AgentDeps, ChatModel, build_graph
from agentserver.agent.mcp import McpTools
from agentserver.agent.prompts import with_instructions
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
class AssistantAgent:
    """An assistant, ready to run: its compiled graph and what the executor needs to know of it."""

    assistant: Assistant
    graph: CompiledStateGraph[Any, Any, Any, Any]
    tools: tuple[str, ...]

    @property
    def memory(self) -> bool:
        return self.assistant.spec.memory


class AgentGraphs:
    """Compiled graphs per assistant: the deployment's built once, users' kept per (id, version) in a
    bounded LRU (an edit bumps the version, so a stale graph is never used and ages out)."""

    def __init__(
        self,
        *,
        settings: Settings,
        llm: LLMService | None,
        checkpointer: AsyncPostgresSaver,
        tools: Sequence[BaseTool],
        catalog: AssistantCatalog,
        cache: ResponseCache | None,
    ) -> None:
        self.settings = settings
        self.llm = llm
        self.checkpointer = checkpointer
        self.tools = {tool.name: tool for tool in tools}
        self.catalog = catalog
        self.cache = cache
        self._deployment = {a.id: self._build(a) for a in catalog.assistants}
        self._users: OrderedDict[tuple[uuid.UUID, int], AssistantAgent] = OrderedDict()
        self._size = settings.assistant_graph_cache_size

    @property
    def default(self) -> AssistantAgent:
        return self._deployment[self.catalog.default.id]

    def cached(self, assistant_id: uuid.UUID | None, version: int | None) -> AssistantAgent | None:
        """The agent for a session bound to `assistant_id` (at `version` for a user's), if no read is needed."""
        if assistant_id is None:
            return self.default
        if (found := self._deployment.get(assistant_id)) is not None:
            return found
        if version is None:
            return None
        agent = self._users.get((assistant_id, version))
        if agent is not None:
            self._users.move_to_end((assistant_id, version))
        return agent

    async def get(self, assistant: Assistant) -> AssistantAgent:
        """The assistant's agent; a user's is compiled on first use of its version (~13 ms of CPU: in a
        thread, so the event loop keeps serving other turns meanwhile)."""
        if (found := self._deployment.get(assistant.id)) is not None:
            return found
        key = assistant.cache_key
        agent = self._users.get(key)
        if agent is None:
            built = await asyncio.to_thread(self._build, assistant)
            # Another run may have built it meanwhile: either copy is good, keep the first.
            agent = self._users.setdefault(key, built)
            while len(self._users) > self._size:
                self._users.popitem(last=False)
        self._users.move_to_end(key)
        return agent

    def _build(self, assistant: Assistant) -> AssistantAgent:
        spec, settings, llm = assistant.spec, self.settings, self.llm
        tools = [self.tools[name] for name in tools_of(spec, list(self.tools))]
        approval = spec.approval if spec.approval is not None else settings.tools_requiring_approval
        models = [spec.model, *spec.fallback_models] if spec.model else None
        model_name = (spec.model or llm.default_model) if llm is not None else ""

        def chat_model(bound: Sequence[BaseTool]) -> ChatModel:
            if llm is None:
                return _no_model()
            return llm.chat_model(bound, models=models)

        deps = AgentDeps(
            chat_model=chat_model,
            summary_model=llm.cheap_model if llm is not None else _no_model,
            tools=tools,
            max_tool_rounds=settings.max_tool_rounds,
            summary_after_turns=spec.summary_after_turns or settings.summary_after_turns,
            max_history_chars=history_budget_chars(settings, model_name) if llm is not None else 24_000,
            approval_tools=frozenset(approval),
            cache=self.cache,
            model_name=model_name,
            context_in_place=llm is None or llm.provider is not LLMProvider.anthropic,
            instructions=with_instructions(spec.instructions),
        )
        return AssistantAgent(assistant, build_graph(deps, self.checkpointer), tuple(t.name for t in tools))


@dataclass(frozen=True)
class AgentRuntime:
    graph: CompiledStateGraph[Any, Any, Any, Any]  # the default assistant's (reading any session's state)
    checkpointer: AsyncPostgresSaver
    tools: Sequence[BaseTool]  # every tool the process has (built-in and MCP)
    catalog: AssistantCatalog
    graphs: AgentGraphs
    model_names: tuple[str, ...] = ()  # the deployment's models (what assistants may name); () unknown
    mcp: McpTools | None = None  # the MCP servers that started, and their tools

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
    config: AssistantsFile | None = None,
    extra_tools: Sequence[BaseTool] = (),
) -> AgentRuntime:
    """The checkpointer, the tools (built-in and MCP) and a compiled graph per assistant.

    `config`: the assistants file as loaded (`load_assistants_file`, at start-up, before anything opens)."""
    config = config or load_assistants_file(settings.assistants_file)
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
    # `extra_tools`: tools of other domains (documents' search_documents), built there.
    tools = build_tools(search=search_backend(settings, http), weather=OpenMeteo(http), extra=extra_tools)
    mcp = await McpTools.open(
        config.mcp_servers,
        stack,
        start_timeout_seconds=settings.mcp_start_timeout_seconds,
        call_timeout_seconds=settings.mcp_tool_timeout_seconds,
        max_result_chars=settings.mcp_max_result_chars,
    )
    tools.extend(mcp.tools.values())
    names = [t.name for t in tools]
    user_tools = settings.user_assistant_tools or [*BUILTIN_TOOLS, *mcp.tools]
    catalog = AssistantCatalog(config, user_tools=user_tools)
    _warn_unknown_tools(catalog, settings, names, llm)
    graphs = AgentGraphs(
        settings=settings, llm=llm, checkpointer=checkpointer, tools=tools, catalog=catalog, cache=cache
    )
    log.info(
        "agent.ready",
        tools=names,
        assistants=[a.name for a in catalog.assistants],
        model=llm.default_model if llm is not None else None,
    )
    return AgentRuntime(
        graph=graphs.default.graph,
        checkpointer=checkpointer,
        tools=tools,
        catalog=catalog,
        graphs=graphs,
        model_names=tuple(llm.model_names) if llm is not None else _configured_models(settings),
        mcp=mcp,
    )


def _configured_models(settings: Settings) -> tuple[str, ...]:
    """An API-only process starts no model: the configured names are what it knows."""
    if not settings.default_model:
        return ()
    return (settings.default_model, *settings.fallback_models)


def _warn_unknown_tools(
    catalog: AssistantCatalog, settings: Settings, names: list[str], llm: LLMService | None
) -> None:
    """Tools or models an assistant names that this process lacks (an MCP server down, search off): logged,
    not fatal, since the assistant still works with the rest."""
    unknown = set(settings.tools_requiring_approval) - set(names)
    if unknown:
        log.warning("agent.unknown_approval_tools", tools=sorted(unknown))
    for assistant in catalog.assistants:
        spec = assistant.spec
        missing = set(spec.tools or ()) - set(names)
        if missing:
            log.warning("agent.assistant_tools_unavailable", assistant=assistant.name, tools=sorted(missing))
        if llm is not None:
            models = {m for m in (spec.model, *spec.fallback_models) if m} - set(llm.model_names)
            if models:
                log.warning("agent.assistant_models_unconfigured", assistant=assistant.name, models=sorted(models))
