"""Run bodies for the API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentserver.models import RunStatus


class RunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    session_id: uuid.UUID
    status: RunStatus
    multitask_strategy: str
    attempt: int
    user_message_id: uuid.UUID | None
    assistant_message_id: uuid.UUID | None
    interrupt: dict[str, Any] | None = Field(description="While interrupted: the tool call waiting for a decision")
    error: str | None
    error_detail: str | None
    usage: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class RunPage(BaseModel):
    runs: list[RunRead]
    next_cursor: str | None


class ResumeRequest(BaseModel):
    """The decision on a paused tool call: run it, refuse it, or run it with edited arguments."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject", "edit"]
    args: dict[str, Any] | None = Field(default=None, description="The arguments to use (decision=edit only)")

    @model_validator(mode="after")
    def _args_only_with_edit(self) -> ResumeRequest:
        if self.decision == "edit" and self.args is None:
            raise ValueError("args: required when decision is 'edit'")
        if self.decision != "edit" and self.args is not None:
            raise ValueError("args: only allowed when decision is 'edit'")
        return self

    def as_decision(self) -> dict[str, Any]:
        decision: dict[str, Any] = {"decision": self.decision}
        if self.args is not None:
            decision["args"] = self.args
        return decision
