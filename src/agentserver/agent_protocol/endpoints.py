"""The LangGraph Agent Server API (what `langgraph-sdk`, `RemoteGraph` and LangGraph UIs use for chat), at
the server's root: `/info`, `/assistants/*`, `/threads/*`, `/threads/{id}/runs/*`, `/runs/stream|wait`.

Threads are chat sessions and runs are runs, so a conversation started here is the same one the chat API
and the web UI show. Auth: `x-api-key: <API key>` (the SDK's `api_key`) or `Authorization: Bearer`.
Another user's thread or run does not exist (404). Errors keep agentserver's `{"error", "detail"}` shape
(the SDK reads `detail`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from langgraph.version import __version__ as langgraph_version

from agentserver.agent.assistants import Assistant, assistant_of_session, list_assistants
from agentserver.agent_protocol.schemas import (
    AssistantCount,
    AssistantRead,
    AssistantSearch,
    GraphSchemas,
    HistoryRequest,
    Info,
    RunCreate,
    RunRead,
    StateCheckpointRequest,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadRead,
    ThreadSearch,
    ThreadState,
)
from agentserver.agent_protocol.service import (
    AssistantNotFound,
    InvalidRunInput,
    RunNotFoundInThread,
    Started,
    UnsupportedRunOption,
    agent_runs,
    run_read,
)
from agentserver.agent_protocol.stream import KEEP_ALIVE, StreamFrames, log_modes, sse
from agentserver.agent_protocol.threads import (
    Graph,
    ThreadExists,
    ThreadNotFound,
    ThreadRepository,
    ThreadRow,
    history,
    snapshot,
    thread_read,
    thread_state,
)
from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.auth.limits import rate_limit_user_chat
from agentserver.kit.db import SessionDep, SessionmakerDep, session_scope
from agentserver.kit.errors import Unauthorized
from agentserver.models import RunStatus, User
from agentserver.observability.metrics import ACTIVE_STREAMS
from agentserver.runs.dependencies import AgentDep, EventLogDep, RunStreamsDep, TasksDep
from agentserver.runs.errors import RunAlreadyFinished, TurnInProgress
from agentserver.runs.service import runs as runs_service
from agentserver.runs.streaming import RunStreams
from agentserver.runs.transport import SSE_HEADERS, parse_last_event_id
from agentserver.sessions.service import SessionDeletionHook, SessionNotFound
from agentserver.sessions.service import chat_session as chat_session_service

log = structlog.get_logger(__name__)
router = APIRouter(tags=["agent server"], responses={401: Unauthorized.schema()})

SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "LangGraph stream frames (`metadata`, `values`, `updates`, `messages`, `messages/partial`, "
        "`error`, ...), each `event:` + one JSON `data:` line, with `id:` for `Last-Event-ID`",
    }
}
WAIT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "The thread's values after the run (`__interrupt__` when it paused for a decision, "
        "`__error__` when it failed); whitespace keeps the connection alive until then",
    }
}
RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    404: ThreadNotFound.schema(),
    409: TurnInProgress.schema(),
    422: InvalidRunInput.schema(),
}
KNOWN_MODES = frozenset(
    {"values", "messages", "messages-tuple", "updates", "events", "tasks", "checkpoints", "debug", "custom"}
)
SEARCH_STATE_READS = 4
# A run started elsewhere (the chat API) recorded no stream-mode events: what its chat events can tell.
DEFAULT_JOIN_MODES = ("values", "updates", "messages-tuple")


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
        version=1,
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
async def search_assistants(body: AssistantSearch, user: CurrentUser, session: SessionDep) -> list[AssistantRead]:
    found = [a for a in await list_assistants(session, user.id) if _matches(a, body.metadata, body.graph_id, body.name)]
    return [_assistant_read(a) for a in found[body.offset : body.offset + body.limit]]


@router.post("/assistants/count", summary="How many assistants match")
async def count_assistants(body: AssistantCount, user: CurrentUser, session: SessionDep) -> int:
    return sum(_matches(a, body.metadata, body.graph_id, body.name) for a in await list_assistants(session, user.id))


async def _assistant(session: Any, user: User, assistant_id: str) -> Assistant:
    return await agent_runs.assistant(session, user.id, assistant_id)


@router.get("/assistants/{assistant_id}", summary="One assistant", responses={404: AssistantNotFound.schema()})
async def get_assistant(assistant_id: str, user: CurrentUser, session: SessionDep) -> AssistantRead:
    return _assistant_read(await _assistant(session, user, assistant_id[:256]))


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
    await _assistant(session, user, assistant_id[:256])
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
    assistant = await _assistant(session, user, assistant_id[:256])
    return _schemas(agent.graph, assistant.graph_id)


# --- threads ----------------------------------------------------------------------------------------------
async def _owned_thread(session: Any, user: User, thread_id: uuid.UUID) -> Any:
    row = await ThreadRepository.from_session(session).get(user.id, thread_id)
    if row is None:
        raise ThreadNotFound()
    return row


@router.post(
    "/threads",
    summary="Create a thread (a chat session)",
    responses={409: ThreadExists.schema(), 422: UnsupportedRunOption.schema()},
)
async def create_thread(body: ThreadCreate, user: CurrentUser, session: SessionDep) -> ThreadRead:
    if body.supersteps:
        raise UnsupportedRunOption("supersteps: threads start empty (clients cannot write state)")
    threads = ThreadRepository.from_session(session)
    thread_id = body.thread_id or uuid.uuid4()
    if not await threads.create(user.id, thread_id, body.metadata or {}):
        existing = await threads.get(user.id, thread_id)
        # Another user's thread is not found either way; the caller's own is theirs to get back.
        if existing is None or body.if_exists == "raise":
            raise ThreadExists()
        return thread_read(existing, None)
    row = await threads.get(user.id, thread_id)
    assert row is not None
    return thread_read(row, None)


@router.post(
    "/threads/search", summary="The caller's threads, filtered", responses={422: UnsupportedRunOption.schema()}
)
async def search_threads(
    body: ThreadSearch, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> list[ThreadRead]:
    if body.values:
        raise UnsupportedRunOption("values: filtering threads by state values is not supported")
    rows = await ThreadRepository.from_session(session).search(
        user.id,
        metadata=body.metadata,
        ids=body.ids,
        status=body.status,
        sort_by=body.sort_by,
        descending=body.sort_order == "desc",
        limit=body.limit,
        offset=body.offset,
    )
    if body.select is not None and "values" not in body.select and "interrupts" not in body.select:
        return [thread_read(row, None) for row in rows]
    # One checkpoint read per thread, a few at a time: a long page must not take the checkpointer's pool.
    slots = asyncio.Semaphore(SEARCH_STATE_READS)

    async def read(row: ThreadRow) -> ThreadRead:
        async with slots:
            return thread_read(row, await snapshot(agent.graph, row.id))

    return list(await asyncio.gather(*(read(row) for row in rows)))


@router.post(
    "/threads/count", summary="How many of the caller's threads match", responses={422: UnsupportedRunOption.schema()}
)
async def count_threads(body: ThreadCount, user: CurrentUser, session: SessionDep) -> int:
    if body.values:
        raise UnsupportedRunOption("values: filtering threads by state values is not supported")
    return await ThreadRepository.from_session(session).count(user.id, metadata=body.metadata, status=body.status)


@router.get("/threads/{thread_id}", summary="One thread", responses={404: ThreadNotFound.schema()})
async def get_thread(thread_id: uuid.UUID, user: CurrentUser, session: SessionDep, agent: AgentDep) -> ThreadRead:
    row = await _owned_thread(session, user, thread_id)
    return thread_read(row, await snapshot(agent.graph, thread_id))


@router.patch("/threads/{thread_id}", summary="Merge metadata into a thread", responses={404: ThreadNotFound.schema()})
async def patch_thread(
    thread_id: uuid.UUID, body: ThreadPatch, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> ThreadRead:
    threads = ThreadRepository.from_session(session)
    if not await threads.merge_metadata(user.id, thread_id, body.metadata):
        raise ThreadNotFound()
    row = await _owned_thread(session, user, thread_id)
    return thread_read(row, await snapshot(agent.graph, thread_id))


@router.delete(
    "/threads/{thread_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a thread: the session, its messages, runs and checkpoints",
    responses={404: ThreadNotFound.schema()},
)
async def delete_thread(thread_id: uuid.UUID, user: CurrentUser, session: SessionDep, request: Request) -> Response:
    hooks: list[SessionDeletionHook] = request.state.session_deletion_hooks
    try:
        await chat_session_service.delete(session, user, thread_id, on_delete=hooks)
    except SessionNotFound:
        raise ThreadNotFound() from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/threads/{thread_id}/state", summary="The thread's current state", responses={404: ThreadNotFound.schema()}
)
async def get_thread_state(
    thread_id: uuid.UUID, user: CurrentUser, session: SessionDep, agent: AgentDep, subgraphs: bool = False
) -> ThreadState:
    await _owned_thread(session, user, thread_id)
    return thread_state(await snapshot(agent.graph, thread_id), thread_id)


@router.get(
    "/threads/{thread_id}/state/{checkpoint_id}",
    summary="The thread's state at a checkpoint",
    responses={404: ThreadNotFound.schema()},
)
async def get_thread_state_at(
    thread_id: uuid.UUID,
    checkpoint_id: Annotated[str, "checkpoint id"],
    user: CurrentUser,
    session: SessionDep,
    agent: AgentDep,
    subgraphs: bool = False,
) -> ThreadState:
    await _owned_thread(session, user, thread_id)
    return thread_state(await snapshot(agent.graph, thread_id, {"checkpoint_id": checkpoint_id[:64]}), thread_id)


@router.post(
    "/threads/{thread_id}/state/checkpoint",
    summary="The thread's state at a checkpoint",
    responses={404: ThreadNotFound.schema()},
)
async def post_thread_state_at(
    thread_id: uuid.UUID, body: StateCheckpointRequest, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> ThreadState:
    await _owned_thread(session, user, thread_id)
    return thread_state(await snapshot(agent.graph, thread_id, body.checkpoint.model_dump()), thread_id)


@router.post(
    "/threads/{thread_id}/history",
    summary="The thread's past states, newest first",
    responses={404: ThreadNotFound.schema()},
)
async def thread_history(
    thread_id: uuid.UUID, body: HistoryRequest, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> list[ThreadState]:
    await _owned_thread(session, user, thread_id)
    before = (
        {"checkpoint_id": body.before}
        if isinstance(body.before, str)
        else (body.before.model_dump() if body.before is not None else None)
    )
    return await history(
        agent.graph,
        thread_id,
        limit=body.limit,
        before=before,
        metadata=body.metadata,
        checkpoint=body.checkpoint.model_dump() if body.checkpoint else None,
    )


@router.get(
    "/threads/{thread_id}/history",
    summary="The thread's past states, newest first",
    responses={404: ThreadNotFound.schema()},
)
async def thread_history_get(
    thread_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    agent: AgentDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> list[ThreadState]:
    await _owned_thread(session, user, thread_id)
    return await history(
        agent.graph,
        thread_id,
        limit=limit,
        before={"checkpoint_id": before} if before else None,
        metadata=None,
        checkpoint=None,
    )


# --- runs ---------------------------------------------------------------------------------------------------
def _requested_modes(values: list[str] | None, fallback: tuple[str, ...]) -> frozenset[str]:
    modes = frozenset(v for v in values or () if v in KNOWN_MODES)
    return modes or frozenset(fallback)


def _run_headers(started: Started, *, stateless: bool) -> dict[str, str]:
    if stateless:
        return {"Content-Location": f"/runs/{started.run_id}"}
    base = f"/threads/{started.thread_id}/runs/{started.run_id}"
    return {"Content-Location": base, "Location": f"{base}/stream"}


def _sse_body(
    streams: RunStreams,
    run_id: uuid.UUID,
    frames: StreamFrames,
    *,
    after: int,
    fresh: bool,
    opening: bool,
    on_end: Callable[[bool], None] | None = None,
) -> AsyncIterator[str]:
    """The run's events from `after` as LangGraph frames; `on_end(finished)` runs when the stream stops."""

    async def body() -> AsyncIterator[str]:
        ACTIVE_STREAMS.labels(transport="sse").inc()
        finished = False
        try:
            if opening:
                for name, data in frames.start():
                    yield sse(name, data)
            async for event in streams.follow(run_id, after, fresh=fresh):
                if event is None:
                    yield KEEP_ALIVE
                    continue
                built = frames.frames(event)
                for index, (name, data) in enumerate(built):
                    yield sse(name, data, event.seq if index == len(built) - 1 else None)
                if event.terminal:
                    finished = True
                    return
        finally:
            ACTIVE_STREAMS.labels(transport="sse").dec()
            if on_end is not None:
                on_end(finished)

    return body()


