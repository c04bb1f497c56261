"""Chat API: one-shot, SSE stream, WebSocket, and the message history of a session."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from agentserver.agent.runtime import AgentRuntime
from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.auth.service import auth as auth_service
from agentserver.chat import events
from agentserver.chat.dependencies import AgentDep, MemoryDep
from agentserver.chat.errors import MessageTooLong, SessionNotFound, TurnInProgress
from agentserver.chat.repository import ChatRepository
from agentserver.chat.schemas import ChatFrame, ChatRequest, ChatResponse, MessagePage, MessageRead, Usage
from agentserver.chat.service import LongTermMemory, TurnRunner
from agentserver.chat.service import chat as chat_service
from agentserver.config import Settings
from agentserver.kit.db import SessionDep, SessionmakerDep, session_scope
from agentserver.kit.errors import AppError, ErrorBody, Unauthorized
from agentserver.kit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decode_cursor, encode_cursor
from agentserver.llm.errors import LLMRequestRejected, LLMUnavailable
from agentserver.observability.metrics import ACTIVE_STREAMS
from agentserver.ratelimit import Policy, RateLimiter, rate_limit_chat, rate_limited

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/chatbot", tags=["chat"])

TURN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid access token"},
    404: SessionNotFound.schema(),
    409: TurnInProgress.schema(),
    422: MessageTooLong.schema(),
}


def turn_timeout(settings: Settings) -> timedelta:
    # A claim older than the longest possible turn belongs to a crashed process and may be taken over.
    return timedelta(seconds=settings.llm_deadline_seconds * (settings.max_tool_rounds + 2))


async def start_turn(
    sessionmaker: Any,
    settings: Settings,
    agent: AgentRuntime,
    memory: LongTermMemory | None,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    text: str,
) -> TurnRunner:
    """Claim the session and store the user message (404/409/422 raise here), then start the answer."""
    structlog.contextvars.bind_contextvars(session_id=str(session_id))
    turn = await chat_service.begin_turn(
        sessionmaker,
        user_id=user_id,
        session_id=session_id,
        text=text,
        max_chars=settings.max_message_chars,
        turn_timeout=turn_timeout(settings),
    )
    return TurnRunner(agent.graph, sessionmaker, turn, memory).start()


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
    agent: AgentDep,
    memory: MemoryDep,
) -> ChatResponse:
    runner = await start_turn(
        sessionmaker, settings, agent, memory, user_id=user.id, session_id=body.session_id, text=body.message
    )
    async for _ in runner.events():
        pass  # the one-shot answer only needs the outcome
    if runner.error is not None:
        raise runner.error
    result = runner.result
    assert result.message_id is not None
    return ChatResponse(
        session_id=runner.turn.session_id,
        message=result.content,
        message_id=result.message_id,
        usage=Usage(
            model=result.model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            total_tokens=result.input_tokens + result.output_tokens,
            cost_usd=result.cost_usd,
        ),
    )


@router.post(
    "/chat/stream",
    summary="Send a message and stream the answer (Server-Sent Events)",
    dependencies=[Depends(rate_limit_chat)],
    response_class=StreamingResponse,
    responses={
        **TURN_ERRORS,
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events `token`, `reset` (discard the text streamed so far for the current "
            "answer: a retried or fallback model call restarts it), `tool_call`, `tool_result`, then `done` "
            "or `error`; each is `event: <name>` and one JSON `data:` line",
        },
    },
)
async def chat_stream(
    body: ChatRequest,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    agent: AgentDep,
    memory: MemoryDep,
) -> StreamingResponse:
    # Errors known before the first byte (404, 409, 422) are plain HTTP errors, not stream events.
    runner = await start_turn(
        sessionmaker, settings, agent, memory, user_id=user.id, session_id=body.session_id, text=body.message
    )

    async def sse() -> AsyncIterator[str]:
        ACTIVE_STREAMS.labels(transport="sse").inc()
        try:
            async for event in runner.events():
                yield event.sse()
        finally:
            ACTIVE_STREAMS.labels(transport="sse").dec()

    return StreamingResponse(
        sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
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
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
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


class BinaryFrame(Exception):
    """A binary WebSocket frame: this protocol speaks JSON in text frames only."""


async def receive_text_frame(websocket: WebSocket) -> str:
    """The next text frame. Starlette's `receive_text()` fails with a KeyError on a binary frame."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise BinaryFrame()
    return str(text)


class InvalidFrame(AppError):
    """A WebSocket frame that is not `{"message": "<text>"}`."""

    status_code = 422


def parse_frame(frame: str) -> str:
    try:
        return ChatFrame.model_validate_json(frame).message
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidFrame(f"{where + ': ' if where else ''}{first['msg']}") from None


async def _ws_user_id(websocket: WebSocket, settings: Settings, token: str | None) -> uuid.UUID:
    """Authenticate with `?token=` or a first frame `{"token": "..."}`."""
    if token is None:
        first = json.loads(await receive_text_frame(websocket))
        token = first.get("token") if isinstance(first, dict) else None
    if not isinstance(token, str) or not token:
        raise Unauthorized("Not authenticated")
    async with session_scope(websocket.state.sessionmaker) as session:
        user = await auth_service.authenticate_access_token(session, settings, token)
    return user.id


@router.websocket("/ws/{session_id}")
async def chat_websocket(websocket: WebSocket, session_id: uuid.UUID, token: str | None = None) -> None:
    """Frames in: `{"message": "..."}`. Frames out: `{"event": name, "data": {...}}`, the SSE events."""
    await websocket.accept()
    settings: Settings = websocket.state.settings
    sessionmaker = websocket.state.sessionmaker
    agent: AgentRuntime = websocket.state.agent
    rate_limiter: RateLimiter = websocket.state.rate_limiter
    memory = getattr(websocket.state, "memory", None)
    try:
        user_id = await _ws_user_id(websocket, settings, token)
    except (AppError, ValueError) as exc:
        reason = exc.message if isinstance(exc, AppError) else "Not authenticated"
        # A 5xx (the database is down) is not the client's fault: tell it to come back.
        unavailable = isinstance(exc, AppError) and exc.status_code >= 500
        await websocket.close(code=WS_TRY_AGAIN_LATER if unavailable else WS_POLICY_VIOLATION, reason=reason)
        return
    except BinaryFrame:
        await websocket.close(code=WS_UNSUPPORTED_DATA, reason="Send JSON in text frames")
        return
    except WebSocketDisconnect:
        return
    structlog.contextvars.bind_contextvars(user_id=str(user_id), session_id=str(session_id))
    ACTIVE_STREAMS.labels(transport="websocket").inc()
    try:
        while True:
            frame = await receive_text_frame(websocket)
            limit = await rate_limiter.hit(Policy.chat, "user", str(user_id))
            if limit is not None and not limit.allowed:
                refused = rate_limited(limit)
                await websocket.send_json(events.error(type(refused).__name__, refused.message).ws())
                continue
            try:
                runner = await start_turn(
                    sessionmaker,
                    settings,
                    agent,
                    memory,
                    user_id=user_id,
                    session_id=session_id,
                    text=parse_frame(frame),
                )
            except AppError as exc:
                await websocket.send_json(events.error(type(exc).__name__, exc.message).ws())
                continue
            async for event in runner.events():
                await websocket.send_json(event.ws())
    except BinaryFrame:
        await websocket.close(code=WS_UNSUPPORTED_DATA, reason="Send JSON in text frames")
    except WebSocketDisconnect:
        log.info("chat.ws_closed")
    finally:
        ACTIVE_STREAMS.labels(transport="websocket").dec()
