"""GET /api/v1/usage: the caller's figures equal the sums of their stored messages, and only theirs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from agentserver.kit.db import session_scope
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from agentserver.models import ChatSession, Message, MessageRole
from tests.chat.conftest import ChatHarness
from tests.usage.conftest import chat, user_id_of

USAGE = "/api/v1/usage"


async def usage(harness: ChatHarness, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    async with harness.client() as http:
        response = await http.get(USAGE, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_sums(harness: ChatHarness, user_id: uuid.UUID) -> dict[str, Any]:
    """What the messages table holds for the user's answers, summed in SQL of our own."""
    async with session_scope(harness.state["sessionmaker"]) as db:
        row = (
            await db.execute(
                select(
                    func.sum(Message.input_tokens),
                    func.sum(Message.output_tokens),
                    func.sum(Message.cost_usd),
                    func.count(),
                )
                .join(ChatSession, ChatSession.id == Message.session_id)
                .where(ChatSession.user_id == user_id, Message.role == MessageRole.assistant)
            )
        ).one()
    return {
        "input_tokens": int(row[0] or 0),
        "output_tokens": int(row[1] or 0),
        "cost_usd": row[2] if row[2] is not None else Decimal("0"),
        "runs": row[3],
    }


async def two_sessions_of_turns(harness: ChatHarness, fake: FakeChatModel) -> tuple[dict[str, str], list[str]]:
    fake.set_script(
        [
            tool_call_turn("calculator", {"expression": "6*7"}),
            "It is 42.",
            "Hello to you too.",
            "Third answer here, five tokens.",
        ]
    )
    headers = await harness.new_user()
    first, second = await harness.new_session(headers), await harness.new_session(headers)
    for session_id, message in ((first, "what is 6*7?"), (first, "hello"), (second, "and a third")):
        response = await chat(harness, headers, session_id, message)
        assert response.status_code == 200, response.text
    return headers, [first, second]


class TestMyUsage:
    async def test_totals_equal_the_sums_of_the_stored_messages(
        self, usage_app: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers, _ = await two_sessions_of_turns(usage_app, fake)

        body = await usage(usage_app, headers)

        stored = await stored_sums(usage_app, await user_id_of(usage_app, headers))
        assert Decimal(body["totals"].pop("cost_usd")) == stored["cost_usd"]
        assert body["totals"] == {
            "input_tokens": stored["input_tokens"],
            "output_tokens": stored["output_tokens"],
            "total_tokens": stored["input_tokens"] + stored["output_tokens"],
            "runs": 3,
            "tool_calls": 1,
        }

    async def test_grouped_by_session_each_session_has_its_own_sums(
        self, usage_app: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers, (first, second) = await two_sessions_of_turns(usage_app, fake)

        body = await usage(usage_app, headers, group_by="session")

        by_key = {group["key"]: group for group in body["groups"]}
        assert set(by_key) == {first, second}
        assert (by_key[first]["runs"], by_key[first]["tool_calls"]) == (2, 1)
        assert (by_key[second]["runs"], by_key[second]["tool_calls"]) == (1, 0)
        assert by_key[second]["output_tokens"] == 5  # "Third answer here, five tokens."
        assert sum(g["input_tokens"] for g in body["groups"]) == body["totals"]["input_tokens"]

    async def test_grouped_by_model_and_by_day(self, usage_app: ChatHarness, fake: FakeChatModel) -> None:
        headers, _ = await two_sessions_of_turns(usage_app, fake)

        by_model = await usage(usage_app, headers, group_by="model")
        by_day = await usage(usage_app, headers, group_by="day")

        assert [(g["key"], g["runs"]) for g in by_model["groups"]] == [("fake", 3)]
        assert [(g["key"], g["runs"]) for g in by_day["groups"]] == [(datetime.now(UTC).date().isoformat(), 3)]

    async def test_a_range_before_the_messages_is_empty(self, usage_app: ChatHarness, fake: FakeChatModel) -> None:
        headers, _ = await two_sessions_of_turns(usage_app, fake)
        end = datetime.now(UTC) - timedelta(days=1)

        body = await usage(usage_app, headers, **{"to": end.isoformat(), "group_by": "model"})

        assert body["groups"] == []
        assert body["totals"]["runs"] == 0
        assert body["to"] == end.isoformat().replace("+00:00", "Z")


class TestIsolation:
    async def test_another_users_usage_is_never_visible(self, usage_app: ChatHarness, fake: FakeChatModel) -> None:
        _, sessions = await two_sessions_of_turns(usage_app, fake)
        stranger = await usage_app.new_user()

        by_session = await usage(usage_app, stranger, group_by="session")

        assert by_session["groups"] == []
        assert by_session["totals"]["runs"] == 0
        assert not set(sessions) & {g["key"] for g in by_session["groups"]}


class TestBadRanges:
    async def test_from_after_to_is_a_422(self, usage_app: ChatHarness) -> None:
        headers = await usage_app.new_user()
        async with usage_app.client() as http:
            response = await http.get(
                USAGE, params={"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, headers=headers
            )

        assert response.status_code == 422
        assert response.json() == {"error": "InvalidUsageRange", "detail": "from: must be before to"}

    async def test_more_than_a_year_is_a_422(self, usage_app: ChatHarness) -> None:
        headers = await usage_app.new_user()
        async with usage_app.client() as http:
            response = await http.get(USAGE, params={"from": "2020-01-01", "to": "2026-01-01"}, headers=headers)

        assert response.status_code == 422
        assert response.json()["detail"] == "from: the range is at most 366 days"

    async def test_an_unknown_grouping_is_a_422(self, usage_app: ChatHarness) -> None:
        headers = await usage_app.new_user()
        async with usage_app.client() as http:
            response = await http.get(USAGE, params={"group_by": "user"}, headers=headers)

        assert response.status_code == 422

    async def test_anonymous_is_a_401(self, usage_app: ChatHarness) -> None:
        async with usage_app.client() as http:
            response = await http.get(USAGE)

        assert response.status_code == 401