async def _start(
    request: Request,
    user: User,
    settings: Any,
    sessionmaker: Any,
    event_log: Any,
    agent: Any,
    thread_id: uuid.UUID | None,
    body: RunCreate,
    modes: list[str],
) -> Started:
    structlog.contextvars.bind_contextvars(session_id=str(thread_id) if thread_id else None)
    return await agent_runs.start(
        sessionmaker,
        event_log,
        settings,
        user_id=user.id,
        thread_id=thread_id,
        body=body,
        stream_modes=modes,
        validate_args=agent.validate_args,
    )


def _stateless_cleanup(
    tasks: Any, streams: RunStreams, sessionmaker: Any, request: Request, user: User, started: Started
) -> Callable[[], None]:
    """Delete a stateless run's session once the run has ended (LangGraph's `on_completion: delete`)."""
    hooks: list[SessionDeletionHook] = request.state.session_deletion_hooks

    async def delete_when_done() -> None:
        async for event in streams.follow(started.run_id, 0):
            if event is not None and event.terminal:
                break
        async with session_scope(sessionmaker) as db:
            try:
                await chat_session_service.delete(db, user, started.thread_id, on_delete=hooks)
            except SessionNotFound:
                pass  # deleted already

    def spawn() -> None:
        tasks.spawn(delete_when_done(), name=f"stateless-{started.run_id}")

    return spawn


