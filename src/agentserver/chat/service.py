"""A chat turn, from the user's message to the persisted answer.

    begin_turn   own committed transaction: ownership (404), one turn per session (409), user message saved
    TurnRunner   runs the graph in its own task and turns LangGraph's stream into typed events
    finish       own committed transaction: assistant message (content, tool calls, usage, cost, model,
                 finish reason) saved, the session released — also when the client went away mid-stream

The runner is a task separate from the HTTP response so that a client disconnect cancels generation
cleanly and what was produced is still persisted and marked (`finish_reason="client_disconnected"`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

import structlog
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.agent.state import TurnContext
from agentserver.chat import events
from agentserver.chat.errors import MessageTooLong, SessionNotFound, TurnInProgress
from agentserver.chat.events import ChatEvent
from agentserver.chat.repository import ChatRepository
from agentserver.kit.db import is_database_outage, session_scope
from agentserver.kit.errors import AppError, DatabaseUnavailable, InternalServerError, error_name, log_failure
from agentserver.llm.usage import usage_of
from agentserver.models import Message, MessageRole
from agentserver.observability.metrics import CHAT_TURNS

log = structlog.get_logger(__name__)

# Waits between attempts to release a failed turn's claim while the database is unreachable: a restart
# of a few seconds must not leave the session refusing messages (409) until the claim goes stale.
RELEASE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 2.0, 2.0)


class LongTermMemory(Protocol):
    """What a chat turn needs from the memory service."""

    async def prompt_section(self, user_id: uuid.UUID, query: str) -> str: ...

    def enqueue_extraction(
        self, user_id: uuid.UUID, session_id: uuid.UUID, user_message: str, assistant_message: str
    ) -> object: ...


@dataclass(frozen=True)
class Turn:
    id: uuid.UUID
    user_id: uuid.UUID
    session_id: uuid.UUID
    text: str
    user_message_id: uuid.UUID


@dataclass
class TurnResult:
    """What the assistant produced in one turn (possibly cut short)."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0")
    finish_reason: str = "complete"
    message_id: uuid.UUID | None = None

    def add_usage(self, message: AIMessage) -> None:
        usage = usage_of(message)
        self.model = usage.model
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cost_usd += usage.cost_usd

    def usage(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost_usd": str(self.cost_usd),
        }


class ChatService:
    async def begin_turn(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        text: str,
        max_chars: int,
        turn_timeout: timedelta,
    ) -> Turn:
        if len(text) > max_chars:
            raise MessageTooLong(max_chars)
        turn_id = uuid.uuid4()
        async with session_scope(sessionmaker) as session:
            repository = ChatRepository.from_session(session)
            if not await repository.claim_turn(user_id, session_id, turn_id, stale_after=turn_timeout):
                if await repository.owns_session(user_id, session_id):
                    CHAT_TURNS.labels(outcome="conflict").inc()
                    raise TurnInProgress()
                raise SessionNotFound()
            message = await repository.add_message(Message(session_id=session_id, role=MessageRole.user, content=text))
        return Turn(turn_id, user_id, session_id, text, message.id)

    async def finish_turn(
        self, sessionmaker: async_sessionmaker[AsyncSession], turn: Turn, result: TurnResult | None
    ) -> None:
        """Persist the answer (None: the model failed, nothing to store) and release the session."""
        async with session_scope(sessionmaker) as session:
            repository = ChatRepository.from_session(session)
            if result is not None and (result.content or result.tool_calls):
                message = await repository.add_message(
                    Message(
                        session_id=turn.session_id,
                        role=MessageRole.assistant,
                        content=result.content,
                        tool_calls=result.tool_calls or None,
                        model=result.model,
                        input_tokens=result.input_tokens,
                        output_tokens=result.output_tokens,
                        cost_usd=result.cost_usd,
                        finish_reason=result.finish_reason,
                    )
                )
                result.message_id = message.id
            await repository.release_turn(turn.session_id, turn.id)


chat = ChatService()


