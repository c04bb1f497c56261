"""Every error leaves in one shape, with X-Request-ID, and without internals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from agentserver.config import Settings
from agentserver.kit.errors import Conflict, NotFound, Unauthorized
from agentserver.main import create_app


class Body(BaseModel):
    name: str = Field(min_length=1, max_length=5)
    password: str


@pytest.fixture
async def error_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)

    @app.get("/boom/not-found")
    async def not_found() -> None:
        raise NotFound("Session not found")

    @app.get("/boom/conflict")
    async def conflict() -> None:
        raise Conflict("Email already registered")

    @app.get("/boom/unauthorized")
    async def unauthorized() -> None:
        raise Unauthorized()

    @app.get("/boom/crash")
    async def crash() -> None:
        raise RuntimeError("SELECT * FROM users WHERE password='hunter2'")

    @app.post("/boom/validate")
    async def validate(body: Body) -> dict[str, str]:
        return {"name": body.name}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class TestErrorRendering:
    @pytest.mark.parametrize(
        ("path", "status", "error", "detail"),
        [
            ("/boom/not-found", 404, "NotFound", "Session not found"),
            ("/boom/conflict", 409, "Conflict", "Email already registered"),
            ("/boom/unauthorized", 401, "Unauthorized", "Could not validate credentials"),
            ("/no/such/route", 404, "NotFound", "Not Found"),
        ],
    )
    async def test_typed_errors(
        self, error_client: httpx.AsyncClient, path: str, status: int, error: str, detail: str
    ) -> None:
        response = await error_client.get(path)

        assert response.status_code == status
        assert response.json() == {"error": error, "detail": detail}
        assert "x-request-id" in response.headers

    async def test_unauthorized_names_the_scheme(self, error_client: httpx.AsyncClient) -> None:
        response = await error_client.get("/boom/unauthorized")

        assert response.headers["www-authenticate"] == "Bearer"

    async def test_wrong_method(self, error_client: httpx.AsyncClient) -> None:
        response = await error_client.delete("/boom/conflict")

        assert response.status_code == 405
        assert response.json() == {"error": "MethodNotAllowed", "detail": "Method Not Allowed"}

    async def test_unexpected_exception_leaks_nothing(self, error_client: httpx.AsyncClient) -> None:
        response = await error_client.get("/boom/crash", headers={"X-Request-ID": "crash-1"})

        assert response.status_code == 500
        assert response.json() == {"error": "InternalServerError", "detail": "Internal server error"}
        assert response.headers["x-request-id"] == "crash-1"
        assert "hunter2" not in response.text

    async def test_validation_errors_list_fields_without_echoing_input(self, error_client: httpx.AsyncClient) -> None:
        response = await error_client.post("/boom/validate", json={"name": "toolong", "password": 12345})

        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "ValidationError"
        assert body["detail"] == "name: String should have at most 5 characters"
        assert [e["loc"] for e in body["errors"]] == [["body", "name"], ["body", "password"]]
        assert "12345" not in response.text
        assert "toolong" not in response.text

    async def test_malformed_json(self, error_client: httpx.AsyncClient) -> None:
        response = await error_client.post(
            "/boom/validate", content=b"{not json", headers={"content-type": "application/json"}
        )

        assert response.status_code == 422
        assert response.json()["error"] == "ValidationError"
