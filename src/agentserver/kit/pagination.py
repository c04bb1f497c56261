"""Keyset (cursor) pagination on a (timestamp, id) pair.

A cursor is the position of the last item of a page, made opaque (base64url of a small JSON) so clients
treat it as a token, not a format to build. Anything `decode_cursor` did not produce is refused with a
422 `InvalidCursor`. A well-formed but forged cursor only moves the starting point: queries stay scoped
to the caller's rows by their own filters, so it cannot reveal anything.

Usage (newest first)::

    statement = keyset_page(select(Row).where(...), Row.updated_at, Row.id, cursor=cursor, limit=limit)
    rows = (await session.execute(statement)).scalars().all()
    page, next_cursor = finish_page(rows, limit, key=lambda row: (row.updated_at, row.id))
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar, TypeVarTuple

from fastapi import Query
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from agentserver.kit.errors import AppError

T = TypeVar("T")
RowTypes = TypeVarTuple("RowTypes")
Position = tuple[datetime, uuid.UUID]

# Encoded cursors are ~90 characters; the bound keeps a hostile query string from reaching the decoder.
CURSOR_MAX_LENGTH = 200
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

# The query parameters of every cursor-paginated list endpoint (`limit: PageLimit = DEFAULT_PAGE_SIZE`).
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
PageCursor = Annotated[str | None, Query(max_length=CURSOR_MAX_LENGTH)]


class InvalidCursor(AppError):
    """The pagination cursor was not issued by this server (or has been altered)."""

    status_code = 422

    def __init__(self) -> None:
        super().__init__("cursor: invalid pagination cursor; use the next_cursor value from the previous page")


def encode_cursor(position: Position) -> str:
    timestamp, item_id = position
    if timestamp.tzinfo is None:
        raise ValueError("cursor timestamps must be timezone-aware")
    payload = json.dumps({"t": timestamp.isoformat(), "id": str(item_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position encoded in `cursor`; InvalidCursor for anything else."""
    if not cursor or len(cursor) > CURSOR_MAX_LENGTH:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or set(data) != {"t", "id"}:
            raise ValueError("unexpected cursor shape")
        timestamp = datetime.fromisoformat(data["t"])
        item_id = uuid.UUID(data["id"])
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidCursor() from exc
    if timestamp.tzinfo is None:
        raise InvalidCursor()
    return timestamp, item_id


def keyset_page(
    statement: Select[*RowTypes],
    timestamp_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    *,
    cursor: str | None,
    limit: int,
    descending: bool = True,
) -> Select[*RowTypes]:
    """`statement` restricted to the items after `cursor`, ordered, and limited to `limit + 1` rows.

    The extra row tells `finish_page` whether there is a next page without a COUNT query. Ties on the
    timestamp (rows written in one transaction share `now()`) are broken by id, so no row is skipped
    or repeated across pages.
    """
    if cursor is not None:
        position = tuple_(timestamp_column, id_column)
        after = decode_cursor(cursor)
        statement = statement.where(position < tuple_(*after) if descending else position > tuple_(*after))
    if descending:
        statement = statement.order_by(timestamp_column.desc(), id_column.desc())
    else:
        statement = statement.order_by(timestamp_column.asc(), id_column.asc())
    return statement.limit(limit + 1)


def finish_page(rows: Sequence[T], limit: int, *, key: Callable[[T], Position]) -> tuple[list[T], str | None]:
    """(the page's items, the cursor of the next page or None when this is the last page)."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, encode_cursor(key(page[-1]))
