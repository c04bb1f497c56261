"""The graph's state and stream payloads as JSON values, in the shapes LangGraph's clients read.

Messages become their LangChain dicts (`{"type": "human" | "ai" | "tool", "content", "id", ...}`, what
`langgraph-sdk` and `RemoteGraph` parse back), interrupts `{"value", "id"}`; anything else that JSON
cannot hold becomes its string.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.types import Interrupt
from pydantic import BaseModel


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, BaseMessage):
        return jsonable(value.model_dump())
    if isinstance(value, Interrupt):
        return {"value": jsonable(value.value), "id": value.id}
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return str(value)