async def _create_and_stream(
    request: Request,
    thread_id: uuid.UUID | None,
    body: RunCreate,
    user: User,
    settings: Any,
    sessionmaker: Any,
    event_log: Any,
    streams: RunStreams,
    tasks: Any,
    agent: Any,
) -> StreamingResponse:
    asked = _requested_modes(body.modes(), ("values",))
    started = await _start(request, user, settings, sessionmaker, event_log, agent, thread_id, body, log_modes(asked))
    frames = StreamFrames.for_modes(asked, str(started.run_id), str(started.thread_id))
    cleanup = (
        _stateless_cleanup(tasks, streams, sessionmaker, request, user, started)
        if thread_id is None and body.on_completion != "keep"
        else None
    )

    def on_end(finished: bool) -> None:
        if not finished and body.on_disconnect == "cancel":
            tasks.spawn(
                runs_service.cancel_quietly(sessionmaker, event_log, user_id=user.id, run_id=started.run_id),
                name=f"cancel-{started.run_id}",
            )
        if cleanup is not None:
            cleanup()

    stream = _sse_body(
        streams,
        started.run_id,
        frames,
        after=started.after,
        fresh=started.fresh,
        opening=not started.fresh,
        on_end=on_end,
    )
    headers = {**SSE_HEADERS, **_run_headers(started, stateless=thread_id is None)}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _wait_body(
    streams: RunStreams,
    agent: Any,
    started: Started,
    on_end: Callable[[], None] | None = None,
) -> AsyncIterator[str]:
    """Whitespace while the run goes on (JSON parsers skip it), then the outcome as JSON."""

    async def body() -> AsyncIterator[str]:
        try:
            ending = None
            async for event in streams.follow(started.run_id, started.after, fresh=started.fresh):
                if event is None:
                    yield "\n"
                    continue
                if event.terminal:
                    ending = event
                    break
            yield json.dumps(await agent_runs.outcome(agent, started.thread_id, ending), ensure_ascii=False)
        finally:
            if on_end is not None:
                on_end()

    return body()


