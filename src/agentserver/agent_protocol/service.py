"""Runs of the Agent Server API are runs (runs/): a request's new user message starts one, a `command:
{resume: ...}` resumes the thread's paused one, and its events are followed like any other run's.

What agentserver cannot honour is refused with a 422 rather than silently ignored: time travel
(`checkpoint`, `checkpoint_id`), `interrupt_before`/`interrupt_after`, webhooks, delayed runs, state
updates and `goto` in commands, and any input besides the one new user message (clients never write
state or create system/assistant messages: the thread keeps the conversation).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.agent.assistants import Assistant, AssistantCatalog, find_assistant
from agentserver.agent.jsonable import jsonable
from agentserver.agent.runtime import AgentRuntime
from agentserver.agent_protocol.schemas import RunCreate, RunRead
from agentserver.agent_protocol.schemas import RunStatus as RunStatusName
from agentserver.agent_protocol.threads import ThreadNotFound, ThreadRepository, interrupts_of, snapshot
from agentserver.assistants.errors import AssistantNotFound
from agentserver.chat.schemas import clean_user_text
from agentserver.config import Settings
from agentserver.kit.db import session_scope
from agentserver.kit.errors import AppError, Conflict, NotFound
from agentserver.models import ChatSession, MultitaskStrategy, Run, RunStatus
from agentserver.runs.errors import InvalidResume, RunNotInterrupted
from agentserver.runs.eventlog import EventLog
from agentserver.runs.events import RunEvent
from agentserver.runs.repository import RunRepository
from agentserver.runs.schemas import ResumeRequest
from agentserver.runs.service import ArgsValidator
from agentserver.runs.service import runs as runs_service
from agentserver.usage.limits import QuotaLimits

STATELESS_SESSION_NAME = "Stateless run"


class UnsupportedRunOption(AppError):
    """The run asks for something agentserver does not do (see the Agent Server API section of the README)."""

    status_code = 422


class InvalidRunInput(AppError):
    """The run's input is not one new user message."""

    status_code = 422


class ThreadBoundToAnotherAssistant(Conflict):
    """The thread talks to another assistant (the one its first run named)."""

    def __init__(self) -> None:
        super().__init__("This thread is bound to another assistant; create a new thread for this one")


class RunNotFoundInThread(NotFound):
    """The run does not exist, is not the caller's, or belongs to another thread."""

    def __init__(self) -> None:
        super().__init__("Run not found")


_RUN_STATUS: dict[RunStatus, RunStatusName] = {
    RunStatus.pending: "pending",
    RunStatus.running: "running",
    RunStatus.interrupted: "interrupted",
    RunStatus.success: "success",
    RunStatus.error: "error",
    RunStatus.cancelled: "interrupted",  # LangGraph's name for a run that was stopped
}


def run_read(run: Run, assistant: Assistant) -> RunRead:
    return RunRead(
        run_id=run.id,
        thread_id=run.session_id,
        assistant_id=str(assistant.id),
        created_at=run.created_at,
        updated_at=run.ended_at or run.started_at or run.created_at,
        status=_RUN_STATUS[run.status],
        metadata={},
        multitask_strategy=run.multitask_strategy,
        cancel_reason=run.cancel_requested,
    )


def user_text(body: RunCreate) -> str:
    """The one new user message of a run's input (`{"messages": [{"role": "user", "content": ...}]}`)."""
    payload = body.input or {}
    extra = set(payload) - {"messages"}
    if extra:
        raise InvalidRunInput(
            f"input: only `messages` can be sent, not {sorted(extra)[0]!r} (the thread keeps its state)"
        )
    messages = payload.get("messages")
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict):
        raise InvalidRunInput("input.messages: send exactly one new user message (the thread keeps the conversation)")
    message = messages[0]
    role = message.get("role", message.get("type"))
    if role not in ("user", "human"):
        raise InvalidRunInput("input.messages: only a user message can be sent (role `user`)")
    content = message.get("content")
    if isinstance(content, list):
        if any(not isinstance(part, dict) or part.get("type") != "text" for part in content):
            raise InvalidRunInput("input.messages: only text content is supported")
        content = "".join(str(part.get("text", "")) for part in content)
    if not isinstance(content, str):
        raise InvalidRunInput("input.messages: the message needs text `content`")
    try:
        return clean_user_text(content)
    except ValueError as exc:
        raise InvalidRunInput(f"input.messages: {exc}") from None


def decision_of(resume: Any) -> dict[str, Any]:
    """A `Command(resume=...)` value as a decision on the paused tool call: `{"decision": "approve" |
    "reject" | "edit", "args": {...}}`, `"approve"`/`"reject"`, `true`/`false`, or any of these under the
    interrupt's id (`{interrupt_id: value}`)."""
    if isinstance(resume, dict) and len(resume) == 1 and "decision" not in resume:
        return decision_of(next(iter(resume.values())))
    if isinstance(resume, dict):
        try:
            return ResumeRequest.model_validate(resume).as_decision()
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidResume(f"command.resume: {first['msg']}") from None
    if resume is True or (isinstance(resume, str) and resume.lower() == "approve"):
        return {"decision": "approve"}
    if resume is False or (isinstance(resume, str) and resume.lower() == "reject"):
        return {"decision": "reject"}
    raise InvalidResume(
        'command.resume: expected {"decision": "approve" | "reject" | "edit", "args": {...}}, "approve" or "reject"'
    )


