"""The top spenders gauge: by user id, at most N series per period, replaced on every refresh."""

from __future__ import annotations

import uuid
from decimal import Decimal

from prometheus_client import REGISTRY

from agentserver.kit.db import session_scope
from agentserver.usage.metrics import refresh_top_spenders
from agentserver.usage.service import usage as usage_service
from tests.chat.conftest import ChatHarness
from tests.usage.conftest import user_id_of


def gauge(period: str) -> dict[str, float]:
    return {
        sample.labels["user_id"]: sample.value
        for metric in REGISTRY.collect()
        if metric.name == "agentserver_usage_top_user_cost_usd"
        for sample in metric.samples
        if sample.labels["period"] == period
    }


async def spend(harness: ChatHarness, user_id: uuid.UUID, cost: str) -> None:
    async with session_scope(harness.state["sessionmaker"]) as db:
        await usage_service.record_run(db, user_id=user_id, input_tokens=1, output_tokens=1, cost_usd=Decimal(cost))


class TestTopSpenders:
    async def test_the_top_n_by_cost_are_exported_by_user_id_and_replaced(self, usage_app: ChatHarness) -> None:
        users = [await user_id_of(usage_app, await usage_app.new_user()) for _ in range(3)]
        for user_id, cost in zip(users, ("1000", "2000", "3000"), strict=True):
            await spend(usage_app, user_id, cost)

        await refresh_top_spenders(usage_app.state["sessionmaker"], 2)
        first = gauge("day")
        await spend(usage_app, users[0], "5000")
        await refresh_top_spenders(usage_app.state["sessionmaker"], 2)

        assert first == {str(users[2]): 3000.0, str(users[1]): 2000.0}
        assert gauge("day") == {str(users[0]): 6000.0, str(users[2]): 3000.0}
        assert gauge("month") == gauge("day")