STREAM_RUN: dict[int | str, dict[str, Any]] = {**SSE_RESPONSE, **RUN_ERRORS}


@router.post(
    "/threads/{thread_id}/runs/stream",
    summary="Start a run on the thread (or resume its paused one) and stream it",
    response_class=StreamingResponse,
    dependencies=[Depends(rate_limit_user_chat)],
    responses=STREAM_RUN,
)
async def stream_thread_run(
    thread_id: uuid.UUID,
    body: RunCreate,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
    agent: AgentDep,
) -> StreamingResponse:
    return await _create_and_stream(
        request, thread_id, body, user, settings, sessionmaker, event_log, streams, tasks, agent
    )


@router.post(
    "/runs/stream",
    summary="A stateless run, streamed (on a thread of its own, deleted afterwards unless on_completion=keep)",
    response_class=StreamingResponse,
    dependencies=[Depends(rate_limit_user_chat)],
    responses=STREAM_RUN,
)
async def stream_stateless_run(
    body: RunCreate,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
    agent: AgentDep,
) -> StreamingResponse:
    return await _create_and_stream(request, None, body, user, settings, sessionmaker, event_log, streams, tasks, agent)


async def _create_and_wait(
    request: Request,
    thread_id: uuid.UUID | None,
    body: RunCreate,
    user: User,
    settings: Any,
    sessionmaker: Any,
    event_log: Any,
    streams: RunStreams,
    tasks: Any,
    agent: Any,
) -> StreamingResponse:
    started = await _start(request, user, settings, sessionmaker, event_log, agent, thread_id, body, [])
    cleanup = (
        _stateless_cleanup(tasks, streams, sessionmaker, request, user, started)
        if thread_id is None and body.on_completion != "keep"
        else None
    )
    headers = _run_headers(started, stateless=thread_id is None)
    if thread_id is not None:
        headers["Location"] = f"/threads/{started.thread_id}/runs/{started.run_id}/join"
    return StreamingResponse(
        _wait_body(streams, agent, started, cleanup), media_type="application/json", headers=headers
    )


