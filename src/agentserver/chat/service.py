"""A chat turn is a run (runs/): this module turns a run's ending into the one-shot `/chat` answer."""

from __future__ import annotations

import uuid
from decimal import Decimal

from agentserver.chat.schemas import ChatResponse, Usage
from agentserver.kit.errors import InternalServerError, RelayedError
from agentserver.runs.events import RunEvent


class AnswerText:
    """The answer's text as a client that honours `reset` shows it, from the run's events: the stored answer
    is the model's last message, i.e. what was streamed since the last tool result (or reset)."""

    def __init__(self) -> None:
        self.text = ""

    def feed(self, event: RunEvent) -> None:
        if event.name == "token":
            self.text += str(event.data.get("content", ""))
        elif event.name in ("reset", "tool_call", "tool_result"):
            self.text = ""


class ChatService:
    async def reply(
        self,
        *,
        session_id: uuid.UUID,
        run_id: uuid.UUID,
        ending: RunEvent | None,
        answer_text: str,
    ) -> ChatResponse:
        """The answer of a run that ended with `ending` (`answer_text`: what its events showed, see
        `AnswerText`); its error, raised, if it failed."""
        if ending is None:
            raise InternalServerError()
        data = ending.data
        if ending.name == "error":
            raise RelayedError(str(data.get("error")), str(data.get("detail")))
        if ending.name == "approval_required":
            return ChatResponse(
                session_id=session_id,
                run_id=run_id,
                message="",
                message_id=None,
                finish_reason="approval_required",
                usage=Usage(),
                approval=data,
            )
        message_id = uuid.UUID(data["message_id"]) if data.get("message_id") else None
        content = answer_text if message_id is not None else ""
        usage = data.get("usage") or {}
        input_tokens, output_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        return ChatResponse(
            session_id=session_id,
            run_id=run_id,
            message=content,
            message_id=message_id,
            finish_reason=str(data.get("finish_reason", "complete")),
            usage=Usage(
                model=usage.get("model"),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
                cost_usd=Decimal(str(usage.get("cost_usd", "0"))),
            ),
        )


chat = ChatService()
