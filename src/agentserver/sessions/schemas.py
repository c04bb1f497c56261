"""Chat session bodies. Names are trimmed and bounded; they are stored verbatim (escaped where rendered)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

NAME_MAX_LENGTH = 200  # the column's length
DEFAULT_SESSION_NAME = "New chat"


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a name is not free text worth cleaning up silently.
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "name must not contain NUL characters")
    return value


SessionName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_no_nul),
]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SessionName | None = Field(default=None, description=f'Defaults to "{DEFAULT_SESSION_NAME}"')
    assistant_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The assistant (id or name) the session talks to, for good; default: the deployment's default",
    )


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SessionName


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    assistant_id: uuid.UUID | None = Field(description="The session's assistant; null: the deployment's default")
    created_at: datetime
    updated_at: datetime


class SessionPage(BaseModel):
    sessions: list[SessionRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
