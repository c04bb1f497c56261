"""`/api/v1/sessions`: the caller's chat sessions. Another user's session is always a 404."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from agentserver.agent.assistants import find_assistant
from agentserver.assistants.errors import AssistantNotFound
from agentserver.auth.dependencies import CurrentUser
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    InvalidCursor,
    PageCursor,
    PageLimit,
)
from agentserver.runs.dependencies import AgentDep
from agentserver.sessions.schemas import SessionCreate, SessionPage, SessionRead, SessionUpdate
from agentserver.sessions.service import SessionDeletionHook, SessionNotFound
from agentserver.sessions.service import chat_session as chat_session_service

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"], responses={401: Unauthorized.schema()})


@router.post(
    "",
    response_model=SessionRead,
    status_code=status.HTTP_201_CREATED,
    summary="Start a chat session (with an assistant)",
    responses={404: AssistantNotFound.schema()},
)
async def create_session(body: SessionCreate, user: CurrentUser, session: SessionDep, agent: AgentDep) -> SessionRead:
    catalog = agent.catalog
    if body.assistant_id is None:
        assistant = catalog.default
    elif (found := await find_assistant(catalog, session, user.id, body.assistant_id)) is not None:
        assistant = found
    else:
        raise AssistantNotFound()
    chat_session = await chat_session_service.create(session, user, name=body.name, assistant_id=assistant.id)
    return SessionRead.model_validate(chat_session)


@router.get(
    "",
    response_model=SessionPage,
    summary="The caller's chat sessions, most recently active first",
    responses={422: InvalidCursor.schema()},
)
async def list_sessions(
    user: CurrentUser,
    session: SessionDep,
    limit: PageLimit = DEFAULT_PAGE_SIZE,
    cursor: PageCursor = None,
) -> SessionPage:
    rows, next_cursor = await chat_session_service.list(session, user, cursor=cursor, limit=limit)
    return SessionPage(sessions=[SessionRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{session_id}",
    response_model=SessionRead,
    summary="One chat session",
    responses={404: SessionNotFound.schema()},
)
async def get_session(session_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> SessionRead:
    return SessionRead.model_validate(await chat_session_service.get(session, user, session_id))


@router.patch(
    "/{session_id}",
    response_model=SessionRead,
    summary="Rename a chat session",
    responses={404: SessionNotFound.schema()},
)
async def rename_session(
    session_id: uuid.UUID, body: SessionUpdate, user: CurrentUser, session: SessionDep
) -> SessionRead:
    chat_session = await chat_session_service.rename(session, user, session_id, name=body.name)
    return SessionRead.model_validate(chat_session)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a chat session and its messages",
    responses={404: SessionNotFound.schema()},
)
async def delete_session(session_id: uuid.UUID, user: CurrentUser, session: SessionDep, request: Request) -> Response:
    hooks: list[SessionDeletionHook] = request.state.session_deletion_hooks
    await chat_session_service.delete(session, user, session_id, on_delete=hooks)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
