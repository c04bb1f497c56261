"""kit.pagination: opaque (timestamp, id) cursors."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agentserver.kit.pagination import InvalidCursor, decode_cursor, encode_cursor, finish_page

POSITION = (datetime(2026, 11, 25, 11, 0, 0, 123456, tzinfo=UTC), uuid.UUID(int=42))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TestCursorRoundTrip:
    def test_decode_returns_the_encoded_position(self) -> None:
        assert decode_cursor(encode_cursor(POSITION)) == POSITION

    def test_keeps_the_offset_of_other_time_zones(self) -> None:
        position = (datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))), uuid.UUID(int=1))

        assert decode_cursor(encode_cursor(position)) == position

    def test_the_cursor_is_url_safe(self) -> None:
        cursor = encode_cursor(POSITION)

        assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    def test_naive_timestamps_cannot_be_encoded(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            encode_cursor((datetime(2026, 1, 1), uuid.UUID(int=1)))


class TestInvalidCursors:
    @pytest.mark.parametrize(
        "cursor",
        [
            "",
            "not base64 !",
            "x" * 201,
            _b64(b"not json"),
            _b64(b"[1, 2]"),
            _b64(b'{"t": "2026-01-01T00:00:00+00:00"}'),
            _b64(b'{"t": "2026-01-01T00:00:00+00:00", "id": "nope"}'),
            _b64(b'{"t": "yesterday", "id": "00000000-0000-0000-0000-000000000001"}'),
            _b64(b'{"t": 5, "id": "00000000-0000-0000-0000-000000000001"}'),
            _b64(b'{"t": "2026-01-01T00:00:00", "id": "00000000-0000-0000-0000-000000000001"}'),
            _b64(b'{"t": "2026-01-01T00:00:00+00:00", "id": "00000000-0000-0000-0000-000000000001", "x": 1}'),
            _b64(b"\xff\xfe"),
        ],
    )
    def test_is_refused(self, cursor: str) -> None:
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor)

    def test_is_a_422_with_a_helpful_message(self) -> None:
        error = InvalidCursor()

        assert error.status_code == 422
        assert "next_cursor" in error.message


class TestFinishPage:
    def test_an_extra_row_means_a_next_page_from_the_last_item(self) -> None:
        rows = [(POSITION[0] - timedelta(minutes=i), uuid.UUID(int=i)) for i in range(3)]

        page, cursor = finish_page(rows, 2, key=lambda row: row)

        assert page == rows[:2]
        assert cursor is not None
        assert decode_cursor(cursor) == rows[1]

    def test_no_extra_row_means_the_last_page(self) -> None:
        rows = [POSITION]

        assert finish_page(rows, 2, key=lambda row: row) == ([POSITION], None)

    def test_empty(self) -> None:
        assert finish_page([], 2, key=lambda row: row) == ([], None)
