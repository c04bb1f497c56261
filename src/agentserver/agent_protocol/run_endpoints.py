"""Agent Server API runs: `/threads/{id}/runs` (background, `/stream`, `/wait`, get, list, `/join`, `/stream`
of a run, `/cancel`) and the stateless `/runs/stream`, `/runs/wait`. See service.py and stream.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.agent.assistants import assistant_of_session
from agentserver.agent.runtime import AgentRuntime
from agentserver.agent_protocol.schemas import RunCreate, RunRead
from agentserver.agent_protocol.service import InvalidRunInput, RunNotFoundInThread, Started, agent_runs, run_read
from agentserver.agent_protocol.stream import KEEP_ALIVE, StreamFrames, log_modes, sse
from agentserver.agent_protocol.threads import ThreadNotFound, ThreadRepository
from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.auth.limits import rate_limit_user_chat
from agentserver.config import Settings
from agentserver.kit.db import SessionDep, SessionmakerDep, session_scope
from agentserver.kit.errors import Unauthorized
from agentserver.kit.tasks import TaskSet
from agentserver.models import RunStatus, User
from agentserver.observability.metrics import ACTIVE_STREAMS
from agentserver.runs.dependencies import AgentDep, EventLogDep, RunStreamsDep, TasksDep
from agentserver.runs.errors import RunAlreadyFinished, TurnInProgress
from agentserver.runs.eventlog import EventLog
from agentserver.runs.service import runs as runs_service
from agentserver.runs.streaming import RunStreams
from agentserver.runs.transport import SSE_HEADERS, parse_last_event_id
from agentserver.sessions.service import SessionDeletionHook, SessionNotFound
from agentserver.sessions.service import chat_session as chat_session_service

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
# A run started elsewhere (the chat API) recorded no stream-mode events: what its chat events can tell.
DEFAULT_JOIN_MODES = ("values", "updates", "messages-tuple")
# The log events a stream mode needs, and the stream mode each recorded event serves when a join names none.
JOIN_MODE_OF_EVENT = {"values": "values", "updates": "updates", "message": "messages-tuple"}


@dataclass(frozen=True)
class RunContext:
    """What every run route works with."""

    request: Request
    user: User
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    event_log: EventLog
    streams: RunStreams
    tasks: TaskSet
    agent: AgentRuntime

    def spawn_cancel(self, run_id: uuid.UUID) -> None:
        """Cancel the run in the background (a client that asked for it went away)."""
        self.tasks.spawn(
            runs_service.cancel_quietly(self.sessionmaker, self.event_log, user_id=self.user.id, run_id=run_id),
            name=f"cancel-{run_id}",
        )


def run_context(
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
    agent: AgentDep,
) -> RunContext:
    return RunContext(request, user, settings, sessionmaker, event_log, streams, tasks, agent)


RunContextDep = Annotated[RunContext, Depends(run_context)]


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
    """The run's events after `after` as LangGraph frames; `on_end(finished)` when the stream stops."""

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


def _wait_body(context: RunContext, started: Started, on_end: Callable[[], None] | None = None) -> AsyncIterator[str]:
    """Whitespace while the run goes on (JSON parsers skip it), then the outcome as JSON."""

    async def body() -> AsyncIterator[str]:
        try:
            ending = None
            async for event in context.streams.follow(started.run_id, started.after, fresh=started.fresh):
                if event is None:
                    yield "\n"
                    continue
                if event.terminal:
                    ending = event
                    break
            outcome = await agent_runs.outcome(context.agent, started.thread_id, ending)
            yield json.dumps(outcome, ensure_ascii=False)
        finally:
            if on_end is not None:
                on_end()

    return body()


async def _start(context: RunContext, thread_id: uuid.UUID | None, body: RunCreate, modes: list[str]) -> Started:
    started = await agent_runs.start(
        context.sessionmaker,
        context.event_log,
        context.settings,
        user_id=context.user.id,
        thread_id=thread_id,
        body=body,
        stream_modes=modes,
        validate_args=context.agent.validate_args,
        catalog=context.agent.catalog,
    )
    structlog.contextvars.bind_contextvars(session_id=str(started.thread_id), run_id=str(started.run_id))
    return started


