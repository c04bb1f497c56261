"""The LangGraph Agent Server API (what `langgraph-sdk`, `RemoteGraph` and LangGraph UIs use for chat), at
the server's root: `/info`, `/assistants/*`, `/threads/*`, `/threads/{id}/runs/*`, `/runs/stream|wait`.

Threads are chat sessions and runs are runs, so a conversation started here is the same one the chat API
and the web UI show. Auth: `x-api-key: <API key>` (the SDK's `api_key`) or `Authorization: Bearer`.
Another user's thread or run does not exist (404). Errors keep agentserver's `{"error", "detail"}` shape
(the SDK reads `detail`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from langgraph.version import __version__ as langgraph_version

from agentserver.agent.assistants import Assistant, list_assistants
from agentserver.agent.runtime import AgentRuntime
from agentserver.agent_protocol import run_endpoints, thread_endpoints
from agentserver.agent_protocol.schemas import AssistantCount, AssistantRead, AssistantSearch, GraphSchemas, Info
from agentserver.agent_protocol.service import agent_runs
from agentserver.agent_protocol.threads import Graph
from agentserver.assistants.errors import AssistantNotFound
from agentserver.auth.dependencies import CurrentUser
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.models import User
from agentserver.runs.dependencies import AgentDep

router = APIRouter(tags=["agent server"], responses={401: Unauthorized.schema()})


# --- meta ---------------------------------------------------------------------------------------------
@router.get("/info", summary="Server information (no authentication)", response_model=Info, responses={})
async def info() -> Info:
    return Info(
        version="0.1.0",
        langgraph_py_version=langgraph_version,
        flags={"assistants": True, "crons": False, "langsmith": False, "langsmith_tracing_replicas": False},
    )


# --- assistants -----------------------------------------------------------------------------------------
def _assistant_read(assistant: Assistant) -> AssistantRead:
    return AssistantRead(
        assistant_id=str(assistant.id),
        graph_id=assistant.graph_id,
        name=assistant.name,
        description=assistant.description,
        config={},
        context={},
        metadata=assistant.metadata,
        version=assistant.version,
        created_at=assistant.created_at,
        updated_at=assistant.updated_at,
    )


def _matches(assistant: Assistant, metadata: dict[str, Any] | None, graph_id: str | None, name: str | None) -> bool:
    if graph_id is not None and assistant.graph_id != graph_id:
        return False
    if name is not None and name.lower() not in assistant.name.lower():
        return False
    return all(assistant.metadata.get(key) == value for key, value in (metadata or {}).items())


@router.post("/assistants/search", summary="The caller's assistants")
async def search_assistants(
    body: AssistantSearch, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> list[AssistantRead]:
    listed = await list_assistants(agent.catalog, session, user.id)
    found = [a for a in listed if _matches(a, body.metadata, body.graph_id, body.name)]
    return [_assistant_read(a) for a in found[body.offset : body.offset + body.limit]]


@router.post("/assistants/count", summary="How many assistants match")
async def count_assistants(body: AssistantCount, user: CurrentUser, session: SessionDep, agent: AgentDep) -> int:
    listed = await list_assistants(agent.catalog, session, user.id)
    return sum(_matches(a, body.metadata, body.graph_id, body.name) for a in listed)


async def _assistant(session: Any, agent: AgentRuntime, user: User, assistant_id: str) -> Assistant:
    return await agent_runs.assistant(agent.catalog, session, user.id, assistant_id)


@router.get("/assistants/{assistant_id}", summary="One assistant", responses={404: AssistantNotFound.schema()})
async def get_assistant(assistant_id: str, user: CurrentUser, session: SessionDep, agent: AgentDep) -> AssistantRead:
    return _assistant_read(await _assistant(session, agent, user, assistant_id[:256]))


@lru_cache(maxsize=4)
def _graph_json(graph: Graph, xray: bool) -> dict[str, Any]:
    drawn: dict[str, Any] = graph.get_graph(xray=xray).to_json()
    return drawn


@router.get(
    "/assistants/{assistant_id}/graph",
    summary="The assistant's graph (nodes and edges)",
    responses={404: AssistantNotFound.schema()},
)
async def get_assistant_graph(
    assistant_id: str, user: CurrentUser, session: SessionDep, agent: AgentDep, xray: bool = False
) -> dict[str, Any]:
    await _assistant(session, agent, user, assistant_id[:256])
    return _graph_json(agent.graph, xray)


@lru_cache(maxsize=4)
def _schemas(graph: Graph, graph_id: str) -> GraphSchemas:
    def schema(make: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        try:
            return make()
        except Exception:
            return None  # LangGraph's servers answer null for a schema that cannot be drawn, too

    state = schema(graph.get_output_jsonschema)
    return GraphSchemas(
        graph_id=graph_id,
        input_schema=schema(graph.get_input_jsonschema),
        output_schema=state,
        state_schema=state,
        config_schema=None,
        context_schema=schema(graph.get_context_jsonschema),
    )


@router.get(
    "/assistants/{assistant_id}/schemas",
    summary="The JSON schemas of the assistant's graph",
    responses={404: AssistantNotFound.schema()},
)
async def get_assistant_schemas(
    assistant_id: str, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> GraphSchemas:
    assistant = await _assistant(session, agent, user, assistant_id[:256])
    return _schemas(agent.graph, assistant.graph_id)


router.include_router(thread_endpoints.router)
router.include_router(run_endpoints.router)
