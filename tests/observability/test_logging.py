from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from agentserver.observability.logging import REDACTED, build_formatter, redact

PASSWORD = "correct horse battery staple"


def _redacted(method: str, **event: Any) -> dict[str, Any]:
    return redact(None, method, {"event": "test.event", **event})


class TestRequestLogContext:
    async def test_every_line_of_a_request_carries_its_request_id(
        self, app: FastAPI, client: httpx.AsyncClient, log_lines: list[dict[str, Any]]
    ) -> None:
        async def noisy_check() -> None:
            structlog.get_logger("test.structlog").warning("test.structlog_line")
            logging.getLogger("test.stdlib").warning("a stdlib line")
            raise ConnectionError("down")

        checks = app.state.lifespan_state["readiness_checks"]
        checks["noisy"] = noisy_check
        try:
            response = await client.get("/ready", headers={"X-Request-ID": "trace-abc.1"})
        finally:
            del checks["noisy"]

        assert response.headers["x-request-id"] == "trace-abc.1"
        assert sorted(line["event"] for line in log_lines) == [
            "a stdlib line",
            "health.check_failed",
            "http.request",
            "test.structlog_line",
        ]
        assert {line["request_id"] for line in log_lines} == {"trace-abc.1"}

    async def test_access_line_has_method_route_template_status_and_duration(
        self, client: httpx.AsyncClient, log_lines: list[dict[str, Any]]
    ) -> None:
        session_id = uuid.uuid4()

        response = await client.get(f"/api/v1/sessions/{session_id}", headers={"X-Request-ID": "access-1"})

        [line] = [line for line in log_lines if line["event"] == "http.request"]
        assert response.status_code == 401
        assert line["method"] == "GET"
        assert line["route"] == "/api/v1/sessions/{session_id}"
        assert line["status"] == 401
        assert isinstance(line["duration_ms"], float)
        assert line["request_id"] == "access-1"
        assert line["level"] == "info"
        assert "user_id" not in line
        assert str(session_id) not in str(log_lines)

    async def test_access_line_names_the_authenticated_user(
        self, client: httpx.AsyncClient, log_lines: list[dict[str, Any]]
    ) -> None:
        email = f"log-{uuid.uuid4().hex[:8]}@example.com"
        registered = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        login = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
        token = login.json()["access_token"]
        log_lines.clear()

        response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})

        [line] = [line for line in log_lines if line["event"] == "http.request"]
        assert response.status_code == 200
        assert line["route"] == "/api/v1/auth/me"
        assert line["user_id"] == registered.json()["id"]

    async def test_no_secret_or_password_reaches_the_log(
        self, client: httpx.AsyncClient, log_lines: list[dict[str, Any]]
    ) -> None:
        email = f"log-{uuid.uuid4().hex[:8]}@example.com"
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        login = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
        token = login.json()["access_token"]
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})

        written = str(log_lines)
        assert PASSWORD not in written
        assert token not in written
        assert login.json()["refresh_token"] not in written

    async def test_context_does_not_leak_into_the_next_line(
        self, client: httpx.AsyncClient, log_lines: list[dict[str, Any]]
    ) -> None:
        await client.get("/health", headers={"X-Request-ID": "leak-check"})

        structlog.get_logger("test").warning("test.after_request")

        assert "request_id" not in log_lines[-1]
        assert log_lines[-1]["event"] == "test.after_request"


class TestRedaction:
    @pytest.mark.parametrize(
        "key", ["password", "new_password", "access_token", "refresh_token", "openai_api_key", "jwt_secret_key"]
    )
    def test_secrets_are_masked_at_every_level(self, key: str) -> None:
        assert _redacted("debug", **{key: "s3cret"})[key] == REDACTED

    def test_token_counts_are_kept(self) -> None:
        assert _redacted("info", input_tokens=12, output_tokens=3) == {
            "event": "test.event",
            "input_tokens": 12,
            "output_tokens": 3,
        }

    def test_conversation_content_is_replaced_by_its_length_at_info(self) -> None:
        event = _redacted("info", content="my diary", messages=[1, 2, 3])

        assert event["content"] == "[8 chars]"
        assert event["messages"] == "[3 items]"

    def test_conversation_content_is_kept_at_debug(self) -> None:
        assert _redacted("debug", content="my diary")["content"] == "my diary"

    def test_url_credentials_are_masked_in_any_value(self) -> None:
        event = _redacted("warning", reason="connect to postgresql://agent:hunter2@db:5432/agent failed")

        assert event["reason"] == "connect to postgresql://agent:***@db:5432/agent failed"

    def test_url_credentials_are_masked_in_library_messages(self) -> None:
        event = redact(None, "error", {"event": "cannot reach redis://:hunter2@cache:6379/0"})

        assert event["event"] == "cannot reach redis://:***@cache:6379/0"

    def test_console_tracebacks_show_no_local_variables(self) -> None:
        formatter = build_formatter("console")
        # Built at run time: the traceback quotes source lines, and those are not what this is about.
        password = "-".join(["hunter2", "in", "a", "local"])
        try:
            raise ValueError("bad login")
        except ValueError:
            record = logging.LogRecord("lib", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

        rendered = formatter.format(record)

        assert "ValueError: bad login" in rendered
        assert password not in rendered

    def test_url_credentials_are_masked_in_rendered_tracebacks(self) -> None:
        formatter = build_formatter("json")
        try:
            raise ConnectionError("postgresql://agent:hunter2@db/agent refused")
        except ConnectionError:
            record = logging.LogRecord("lib", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

        line = json.loads(formatter.format(record))

        assert "hunter2" not in line["exception"]
        assert "postgresql://agent:***@db/agent refused" in line["exception"]