@router.post(
    "/threads/{thread_id}/runs/wait",
    summary="Start a run on the thread (or resume its paused one) and wait for the thread's values",
    dependencies=[Depends(rate_limit_user_chat)],
    response_class=StreamingResponse,
    responses={**WAIT_RESPONSE, **RUN_ERRORS},
)
async def wait_thread_run(
    thread_id: uuid.UUID,
    body: RunCreate,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
    agent: AgentDep,
) -> StreamingResponse:
    return await _create_and_wait(
        request, thread_id, body, user, settings, sessionmaker, event_log, streams, tasks, agent
    )


@router.post(
    "/runs/wait",
    summary="A stateless run: wait for its values (its thread is deleted afterwards unless on_completion=keep)",
    dependencies=[Depends(rate_limit_user_chat)],
    response_class=StreamingResponse,
    responses={**WAIT_RESPONSE, **RUN_ERRORS},
)
async def wait_stateless_run(
    body: RunCreate,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
    agent: AgentDep,
) -> StreamingResponse:
    return await _create_and_wait(request, None, body, user, settings, sessionmaker, event_log, streams, tasks, agent)


@router.post(
    "/threads/{thread_id}/runs",
    summary="Start a run on the thread in the background (or resume its paused one)",
    dependencies=[Depends(rate_limit_user_chat)],
    responses=RUN_ERRORS,
)
async def create_thread_run(
    thread_id: uuid.UUID,
    body: RunCreate,
    request: Request,
    response: Response,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    agent: AgentDep,
) -> RunRead:
    # A later /stream may ask for any mode: the log gets every stream-mode event.
    modes = log_modes({"values", "updates", "messages", "messages-tuple"})
    started = await _start(request, user, settings, sessionmaker, event_log, agent, thread_id, body, modes)
    response.headers.update(_run_headers(started, stateless=False))
    assert started.run is not None
    return run_read(started.run, started.assistant)


