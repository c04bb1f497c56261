"""Agent Server API threads: create, get, patch, delete, search, count, state and history. A thread is a
chat session (threads.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from agentserver.agent_protocol.schemas import (
    HistoryRequest,
    StateCheckpointRequest,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadRead,
    ThreadSearch,
    ThreadState,
)
from agentserver.agent_protocol.service import UnsupportedRunOption
from agentserver.agent_protocol.threads import (
    ThreadExists,
    ThreadNotFound,
    ThreadRepository,
    ThreadRow,
    history,
    snapshot,
    thread_read,
    thread_state,
)
from agentserver.auth.dependencies import CurrentUser
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.models import User
from agentserver.runs.dependencies import AgentDep
from agentserver.sessions.service import SessionDeletionHook, SessionNotFound
from agentserver.sessions.service import chat_session as chat_session_service

router = APIRouter(tags=["agent server"], responses={401: Unauthorized.schema()})
# One checkpoint read per thread of a search, a few at a time: a long page must not take the checkpointer's pool.
SEARCH_STATE_READS = 4


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
async def create_thread(body: ThreadCreate, user: CurrentUser, session: SessionDep, agent: AgentDep) -> ThreadRead:
    if body.supersteps:
        raise UnsupportedRunOption("supersteps: threads start empty (clients cannot write state)")
    threads = ThreadRepository.from_session(session)
    thread_id = body.thread_id or uuid.uuid4()
    if not await threads.create(user.id, thread_id, body.metadata or {}):
        existing = await threads.get(user.id, thread_id)
        # Another user's thread is not found either way; the caller's own is theirs to get back.
        if existing is None or body.if_exists == "raise":
            raise ThreadExists()
        return thread_read(existing, await snapshot(agent.graph, thread_id))
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
