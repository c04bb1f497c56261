"""A chat completion is a run: map the request to a session, start (or resume) the run, translate its events.

    request ─► session (sessions.py) ─► runs.start(last user message, enqueue) ─► follow the run's events
                                     └► a run paused for approval + "approve"/"reject" ─► runs.resume

Our events become OpenAI's: `token` → content, `tool_call`/`tool_result` → `reasoning_content` (what the
agent did, as text: the client never has to execute a tool), `done` → usage and `finish_reason: stop`,
`error` → an OpenAI error. A run that pauses for an approval answers with a question; the next message
"approve" or "reject" decides (anything else cancels the paused call and is run as a new message).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agentserver.agent.assistants import Assistant
from agentserver.config import Settings
from agentserver.kit.db import session_scope
from agentserver.kit.errors import AppError, BadRequest, InternalServerError, RelayedError
from agentserver.models import MultitaskStrategy
from agentserver.openai_compat.schemas import ChatCompletionRequest
from agentserver.openai_compat.sessions import (
    ChatBindingRepository,
    ChatKey,
    header_key,
    history_key,
    session_name,
)
from agentserver.runs.errors import SessionNotFound
from agentserver.runs.eventlog import EventLog
from agentserver.runs.events import RunEvent
from agentserver.runs.service import runs as runs_service
from agentserver.usage.limits import QuotaLimits

APPROVE_WORDS = frozenset({"approve", "approved", "yes", "y", "ok", "okay"})
REJECT_WORDS = frozenset({"reject", "rejected", "no", "n", "deny"})
TOOL_RESULT_CHARS = 500  # of a tool's result shown as reasoning


class UnsupportedContent(BadRequest):
    """Only text content is supported (no images, audio or files in messages)."""


@dataclass(frozen=True)
class Turn:
    """The run a request follows, from which event on."""

    session_id: uuid.UUID
    run_id: uuid.UUID
    after: int = 0
    fresh: bool = True


def conversation(request: ChatCompletionRequest) -> list[tuple[str, str]]:
    return [(m.role, m.text()) for m in request.messages if m.role in ("user", "assistant")]


def approval_question(interrupt: dict[str, Any]) -> str:
    args = json.dumps(interrupt.get("args") or {}, ensure_ascii=False)
    return (
        f"The agent wants to run the tool `{interrupt.get('tool', '?')}` with {args} and needs your approval. "
        'Reply "approve" to let it run, or "reject" to refuse.'
    )


@dataclass
class Reply:
    """An answer built from a run's events, as OpenAI deltas and as the whole message."""

    kept: str = ""  # text of the answers before a tool call
    attempt: str = ""  # text of the current answer (a `reset` voids it)
    sent: str = ""  # every content delta handed out (a stream cannot take text back)
    reasoning: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    ending: RunEvent | None = None

    @property
    def content(self) -> str:
        return self.kept + self.attempt

    def feed(self, event: RunEvent) -> tuple[str, str]:
        """(content delta, reasoning delta) for one event."""
        data = event.data
        if event.name == "token":
            text = str(data.get("content", ""))
            self.attempt += text
            self.sent += text
            return text, ""
        if event.name == "reset":
            self.attempt = ""
        elif event.name == "tool_call":
            self.kept, self.attempt = self.kept + self.attempt, ""
            line = f"Calling {data.get('name')}({json.dumps(data.get('args') or {}, ensure_ascii=False)})\n"
            self.reasoning.append(line)
            return "", line
        elif event.name == "tool_result":
            result = str(data.get("content", ""))
            if len(result) > TOOL_RESULT_CHARS:
                result = result[:TOOL_RESULT_CHARS] + "…"
            line = f"{data.get('name')} returned: {result}\n"
            self.reasoning.append(line)
            return "", line
        elif event.terminal:
            self.ending = event
            if event.name == "done":
                self.usage = dict(data.get("usage") or {})
            elif event.name == "approval_required":
                question = approval_question(data)
                self.attempt += question
                self.sent += question
                return question, ""
        return "", ""

    def failure(self) -> AppError | None:
        """The error the run ended with (None if it did not fail)."""
        if self.ending is None:
            return InternalServerError()
        if self.ending.name != "error":
            return None
        error = RelayedError(str(self.ending.data.get("error")), str(self.ending.data.get("detail")))
        # The run was stored: an SDK that retried would send the message again.
        error.headers = {**(error.headers or {}), "x-should-retry": "false"}
        return error

    def usage_fields(self) -> dict[str, int]:
        prompt = int(self.usage.get("input_tokens", 0))
        completion = int(self.usage.get("output_tokens", 0))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class CompletionService:
    async def begin(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        event_log: EventLog,
        settings: Settings,
        *,
        user_id: uuid.UUID,
        request: ChatCompletionRequest,
        assistant: Assistant,
        session_header: str | None,
        chat_id_header: str | None,
    ) -> Turn:
        """Find or create the request's session, then start its run (or resume the run it answers)."""
        last = request.messages[-1]
        if last.has_non_text():
            raise UnsupportedContent("Only text content is supported in messages")
        text = last.text().replace("\x00", "")
        if not text.strip():
            raise BadRequest("The last user message must not be empty")
        async with session_scope(sessionmaker) as db:
            session_id = await self._session(db, user_id, request, session_header, chat_id_header, text, assistant.id)
            paused = await ChatBindingRepository.from_session(db).paused_run(user_id, session_id)
        decision = text.strip().lower().rstrip(".!")
        if paused is not None and decision in APPROVE_WORDS | REJECT_WORDS:
            last_event = await event_log.last(paused)
            await runs_service.resume(
                sessionmaker,
                user_id=user_id,
                run_id=paused,
                decision={"decision": "approve" if decision in APPROVE_WORDS else "reject"},
                validate_args=_no_edits,
                quotas=QuotaLimits.from_settings(settings),
            )
            return Turn(session_id, paused, after=last_event.seq if last_event else 0, fresh=False)
        started = await runs_service.start(
            sessionmaker,
            event_log,
            user_id=user_id,
            session_id=session_id,
            text=text,
            max_chars=settings.max_message_chars,
            # OpenAI clients do not expect a 409: a second message waits for the first answer, and one that
            # comes while a tool call waits for approval cancels that call.
            strategy=MultitaskStrategy.interrupt if paused is not None else MultitaskStrategy.enqueue,
            quotas=QuotaLimits.from_settings(settings),
            model_options=request.model_options(),
        )
        return Turn(session_id, started.id)

    async def _session(
        self,
        db: AsyncSession,
        user_id: uuid.UUID,
        request: ChatCompletionRequest,
        session_header: str | None,
        chat_id_header: str | None,
        text: str,
        assistant_id: uuid.UUID,
    ) -> uuid.UUID:
        """The request's session; a new one is bound to the request's `model` (an existing session keeps the
        assistant it was created with)."""
        bindings = ChatBindingRepository.from_session(db)
        if session_header is not None:
            try:
                session_id = uuid.UUID(session_header.strip())
            except ValueError:
                raise SessionNotFound() from None
            if not await bindings.owns_session(user_id, session_id):
                raise SessionNotFound()
            return session_id
        key: ChatKey | None = None
        if chat_id_header:
            key = header_key("openwebui", chat_id_header)
        elif request.user:
            key = header_key("user", request.user)
        else:
            prior = conversation(request)[:-1]
            key = history_key(prior) if prior else None
        if key is not None and (found := await bindings.find(user_id, key)) is not None:
            return found
        if key is None or key.kind == "history":
            # A history key is bound once the answer is known (`remember`).
            return await bindings.create_session(user_id, session_name(text), assistant_id)
        # Two first requests of one chat racing: the one that binds first wins, the other's session goes.
        async with db.begin_nested() as savepoint:
            session_id = await bindings.create_session(user_id, session_name(text), assistant_id)
            bound = await bindings.bind_new(user_id, key, session_id)
            if bound != session_id:
                await savepoint.rollback()
        return bound

    async def remember(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        request: ChatCompletionRequest,
        answer: str,
    ) -> None:
        """Record the conversation as the client will resend it, so its next request finds this session."""
        key = history_key([*conversation(request), ("assistant", answer)])
        async with session_scope(sessionmaker) as db:
            if await ChatBindingRepository.from_session(db).owns_session(user_id, session_id):
                await ChatBindingRepository.from_session(db).rebind(user_id, key, session_id)


def _no_edits(tool: str, args: dict[str, Any]) -> None:
    """Decisions from this API are approve or reject: there are no edited arguments to check."""


completions = CompletionService()
