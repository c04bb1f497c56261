"""LangGraph Agent Server API bodies (the subset `langgraph-sdk` uses for chat), as its clients send and
read them. Unknown request fields are ignored, as the SDK adds new ones over time; fields that would
change what a run does and that agentserver cannot honour are refused (service.py)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agentserver.models import MultitaskStrategy

MAX_METADATA_BYTES = 16_384
MAX_IDS = 1000

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
StreamModeName = Literal[
    "values",
    "messages",
    "messages-tuple",
    "updates",
    "events",
    "tasks",
    "checkpoints",
    "debug",
    "custom",
    "tools",
    "lifecycle",
]


def _bounded_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, ensure_ascii=False, default=str)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
    if "\\u0000" in json.dumps(value):
        raise ValueError("metadata must not contain NUL characters")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_bounded_metadata)]
CheckpointId = Annotated[str, Field(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CheckpointRef(_Body):
    thread_id: Annotated[str, Field(max_length=64)] | None = None
    checkpoint_ns: Annotated[str, Field(max_length=256)] | None = ""
    checkpoint_id: CheckpointId | None = None


# --- assistants ---------------------------------------------------------------------------------------
class AssistantSearch(_Body):
    metadata: Metadata | None = None
    graph_id: Annotated[str, Field(max_length=256)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 10
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0


class AssistantCount(_Body):
    metadata: Metadata | None = None
    graph_id: Annotated[str, Field(max_length=256)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None


class AssistantRead(BaseModel):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


class GraphSchemas(BaseModel):
    graph_id: str
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None


# --- threads ------------------------------------------------------------------------------------------
class ThreadCreate(_Body):
    thread_id: uuid.UUID | None = None
    metadata: Metadata | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[Any] | None = Field(default=None, description="Not supported: threads start empty")


class ThreadPatch(_Body):
    metadata: Metadata = Field(description="Merged into the thread's metadata")


class ThreadSearch(_Body):
    metadata: Metadata | None = None
    values: dict[str, Any] | None = Field(default=None, description="Not supported (a filter on state values)")
    ids: Annotated[list[uuid.UUID], Field(max_length=MAX_IDS)] | None = None
    status: ThreadStatus | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 10
    offset: Annotated[int, Field(ge=0, le=100_000)] = 0
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "updated_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)] | None = None


class ThreadCount(_Body):
    metadata: Metadata | None = None
    values: dict[str, Any] | None = None
    status: ThreadStatus | None = None


class ThreadRead(BaseModel):
    thread_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    status: ThreadStatus
    values: dict[str, Any] | None = Field(description="The thread's current state (null before its first run)")
    interrupts: dict[str, list[dict[str, Any]]] = Field(description="Interrupts waiting, by task id")
    config: dict[str, Any] = Field(default_factory=dict)


class Checkpoint(BaseModel):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None
    checkpoint_map: dict[str, Any] | None = None


class ThreadTask(BaseModel):
    id: str
    name: str
    error: str | None
    interrupts: list[dict[str, Any]]
    checkpoint: Checkpoint | None = None
    state: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


class ThreadState(BaseModel):
    values: dict[str, Any]
    next: list[str]
    tasks: list[ThreadTask]
    checkpoint: Checkpoint
    metadata: dict[str, Any]
    created_at: str | None
    parent_checkpoint: Checkpoint | None
    interrupts: list[dict[str, Any]]


class StateCheckpointRequest(_Body):
    checkpoint: CheckpointRef
    subgraphs: bool = False


class HistoryRequest(_Body):
    limit: Annotated[int, Field(ge=1, le=1000)] = 10
    before: CheckpointId | CheckpointRef | None = None
    metadata: Metadata | None = None
    checkpoint: CheckpointRef | None = None


# --- runs ---------------------------------------------------------------------------------------------
class RunCommand(_Body):
    resume: Any = None
    update: Any = None
    goto: Any = None


class RunCreate(_Body):
    assistant_id: Annotated[str, Field(min_length=1, max_length=256)]
    input: dict[str, Any] | None = None
    command: RunCommand | None = None
    stream_mode: StreamModeName | Annotated[list[StreamModeName], Field(max_length=16)] = "values"
    multitask_strategy: MultitaskStrategy | None = None
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    metadata: Metadata | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: CheckpointId | None = None
    interrupt_before: Any = None
    interrupt_after: Any = None
    webhook: Annotated[str, Field(max_length=2048)] | None = None
    after_seconds: Annotated[float, Field(ge=0, le=31_536_000)] | None = None

    def modes(self) -> list[str]:
        return [self.stream_mode] if isinstance(self.stream_mode, str) else list(self.stream_mode)


class RunRead(BaseModel):
    run_id: uuid.UUID
    thread_id: uuid.UUID
    assistant_id: str
    created_at: datetime
    updated_at: datetime
    status: RunStatus
    metadata: dict[str, Any]
    multitask_strategy: str
    cancel_reason: str | None = None


class Info(BaseModel):
    version: str
    langgraph_py_version: str
    flags: dict[str, bool]
