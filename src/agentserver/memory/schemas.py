"""API shapes of the memories endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from agentserver.memory.service import MemoryItem


class MemoryRead(BaseModel):
    id: uuid.UUID
    text: str
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, item: MemoryItem) -> MemoryRead:
        return cls(id=item.id, text=item.text, created_at=item.created_at, updated_at=item.updated_at)


class MemoryHit(MemoryRead):
    score: float | None  # relevance to the query, 0..1

    @classmethod
    def of(cls, item: MemoryItem) -> MemoryHit:
        return cls(id=item.id, text=item.text, created_at=item.created_at, updated_at=item.updated_at, score=item.score)


class MemoryList(BaseModel):
    memories: list[MemoryRead]


class MemorySearchResult(BaseModel):
    memories: list[MemoryHit]