def _cleanup(context: RunContext, thread_id: uuid.UUID | None, body: RunCreate, started: Started) -> Callable[[], None]:
    """After a stateless run: delete its session once the run has ended (LangGraph's `on_completion:
    delete`, the default), in the background — the client may be gone."""
    if thread_id is not None or body.on_completion == "keep":
        return lambda: None
    hooks: list[SessionDeletionHook] = context.request.state.session_deletion_hooks

    async def delete_when_done() -> None:
        async for event in context.streams.follow(started.run_id, 0):
            if event is not None and event.terminal:
                break
        async with session_scope(context.sessionmaker) as db:
            try:
                await chat_session_service.delete(db, context.user, started.thread_id, on_delete=hooks)
            except SessionNotFound:
                pass  # deleted already

    def spawn() -> None:
        context.tasks.spawn(delete_when_done(), name=f"stateless-{started.run_id}")

    return spawn


async def _stream(context: RunContext, thread_id: uuid.UUID | None, body: RunCreate) -> StreamingResponse:
    asked = _requested_modes(body.modes(), ("values",))
    started = await _start(context, thread_id, body, log_modes(asked))
    frames = StreamFrames.for_modes(asked, str(started.run_id), str(started.thread_id))
    cleanup = _cleanup(context, thread_id, body, started)

    def on_end(finished: bool) -> None:
        if not finished and body.on_disconnect == "cancel":
            context.spawn_cancel(started.run_id)
        cleanup()

    # A resumed run's log already opened with its metadata: this stream opens with its own.
    stream = _sse_body(
        context.streams,
        started.run_id,
        frames,
        after=started.after,
        fresh=started.fresh,
        opening=not started.fresh,
        on_end=on_end,
    )
    headers = {**SSE_HEADERS, **_run_headers(started, stateless=thread_id is None)}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def _wait(context: RunContext, thread_id: uuid.UUID | None, body: RunCreate) -> StreamingResponse:
    started = await _start(context, thread_id, body, [])
    headers = _run_headers(started, stateless=thread_id is None)
    if thread_id is not None:
        headers["Location"] = f"/threads/{started.thread_id}/runs/{started.run_id}/join"
    body_iterator = _wait_body(context, started, _cleanup(context, thread_id, body, started))
    return StreamingResponse(body_iterator, media_type="application/json", headers=headers)


# --- routes -----------------------------------------------------------------------------------------------
STARTS_A_RUN = [Depends(rate_limit_user_chat)]


@router.post(
    "/threads/{thread_id}/runs/stream",
    summary="Start a run on the thread (or resume its paused one) and stream it",
    response_class=StreamingResponse,
    dependencies=STARTS_A_RUN,
    responses={**SSE_RESPONSE, **RUN_ERRORS},
)
async def stream_thread_run(thread_id: uuid.UUID, body: RunCreate, context: RunContextDep) -> StreamingResponse:
    return await _stream(context, thread_id, body)


@router.post(
    "/runs/stream",
    summary="A stateless run, streamed (on a thread of its own, deleted afterwards unless on_completion=keep)",
    response_class=StreamingResponse,
    dependencies=STARTS_A_RUN,
    responses={**SSE_RESPONSE, **RUN_ERRORS},
)
async def stream_stateless_run(body: RunCreate, context: RunContextDep) -> StreamingResponse:
    return await _stream(context, None, body)


@router.post(
    "/threads/{thread_id}/runs/wait",
    summary="Start a run on the thread (or resume its paused one) and wait for the thread's values",
    response_class=StreamingResponse,
    dependencies=STARTS_A_RUN,
    responses={**WAIT_RESPONSE, **RUN_ERRORS},
)
async def wait_thread_run(thread_id: uuid.UUID, body: RunCreate, context: RunContextDep) -> StreamingResponse:
    return await _wait(context, thread_id, body)


@router.post(
    "/runs/wait",
    summary="A stateless run: wait for its values (its thread is deleted afterwards unless on_completion=keep)",
    response_class=StreamingResponse,
    dependencies=STARTS_A_RUN,
    responses={**WAIT_RESPONSE, **RUN_ERRORS},
)
async def wait_stateless_run(body: RunCreate, context: RunContextDep) -> StreamingResponse:
    return await _wait(context, None, body)


@router.post(
    "/threads/{thread_id}/runs",
    summary="Start a run on the thread in the background (or resume its paused one)",
    dependencies=STARTS_A_RUN,
    responses=RUN_ERRORS,
)
async def create_thread_run(
    thread_id: uuid.UUID, body: RunCreate, response: Response, context: RunContextDep
) -> RunRead:
    # A later /stream may ask for any mode: the log gets every stream-mode event.
    started = await _start(context, thread_id, body, log_modes({"values", "updates", "messages", "messages-tuple"}))
    response.headers.update(_run_headers(started, stateless=False))
    run = started.run
    if run is None:  # a new run: as it is now (a worker may have claimed it already)
        async with session_scope(context.sessionmaker) as db:
            run = await agent_runs.get(db, user_id=context.user.id, thread_id=thread_id, run_id=started.run_id)
    return run_read(run, started.assistant)


