"""Executes one claimed run: the LangGraph agent, its events, and the one transaction that ends it.

    claim ─► open live stream ─► graph.astream(...) ─► events (translate.py) ─► end the run
                                                                                  │
        success/cancelled: UPDATE runs ... WHERE status='running' AND worker_id=me ─┤ one transaction:
                           + INSERT the assistant message + INSERT the memory job   ┘ all or nothing
        approval:          running → interrupted, `approval_required`
        failure:           running → error, `error` (the user message stays, no half answer)

Every way a run can stop is a `StopReason` given to its `Execution`: cancel and interrupt keep what was
produced (finish_reason "cancelled"), rollback erases the run (its messages and checkpoints), deleted stops
without writing (the session is gone; its checkpoints are erased once the graph has stopped), lost stops
without writing (another worker owns the run now), shutdown hands the run back as pending so another
worker resumes it from its last checkpoint. Whatever races — cancel, disconnect, takeover, shutdown — the
guarded UPDATE lets exactly one ending write, so a run has at most one assistant message.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Durability, StreamMode
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.agent import checkpoints
from agentserver.agent.assistants import resolve_assistant
from agentserver.agent.runtime import AgentGraphs, AssistantAgent
from agentserver.agent.state import TurnContext
from agentserver.jobs.repository import WORK_CHANNEL
from agentserver.kit.db import autocommit, engine_of, is_database_outage, session_scope
from agentserver.kit.errors import AppError, DatabaseUnavailable, InternalServerError, log_failure
from agentserver.models import ChatSession, Message, RunStatus
from agentserver.observability import tracing
from agentserver.observability.metrics import CHAT_TURNS
from agentserver.runs import events
from agentserver.runs.emitter import RunEmitter
from agentserver.runs.eventlog import EventLog
from agentserver.runs.live import LiveRuns
from agentserver.runs.repository import ClaimedRun, RunRepository
from agentserver.runs.translate import RunResult, StreamTranslator, result_of, run_messages
from agentserver.usage.limits import current_periods
from agentserver.usage.repository import Spent

log = structlog.get_logger(__name__)

STREAM_MODES: list[StreamMode] = ["messages", "updates", "values", "custom"]
# Checkpoints are written when the run stops (ends, pauses for an approval, fails), not after every step: a
# run's steps take milliseconds and a checkpoint costs several statements. A run taken over after its worker
# died starts again from its input (its checkpoint, if any, says where it was).
DURABILITY: Durability = "exit"
MEMORY_EXTRACT_JOB = "memory.extract"


class StopReason(enum.StrEnum):
    shutdown = "shutdown"
    lost = "lost"
    cancel = "cancel"
    interrupt = "interrupt"
    rollback = "rollback"
    deleted = "deleted"


# A stronger reason replaces a weaker one (a cancel during shutdown is a cancel).
_PRIORITY = {
    StopReason.shutdown: 0,
    StopReason.lost: 1,
    StopReason.cancel: 2,
    StopReason.interrupt: 2,
    StopReason.rollback: 3,
    StopReason.deleted: 4,
}


class LongTermMemory(Protocol):
    async def prompt_section(self, user_id: uuid.UUID, query: str) -> str: ...


# Formats the files the claim read (ClaimedRun.files) for the prompt; "" when there are none.
FilesSection = Callable[[Sequence[Mapping[str, Any]]], str]


@dataclass
class Execution:
    """A run executing in this worker, and how it is stopped."""

    run: ClaimedRun
    task: asyncio.Task[None] | None = None
    reason: StopReason | None = None
    finishing: bool = field(default=False)  # past the point where stopping changes the outcome

    def stop(self, reason: StopReason) -> None:
        if self.finishing:
            return
        if self.reason is None or _PRIORITY[reason] > _PRIORITY[self.reason]:
            self.reason = reason
        if self.task is not None and not self.task.done():
            self.task.cancel()


class RunExecutor:
    def __init__(
        self,
        *,
        agents: AgentGraphs,
        sessionmaker: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        live_runs: LiveRuns,
        worker_id: str,
        memory: LongTermMemory | None = None,
        extract_memories: bool = False,
        files: FilesSection | None = None,
    ) -> None:
        self.agents = agents
        # The assistant each executing run talks to, resolved once when it starts.
        self._agents: dict[uuid.UUID, AssistantAgent] = {}
        self.sessionmaker = sessionmaker
        self.engine = engine_of(sessionmaker)
        self.log = event_log
        self.live_runs = live_runs
        self.worker_id = worker_id
        self.memory = memory
        self.extract_memories = extract_memories
        self.files = files

    async def execute(self, execution: Execution) -> None:
        """Run it to one of its ends; never raises (failures end the run as `error`, except a database
        outage, which leaves the run to be taken over)."""
        run = execution.run
        # Tracing on: a child of the request that queued the run, whichever process that was.
        attributes = {
            "agentserver.run.id": str(run.id),
            "agentserver.run.attempt": run.attempt,
            "session.id": str(run.session_id),
            "user.id": str(run.user_id),
        }
        with tracing.span_from(run.traceparent, "run.execute", attributes):
            await self._execute(execution)

    async def _execute(self, execution: Execution) -> None:
        run = execution.run
        structlog.contextvars.bind_contextvars(run_id=str(run.id), session_id=str(run.session_id))
        previous = await self._last_event(run)
        live = self.live_runs.open(run.id, (previous.seq if previous else 0) + 1)
        emitter = RunEmitter(run.id, self.log, live, previous.seq if previous else 0)
        translator = StreamTranslator(emitter, run.stream_modes)
        try:
            self._agents[run.id] = await self._resolve(run)
            if previous is None:
                emitter.emit(events.metadata(str(run.id), str(run.session_id)))
            elif previous.name != "approval_required":
                # Taken over from a worker that stopped mid-answer: what it streamed is void.
                emitter.emit(events.reset())
            if run.cancel_requested:
                execution.stop(StopReason(run.cancel_requested))
                raise asyncio.CancelledError
            await self._stream(run, translator)
            execution.finishing = True
            if translator.interrupt is not None:
                await self._pause(run, translator, emitter)
            else:
                await self._succeed(run, translator, emitter)
        except asyncio.CancelledError:
            # Shielded: what the run produced is saved (or handed over) although its task is cancelled.
            await asyncio.shield(self._stopped(execution, translator, emitter))
        except Exception as exc:
            execution.finishing = True
            if _is_outage(exc):
                # The database went away under the run (a restart, an outage): its row still says running,
                # so once the database is back the reaper hands it to a worker, which resumes it from its
                # last checkpoint. Followers keep waiting for that ending; nothing is failed here.
                log.warning("runs.database_unavailable", error=type(exc).__name__)
            elif isinstance(exc, AppError):
                await self._fail(run, exc, emitter, translator)
            else:
                log_failure(log, "runs.failed", exc)
                await self._fail(run, InternalServerError(), emitter, translator)
        finally:
            await asyncio.shield(self._close(run, emitter, live))
            self._agents.pop(run.id, None)

    async def _resolve(self, run: ClaimedRun) -> AssistantAgent:
        """The run's assistant: from the cache (the claim brought its id and version), or read once."""
        agent = self.agents.cached(run.assistant_id, run.assistant_version)
        if agent is not None:
            return agent
        async with session_scope(self.sessionmaker) as db:
            assistant = await resolve_assistant(self.agents.catalog, db, run.user_id, run.assistant_id)
        return await self.agents.get(assistant)

    def _agent(self, run: ClaimedRun) -> AssistantAgent:
        return self._agents.get(run.id) or self.agents.default

    def graph(self, run: ClaimedRun) -> CompiledStateGraph[Any, Any, Any, Any]:
        return self._agent(run).graph

    # --- the graph ------------------------------------------------------------------------------------------
    def config(self, run: ClaimedRun) -> Any:
        # metadata.run_id lands in every checkpoint the run writes: a second attempt with the same run id
        # resumes from the last one instead of starting over, and a rollback finds what to erase.
        return {"configurable": {"thread_id": str(run.session_id)}, "metadata": {"run_id": str(run.id)}}

    async def _stream(self, run: ClaimedRun, translator: StreamTranslator) -> None:
        memory_task = asyncio.create_task(self._memory_section(run))
        tracing.annotate({"agentserver.assistant": self._agent(run).assistant.name})
        files_section = self._files_section(run)

        async def files() -> str:
            return files_section

        context = TurnContext(
            user_id=run.user_id,
            session_id=run.session_id,
            long_term_memory=lambda: memory_task,
            model_options=run.model_options or {},
            files=files,
        )
        graph_input: Any
        if run.resume is not None:
            graph_input = Command(resume=run.resume)
        else:
            graph_input = {"messages": [HumanMessage(run.text, id=str(run.user_message_id))], "tool_rounds": 0}
        try:
            item: Any
            async for item in self.graph(run).astream(
                graph_input, self.config(run), context=context, stream_mode=STREAM_MODES, durability=DURABILITY
            ):
                mode, data = item
                translator.feed(mode, data)
        finally:
            memory_task.cancel()

    async def _memory_section(self, run: ClaimedRun) -> str:
        if self.memory is None or not run.text or not self._agent(run).memory:
            return ""
        try:
            return await self.memory.prompt_section(run.user_id, run.text)
        except Exception as exc:
            # Memory makes answers better; its failure must not stop the answer.
            log_failure(log, "runs.memory_search_failed", exc)
            return ""

    def _files_section(self, run: ClaimedRun) -> str:
        # Read by the claim (no statement of its own); formatted by the documents domain.
        return self.files(run.files) if self.files is not None and run.files else ""

    async def _result(self, run: ClaimedRun, translator: StreamTranslator) -> RunResult:
        values = translator.last_values
        if values is None:  # a takeover of a run whose graph had already finished: nothing was streamed
            values = (await self.graph(run).aget_state(self.config(run))).values
        messages = run_messages(values.get("messages") or [], run.user_message_id)
        return result_of(messages, translator.extra_usage)

    # --- the ends -------------------------------------------------------------------------------------------
    async def _succeed(self, run: ClaimedRun, translator: StreamTranslator, emitter: RunEmitter) -> None:
        result = await self._result(run, translator)
        message_id = await self._finish(run, RunStatus.success, result)
        if message_id is False:
            return
        CHAT_TURNS.labels(outcome=result.finish_reason).inc()
        emitter.emit(events.done(str(message_id) if message_id else None, result.usage.as_dict(), result.finish_reason))

    async def _pause(self, run: ClaimedRun, translator: StreamTranslator, emitter: RunEmitter) -> None:
        assert translator.interrupt is not None
        result = await self._result(run, translator)
        async with session_scope(self.sessionmaker) as db:
            paused = await RunRepository.from_session(db).pause(
                run.id, self.worker_id, translator.interrupt, result.usage.as_dict()
            )
        if paused:
            CHAT_TURNS.labels(outcome="interrupted").inc()
            tracing.annotate({"agentserver.run.status": RunStatus.interrupted.value})
            emitter.emit(events.approval_required(str(run.id), translator.interrupt))

    async def _fail(self, run: ClaimedRun, error: AppError, emitter: RunEmitter, translator: StreamTranslator) -> None:
        # What the model calls before the failure spent (a tool call's turn, a summary) still counts.
        values = translator.last_values
        messages = run_messages(values.get("messages") or [], run.user_message_id) if values else []
        usage = result_of(messages, translator.extra_usage).usage
        spent = Spent(usage.input_tokens, usage.output_tokens, usage.cost_usd, current_periods(datetime.now(UTC)))
        try:
            async with autocommit(self.engine) as conn:
                ended = await RunRepository.from_session(conn).fail(
                    run.id, self.worker_id, error=error.name, detail=error.message, usage=usage.as_dict(), spent=spent
                )
        except Exception as exc:
            # Not recorded, so not announced: the reaper takes the run over once its heartbeat stops.
            log_failure(log, "runs.fail_not_recorded", exc)
            return
        if ended:
            CHAT_TURNS.labels(outcome="error").inc()
            tracing.annotate({"agentserver.run.status": RunStatus.error.value, "error.type": error.name})
            tracing.fail(error.name)
            emitter.emit(events.error(type(error).__name__, error.message))

    async def _finish(self, run: ClaimedRun, status: RunStatus, result: RunResult) -> uuid.UUID | None | bool:
        """End the run and store its answer, all or nothing, in one statement. The message id (None: nothing
        to store), or False when the run was not ours to end any more."""
        message_id = None if result.empty else uuid.uuid4()
        message = None
        if message_id is not None:
            message = {
                "id": message_id,
                "content": result.content,
                "tool_calls": result.tool_calls or None,
                "model": result.usage.model,
                "input_tokens": result.usage.input_tokens,
                "output_tokens": result.usage.output_tokens,
                "cost_usd": result.usage.cost_usd,
                "finish_reason": result.finish_reason,
            }
        job = None
        if (
            self.extract_memories
            and self._agent(run).memory
            and message_id is not None
            and result.finish_reason == "complete"
            and result.content
            and run.user_message_id is not None
        ):
            payload = {
                "session_id": str(run.session_id),
                "user_message_id": str(run.user_message_id),
                "assistant_message_id": str(message_id),
            }
            job = (MEMORY_EXTRACT_JOB, WORK_CHANNEL, payload)
        async with autocommit(self.engine) as conn:
            ended = await RunRepository.from_session(conn).finish_with_answer(
                run.id,
                self.worker_id,
                status,
                usage=result.usage.as_dict(),
                message=message,
                job=job,
                # What the run spent, counted against the user's budgets with the run's end: exactly once.
                spent=Spent(
                    result.usage.input_tokens,
                    result.usage.output_tokens,
                    result.usage.cost_usd,
                    current_periods(datetime.now(UTC)),
                ),
            )
        if not ended:
            return False
        tracing.annotate(
            {
                "agentserver.run.status": status.value,
                "agentserver.run.finish_reason": result.finish_reason,
                "gen_ai.response.model": result.usage.model,
                "gen_ai.usage.input_tokens": result.usage.input_tokens,
                "gen_ai.usage.output_tokens": result.usage.output_tokens,
                "agentserver.cost_usd": float(result.usage.cost_usd),
                "agentserver.tool_calls": len(result.tool_calls),
            }
        )
        return message_id

    async def _stopped(self, execution: Execution, translator: StreamTranslator, emitter: RunEmitter) -> None:
        run, reason = execution.run, execution.reason or StopReason.shutdown
        execution.finishing = True
        try:
            if reason in (StopReason.cancel, StopReason.interrupt):
                await self._cancel(run, translator, emitter)
            elif reason is StopReason.rollback:
                await self._roll_back(run, emitter)
            elif reason is StopReason.deleted:
                await self._erase_after_deletion(run)
            elif reason is StopReason.shutdown:
                async with session_scope(self.sessionmaker) as db:
                    released = await RunRepository.from_session(db).release(run.id, self.worker_id)
                log.info("runs.released", released=released)
            else:
                log.info("runs.lost")  # another worker took it over; it writes the outcome
        except Exception as exc:
            log_failure(log, "runs.stop_failed", exc, reason=reason.value)

    async def _cancel(self, run: ClaimedRun, translator: StreamTranslator, emitter: RunEmitter) -> None:
        partial = translator.partial_text
        if partial:
            # Keep the checkpointed conversation identical to what the user saw.
            message = AIMessage(partial, response_metadata={"finish_reason": "cancelled"})
            await self.graph(run).aupdate_state(self.config(run), {"messages": [message]}, as_node="chat")
            translator.last_values = None  # the state changed: read it again
        result = await self._result(run, translator) if partial or translator.last_values else RunResult()
        result.finish_reason = "cancelled"
        message_id = await self._finish(run, RunStatus.cancelled, result)
        if message_id is False:
            return
        CHAT_TURNS.labels(outcome="cancelled").inc()
        log.info("runs.cancelled", chars=len(result.content))
        emitter.emit(events.done(str(message_id) if message_id else None, result.usage.as_dict(), "cancelled"))

    async def _roll_back(self, run: ClaimedRun, emitter: RunEmitter) -> None:
        async with session_scope(self.sessionmaker) as db:
            ended = await RunRepository.from_session(db).finish(run.id, self.worker_id, RunStatus.cancelled)
            if not ended:
                return
            await erase_run(db, run.session_id, run.id)
        CHAT_TURNS.labels(outcome="rolled_back").inc()
        emitter.emit(events.done(None, {}, "rolled_back"))

    async def _erase_after_deletion(self, run: ClaimedRun) -> None:
        """The session was deleted while the run streamed: erase what the graph wrote since (idempotent)."""
        async with session_scope(self.sessionmaker) as db:
            gone = await db.scalar(select(ChatSession.id).where(ChatSession.id == run.session_id)) is None
            if gone:
                await checkpoints.delete_threads(db, [run.session_id])
        log.info("runs.stopped_for_deletion", erased=gone)

    async def _close(self, run: ClaimedRun, emitter: RunEmitter, live: Any) -> None:
        try:
            await emitter.close()
        finally:
            self.live_runs.close(live)
        try:
            await self.log.expire(run.id)
        except Exception as exc:
            log.warning("runs.event_log_expire_failed", error=type(exc).__name__)
        structlog.contextvars.unbind_contextvars("run_id")

    async def _last_event(self, run: ClaimedRun) -> events.RunEvent | None:
        if run.attempt <= 1 and run.resume is None:
            return None  # a new run has no events yet: skip the round trip
        return await self.log.last(run.id)


def _is_outage(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseUnavailable) or is_database_outage(exc)


async def erase_run(db: AsyncSession, session_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """A rolled-back run leaves nothing: its messages (the user's included) and its checkpoints."""
    await db.execute(delete(Message).where(Message.run_id == run_id))
    await checkpoints.delete_run(db, session_id, run_id)
