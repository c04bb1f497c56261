from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY


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

    async def test_503_names_the_failing_required_dependency(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        async def broken() -> None:
            raise ConnectionError("postgresql://app:secret@host down")

        checks = app.state.lifespan_state["readiness_checks"]
        working = checks["database"]
        checks["database"] = broken
        try:
            response = await client.get("/ready")
        finally:
            checks["database"] = working

        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "ServiceUnavailable"
        assert body["detail"] == "not ready: database unavailable"
        assert body["checks"] == {"database": "unavailable", "llm": "ok"}
        assert "secret" not in response.text
        assert REGISTRY.get_sample_value("agentserver_dependency_up", {"dependency": "database"}) == 0.0

    async def test_an_optional_dependency_down_is_200_degraded(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        async def broken() -> None:
            raise ConnectionError("down")

        optional = app.state.lifespan_state["optional_checks"]
        optional["cache"] = broken
        try:
            response = await client.get("/ready")
        finally:
            del optional["cache"]

        assert response.status_code == 200
        assert response.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "llm": "ok", "cache": "unavailable"},
        }
        assert REGISTRY.get_sample_value("agentserver_dependency_up", {"dependency": "cache"}) == 0.0
