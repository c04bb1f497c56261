"""Chat API: one-shot, SSE stream, WebSocket, and the message history of a session.

Each message starts a run (runs/): it is stored, executed by a worker, and its events are followed here.
A client that goes away does not stop the run (unless it asked for `on_disconnect: "cancel"`): the answer
is still stored, and `GET /api/v1/runs/{run_id}/stream` re-joins it.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.auth.service import auth as auth_service
from agentserver.chat.repository import ChatRepository
from agentserver.chat.schemas import ChatFrame, ChatRequest, ChatResponse, MessagePage, MessageRead
from agentserver.chat.service import AnswerText
from agentserver.chat.service import chat as chat_service
from agentserver.config import Settings
from agentserver.kit.db import SessionDep, SessionmakerDep, session_scope
from agentserver.kit.errors import AppError, ErrorBody, Unauthorized
from agentserver.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    PageCursor,
    PageLimit,
    decode_cursor,
    encode_cursor,
)
from agentserver.llm.errors import LLMRequestRejected, LLMUnavailable
from agentserver.models import MultitaskStrategy
from agentserver.observability.metrics import ACTIVE_STREAMS
from agentserver.ratelimit import Policy, RateLimiter, rate_limit_chat, rate_limited
from agentserver.runs import events
from agentserver.runs.dependencies import EventLogDep, RunStreamsDep, TasksDep
from agentserver.runs.errors import MessageTooLong, SessionNotFound, TurnInProgress
from agentserver.runs.eventlog import EventLog
from agentserver.runs.events import RunEvent
from agentserver.runs.service import StartedRun
from agentserver.runs.service import runs as runs_service
from agentserver.runs.streaming import RunStreams
from agentserver.runs.transport import sse_response
from agentserver.usage.errors import QuotaExceeded
from agentserver.usage.limits import QuotaLimits

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/chatbot", tags=["chat"])

TURN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid access token"},
    404: SessionNotFound.schema(),
    409: TurnInProgress.schema(),
    422: MessageTooLong.schema(),
    429: QuotaExceeded.schema(),
}


async def start_run(
    sessionmaker: Any,
    event_log: EventLog,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    text: str,
    strategy: MultitaskStrategy | None,
) -> StartedRun:
    """Store the message and its run (404/409/422 raise here, before any response starts)."""
    structlog.contextvars.bind_contextvars(session_id=str(session_id))
    return await runs_service.start(
        sessionmaker,
        event_log,
        user_id=user_id,
        session_id=session_id,
        text=text,
        max_chars=settings.max_message_chars,
        strategy=strategy or MultitaskStrategy(settings.default_multitask_strategy),
        quotas=QuotaLimits.from_settings(settings),
    )


@router.post(
    "/chat",
    summary="Send a message and get the whole answer",
    dependencies=[Depends(rate_limit_chat)],
    responses={**TURN_ERRORS, 502: LLMRequestRejected.schema(), 503: LLMUnavailable.schema()},
)
async def chat(
    body: ChatRequest,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
) -> ChatResponse:
    run = await start_run(
        sessionmaker,
        event_log,
        settings,
        user_id=user.id,
        session_id=body.session_id,
        text=body.message,
        strategy=body.multitask_strategy,
    )
    ending: RunEvent | None = None
    answer = AnswerText()
    async for event in streams.follow(run.id, fresh=True):
        if event is not None:
            answer.feed(event)
            if event.terminal:
                ending = event
    return await chat_service.reply(session_id=body.session_id, run_id=run.id, ending=ending, answer_text=answer.text)


@router.post(
    "/chat/stream",
    summary="Send a message and stream the answer (Server-Sent Events)",
    dependencies=[Depends(rate_limit_chat)],
    response_class=StreamingResponse,
    responses={
        **TURN_ERRORS,
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events `metadata`, `token`, `tool_call`, `tool_result`, `reset`, then `done`, `error` "
            "or `approval_required`; each is `id: <n>`, `event: <name>` and one JSON `data:` line",
        },
    },
)
async def chat_stream(
    body: ChatRequest,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
) -> StreamingResponse:
    # Errors known before the first byte (404, 409, 422) are plain HTTP errors, not stream events.
    run = await start_run(
        sessionmaker,
        event_log,
        settings,
        user_id=user.id,
        session_id=body.session_id,
        text=body.message,
        strategy=body.multitask_strategy,
    )

    def cancel_run() -> None:
        tasks.spawn(
            runs_service.cancel_quietly(sessionmaker, event_log, user_id=user.id, run_id=run.id),
            name=f"cancel-{run.id}",
        )

    return sse_response(
        streams.follow(run.id, fresh=True),
        headers={"X-Run-Id": str(run.id)},
        on_abandon=cancel_run if body.on_disconnect == "cancel" else None,
    )


@router.get(
    "/sessions/{session_id}/messages",
    summary="The messages of a session, oldest first",
    responses={401: TURN_ERRORS[401], 404: SessionNotFound.schema()},
)
async def list_messages(
    session_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> MessagePage:
    repository = ChatRepository.from_session(session)
    if not await repository.owns_session(user.id, session_id):
        raise SessionNotFound()
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_messages(user.id, session_id, limit, after)
    page = rows[:limit]
    next_cursor = encode_cursor((page[-1].created_at, page[-1].id)) if len(rows) > limit else None
    return MessagePage(messages=[MessageRead.model_validate(m) for m in page], next_cursor=next_cursor)


# --- WebSocket ---------------------------------------------------------------------------------------
WS_UNSUPPORTED_DATA = 1003
WS_POLICY_VIOLATION = 1008
WS_TRY_AGAIN_LATER = 1013


class InvalidFrame(AppError):
    """A WebSocket frame that is not `{"message": "<text>"}`."""

    status_code = 422


def parse_frame(frame: str) -> ChatFrame:
    try:
        return ChatFrame.model_validate_json(frame)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidFrame(f"{where + ': ' if where else ''}{first['msg']}") from None


class BinaryFrame(Exception):
    """The client sent a binary frame: this endpoint speaks JSON text frames only."""


async def receive_text(websocket: WebSocket) -> str:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise BinaryFrame()
    return str(text)


async def _ws_user_id(websocket: WebSocket, settings: Settings, token: str | None) -> uuid.UUID:
    """Authenticate with `?token=` or a first frame `{"token": "..."}` (an access token or an API key)."""
    if token is None:
        try:
            first = json.loads(await receive_text(websocket))
        except ValueError:
            first = None
        token = first.get("token") if isinstance(first, dict) else None
    if not isinstance(token, str) or not token:
        raise Unauthorized("Not authenticated")
    async with session_scope(websocket.state.sessionmaker) as session:
        user = await auth_service.authenticate_credential(session, settings, token)
    return user.id


async def _relay(
    websocket: WebSocket, streams: RunStreams, run_id: uuid.UUID, after: int, *, fresh: bool = False
) -> None:
    async for event in streams.follow(run_id, after, fresh=fresh):
        if event is not None:
            await websocket.send_json({**event.ws(), "run_id": str(run_id)})


@router.websocket("/ws/{session_id}")
async def chat_websocket(
    websocket: WebSocket,
    session_id: uuid.UUID,
    token: str | None = None,
    run_id: uuid.UUID | None = None,
    after: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> None:
    """Frames in: `{"message": "..."}`. Frames out: `{"event", "data", "id", "run_id"}`, the SSE events.

    Reconnecting with `?run_id=<id>&after=<last id seen>` first replays what was missed of that run.
    """
    await websocket.accept()
    state = websocket.state
    settings: Settings = state.settings
    streams: RunStreams = state.run_streams
    rate_limiter: RateLimiter = state.rate_limiter
    try:
        user_id = await _ws_user_id(websocket, settings, token)
    except BinaryFrame:
        await websocket.close(code=WS_UNSUPPORTED_DATA, reason="Send JSON in text frames")
        return
    except (AppError, ValueError) as exc:
        reason = exc.message if isinstance(exc, AppError) else "Not authenticated"
        # A 5xx (the database is down) is not the client's fault: tell it to come back.
        unavailable = isinstance(exc, AppError) and exc.status_code >= 500
        await websocket.close(code=WS_TRY_AGAIN_LATER if unavailable else WS_POLICY_VIOLATION, reason=reason)
        return
    except WebSocketDisconnect:
        return
    structlog.contextvars.bind_contextvars(user_id=str(user_id), session_id=str(session_id))
    ACTIVE_STREAMS.labels(transport="websocket").inc()
    try:
        if run_id is not None:
            async with session_scope(state.sessionmaker) as db:
                await runs_service.get(db, user_id=user_id, run_id=run_id)
            await _relay(websocket, streams, run_id, after)
        while True:
            try:
                frame = await receive_text(websocket)
            except BinaryFrame:
                await websocket.close(code=WS_UNSUPPORTED_DATA, reason="Send JSON in text frames")
                return
            limit = await rate_limiter.hit(Policy.chat, "user", str(user_id))
            if limit is not None and not limit.allowed:
                refused = rate_limited(limit)
                await websocket.send_json(events.error(refused.name, refused.message).ws())
                continue
            try:
                parsed = parse_frame(frame)
                run = await start_run(
                    state.sessionmaker,
                    state.event_log,
                    settings,
                    user_id=user_id,
                    session_id=session_id,
                    text=parsed.message,
                    strategy=parsed.multitask_strategy,
                )
            except AppError as exc:
                await websocket.send_json(events.error(exc.name, exc.message).ws())
                continue
            await _relay(websocket, streams, run.id, 0, fresh=True)
    except WebSocketDisconnect:
        log.info("chat.ws_closed")  # runs go on: the client can re-join them
    except AppError as exc:
        code = WS_TRY_AGAIN_LATER if exc.status_code >= 500 else WS_POLICY_VIOLATION
        await websocket.close(code=code, reason=exc.message[:120])
    finally:
        ACTIVE_STREAMS.labels(transport="websocket").dec()
