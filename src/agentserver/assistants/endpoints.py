"""`/api/v1/assistants`: list (the deployment's and the caller's), create, read, change, delete (own only)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Response, status

from agentserver.assistants.errors import (
    AssistantNameTaken,
    AssistantNotFound,
    ReadOnlyAssistant,
    ToolNotAllowed,
)
from agentserver.assistants.schemas import AssistantCreate, AssistantList, AssistantRead, AssistantUpdate
from agentserver.assistants.service import InvalidAssistant
from agentserver.assistants.service import assistants as assistants_service
from agentserver.auth.dependencies import CurrentUser
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.runs.dependencies import AgentDep

router = APIRouter(prefix="/api/v1/assistants", tags=["assistants"], responses={401: Unauthorized.schema()})


@router.get("", response_model=AssistantList, summary="The assistants the caller can use")
async def list_assistants(user: CurrentUser, session: SessionDep, agent: AgentDep) -> AssistantList:
    found = await assistants_service.list(session, agent.catalog, user.id)
    return AssistantList(assistants=[AssistantRead.of(a) for a in found])


@router.post(
    "",
    response_model=AssistantRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an assistant of the caller's",
    responses={
        409: AssistantNameTaken.schema(),
        422: ToolNotAllowed.schema(),
    },
)
async def create_assistant(
    body: AssistantCreate, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> AssistantRead:
    created = await assistants_service.create(session, agent.catalog, user.id, body, models=agent.model_names)
    return AssistantRead.of(created)


@router.get(
    "/{assistant_id}",
    response_model=AssistantRead,
    summary="One assistant (by id or name)",
    responses={404: AssistantNotFound.schema()},
)
async def get_assistant(
    user: CurrentUser,
    session: SessionDep,
    agent: AgentDep,
    assistant_id: str = Path(min_length=1, max_length=64),
) -> AssistantRead:
    return AssistantRead.of(await assistants_service.get(session, agent.catalog, user.id, assistant_id))


@router.patch(
    "/{assistant_id}",
    response_model=AssistantRead,
    summary="Change an assistant of the caller's (its version goes up)",
    responses={
        403: ReadOnlyAssistant.schema(),
        404: AssistantNotFound.schema(),
        409: AssistantNameTaken.schema(),
        422: InvalidAssistant.schema(),
    },
)
async def update_assistant(
    assistant_id: uuid.UUID, body: AssistantUpdate, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> AssistantRead:
    updated = await assistants_service.update(
        session, agent.catalog, user.id, assistant_id, body, models=agent.model_names
    )
    return AssistantRead.of(updated)


@router.delete(
    "/{assistant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an assistant of the caller's (its sessions go back to the default assistant)",
    responses={403: ReadOnlyAssistant.schema(), 404: AssistantNotFound.schema()},
)
async def delete_assistant(
    assistant_id: uuid.UUID, user: CurrentUser, session: SessionDep, agent: AgentDep
) -> Response:
    await assistants_service.delete(session, agent.catalog, user.id, assistant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
