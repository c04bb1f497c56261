"""Threads are chat sessions: the same rows, owner-scoped (another user's thread does not exist), with
LangGraph's fields computed from what agentserver keeps.

- `metadata`: `chat_sessions.metadata` (set and searched by Agent Server API clients).
- `status`: from the session's runs — `busy` while one is pending or running, `interrupted` while one
  waits for an approval, `error` if the latest failed, else `idle`.
- `values`, `interrupts`, state and history: the LangGraph checkpoint (the conversation's one source of
  truth), read through the agent's graph.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot
from sqlalchemy import ColumnElement, case, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.agent.jsonable import jsonable
from agentserver.agent_protocol.schemas import Checkpoint, ThreadRead, ThreadState, ThreadStatus, ThreadTask
from agentserver.kit.errors import Conflict, NotFound
from agentserver.models import ChatSession, Run, RunStatus

Graph = CompiledStateGraph[Any, Any, Any, Any]


class ThreadNotFound(NotFound):
    """The thread does not exist or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("Thread not found")


class ThreadExists(Conflict):
    """A thread with this id already exists."""

    def __init__(self) -> None:
        super().__init__("A thread with this id already exists")


def thread_status() -> ColumnElement[str]:
    """A session's LangGraph status, as SQL over its runs."""
    of_session = Run.session_id == ChatSession.id
    latest = (
        select(Run.status).where(of_session).order_by(Run.created_at.desc(), Run.id.desc()).limit(1).scalar_subquery()
    )
    return case(
        (exists().where(of_session, Run.status.in_((RunStatus.pending, RunStatus.running))), "busy"),
        (exists().where(of_session, Run.status == RunStatus.interrupted), "interrupted"),
        (latest == RunStatus.error, "error"),
        else_="idle",
    )


@dataclass(frozen=True)
class ThreadRow:
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    status: ThreadStatus


class ThreadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> ThreadRepository:
        return cls(session)

    def _rows(self, user_id: uuid.UUID) -> Any:
        status = thread_status().label("status")
        statement = select(
            ChatSession.id, ChatSession.created_at, ChatSession.updated_at, ChatSession.thread_metadata, status
        ).where(ChatSession.user_id == user_id)
        return statement, status

    @staticmethod
    def _row(found: Any) -> ThreadRow:
        return ThreadRow(found.id, found.created_at, found.updated_at, found.thread_metadata or {}, found.status)

    async def get(self, user_id: uuid.UUID, thread_id: uuid.UUID) -> ThreadRow | None:
        statement, _ = self._rows(user_id)
        found = (await self.session.execute(statement.where(ChatSession.id == thread_id))).first()
        return self._row(found) if found is not None else None

    async def create(self, user_id: uuid.UUID, thread_id: uuid.UUID, metadata: dict[str, Any]) -> bool:
        """Insert the session; False if that id is taken (by anyone)."""
        created = await self.session.scalar(
            insert(ChatSession)
            .values(id=thread_id, user_id=user_id, name="New chat", thread_metadata=metadata)
            .on_conflict_do_nothing(index_elements=[ChatSession.id])
            .returning(ChatSession.id)
        )
        return created is not None

    async def bind_assistant(
        self, user_id: uuid.UUID, thread_id: uuid.UUID, assistant_id: uuid.UUID
    ) -> uuid.UUID | None:
        """Bind the thread to `assistant_id` unless it is bound already; the assistant it is bound to."""
        bound = await self.session.scalar(
            update(ChatSession)
            .where(ChatSession.id == thread_id, ChatSession.user_id == user_id)
            .values(assistant_id=func.coalesce(ChatSession.assistant_id, assistant_id))
            .returning(ChatSession.assistant_id)
        )
        return bound if isinstance(bound, uuid.UUID) else None

    async def merge_metadata(self, user_id: uuid.UUID, thread_id: uuid.UUID, metadata: dict[str, Any]) -> bool:
        """Merge `metadata` into the thread's (top-level keys replaced); False if it is not the user's."""
        merged = func.coalesce(ChatSession.thread_metadata, literal({}, JSONB)).op("||")(literal(metadata, JSONB))
        row = await self.session.execute(
            update(ChatSession)
            .where(ChatSession.id == thread_id, ChatSession.user_id == user_id)
            .values(thread_metadata=merged, updated_at=func.now())
            .returning(ChatSession.id)
        )
        return row.first() is not None

    async def runs(self, user_id: uuid.UUID, thread_id: uuid.UUID, *, limit: int, offset: int) -> Sequence[Run]:
        statement = (
            select(Run)
            .where(Run.session_id == thread_id, Run.user_id == user_id)
            .order_by(Run.created_at.desc(), Run.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return (await self.session.scalars(statement)).all()

    async def search(
        self,
        user_id: uuid.UUID,
        *,
        metadata: dict[str, Any] | None,
        ids: Sequence[uuid.UUID] | None,
        status: str | None,
        sort_by: str,
        descending: bool,
        limit: int,
        offset: int,
    ) -> list[ThreadRow]:
        statement, status_column = self._rows(user_id)
        statement = self._filtered(statement, status_column, metadata=metadata, ids=ids, status=status)
        column = {
            "thread_id": ChatSession.id,
            "created_at": ChatSession.created_at,
            "updated_at": ChatSession.updated_at,
            "status": status_column,
        }[sort_by]
        order = [column.desc(), ChatSession.id.desc()] if descending else [column.asc(), ChatSession.id.asc()]
        rows = await self.session.execute(statement.order_by(*order).limit(limit).offset(offset))
        return [self._row(found) for found in rows]

    async def count(self, user_id: uuid.UUID, *, metadata: dict[str, Any] | None, status: str | None) -> int:
        statement, status_column = self._rows(user_id)
        statement = self._filtered(statement, status_column, metadata=metadata, ids=None, status=status)
        return int(await self.session.scalar(select(func.count()).select_from(statement.subquery())) or 0)

    @staticmethod
    def _filtered(
        statement: Any,
        status_column: Any,
        *,
        metadata: dict[str, Any] | None,
        ids: Sequence[uuid.UUID] | None,
        status: str | None,
    ) -> Any:
        if metadata:
            statement = statement.where(ChatSession.thread_metadata.contains(metadata))
        if ids is not None:
            statement = statement.where(ChatSession.id.in_(ids))
        if status is not None:
            statement = statement.where(thread_status() == status)
        return statement


# --- the checkpoint, as LangGraph's clients read it ----------------------------------------------------
def _checkpoint(config: Any, thread_id: uuid.UUID) -> Checkpoint:
    configurable = (config or {}).get("configurable") or {}
    return Checkpoint(
        thread_id=str(configurable.get("thread_id") or thread_id),
        checkpoint_ns=str(configurable.get("checkpoint_ns") or ""),
        checkpoint_id=configurable.get("checkpoint_id"),
        checkpoint_map=configurable.get("checkpoint_map"),
    )


def interrupts_of(snapshot: StateSnapshot) -> list[dict[str, Any]]:
    return [jsonable(item) for task in snapshot.tasks for item in task.interrupts]


def thread_state(snapshot: StateSnapshot, thread_id: uuid.UUID) -> ThreadState:
    return ThreadState(
        values=jsonable(snapshot.values) if isinstance(snapshot.values, dict) else {},
        next=list(snapshot.next),
        tasks=[
            ThreadTask(
                id=task.id,
                name=task.name,
                error=type(task.error).__name__ if task.error is not None else None,
                interrupts=[jsonable(item) for item in task.interrupts],
                result=jsonable(task.result) if isinstance(task.result, dict) else None,
            )
            for task in snapshot.tasks
        ],
        checkpoint=_checkpoint(snapshot.config, thread_id),
        metadata=jsonable(dict(snapshot.metadata or {})),
        created_at=snapshot.created_at,
        parent_checkpoint=_checkpoint(snapshot.parent_config, thread_id) if snapshot.parent_config else None,
        interrupts=interrupts_of(snapshot),
    )


def config_for(thread_id: uuid.UUID, checkpoint: dict[str, Any] | None = None) -> Any:
    configurable: dict[str, Any] = {"thread_id": str(thread_id), "checkpoint_ns": ""}
    for key in ("checkpoint_ns", "checkpoint_id"):
        if checkpoint and checkpoint.get(key):
            configurable[key] = checkpoint[key]
    configurable["thread_id"] = str(thread_id)  # never another thread's, whatever the client sent
    return {"configurable": configurable}


async def snapshot(graph: Graph, thread_id: uuid.UUID, checkpoint: dict[str, Any] | None = None) -> StateSnapshot:
    return await graph.aget_state(config_for(thread_id, checkpoint))


async def history(
    graph: Graph,
    thread_id: uuid.UUID,
    *,
    limit: int,
    before: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    checkpoint: dict[str, Any] | None,
) -> list[ThreadState]:
    states = []
    async for item in graph.aget_state_history(
        config_for(thread_id, checkpoint),
        filter=metadata or None,
        before=config_for(thread_id, before) if before else None,
        limit=limit,
    ):
        states.append(thread_state(item, thread_id))
    return states


def thread_read(row: ThreadRow, state: StateSnapshot | None) -> ThreadRead:
    values = None
    interrupts: dict[str, list[dict[str, Any]]] = {}
    if state is not None and state.created_at is not None:
        values = jsonable(state.values) if isinstance(state.values, dict) else {}
        for task in state.tasks:
            if task.interrupts:
                interrupts[task.id] = [jsonable(item) for item in task.interrupts]
    return ThreadRead(
        thread_id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        metadata=row.metadata,
        status=row.status,
        values=values,
        interrupts=interrupts,
    )