@router.get(
    "/threads/{thread_id}/runs", summary="The thread's runs, newest first", responses={404: ThreadNotFound.schema()}
)
async def list_thread_runs(
    thread_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    agent: AgentDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    status: Annotated[
        str | None, Query(max_length=16, description="pending | running | success | error | interrupted")
    ] = None,
) -> list[RunRead]:
    threads = ThreadRepository.from_session(session)
    if await threads.get(user.id, thread_id) is None:
        raise ThreadNotFound()
    assistant = await assistant_of_session(agent.catalog, session, user.id, thread_id)
    listed = [run_read(run, assistant) for run in await threads.runs(user.id, thread_id, limit=limit, offset=offset)]
    return [run for run in listed if status is None or run.status == status]


@router.get(
    "/threads/{thread_id}/runs/{run_id}", summary="One run of the thread", responses={404: RunNotFoundInThread.schema()}
)
async def get_thread_run(
    thread_id: uuid.UUID, run_id: uuid.UUID, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> RunRead:
    run = await agent_runs.get(session, user_id=user.id, thread_id=thread_id, run_id=run_id)
    return run_read(run, await assistant_of_session(agent.catalog, session, user.id, thread_id))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/join",
    summary="Wait for a run to end; the thread's values",
    response_class=StreamingResponse,
    responses={**WAIT_RESPONSE, 404: RunNotFoundInThread.schema()},
)
async def join_thread_run(thread_id: uuid.UUID, run_id: uuid.UUID, context: RunContextDep) -> StreamingResponse:
    async with session_scope(context.sessionmaker) as db:
        await agent_runs.get(db, user_id=context.user.id, thread_id=thread_id, run_id=run_id)
        assistant = await assistant_of_session(context.agent.catalog, db, context.user.id, thread_id)
    started = Started(run_id, thread_id, assistant, fresh=False)
    return StreamingResponse(_wait_body(context, started), media_type="application/json")


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    summary="Follow a run's stream; `Last-Event-ID` resumes after that event",
    response_class=StreamingResponse,
    responses={**SSE_RESPONSE, 404: RunNotFoundInThread.schema()},
)
async def join_thread_run_stream(
    thread_id: uuid.UUID,
    run_id: uuid.UUID,
    context: RunContextDep,
    stream_mode: Annotated[list[Annotated[str, Query(max_length=32)]] | None, Query(max_length=16)] = None,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    async with session_scope(context.sessionmaker) as db:
        run = await agent_runs.get(db, user_id=context.user.id, thread_id=thread_id, run_id=run_id)
    recorded = tuple(JOIN_MODE_OF_EVENT[event] for event in run.stream_modes or () if event in JOIN_MODE_OF_EVENT)
    frames = StreamFrames.for_modes(
        _requested_modes(stream_mode, recorded or DEFAULT_JOIN_MODES), str(run_id), str(thread_id)
    )

    def on_end(finished: bool) -> None:
        if not finished and cancel_on_disconnect:
            context.spawn_cancel(run_id)

    after = parse_last_event_id(last_event_id)
    stream = _sse_body(context.streams, run_id, frames, after=after, fresh=False, opening=False, on_end=on_end)
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
    context: RunContextDep,
    wait: bool = False,
    action: Annotated[str, Query(pattern="^(interrupt|rollback)$")] = "interrupt",
) -> RunRead:
    user = context.user
    async with session_scope(context.sessionmaker) as db:
        await agent_runs.get(db, user_id=user.id, thread_id=thread_id, run_id=run_id)
    run = await runs_service.cancel(
        context.sessionmaker, context.event_log, user_id=user.id, run_id=run_id, rollback=action == "rollback"
    )
    if wait and run.status is RunStatus.running:
        async for event in context.streams.follow(run_id, 0):
            if event is not None and event.terminal:
                break
    async with session_scope(context.sessionmaker) as db:
        run = await agent_runs.get(db, user_id=user.id, thread_id=thread_id, run_id=run_id)
        assistant = await assistant_of_session(context.agent.catalog, db, user.id, thread_id)
    return run_read(run, assistant)
