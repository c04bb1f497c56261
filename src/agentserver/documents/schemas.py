"""Bodies of the files API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from agentserver.models import FileStatus


class FileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str = Field(description="The uploaded file's name, reduced to a safe display name")
    kind: str = Field(description="pdf, txt, md, html, docx, png or jpg (checked from the content)")
    media_type: str
    size_bytes: int
    session_id: uuid.UUID | None = Field(description="Only this session's agent sees the file; null: every session")
    status: FileStatus = Field(description="pending → processing → ready | failed")
    reason: str | None = Field(description="Why ingestion failed (status failed)")
    pages: int | None
    chunk_count: int
    created_at: datetime
    updated_at: datetime


class FilePage(BaseModel):
    files: list[FileRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