@dataclass
class TurnRunner:
    """Runs one turn in its own task; `events()` relays its events. Closing `events()` early cancels it."""

    graph: CompiledStateGraph[Any, Any, Any, Any]
    sessionmaker: async_sessionmaker[AsyncSession]
    turn: Turn
    memory: LongTermMemory | None = None
    result: TurnResult = field(default_factory=TurnResult)
    # Why the turn failed (also sent as the `error` event); None while it runs or when it succeeded.
    error: AppError | None = None
    _queue: asyncio.Queue[ChatEvent | None] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    def start(self) -> TurnRunner:
        self._task = asyncio.create_task(self._run(), name=f"chat-turn-{self.turn.id}")
        return self

    async def events(self) -> AsyncIterator[ChatEvent]:
        assert self._task is not None, "start() first"
        try:
            while (event := await self._queue.get()) is not None:
                yield event
        finally:
            if not self._task.done():
                self._task.cancel()
            # Wait for the runner to persist what it has; it never raises out of _run.
            await asyncio.wait([self._task])

    def _emit(self, event: ChatEvent) -> None:
        self._queue.put_nowait(event)

    async def _memory_section(self) -> str:
        if self.memory is None:
            return ""
        try:
            return await self.memory.prompt_section(self.turn.user_id, self.turn.text)
        except Exception as exc:
            # Memory makes answers better; its failure must not stop the answer.
            log_failure(log, "chat.memory_search_failed", exc)
            return ""

    async def _run(self) -> None:
        turn, result = self.turn, self.result
        config: Any = {"configurable": {"thread_id": str(turn.session_id)}}
        memory_task = asyncio.create_task(self._memory_section())
        context = TurnContext(user_id=turn.user_id, session_id=turn.session_id, long_term_memory=lambda: memory_task)
        streamed: list[str] = []  # text of the model answer being streamed right now
        streamed_id: str | None = None
        try:
            stream = self.graph.astream(
                {"messages": [HumanMessage(turn.text, id=str(turn.user_message_id))], "tool_rounds": 0},
                config,
                context=context,
                stream_mode=["messages", "updates"],
            )
            item: Any
            async for item in stream:
                mode, data = item
                if mode == "messages":
                    chunk, metadata = data
                    if metadata.get("langgraph_node") == "chat" and isinstance(chunk, AIMessageChunk):
                        if chunk.id != streamed_id:
                            # A retry or fallback restarts the answer under a new id: what a failed
                            # attempt streamed is not part of the answer. Clients saw it, so `reset`
                            # tells them to discard it; the stored answer is the new attempt's.
                            if streamed:
                                self._emit(events.reset())
                            streamed.clear()
                            streamed_id = chunk.id
                        text = chunk.content if isinstance(chunk.content, str) else ""
                        if text:
                            streamed.append(text)
                            self._emit(events.token(text))
                    continue
                for node, update in (data or {}).items():
                    self._on_update(node, update, streamed)
            await self.finish(result)
            CHAT_TURNS.labels(outcome=result.finish_reason).inc()
            if self.memory is not None and result.finish_reason == "complete" and result.content:
                self.memory.enqueue_extraction(turn.user_id, turn.session_id, turn.text, result.content)
            self._emit(events.done(str(result.message_id), result.usage()))
        except asyncio.CancelledError:
            result.finish_reason = "client_disconnected"
            result.content = result.content or "".join(streamed)
            # Shielded: the partial answer is saved even though this task is being cancelled.
            await asyncio.shield(self._save_interrupted(config, result))
            CHAT_TURNS.labels(outcome="client_disconnected").inc()
            log.info("chat.turn_interrupted", chars=len(result.content))
            raise
        except AppError as exc:
            await self._fail(exc)
        except Exception as exc:
            if is_database_outage(exc):
                log.warning("chat.turn_failed", error=error_name(exc), reason="database_unavailable")
                await self._fail(DatabaseUnavailable())
            else:
                log_failure(log, "chat.turn_failed", exc)
                await self._fail(InternalServerError())
        finally:
            memory_task.cancel()
            self._queue.put_nowait(None)

    def _on_update(self, node: str, update: Any, streamed: list[str]) -> None:
        messages = (update or {}).get("messages") or []
        if node == "chat":
            for message in messages:
                if not isinstance(message, AIMessage):
                    continue
                streamed.clear()
                result = self.result
                result.add_usage(message)
                result.content = message.content if isinstance(message.content, str) else ""
                for call in message.tool_calls:
                    result.tool_calls.append({"id": call["id"], "name": call["name"], "args": call["args"]})
                    self._emit(events.tool_call(call["id"] or "", call["name"], call["args"]))
        elif node == "tools":
            for message in messages:
                if isinstance(message, ToolMessage):
                    content = message.content if isinstance(message.content, str) else str(message.content)
                    for record in self.result.tool_calls:
                        if record["id"] == message.tool_call_id:
                            record["result"] = content
                    self._emit(events.tool_result(message.tool_call_id, message.name or "", content))
        elif node == "give_up":
            final = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
            if final is not None:
                self.result.content = str(final.content)
                self.result.finish_reason = "max_tool_rounds"
                self._emit(events.token(self.result.content))

    async def finish(self, result: TurnResult | None) -> None:
        await chat.finish_turn(self.sessionmaker, self.turn, result)

    async def _save_interrupted(self, config: Any, result: TurnResult) -> None:
        try:
            await self.finish(result)
            if result.content:
                # Keep the checkpointed conversation identical to what the user saw.
                partial = AIMessage(result.content, response_metadata={"finish_reason": result.finish_reason})
                await self.graph.aupdate_state(config, {"messages": [partial]}, as_node="chat")
        except Exception as exc:
            log_failure(log, "chat.persist_interrupted_failed", exc)

    async def _fail(self, error: AppError) -> None:
        self.error = error
        CHAT_TURNS.labels(outcome="error").inc()
        for delay in (*RELEASE_RETRY_DELAYS, None):
            try:
                await self.finish(None)  # the user message stays; no half-answer is stored
                break
            except Exception as exc:
                if delay is None or not is_database_outage(exc):
                    log_failure(log, "chat.release_failed", exc)
                    break
                await asyncio.sleep(delay)
        self._emit(events.error(type(error).__name__, error.message))
