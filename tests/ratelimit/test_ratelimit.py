"""Rate limits in process memory: policies, keys, headers, the 429 body, metrics, client IPs."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Form
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.auth.security import TokenType, issue_token
from agentserver.config import Settings
from agentserver.ratelimit import RateLimiter, rate_limit_chat, rate_limit_login
from tests.ratelimit.apps import Apps


def add_test_routes(app: FastAPI) -> None:
    router = APIRouter(prefix="/_test")

    @router.get("/open")
    async def open_route() -> dict[str, bool]:
        return {"ok": True}

    @router.post("/chat", dependencies=[Depends(rate_limit_chat)])
    async def chat_route() -> dict[str, bool]:
        return {"ok": True}

    @router.post("/login-like", dependencies=[Depends(rate_limit_login)])
    async def login_like(username: Annotated[str, Form()]) -> dict[str, bool]:
        return {"ok": True}

    app.include_router(router)


def rate_limited_total(policy: str) -> float:
    return REGISTRY.get_sample_value("agentserver_rate_limited_total", {"policy": policy}) or 0.0


def bearer(settings: Settings, user_id: uuid.UUID, *, secret: str | None = None) -> dict[str, str]:
    if secret is not None:
        settings = settings.model_copy(update={"jwt_secret_key": SecretStr(secret)})
    token = issue_token(settings, user_id, TokenType.access).token
    return {"Authorization": f"Bearer {token}"}


class TestDefaultPolicy:
    async def test_allows_up_to_the_limit_with_headers(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="3/minute")
        client = await apps.client(app)

        remaining = [(await client.get("/_test/open")).headers["X-RateLimit-Remaining"] for _ in range(3)]

        assert remaining == ["2", "1", "0"]

    async def test_refuses_over_the_limit_with_the_standard_body(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="2/minute")
        client = await apps.client(app)
        for _ in range(2):
            await client.get("/_test/open")
        before = rate_limited_total("default")

        response = await client.get("/_test/open")

        assert response.status_code == 429
        assert response.json() == {"error": "TooManyRequests", "detail": "Too many requests, retry later"}
        assert response.headers["X-RateLimit-Limit"] == "2"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert int(response.headers["X-RateLimit-Reset"]) - time.time() <= 61
        assert response.headers["X-Request-ID"]
        assert rate_limited_total("default") == before + 1

    async def test_counts_per_client_ip(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="1/minute")
        first = await apps.client(app, client_ip="203.0.113.1")
        second = await apps.client(app, client_ip="203.0.113.2")
        await first.get("/_test/open")

        response = await second.get("/_test/open")

        assert response.status_code == 200

    async def test_probes_are_never_limited(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="1/minute")
        client = await apps.client(app)

        statuses = [(await client.get("/health")).status_code for _ in range(3)]

        assert statuses == [200, 200, 200]

    async def test_disabled_means_no_limit_and_no_headers(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="1/minute", rate_limit_enabled=False)
        client = await apps.client(app)

        responses = [await client.get("/_test/open") for _ in range(3)]

        assert [r.status_code for r in responses] == [200, 200, 200]
        assert "X-RateLimit-Limit" not in responses[-1].headers


class TestRoutePolicyHeaders:
    async def test_route_policy_headers_win_over_the_default(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="100/minute", rate_limit_login="5/minute")
        client = await apps.client(app)

        response = await client.post("/_test/login-like", data={"username": "a@example.com"})

        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == "4"
        assert list(response.headers.keys()).count("x-ratelimit-limit") == 1

    async def test_route_refusal_has_one_retry_after(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_login="1/minute")
        client = await apps.client(app)
        await client.post("/_test/login-like", data={"username": "a@example.com"})

        response = await client.post("/_test/login-like", data={"username": "a@example.com"})

        assert response.status_code == 429
        assert response.headers.get_list("Retry-After") == [response.headers["Retry-After"]]
        assert response.headers["X-RateLimit-Limit"] == "1"


class TestLoginPolicy:
    async def test_limits_one_account_across_addresses(self, apps: Apps, session: AsyncSession) -> None:
        app = await apps.app(rate_limit_login="2/minute")
        clients = [await apps.client(app, client_ip=f"198.51.100.{n}", session=session) for n in range(3)]
        form = {"username": "victim@example.com", "password": "wrong-password"}
        before = rate_limited_total("login")

        statuses = [(await client.post("/api/v1/auth/login", data=form)).status_code for client in clients]

        assert statuses == [401, 401, 429]
        assert rate_limited_total("login") == before + 1

    async def test_account_key_ignores_case_and_spaces(self, apps: Apps, session: AsyncSession) -> None:
        app = await apps.app(rate_limit_login="1/minute")
        first = await apps.client(app, client_ip="198.51.100.1", session=session)
        second = await apps.client(app, client_ip="198.51.100.2", session=session)
        await first.post("/api/v1/auth/login", data={"username": "Victim@Example.com", "password": "x" * 8})

        response = await second.post("/api/v1/auth/login", data={"username": " victim@example.com", "password": "y"})

        assert response.status_code == 429

    async def test_limits_one_address_across_accounts(self, apps: Apps, session: AsyncSession) -> None:
        app = await apps.app(rate_limit_login="2/minute")
        client = await apps.client(app, session=session)

        statuses = [
            (
                await client.post("/api/v1/auth/login", data={"username": f"u{n}@example.com", "password": "p"})
            ).status_code
            for n in range(3)
        ]

        assert statuses == [401, 401, 429]

    async def test_refused_by_address_does_not_spend_the_account_budget(
        self, apps: Apps, session: AsyncSession
    ) -> None:
        app = await apps.app(rate_limit_login="1/minute")
        attacker = await apps.client(app, client_ip="198.51.100.66", session=session)
        owner = await apps.client(app, client_ip="198.51.100.7", session=session)
        await attacker.post("/api/v1/auth/login", data={"username": "other@example.com", "password": "p"})
        refused = await attacker.post("/api/v1/auth/login", data={"username": "owner@example.com", "password": "p"})

        response = await owner.post("/api/v1/auth/login", data={"username": "owner@example.com", "password": "p"})

        assert refused.status_code == 429
        assert response.status_code == 401


class TestRegisterPolicy:
    async def test_limits_one_email_across_addresses(self, apps: Apps, session: AsyncSession) -> None:
        app = await apps.app(rate_limit_register="1/minute")
        first = await apps.client(app, client_ip="198.51.100.1", session=session)
        second = await apps.client(app, client_ip="198.51.100.2", session=session)
        body = {"email": "new@example.com", "password": "correct horse battery"}
        created = await first.post("/api/v1/auth/register", json=body)

        response = await second.post("/api/v1/auth/register", json={**body, "email": "NEW@example.com"})

        assert created.status_code == 201
        assert response.status_code == 429

    async def test_limits_one_address_across_emails(self, apps: Apps, session: AsyncSession) -> None:
        app = await apps.app(rate_limit_register="2/minute")
        client = await apps.client(app, session=session)

        statuses = [
            (
                await client.post(
                    "/api/v1/auth/register", json={"email": f"r{n}@example.com", "password": "correct horse battery"}
                )
            ).status_code
            for n in range(3)
        ]

        assert statuses == [201, 201, 429]


class TestChatPolicy:
    async def test_authenticated_users_have_budgets_of_their_own(self, apps: Apps, settings: Settings) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_chat="1/minute", rate_limit_chat_anonymous="5/minute")
        client = await apps.client(app)
        alice, bob = bearer(settings, uuid.uuid4()), bearer(settings, uuid.uuid4())
        await client.post("/_test/chat", headers=alice)

        refused = await client.post("/_test/chat", headers=alice)
        other = await client.post("/_test/chat", headers=bob)

        assert refused.status_code == 429
        assert refused.headers["X-RateLimit-Limit"] == "1"
        assert other.status_code == 200

    async def test_anonymous_requests_use_the_anonymous_policy_per_address(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_chat="5/minute", rate_limit_chat_anonymous="1/minute")
        client = await apps.client(app)
        before = rate_limited_total("chat_anonymous")
        await client.post("/_test/chat")

        response = await client.post("/_test/chat")

        assert response.status_code == 429
        assert rate_limited_total("chat_anonymous") == before + 1

    async def test_a_forged_token_counts_as_anonymous(self, apps: Apps, settings: Settings) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_chat="5/minute", rate_limit_chat_anonymous="1/minute")
        client = await apps.client(app)
        victim = uuid.uuid4()
        forged = bearer(settings, victim, secret="not-the-server-key-but-long-enough-0123456789")
        await client.post("/_test/chat", headers=forged)

        response = await client.post("/_test/chat", headers=forged)
        victim_response = await client.post("/_test/chat", headers=bearer(settings, victim))

        assert response.status_code == 429
        assert victim_response.headers["X-RateLimit-Remaining"] == "4"


class TestProxies:
    async def test_forwarded_for_is_ignored_from_untrusted_peers(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="1/minute")
        client = await apps.client(app, client_ip="203.0.113.50")
        await client.get("/_test/open", headers={"X-Forwarded-For": "192.0.2.1"})

        response = await client.get("/_test/open", headers={"X-Forwarded-For": "192.0.2.2"})

        assert response.status_code == 429

    async def test_forwarded_for_from_a_trusted_proxy_names_the_client(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="1/minute", trusted_proxies=["10.0.0.0/8"])
        proxy = await apps.client(app, client_ip="10.1.2.3")
        await proxy.get("/_test/open", headers={"X-Forwarded-For": "192.0.2.1"})

        other_client = await proxy.get("/_test/open", headers={"X-Forwarded-For": "192.0.2.2"})
        same_client = await proxy.get("/_test/open", headers={"X-Forwarded-For": "192.0.2.1"})

        assert other_client.status_code == 200
        assert same_client.status_code == 429

    async def test_a_forged_left_part_of_the_chain_is_ignored(self, apps: Apps) -> None:
        app = await apps.app(setup=add_test_routes, rate_limit_default="1/minute", trusted_proxies=["10.0.0.0/8"])
        proxy = await apps.client(app, client_ip="10.1.2.3")
        await proxy.get("/_test/open", headers={"X-Forwarded-For": "1.1.1.1, 192.0.2.9"})

        response = await proxy.get("/_test/open", headers={"X-Forwarded-For": "8.8.8.8, 192.0.2.9"})

        assert response.status_code == 429


class TestLimiterConfiguration:
    def test_a_malformed_policy_refuses_to_start(self, settings: Settings) -> None:
        broken = settings.model_copy(update={"rate_limit_chat": "lots"})

        with pytest.raises(ValueError, match="RATE_LIMIT_CHAT"):
            RateLimiter(broken)

    def test_account_keys_are_not_the_email(self, settings: Settings) -> None:
        limiter = RateLimiter(settings)

        key = limiter.account_key("Someone@Example.com")

        assert key == limiter.account_key("someone@example.com ")
        assert "example" not in key
        assert len(key) == 32
