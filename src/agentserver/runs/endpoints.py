"""`/api/v1/runs`: read, follow, cancel and resume runs; a session's runs. Another user's run is a 404."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import StreamingResponse

from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.kit.db import SessionDep, SessionmakerDep
from agentserver.kit.errors import Unauthorized
from agentserver.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    InvalidCursor,
    PageCursor,
    PageLimit,
)
from agentserver.runs.dependencies import AgentDep, EventLogDep, RunStreamsDep
from agentserver.runs.errors import InvalidResume, RunAlreadyFinished, RunNotFound, RunNotInterrupted, SessionNotFound
from agentserver.runs.schemas import ResumeRequest, RunPage, RunRead
from agentserver.runs.service import runs as runs_service
from agentserver.runs.transport import parse_last_event_id, sse_response
from agentserver.usage.errors import QuotaExceeded
from agentserver.usage.limits import QuotaLimits

router = APIRouter(tags=["runs"], responses={401: Unauthorized.schema()})


@router.get("/api/v1/runs/{run_id}", summary="One run", responses={404: RunNotFound.schema()})
async def get_run(run_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> RunRead:
    return RunRead.model_validate(await runs_service.get(session, user_id=user.id, run_id=run_id))


@router.get(
    "/api/v1/runs/{run_id}/stream",
    summary="Follow a run's events (SSE); `Last-Event-ID` or `after` resumes after that event",
    response_class=StreamingResponse,
    responses={
        404: RunNotFound.schema(),
        200: {"content": {"text/event-stream": {}}, "description": "The run's events from the position asked"},
    },
)
async def stream_run(
    run_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    streams: RunStreamsDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    after: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
) -> StreamingResponse:
    await runs_service.get(session, user_id=user.id, run_id=run_id)  # 404 before the stream starts
    position = after if after is not None else parse_last_event_id(last_event_id)
    return sse_response(streams.follow(run_id, position), headers={"X-Run-Id": str(run_id)})


@router.post(
    "/api/v1/runs/{run_id}/cancel",
    summary="Stop a run; what it produced so far is kept (finish_reason `cancelled`)",
    responses={404: RunNotFound.schema(), 409: RunAlreadyFinished.schema()},
)
async def cancel_run(
    run_id: uuid.UUID, user: CurrentUser, sessionmaker: SessionmakerDep, event_log: EventLogDep
) -> RunRead:
    run = await runs_service.cancel(sessionmaker, event_log, user_id=user.id, run_id=run_id)
    return RunRead.model_validate(run)


@router.post(
    "/api/v1/runs/{run_id}/resume",
    summary="Decide on a paused tool call (approve, reject, or edit its arguments); the run continues",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: RunNotFound.schema(),
        409: RunNotInterrupted.schema(),
        422: InvalidResume.schema(),
        429: QuotaExceeded.schema(),
    },
)
async def resume_run(
    run_id: uuid.UUID,
    body: ResumeRequest,
    user: CurrentUser,
    sessionmaker: SessionmakerDep,
    agent: AgentDep,
    settings: SettingsDep,
) -> RunRead:
    run = await runs_service.resume(
        sessionmaker,
        user_id=user.id,
        run_id=run_id,
        decision=body.as_decision(),
        validate_args=agent.validate_args,
        quotas=QuotaLimits.from_settings(settings),
    )
    return RunRead.model_validate(run)


@router.get(
    "/api/v1/sessions/{session_id}/runs",
    summary="The runs of a session, newest first",
    responses={404: SessionNotFound.schema(), 422: InvalidCursor.schema()},
)
async def list_session_runs(
    session_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> RunPage:
    page, next_cursor = await runs_service.list_for_session(
        session, user_id=user.id, session_id=session_id, cursor=cursor, limit=limit
    )
    return RunPage(runs=[RunRead.model_validate(run) for run in page], next_cursor=next_cursor)
