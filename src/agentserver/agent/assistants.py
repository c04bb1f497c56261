"""Assistants: named agent configurations (instructions, models, tools, approvals, memory), and how every
API finds them.

    ASSISTANTS_FILE (YAML/TOML) or assistants.default.yaml ─► AssistantCatalog (the deployment's, in memory)
    table `assistants` (users' own, owner-scoped) ────────────┘
                                                              ├► list_assistants / find_assistant (all APIs)
    chat_sessions.assistant_id (bound at creation) ───────────┴► assistant_of_session, the run's graph

Deployment assistants live only in memory: the file is their source of truth, so editing it and restarting
is the whole change (no rows to migrate or drift). Their ids are derived from their names (stable across
processes and restarts); `agent` keeps the id LangGraph clients already know (DEFAULT_ASSISTANT_ID).
A session whose `assistant_id` is NULL talks to the deployment's default (a thread the Agent Server API
created is bound by its first run; a session whose own assistant was deleted falls back to the default).
"""

from __future__ import annotations

import os
import re
import tomllib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.models import ChatSession, UserAssistant

# LangGraph's default graph name; also the default assistant's name (the model OpenAI clients send).
DEFAULT_GRAPH_ID = "agent"
# Stable across processes and restarts (LangGraph derives a graph's default assistant id the same way).
DEFAULT_ASSISTANT_ID = uuid.uuid5(uuid.NAMESPACE_DNS, "agentserver.default-assistant")
_DEFAULT_CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)
# search_documents (documents/tool.py) exists when DOCUMENTS_ENABLED; it is bound only on turns with files.
BUILTIN_TOOLS = ("calculator", "web_search", "get_weather", "search_documents")
MCP_SEPARATOR = "__"  # an MCP tool's name: <server>__<tool>

NAME_MAX_LENGTH = 64
DESCRIPTION_MAX_LENGTH = 500
INSTRUCTIONS_MAX_LENGTH = 8000
MAX_TOOLS = 64
MAX_MODELS = 5

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # usable as an OpenAI `model` and in a URL
AssistantName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH, pattern=_NAME_PATTERN)
]
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ServerName = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9-]+$")]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class AssistantSpec(BaseModel):
    """What an assistant is: the fields of the assistants file and of `/api/v1/assistants`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AssistantName
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    # Added after the server's own instructions (which stay first: they are the cached prompt prefix).
    instructions: str = Field(default="", max_length=INSTRUCTIONS_MAX_LENGTH)
    # None: the deployment's default model and fallbacks. Names must be among the deployment's models.
    model: ModelName | None = None
    fallback_models: list[ModelName] = Field(default_factory=list, max_length=MAX_MODELS)
    # None: every built-in tool. MCP tools are named `<server>__<tool>`.
    tools: list[ToolName] | None = Field(default=None, max_length=MAX_TOOLS)
    # None: TOOLS_REQUIRING_APPROVAL.
    approval: list[ToolName] | None = Field(default=None, max_length=MAX_TOOLS)
    memory: bool = True
    # None: SUMMARY_AFTER_TURNS.
    summary_after_turns: int | None = Field(default=None, ge=2, le=1000)

    @model_validator(mode="after")
    def _check(self) -> AssistantSpec:
        if _parse_uuid(self.name) is not None:
            raise ValueError("name must not look like an id")  # lookups take an id or a name
        _no_nul(self.description)
        _no_nul(self.instructions)
        if self.approval is not None and self.tools is not None:
            unknown = set(self.approval) - set(self.tools)
            if unknown:
                raise ValueError(f"approval names tools the assistant does not have: {sorted(unknown)}")
        return self


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _env_value(match: re.Match[str]) -> str:
    value = os.environ.get(match.group(1))
    if value is None:
        raise ValueError(f"environment variable {match.group(1)} is not set")
    return value


class McpServerSpec(BaseModel):
    """One MCP server: a command started over stdio, or a streamable HTTP endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["stdio", "streamable_http"]
    # env and headers may say `${NAME}`: the value of that environment variable.
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None

    @field_validator("env", "headers", mode="after")
    @classmethod
    def _expand(cls, values: dict[str, str] | None) -> dict[str, str] | None:
        # Credentials stay in the environment (a secret store, Kubernetes secrets), not in the file:
        # `${NAME}` is replaced by the variable's value, and a missing one is an error.
        if values is None:
            return None
        return {key: _ENV_REFERENCE.sub(_env_value, value) for key, value in values.items()}

    @model_validator(mode="after")
    def _check(self) -> McpServerSpec:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio server needs `command`")
        if self.transport == "streamable_http" and not self.url:
            raise ValueError("a streamable_http server needs `url`")
        return self


class AssistantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: AssistantName | None = None  # None: the first assistant
    assistants: list[AssistantSpec] = Field(min_length=1)
    mcp_servers: dict[ServerName, McpServerSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> AssistantsFile:
        names = [a.name for a in self.assistants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"assistant names must be unique: {duplicates}")
        if self.default is not None and self.default not in names:
            raise ValueError(f"default names no assistant: {self.default!r}")
        return self


class AssistantsFileError(ValueError):
    """The assistants file cannot be used; the message names the file, the assistant and the field."""


def _describe(error: Any, data: Any) -> str:
    loc = list(error["loc"])
    where = "file"
    if len(loc) >= 2 and loc[0] == "assistants" and isinstance(loc[1], int):
        index = loc[1]
        name = None
        if isinstance(data, dict) and isinstance(data.get("assistants"), list) and index < len(data["assistants"]):
            entry = data["assistants"][index]
            name = entry.get("name") if isinstance(entry, dict) else None
        where = f"assistant {name!r}" if name else f"assistant #{index + 1}"
        loc = loc[2:]
    elif len(loc) >= 2 and loc[0] == "mcp_servers":
        where = f"MCP server {loc[1]!r}"
        loc = loc[2:]
    field_name = ".".join(str(part) for part in loc) or "(whole entry)"
    return f"{where}, field {field_name}: {error['msg']}"


def parse_assistants(text: str, path: str) -> AssistantsFile:
    """Parse and validate the file's text (TOML for *.toml, else YAML)."""
    try:
        data: Any = tomllib.loads(text) if path.endswith(".toml") else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise AssistantsFileError(
            f"assistants file {path}: not valid {'TOML' if path.endswith('.toml') else 'YAML'}: {exc}"
        ) from None
    try:
        return AssistantsFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e, data) for e in exc.errors())
        raise AssistantsFileError(f"assistants file {path}: {problems}") from None


