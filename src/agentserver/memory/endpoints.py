"""`/api/v1/memories`: the caller's long-term memories, and only theirs.

Every call is scoped to the authenticated user by the service (mem0 user_id = str(user.id)); another
user's memory id is a 404, exactly like an unknown one.

With MEMORY_ENABLED=false the server stores no memories, and the routes say exactly that: empty lists,
404 for any id, 204 for "forget everything". Not a 503: a feature switched off on purpose is not an
outage, and 5xx responses feed the error-rate alerts.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from agentserver.auth.dependencies import CurrentUser
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.memory.errors import MemoryNotFound, MemoryUnavailable
from agentserver.memory.schemas import MemoryHit, MemoryList, MemoryRead, MemorySearchResult
from agentserver.memory.service import MAX_LIST_LIMIT, MAX_QUERY_CHARS, MemoryService

DEFAULT_LIST_LIMIT = 100
DEFAULT_SEARCH_LIMIT = 10
MAX_SEARCH_LIMIT = 50


async def get_memory_service(request: Request) -> MemoryService | None:
    """The app's memory service; None when MEMORY_ENABLED is false."""
    memory: MemoryService | None = getattr(request.state, "memory", None)
    return memory


MemoryDep = Annotated[MemoryService | None, Depends(get_memory_service)]

router = APIRouter(
    prefix="/api/v1/memories",
    tags=["memories"],
    responses={401: Unauthorized.schema(), 503: MemoryUnavailable.schema()},
)


@router.get("", response_model=MemoryList, summary="The caller's memories, newest first")
async def list_memories(
    user: CurrentUser,
    memory: MemoryDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = DEFAULT_LIST_LIMIT,
) -> MemoryList:
    items = await memory.list(user.id, limit) if memory else []
    return MemoryList(memories=[MemoryRead.of(item) for item in items])


@router.get("/search", response_model=MemorySearchResult, summary="The caller's memories most relevant to `q`")
async def search_memories(
    user: CurrentUser,
    memory: MemoryDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT)] = DEFAULT_SEARCH_LIMIT,
) -> MemorySearchResult:
    items = await memory.search(user.id, q, limit) if memory else []
    return MemorySearchResult(memories=[MemoryHit.of(item) for item in items])


@router.delete(
    "/{memory_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget one memory",
    responses={404: MemoryNotFound.schema()},
)
async def delete_memory(memory_id: uuid.UUID, user: CurrentUser, memory: MemoryDep) -> Response:
    if memory is None or not await memory.delete(user.id, memory_id):
        raise MemoryNotFound()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, summary="Forget every memory of the caller")
async def delete_all_memories(user: CurrentUser, memory: MemoryDep, session: SessionDep) -> Response:
    # In the request's transaction: gone for every process when this answers, and extractions still
    # queued or running for the user drop what they would add (memory/jobs.py).
    if memory is not None:
        await memory.erase(session, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
