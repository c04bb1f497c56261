"""`/api/v1/auth/api-keys`: the caller's API keys. The key itself is in the creation's answer only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agentserver.auth.api_keys import ApiKeyNotFound, TooManyApiKeys
from agentserver.auth.api_keys import api_keys as api_keys_service
from agentserver.auth.dependencies import CurrentUser
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized

router = APIRouter(prefix="/api/v1/auth/api-keys", tags=["auth"], responses={401: Unauthorized.schema()})

MAX_EXPIRY_DAYS = 3650


def _key_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("name must not be blank")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("name must not contain control characters")
    return value


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_key_name)]
    expires_in_days: int | None = Field(
        default=None, ge=1, le=MAX_EXPIRY_DAYS, description="Days until the key stops working; null: never"
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key: shown this once, stored only as a hash")


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyRead]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (shown once); use it as `Authorization: Bearer <key>` or `x-api-key`",
    responses={409: TooManyApiKeys.schema()},
)
async def create_api_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    row, key = await api_keys_service.create(session, user.id, name=body.name, expires_in_days=body.expires_in_days)
    return ApiKeyCreated(**ApiKeyRead.model_validate(row).model_dump(), key=key)


@router.get("", summary="The caller's API keys (not revoked), newest first")
async def list_api_keys(user: CurrentUser, session: SessionDep) -> ApiKeyList:
    rows = await api_keys_service.list(session, user.id)
    return ApiKeyList(api_keys=[ApiKeyRead.model_validate(row) for row in rows])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key: it stops working at once, everywhere",
    responses={404: ApiKeyNotFound.schema()},
)
async def revoke_api_key(key_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    await api_keys_service.revoke(session, user.id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
