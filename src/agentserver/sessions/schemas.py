"""Chat session bodies. Names are trimmed and bounded; they are stored verbatim (escaped where rendered)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NAME_MAX_LENGTH = 200  # the column's length
DEFAULT_SESSION_NAME = "New chat"

SessionName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH)]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SessionName | None = Field(default=None, description=f'Defaults to "{DEFAULT_SESSION_NAME}"')


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SessionName


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime


class SessionPage(BaseModel):
    sessions: list[SessionRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