def refuse_unsupported(body: RunCreate) -> None:
    if body.checkpoint is not None or body.checkpoint_id is not None:
        raise UnsupportedRunOption("checkpoint: runs always continue from the thread's latest state")
    if body.interrupt_before or body.interrupt_after:
        raise UnsupportedRunOption("interrupt_before/interrupt_after: not supported (tools needing approval pause)")
    if body.webhook:
        raise UnsupportedRunOption("webhook: not supported; follow the run with /stream or /join")
    if body.after_seconds:
        raise UnsupportedRunOption("after_seconds: delayed runs are not supported")
    if body.command is not None and (body.command.update is not None or body.command.goto is not None):
        raise UnsupportedRunOption("command: only `resume` is supported")
    if body.command is not None and body.input is not None:
        raise InvalidRunInput("input: send either `input` or `command`, not both")


@dataclass(frozen=True)
class Started:
    """A run a request follows, from which event on."""

    run_id: uuid.UUID
    thread_id: uuid.UUID
    assistant: Assistant
    after: int = 0
    fresh: bool = True
    run: Run | None = None  # as resumed (pending); None for a new run


class AgentRunService:
    async def assistant(self, catalog: AssistantCatalog, db: AsyncSession, user_id: uuid.UUID, ref: str) -> Assistant:
        found = await find_assistant(catalog, db, user_id, ref)
        if found is None:
            raise AssistantNotFound()
        return found

    async def start(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        settings: Settings,
        *,
        user_id: uuid.UUID,
        thread_id: uuid.UUID | None,
        body: RunCreate,
        stream_modes: Sequence[str],
        validate_args: ArgsValidator,
        catalog: AssistantCatalog,
    ) -> Started:
        """Create the run (or resume the thread's paused one); errors are raised before any response starts.

        `thread_id` None: a stateless run, on a session of its own (the caller deletes it afterwards)."""
        refuse_unsupported(body)
        async with session_scope(sessionmaker) as db:
            assistant = await self.assistant(catalog, db, user_id, body.assistant_id)
            threads = ThreadRepository.from_session(db)
            if thread_id is None:
                thread_id = uuid.uuid4()
                db.add(
                    ChatSession(
                        id=thread_id,
                        user_id=user_id,
                        name=STATELESS_SESSION_NAME,
                        thread_metadata={},
                        assistant_id=assistant.id,
                    )
                )
            else:
                if await threads.get(user_id, thread_id) is None and (
                    body.if_not_exists != "create" or not await threads.create(user_id, thread_id, {})
                ):
                    raise ThreadNotFound()
                # A thread is bound to the assistant of its first run; another assistant on it is refused
                # (its conversation, tools and approvals belong to the first).
                if await threads.bind_assistant(user_id, thread_id, assistant.id) != assistant.id:
                    raise ThreadBoundToAnotherAssistant()
            unfinished = await RunRepository.from_session(db).unfinished_in_session(thread_id)
        if body.command is not None:
            waiting = next((r for r in unfinished if r.status is RunStatus.interrupted), None)
            if waiting is None:
                raise RunNotInterrupted()
            last = await event_log.last(waiting.id)
            resumed = await runs_service.resume(
                sessionmaker,
                user_id=user_id,
                run_id=waiting.id,
                decision=decision_of(body.command.resume),
                validate_args=validate_args,
                quotas=QuotaLimits.from_settings(settings),
                stream_modes=stream_modes,
            )
            return Started(waiting.id, thread_id, assistant, after=last.seq if last else 0, fresh=False, run=resumed)
        started = await runs_service.start(
            sessionmaker,
            event_log,
            user_id=user_id,
            session_id=thread_id,
            text=user_text(body),
            max_chars=settings.max_message_chars,
            strategy=body.multitask_strategy or MultitaskStrategy(settings.default_multitask_strategy),
            quotas=QuotaLimits.from_settings(settings),
            stream_modes=stream_modes,
        )
        return Started(started.id, thread_id, assistant)

    async def get(self, db: AsyncSession, *, user_id: uuid.UUID, thread_id: uuid.UUID, run_id: uuid.UUID) -> Run:
        run = await RunRepository.from_session(db).get_owned(user_id, run_id)
        if run is None or run.session_id != thread_id:
            raise RunNotFoundInThread()
        return run

    async def outcome(self, agent: AgentRuntime, thread_id: uuid.UUID, ending: RunEvent | None) -> dict[str, Any]:
        """What `/wait` and `/join` answer: the thread's values after the run (with `__interrupt__` when it
        paused), or `{"__error__": {...}}` when it failed."""
        if ending is not None and ending.name == "error":
            return {"__error__": {"error": ending.data.get("error"), "message": ending.data.get("detail")}}
        state = await snapshot(agent.graph, thread_id)
        values: dict[str, Any] = jsonable(state.values) if isinstance(state.values, dict) else {}
        interrupts = interrupts_of(state)
        if interrupts:
            values["__interrupt__"] = interrupts
        return values


agent_runs = AgentRunService()
