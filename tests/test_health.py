from __future__ import annotations

import httpx
from fastapi import FastAPI


class TestHealth:
    async def test_answers_ok_with_a_request_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")

        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert len(response.headers["x-request-id"]) == 32

    async def test_echoes_a_plain_client_request_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"X-Request-ID": "abc-123.def"})

        assert response.headers["x-request-id"] == "abc-123.def"

    async def test_replaces_an_unsafe_client_request_id(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"X-Request-ID": "a b<script>" + "x" * 200})

        assert response.headers["x-request-id"] != "a b<script>" + "x" * 200
        assert len(response.headers["x-request-id"]) == 32


class TestReady:
    async def test_ready_when_the_database_answers(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/ready")

        assert response.status_code == 200
        # The test app uses the scripted model (LLM_PROVIDER=fake) and no Redis.
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "llm": "ok"}}

    async def test_503_names_the_failing_dependency(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        async def broken() -> None:
            raise ConnectionError("redis://secret@host down")

        checks = app.state.lifespan_state["readiness_checks"]
        checks["redis"] = broken
        try:
            response = await client.get("/ready")
        finally:
            del checks["redis"]

        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "ServiceUnavailable"
        assert body["detail"] == "not ready: redis unavailable"
        assert body["checks"] == {"database": "ok", "llm": "ok", "redis": "unavailable"}
        assert "secret" not in response.text