def load_assistants_file(path: Path | None) -> AssistantsFile:
    """ASSISTANTS_FILE, or the package's default (`agent` and `researcher`) when it is not set."""
    if path is None:
        return parse_assistants(
            (files(__package__) / "assistants.default.yaml").read_text("utf-8"), "assistants.default.yaml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AssistantsFileError(f"assistants file {path}: cannot be read: {exc.strerror}") from None
    return parse_assistants(text, str(path))


def deployment_assistant_id(name: str) -> uuid.UUID:
    if name == DEFAULT_GRAPH_ID:
        return DEFAULT_ASSISTANT_ID
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.assistants.agentserver")


@dataclass(frozen=True)
class Assistant:
    id: uuid.UUID
    name: str  # what OpenAI clients send as `model`
    graph_id: str
    spec: AssistantSpec
    owner_id: uuid.UUID | None = None  # None: the deployment's
    version: int = 1
    created_at: datetime = _DEFAULT_CREATED_AT
    updated_at: datetime = _DEFAULT_CREATED_AT
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str | None:
        return self.spec.description

    @property
    def cache_key(self) -> tuple[uuid.UUID, int]:
        return (self.id, self.version)


def user_assistant(row: UserAssistant) -> Assistant:
    spec = AssistantSpec(
        name=row.name,
        description=row.description,
        instructions=row.instructions,
        model=row.model,
        fallback_models=list(row.fallback_models or []),
        tools=list(row.tools) if row.tools is not None else None,
        approval=list(row.approval) if row.approval is not None else None,
        memory=row.memory,
        summary_after_turns=row.summary_after_turns,
    )
    return Assistant(
        id=row.id,
        name=row.name,
        graph_id=DEFAULT_GRAPH_ID,
        spec=spec,
        owner_id=row.user_id,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        metadata={"created_by": "user"},
    )


class AssistantCatalog:
    """The deployment's assistants (from the file) and what tools users' assistants may have."""

    def __init__(self, config: AssistantsFile, *, user_tools: Iterable[str]) -> None:
        self.config = config
        self.assistants = [
            Assistant(
                id=deployment_assistant_id(spec.name),
                name=spec.name,
                graph_id=DEFAULT_GRAPH_ID,
                spec=spec,
                metadata={"created_by": "system"},
            )
            for spec in config.assistants
        ]
        default_name = config.default or config.assistants[0].name
        self.default = next(a for a in self.assistants if a.name == default_name)
        # The default first: LangGraph clients that ask for the graph `agent` get it.
        self.assistants.sort(key=lambda a: a is not self.default)
        self._by_id = {a.id: a for a in self.assistants}
        self._by_name = {a.name: a for a in self.assistants}
        self.user_tools = frozenset(user_tools)

    def by_id(self, assistant_id: uuid.UUID | None) -> Assistant | None:
        return self.default if assistant_id is None else self._by_id.get(assistant_id)

    def by_name(self, name: str) -> Assistant | None:
        return self._by_name.get(name)

    def all_tools(self) -> set[str]:
        """Every tool some deployment assistant names (None: the built-ins)."""
        named: set[str] = set()
        for a in self.assistants:
            named.update(a.spec.tools if a.spec.tools is not None else BUILTIN_TOOLS)
        return named


def default_catalog() -> AssistantCatalog:
    """The package's default assistants (tests and tools that need a catalog without settings)."""
    return AssistantCatalog(load_assistants_file(None), user_tools=BUILTIN_TOOLS)


def _parse_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


async def list_assistants(catalog: AssistantCatalog, db: AsyncSession, user_id: uuid.UUID) -> list[Assistant]:
    """Every assistant `user_id` may use: the deployment's (the default first), then the user's own by name."""
    rows = (
        await db.execute(select(UserAssistant).where(UserAssistant.user_id == user_id).order_by(UserAssistant.name))
    ).scalars()
    return [*catalog.assistants, *(user_assistant(row) for row in rows)]


async def find_assistant(catalog: AssistantCatalog, db: AsyncSession, user_id: uuid.UUID, ref: str) -> Assistant | None:
    """The assistant `ref` names (its id, its name as OpenAI's model, or the graph id `agent`), if the user may
    use it. Another user's assistant is not found."""
    ref = ref.strip()
    found = catalog.by_name(ref)
    if found is not None:
        return found
    if ref == DEFAULT_GRAPH_ID:
        return catalog.default
    as_id = _parse_uuid(ref)
    if as_id is not None and (found := catalog.by_id(as_id)) is not None:
        return found
    condition = UserAssistant.id == as_id if as_id is not None else UserAssistant.name == ref
    row = await db.scalar(select(UserAssistant).where(UserAssistant.user_id == user_id, condition))
    return user_assistant(row) if row is not None else None


async def resolve_assistant(
    catalog: AssistantCatalog, db: AsyncSession, user_id: uuid.UUID, assistant_id: uuid.UUID | None
) -> Assistant:
    """The assistant a session bound to `assistant_id` talks to: the default when None or gone."""
    found = catalog.by_id(assistant_id)
    if found is not None:
        return found
    row = await db.scalar(
        select(UserAssistant).where(UserAssistant.id == assistant_id, UserAssistant.user_id == user_id)
    )
    return user_assistant(row) if row is not None else catalog.default


async def assistant_of_session(
    catalog: AssistantCatalog, db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID
) -> Assistant:
    """The assistant a session talks to (its runs' assistant)."""
    bound = await db.scalar(
        select(ChatSession.assistant_id).where(ChatSession.id == session_id, ChatSession.user_id == user_id)
    )
    return await resolve_assistant(catalog, db, user_id, bound)


def tools_of(spec: AssistantSpec, available: Sequence[str]) -> list[str]:
    """The names of the tools an assistant gets, among those the process has."""
    wanted = spec.tools if spec.tools is not None else BUILTIN_TOOLS
    return [name for name in available if name in wanted]


def is_mcp_tool(name: str) -> bool:
    return MCP_SEPARATOR in name
