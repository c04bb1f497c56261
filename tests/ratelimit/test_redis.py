"""Rate limits on the real Redis: shared across app instances, windows that reset, and Redis down."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from tests.ratelimit.apps import DEAD_REDIS_URL, REDIS_TEST_URL, Apps, redis_keys
from tests.ratelimit.test_ratelimit import add_test_routes

pytestmark = pytest.mark.redis


def storage_errors() -> float:
    return REGISTRY.get_sample_value("agentserver_rate_limit_storage_errors_total") or 0.0


class TestSharedRedis:
    async def test_two_app_instances_enforce_one_limit_together(self, apps: Apps, redis_prefix: str) -> None:
        config = {"redis_url": REDIS_TEST_URL, "redis_key_prefix": redis_prefix, "rate_limit_default": "3/minute"}
        first = await apps.client(await apps.app(setup=add_test_routes, **config))
        second = await apps.client(await apps.app(setup=add_test_routes, **config))

        statuses = [(await client.get("/_test/open")).status_code for client in (first, second, first, second)]

        assert statuses == [200, 200, 200, 429]

    async def test_the_limit_resets_after_the_window(self, apps: Apps, redis_prefix: str) -> None:
        app = await apps.app(
            setup=add_test_routes,
            redis_url=REDIS_TEST_URL,
            redis_key_prefix=redis_prefix,
            rate_limit_default="2/second",
        )
        client = await apps.client(app)
        for _ in range(2):
            await client.get("/_test/open")
        refused = await client.get("/_test/open")

        await asyncio.sleep(1.2)  # the one-second moving window has fully passed
        response = await client.get("/_test/open")

        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert response.status_code == 200

    async def test_keys_carry_the_prefix_and_never_a_raw_email(
        self, apps: Apps, redis_prefix: str, session: AsyncSession
    ) -> None:
        app = await apps.app(redis_url=REDIS_TEST_URL, redis_key_prefix=redis_prefix)
        client = await apps.client(app, session=session)

        await client.post("/api/v1/auth/login", data={"username": "victim@example.com", "password": "guess-1234"})

        keys = await redis_keys(redis_prefix)
        assert len(keys) == 3  # default per IP, login per IP, login per account
        assert all(key.startswith(f"{redis_prefix}:ratelimit:") for key in keys)
        assert not any("victim" in key or "example.com" in key for key in keys)

    async def test_readiness_includes_redis(self, apps: Apps, redis_prefix: str) -> None:
        app = await apps.app(redis_url=REDIS_TEST_URL, redis_key_prefix=redis_prefix)
        client = await apps.client(app)

        response = await client.get("/ready")

        assert response.status_code == 200
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "llm": "ok", "redis": "ok"}}
        assert REGISTRY.get_sample_value("agentserver_dependency_up", {"dependency": "redis"}) == 1.0


class TestRedisDown:
    async def test_requests_are_served(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, redis_url=DEAD_REDIS_URL, rate_limit_default="1/minute")
        client = await apps.client(app)
        before = storage_errors()

        responses = [await client.get("/_test/open") for _ in range(3)]

        assert [r.status_code for r in responses] == [200, 200, 200]
        assert "X-RateLimit-Limit" not in responses[0].headers
        assert storage_errors() == before + 3

    async def test_limited_routes_answer_normally(self, apps: Apps, session: AsyncSession) -> None:
        app = await apps.app(redis_url=DEAD_REDIS_URL, rate_limit_login="1/minute")
        client = await apps.client(app, session=session)
        form = {"username": "someone@example.com", "password": "wrong-password"}

        statuses = [(await client.post("/api/v1/auth/login", data=form)).status_code for _ in range(2)]

        assert statuses == [401, 401]

    async def test_the_service_stays_ready_and_reports_itself_degraded(self, apps: Apps) -> None:
        app = await apps.app(redis_url=DEAD_REDIS_URL)
        client = await apps.client(app)

        response = await client.get("/ready")

        # Requests are served (limits fail open): a readiness probe must not take every replica out.
        assert response.status_code == 200
        assert response.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "llm": "ok", "redis": "unavailable"},
        }

    async def test_the_dependency_gauge_says_redis_is_down(self, apps: Apps) -> None:
        app = await apps.app(redis_url=DEAD_REDIS_URL)
        client = await apps.client(app)

        await client.get("/ready")

        assert REGISTRY.get_sample_value("agentserver_dependency_up", {"dependency": "redis"}) == 0.0
        assert REGISTRY.get_sample_value("agentserver_dependency_up", {"dependency": "database"}) == 1.0
