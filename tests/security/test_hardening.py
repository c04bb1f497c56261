"""Body size limit, security headers, CORS, trusted hosts and HTTPS redirect in production."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agentserver.config import Environment
from tests.ratelimit.apps import Apps

PRODUCTION: dict[str, Any] = {
    "environment": Environment.production,
    "jwt_secret_key": SecretStr("s" * 48),
    "password_hash_memory_kib": 19_456,
    "trusted_hosts": ["api.example.com", "*.example.org"],
    "cors_origins": ["https://chat.example.com"],
}


class TestBodySizeLimit:
    async def test_a_declared_oversized_body_is_413(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(max_request_body_bytes=2048))

        response = await client.post(
            "/api/v1/auth/register", content=b"x" * 4096, headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 413
        assert response.json() == {"error": "PayloadTooLarge", "detail": "Request body larger than 2048 bytes"}
        assert response.headers["X-Request-ID"]

    async def test_a_chunked_oversized_body_is_413(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(max_request_body_bytes=2048))

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b'{"email": "' + b"a" * 500

        response = await client.post(
            "/api/v1/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
        )

        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.json()["error"] == "PayloadTooLarge"

    async def test_a_chunked_oversized_form_is_413(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(max_request_body_bytes=2048))

        async def chunks() -> AsyncIterator[bytes]:
            yield b"username=a%40example.com&password="
            for _ in range(8):
                yield b"p" * 500

        response = await client.post(
            "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )

        assert response.status_code == 413

    async def test_a_body_under_the_limit_reaches_the_route(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(max_request_body_bytes=2048))

        response = await client.post("/api/v1/auth/register", json={"email": "not-an-email", "password": "x" * 8})

        assert response.status_code == 422


class TestSecurityHeaders:
    @pytest.mark.parametrize("path", ["/health", "/api/v1/auth/me", "/no-such-page"])
    async def test_every_response_carries_them(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)

        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self';" in csp
        assert "frame-ancestors 'none'" in csp

    async def test_api_responses_are_not_cached(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/auth/me")

        assert response.headers["Cache-Control"] == "no-store"

    async def test_no_hsts_outside_production(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")

        assert "Strict-Transport-Security" not in response.headers

    async def test_hsts_in_production(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(**PRODUCTION), base_url="https://api.example.com")

        response = await client.get("/health")

        assert response.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


class TestCors:
    async def test_a_listed_origin_may_call_the_api(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/api/v1/sessions",
            headers={
                "Origin": "http://localhost:8000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )

        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"
        assert "Access-Control-Allow-Credentials" not in response.headers

    async def test_another_origin_is_not_allowed(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/api/v1/sessions",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )

        assert response.status_code == 400
        assert "Access-Control-Allow-Origin" not in response.headers

    async def test_simple_requests_from_another_origin_get_no_allow_header(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"Origin": "https://evil.example"})

        assert "Access-Control-Allow-Origin" not in response.headers

    async def test_rate_limit_headers_are_exposed(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"Origin": "http://localhost:8000"})

        exposed = response.headers["Access-Control-Expose-Headers"]
        assert "Retry-After" in exposed
        assert "X-RateLimit-Remaining" in exposed


class TestTrustedHosts:
    async def test_an_unknown_host_is_refused_in_production(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(**PRODUCTION), base_url="https://evil.example")

        response = await client.get("/api/v1/auth/me")

        assert response.status_code == 400
        assert response.json() == {"error": "BadRequest", "detail": "Invalid host header"}

    @pytest.mark.parametrize("host", ["api.example.com", "eu.example.org"])
    async def test_listed_hosts_are_served(self, apps: Apps, host: str) -> None:
        client = await apps.client(await apps.app(**PRODUCTION), base_url=f"https://{host}")

        response = await client.get("/api/v1/auth/me")

        assert response.status_code == 401

    async def test_probes_answer_on_any_host(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(**PRODUCTION), base_url="http://10.0.0.12:8000")

        response = await client.get("/health")

        assert response.status_code == 200

    async def test_any_host_outside_production(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(trusted_hosts=["api.example.com"]), base_url="http://evil.example")

        response = await client.get("/health")

        assert response.status_code == 200


class TestHttpsRedirect:
    async def test_plain_http_is_redirected(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(**PRODUCTION, https_redirect=True), base_url="http://api.example.com")

        response = await client.post("/api/v1/auth/login?next=1")

        assert response.status_code == 308
        assert response.headers["Location"] == "https://api.example.com/api/v1/auth/login?next=1"

    async def test_https_from_a_trusted_proxy_is_served(self, apps: Apps) -> None:
        app = await apps.app(**PRODUCTION, https_redirect=True, trusted_proxies=["10.0.0.0/8"])
        client = await apps.client(app, client_ip="10.0.0.2", base_url="http://api.example.com")

        response = await client.get("/api/v1/auth/me", headers={"X-Forwarded-Proto": "https"})

        assert response.status_code == 401

    async def test_forwarded_proto_from_anyone_else_is_ignored(self, apps: Apps) -> None:
        app = await apps.app(**PRODUCTION, https_redirect=True, trusted_proxies=["10.0.0.0/8"])
        client = await apps.client(app, client_ip="203.0.113.9", base_url="http://api.example.com")

        response = await client.get("/api/v1/auth/me", headers={"X-Forwarded-Proto": "https"})

        assert response.status_code == 308

    async def test_probes_are_not_redirected(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(**PRODUCTION, https_redirect=True), base_url="http://10.0.0.12")

        response = await client.get("/ready")

        assert response.status_code in (200, 503)

    async def test_off_unless_configured(self, apps: Apps) -> None:
        client = await apps.client(await apps.app(**PRODUCTION), base_url="http://api.example.com")

        response = await client.get("/api/v1/auth/me")

        assert response.status_code == 401
