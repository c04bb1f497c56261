"""Every error leaves in one shape, with X-Request-ID, and without internals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc

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

    @app.get("/boom/pool-timeout")
    async def pool_timeout() -> None:
        # What a psycopg pool (checkpointer, memory) raises when it has no connection to give.
        raise PoolTimeout("couldn't get a connection after 5.00 sec")

    @app.get("/boom/lost-connection")
    async def lost_connection() -> None:
        raise sa_exc.OperationalError("SELECT 1", {}, ConnectionResetError(), connection_invalidated=True)

    @app.get("/boom/os-error")
    async def os_error() -> None:
        raise FileNotFoundError("/no/such/file")  # not from a database driver: a plain bug

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


class TestDatabaseOutages:
    @pytest.mark.parametrize("path", ["/boom/pool-timeout", "/boom/lost-connection"])
    async def test_a_database_failure_outside_a_unit_of_work_is_503_with_retry_after(
        self, error_client: httpx.AsyncClient, path: str
    ) -> None:
        response = await error_client.get(path)

        assert response.status_code == 503
        assert response.json() == {
            "error": "DatabaseUnavailable",
            "detail": "The database is temporarily unavailable; please retry shortly",
        }
        assert response.headers["retry-after"] == "2"
        assert "x-request-id" in response.headers

    async def test_an_os_error_outside_the_drivers_is_a_500(self, error_client: httpx.AsyncClient) -> None:
        response = await error_client.get("/boom/os-error")

        assert response.status_code == 500


class TestUnexpectedErrorLog:
    async def test_a_500_logs_one_line_with_the_class_origin_and_request_id(
        self, error_client: httpx.AsyncClient, log_lines: list[dict[str, Any]]
    ) -> None:
        await error_client.get("/boom/crash", headers={"X-Request-ID": "crash-2"})

        errors = [line for line in log_lines if line["level"] == "error"]
        assert len(errors) == 1
        assert errors[0]["event"] == "http.unhandled_error"
        assert errors[0]["error"] == "builtins.RuntimeError"
        assert errors[0]["origin"].startswith("tests.test_errors:")
        assert errors[0]["request_id"] == "crash-2"
        assert "exception" not in errors[0]

    async def test_at_debug_the_line_carries_the_traceback(
        self, error_client: httpx.AsyncClient, log_lines: list[dict[str, Any]]
    ) -> None:
        root = logging.getLogger()
        previous = root.level
        root.setLevel(logging.DEBUG)
        try:
            await error_client.get("/boom/crash")
        finally:
            root.setLevel(previous)

        errors = [line for line in log_lines if line["level"] == "error"]
        assert [line["event"] for line in errors] == ["http.unhandled_error"]
        assert "Traceback" in errors[0]["exception"]
