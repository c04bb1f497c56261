"""`/v1/models` and `/v1/chat/completions`: agentserver's agent for OpenAI clients (SDKs, Open WebUI,
LibreChat, LangChain's ChatOpenAI). Auth: `Authorization: Bearer <API key or access token>`. Errors have
OpenAI's shape (errors.py). Every answer names its session in `X-Session-Id` (send it back to pin the
conversation) and its run in `X-Run-Id`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse, Response, StreamingResponse

from agentserver.agent.assistants import Assistant, find_assistant, list_assistants
from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.auth.limits import rate_limit_user_chat
from agentserver.kit.db import SessionmakerDep, session_scope
from agentserver.observability.metrics import ACTIVE_STREAMS
from agentserver.openai_compat.errors import OPENAI_ERRORS, ModelNotFound, openai_error, openai_error_schema
from agentserver.openai_compat.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    CompletionUsage,
    ModelCard,
    ModelList,
)
from agentserver.openai_compat.service import Reply, Turn, completions
from agentserver.runs.dependencies import AgentDep, EventLogDep, RunStreamsDep, TasksDep
from agentserver.runs.service import runs as runs_service
from agentserver.runs.transport import KEEP_ALIVE, SSE_HEADERS

router = APIRouter(prefix="/v1", tags=["openai"], responses=OPENAI_ERRORS)

SESSION_HEADER_MAX = 64
CHAT_ID_HEADER_MAX = 256


def _card(assistant: Assistant) -> ModelCard:
    return ModelCard(id=assistant.name, created=int(assistant.created_at.timestamp()), owned_by="agentserver")


@router.get("/models", summary="The assistants, as OpenAI models")
async def list_models(user: CurrentUser, sessionmaker: SessionmakerDep, agent: AgentDep) -> ModelList:
    async with session_scope(sessionmaker) as db:
        assistants = await list_assistants(agent.catalog, db, user.id)
    return ModelList(data=[_card(a) for a in assistants])


@router.get(
    "/models/{model}",
    summary="One assistant, as an OpenAI model",
    responses={404: openai_error_schema("No such model (`model_not_found`)")},
)
async def get_model(
    model: Annotated[str, Path(max_length=256)], user: CurrentUser, sessionmaker: SessionmakerDep, agent: AgentDep
) -> ModelCard:
    async with session_scope(sessionmaker) as db:
        assistant = await find_assistant(agent.catalog, db, user.id, model)
    if assistant is None:
        raise ModelNotFound(model)
    return _card(assistant)


@router.post(
    "/chat/completions",
    summary="Send the conversation's new user message; get the agent's answer (or stream it with `stream`)",
    dependencies=[Depends(rate_limit_user_chat)],
    response_model=None,
    responses={
        200: {
            "model": ChatCompletion,
            "description": "A `chat.completion`, or with `stream: true` Server-Sent Events: `chat.completion.chunk` "
            "frames, then `data: [DONE]`",
            "content": {"text/event-stream": {}},
        },
        404: openai_error_schema("No such model (`model_not_found`), or an `X-Session-Id` that is not the caller's"),
        502: openai_error_schema("The language model rejected the request"),
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionmakerDep,
    event_log: EventLogDep,
    streams: RunStreamsDep,
    tasks: TasksDep,
    agent: AgentDep,
    x_session_id: Annotated[str | None, Header(max_length=SESSION_HEADER_MAX)] = None,
    x_openwebui_chat_id: Annotated[str | None, Header(max_length=CHAT_ID_HEADER_MAX)] = None,
) -> Response:
    async with session_scope(sessionmaker) as db:
        assistant = await find_assistant(agent.catalog, db, user.id, body.model)
    if assistant is None:
        raise ModelNotFound(body.model)
    turn = await completions.begin(
        sessionmaker,
        event_log,
        settings,
        user_id=user.id,
        request=body,
        assistant=assistant,
        session_header=x_session_id,
        chat_id_header=x_openwebui_chat_id,
    )
    headers = {"X-Session-Id": str(turn.session_id), "X-Run-Id": str(turn.run_id)}
    completion_id = f"chatcmpl-{turn.run_id.hex}"
    created = int(time.time())
    if body.stream:

        def cancel_run() -> None:
            # The client stopped reading (Open WebUI's stop button): stop the answer, keep what it said.
            tasks.spawn(
                runs_service.cancel_quietly(sessionmaker, event_log, user_id=user.id, run_id=turn.run_id),
                name=f"cancel-{turn.run_id}",
            )

        frames = _stream(streams, turn, body, user.id, sessionmaker, completion_id, created, cancel_run)
        return StreamingResponse(frames, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})

    reply = Reply()
    async for event in streams.follow(turn.run_id, turn.after, fresh=turn.fresh):
        if event is not None:
            reply.feed(event)
            if event.terminal:
                break
    failure = reply.failure()
    if failure is not None:
        raise failure
    await completions.remember(
        sessionmaker, user_id=user.id, session_id=turn.session_id, request=body, answer=reply.content
    )
    completion = ChatCompletion(
        id=completion_id,
        created=created,
        model=body.model,
        choices=[
            Choice(
                message=AssistantMessage(content=reply.content, reasoning_content="".join(reply.reasoning) or None),
                finish_reason="stop",
            )
        ],
        usage=CompletionUsage(**reply.usage_fields()),
    )
    return JSONResponse(completion.model_dump(), headers=headers)


def _frame(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(
    streams: Any,
    turn: Turn,
    body: ChatCompletionRequest,
    user_id: uuid.UUID,
    sessionmaker: Any,
    completion_id: str,
    created: int,
    on_abandon: Any,
) -> AsyncIterator[str]:
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        frame: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            frame["usage"] = None
        return _frame(frame)

    reply = Reply()
    ended = False
    ACTIVE_STREAMS.labels(transport="sse").inc()
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for event in streams.follow(turn.run_id, turn.after, fresh=turn.fresh):
            if event is None:
                yield KEEP_ALIVE
                continue
            content, reasoning = reply.feed(event)
            if reasoning:
                yield chunk({"reasoning_content": reasoning})
            if content:
                yield chunk({"content": content})
            if event.terminal:
                ended = True
                break
        failure = reply.failure()
        if failure is not None:
            ended = True
            yield _frame(openai_error(failure.status_code, {"error": failure.name, "detail": failure.message})[1])
            return
        # Before the last frames: a client that sends its next message at once must find the session.
        await completions.remember(
            sessionmaker, user_id=user_id, session_id=turn.session_id, request=body, answer=reply.sent
        )
        yield chunk({}, finish_reason="stop")
        if include_usage:
            yield _frame(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": reply.usage_fields(),
                }
            )
        yield "data: [DONE]\n\n"
    finally:
        ACTIVE_STREAMS.labels(transport="sse").dec()
        if not ended:
            on_abandon()