@router.get(
    "/threads/{thread_id}/runs", summary="The thread's runs, newest first", responses={404: ThreadNotFound.schema()}
)
async def list_thread_runs(
    thread_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    status_filter: Annotated[
        str | None,
        Query(alias="status", max_length=16, description="pending | running | success | error | interrupted"),
    ] = None,
) -> list[RunRead]:
    await _owned_thread(session, user, thread_id)
    assistant = await assistant_of_session(session, user.id, thread_id)
    runs = await ThreadRepository.from_session(session).runs(user.id, thread_id, limit=limit, offset=offset)
    listed = [run_read(run, assistant) for run in runs]
    return [run for run in listed if status_filter is None or run.status == status_filter]


@router.get(
    "/threads/{thread_id}/runs/{run_id}", summary="One run of the thread", responses={404: RunNotFoundInThread.schema()}
)
async def get_thread_run(thread_id: uuid.UUID, run_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> RunRead:
    run = await agent_runs.get(session, user_id=user.id, thread_id=thread_id, run_id=run_id)
    return run_read(run, await assistant_of_session(session, user.id, thread_id))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/join",
    summary="Wait for a run to end; the thread's values",
    response_class=StreamingResponse,
    responses={**WAIT_RESPONSE, 404: RunNotFoundInThread.schema()},
)
async def join_thread_run(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    user: CurrentUser,
    sessionmaker: SessionmakerDep,
    streams: RunStreamsDep,
    agent: AgentDep,
) -> StreamingResponse:
    async with session_scope(sessionmaker) as db:
        await agent_runs.get(db, user_id=user.id, thread_id=thread_id, run_id=run_id)
        assistant = await assistant_of_session(db, user.id, thread_id)
    started = Started(run_id, thread_id, assistant, fresh=False)
    return StreamingResponse(_wait_body(streams, agent, started), media_type="application/json")


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    summary="Follow a run's stream; `Last-Event-ID` resumes after that event",
    response_class=StreamingResponse,
    responses={**SSE_RESPONSE, 404: RunNotFoundInThread.schema()},
)
async def join_thread_run_stream(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    user: CurrentUser,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
    stream_mode: Annotated[list[Annotated[str, Query(max_length=32)]] | None, Query(max_length=16)] = None,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    async with session_scope(sessionmaker) as db:
        run = await agent_runs.get(db, user_id=user.id, thread_id=thread_id, run_id=run_id)
    recorded = run.stream_modes or []
    fallback = (
        tuple(
            mode
            for mode, needs in (("values", "values"), ("updates", "updates"), ("messages-tuple", "message"))
            if needs in recorded
        )
        or DEFAULT_JOIN_MODES
    )
    frames = StreamFrames.for_modes(_requested_modes(stream_mode, fallback), str(run_id), str(thread_id))

    def on_end(finished: bool) -> None:
        if not finished and cancel_on_disconnect:
            tasks.spawn(
                runs_service.cancel_quietly(sessionmaker, event_log, user_id=user.id, run_id=run_id),
                name=f"cancel-{run_id}",
            )

    after = parse_last_event_id(last_event_id)
    stream = _sse_body(streams, run_id, frames, after=after, fresh=False, opening=False, on_end=on_end)
    base = f"/threads/{thread_id}/runs/{run_id}"
    headers = {**SSE_HEADERS, "Content-Location": base, "Location": f"{base}/stream"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    summary="Stop a run (`action=rollback` also erases it); `wait=1` returns once it has stopped",
    responses={404: RunNotFoundInThread.schema(), 409: RunAlreadyFinished.schema()},
)
async def cancel_thread_run(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    user: CurrentUser,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    wait: bool = False,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> RunRead:
    async with session_scope(sessionmaker) as db:
        await agent_runs.get(db, user_id=user.id, thread_id=thread_id, run_id=run_id)
    run = await runs_service.cancel(
        sessionmaker, event_log, user_id=user.id, run_id=run_id, rollback=action == "rollback"
    )
    if wait and run.status is RunStatus.running:
        async for event in streams.follow(run_id, 0):
            if event is not None and event.terminal:
                break
    async with session_scope(sessionmaker) as db:
        run = await agent_runs.get(db, user_id=user.id, thread_id=thread_id, run_id=run_id)
        assistant = await assistant_of_session(db, user.id, thread_id)
    return run_read(run, assistant)
