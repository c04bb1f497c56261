"""Users' own assistants: create, read, change (the version goes up), delete; and what they may use.

A user's assistant may name only the tools in USER_ASSISTANT_TOOLS (default: the built-ins and every MCP
server's tools) and only the deployment's models: anything else is a 422, so no user can reach a tool or a
paid model the operator did not offer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.agent.assistants import (
    BUILTIN_TOOLS,
    Assistant,
    AssistantCatalog,
    AssistantSpec,
    find_assistant,
    list_assistants,
    user_assistant,
)
from agentserver.assistants.errors import (
    AssistantNameTaken,
    AssistantNotFound,
    ReadOnlyAssistant,
    ToolNotAllowed,
    TooManyAssistants,
)
from agentserver.assistants.repository import UserAssistantRepository
from agentserver.assistants.schemas import AssistantUpdate
from agentserver.kit.errors import AppError
from agentserver.models import UserAssistant

log = structlog.get_logger(__name__)

MAX_ASSISTANTS_PER_USER = 50


class InvalidAssistant(AppError):
    """The assistant's fields do not fit together (e.g. approval for a tool it does not have)."""

    status_code = 422


class AssistantService:
    async def list(self, db: AsyncSession, catalog: AssistantCatalog, user_id: uuid.UUID) -> list[Assistant]:
        return await list_assistants(catalog, db, user_id)

    async def get(self, db: AsyncSession, catalog: AssistantCatalog, user_id: uuid.UUID, ref: str) -> Assistant:
        found = await find_assistant(catalog, db, user_id, ref)
        if found is None:
            raise AssistantNotFound()
        return found

    async def create(
        self,
        db: AsyncSession,
        catalog: AssistantCatalog,
        user_id: uuid.UUID,
        spec: AssistantSpec,
        *,
        models: Sequence[str],
    ) -> Assistant:
        spec = self._check_allowed(catalog, spec, models)
        repository = UserAssistantRepository.from_session(db)
        await self._check_name(repository, catalog, user_id, spec.name)
        if await repository.count_owned(user_id) >= MAX_ASSISTANTS_PER_USER:
            raise TooManyAssistants(f"A user may have at most {MAX_ASSISTANTS_PER_USER} assistants")
        row = UserAssistant(id=uuid.uuid4(), user_id=user_id, version=1)
        _apply(row, spec)
        await repository.add(row)
        log.info("assistants.created", assistant_id=str(row.id))
        return user_assistant(row)

    async def update(
        self,
        db: AsyncSession,
        catalog: AssistantCatalog,
        user_id: uuid.UUID,
        assistant_id: uuid.UUID,
        changes: AssistantUpdate,
        *,
        models: Sequence[str],
    ) -> Assistant:
        repository = UserAssistantRepository.from_session(db)
        row = await self._own(repository, catalog, user_id, assistant_id)
        merged = user_assistant(row).spec.model_dump()
        merged.update({key: getattr(changes, key) for key in changes.model_fields_set})
        try:
            spec = AssistantSpec.model_validate(merged)
        except ValidationError as exc:
            raise InvalidAssistant("; ".join(str(e["msg"]) for e in exc.errors())) from None
        spec = self._check_allowed(catalog, spec, models)
        if spec.name != row.name:
            await self._check_name(repository, catalog, user_id, spec.name, other_than=row.id)
        _apply(row, spec)
        row.version += 1
        await repository.save(row)
        log.info("assistants.updated", assistant_id=str(row.id), version=row.version)
        return user_assistant(row)

    async def delete(
        self, db: AsyncSession, catalog: AssistantCatalog, user_id: uuid.UUID, assistant_id: uuid.UUID
    ) -> None:
        repository = UserAssistantRepository.from_session(db)
        row = await self._own(repository, catalog, user_id, assistant_id)
        await repository.delete(row)
        log.info("assistants.deleted", assistant_id=str(assistant_id))

    async def _own(
        self,
        repository: UserAssistantRepository,
        catalog: AssistantCatalog,
        user_id: uuid.UUID,
        assistant_id: uuid.UUID,
    ) -> UserAssistant:
        if catalog.by_id(assistant_id) is not None:
            raise ReadOnlyAssistant("The deployment's assistants are configured in ASSISTANTS_FILE")
        row = await repository.get_owned(user_id, assistant_id)
        if row is None:
            raise AssistantNotFound()
        return row

    @staticmethod
    async def _check_name(
        repository: UserAssistantRepository,
        catalog: AssistantCatalog,
        user_id: uuid.UUID,
        name: str,
        *,
        other_than: uuid.UUID | None = None,
    ) -> None:
        if catalog.by_name(name) is not None or await repository.name_taken(user_id, name, other_than=other_than):
            raise AssistantNameTaken(f"An assistant named {name!r} already exists")

    @staticmethod
    def _check_allowed(catalog: AssistantCatalog, spec: AssistantSpec, models: Sequence[str]) -> AssistantSpec:
        """The spec if the deployment allows it, its tools made explicit (null: the allowed built-ins)."""
        tools = spec.tools if spec.tools is not None else [t for t in BUILTIN_TOOLS if t in catalog.user_tools]
        refused = sorted(set(tools) - catalog.user_tools)
        if refused:
            raise ToolNotAllowed(f"Tools not available to your assistants: {', '.join(refused)}")
        if spec.approval is not None and (extra := sorted(set(spec.approval) - set(tools))):
            raise InvalidAssistant(f"approval names tools the assistant does not have: {', '.join(extra)}")
        wanted = [m for m in (spec.model, *spec.fallback_models) if m]
        if models and (unknown := sorted(set(wanted) - set(models))):
            raise ToolNotAllowed(f"Models not available on this deployment: {', '.join(unknown)}")
        return spec.model_copy(update={"tools": list(tools)})


def _apply(row: UserAssistant, spec: AssistantSpec) -> None:
    row.name = spec.name
    row.description = spec.description
    row.instructions = spec.instructions
    row.model = spec.model
    row.fallback_models = list(spec.fallback_models)
    row.tools = list(spec.tools) if spec.tools is not None else None
    row.approval = list(spec.approval) if spec.approval is not None else None
    row.memory = spec.memory
    row.summary_after_turns = spec.summary_after_turns


assistants = AssistantService()
