"""Assistant bodies. The limits are AssistantSpec's (agent/assistants.py), shared with the assistants file."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentserver.agent.assistants import (
    DESCRIPTION_MAX_LENGTH,
    INSTRUCTIONS_MAX_LENGTH,
    MAX_MODELS,
    MAX_TOOLS,
    Assistant,
    AssistantName,
    AssistantSpec,
    ModelName,
    ToolName,
)


class AssistantCreate(AssistantSpec):
    """A new assistant of the caller's (`tools` null: the built-in tools; `approval` null: the deployment's)."""


class AssistantUpdate(BaseModel):
    """The fields to change; the others keep their values. The version goes up by one."""

    model_config = ConfigDict(extra="forbid")

    name: AssistantName | None = None
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    instructions: str | None = Field(default=None, max_length=INSTRUCTIONS_MAX_LENGTH)
    model: ModelName | None = None
    fallback_models: list[ModelName] | None = Field(default=None, max_length=MAX_MODELS)
    tools: list[ToolName] | None = Field(default=None, max_length=MAX_TOOLS)
    approval: list[ToolName] | None = Field(default=None, max_length=MAX_TOOLS)
    memory: bool | None = None
    summary_after_turns: int | None = Field(default=None, ge=2, le=1000)


class AssistantRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    instructions: str
    model: str | None
    fallback_models: list[str]
    tools: list[str] | None
    approval: list[str] | None
    memory: bool
    summary_after_turns: int | None
    version: int
    owner: Literal["deployment", "user"] = Field(description="deployment: from ASSISTANTS_FILE, read only")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, assistant: Assistant) -> AssistantRead:
        spec = assistant.spec
        return cls(
            id=assistant.id,
            name=assistant.name,
            description=spec.description,
            instructions=spec.instructions,
            model=spec.model,
            fallback_models=list(spec.fallback_models),
            tools=list(spec.tools) if spec.tools is not None else None,
            approval=list(spec.approval) if spec.approval is not None else None,
            memory=spec.memory,
            summary_after_turns=spec.summary_after_turns,
            version=assistant.version,
            owner="deployment" if assistant.owner_id is None else "user",
            created_at=assistant.created_at,
            updated_at=assistant.updated_at,
        )


class AssistantList(BaseModel):
    assistants: list[AssistantRead] = Field(description="The deployment's (the default first), then the caller's")
