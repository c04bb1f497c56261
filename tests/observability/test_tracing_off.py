"""Tracing off (the default): nothing is created, nothing is recorded, no trace id anywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import make_url

from agentserver.config import Settings
from agentserver.llm.fake import tool_call_turn
from agentserver.observability import tracing, tracing_sdk
from agentserver.observability.tracing_sdk import Tracing
from tests.chat.conftest import CHAT_OVERRIDES, ChatHarness, start_harness
from tests.fixtures.logs import capture_info_logs
from tests.memory.netaudit import no_remote_connections

CHAT = "/api/v1/chatbot/chat"


class TestTracingOff:
    def test_default_settings_build_nothing(self, settings: Settings) -> None:
        assert Tracing.from_settings(settings) is None

    @pytest.mark.parametrize(
        "overrides",
        [
            {"otel_exporter_otlp_endpoint": "http://127.0.0.1:4318"},
            {"langfuse_public_key": "pk-lf-1", "langfuse_secret_key": SecretStr("sk-lf-1")},
        ],
    )
    def test_an_endpoint_or_langfuse_keys_turn_it_on(self, settings: Settings, overrides: dict[str, Any]) -> None:
        assert Tracing.from_settings(settings.model_copy(update=overrides)) is not None

    def test_the_sdk_kill_switch_wins(self, settings: Settings) -> None:
        configured = settings.model_copy(
            update={"otel_exporter_otlp_endpoint": "http://127.0.0.1:4318", "otel_sdk_disabled": True}
        )

        assert Tracing.from_settings(configured) is None

    async def test_a_turn_creates_no_exporter_and_records_nothing(
        self,
        own_database_settings: Callable[..., Awaitable[Settings]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        assert not tracing.enabled()
        created: list[str] = []
        monkeypatch.setattr(tracing_sdk, "OTLPSpanExporter", lambda **_: created.append("otlp"))
        monkeypatch.setattr(tracing_sdk, "TracerProvider", lambda **_: created.append("provider"))
        settings = await own_database_settings("agentserver_tracing_off", **CHAT_OVERRIDES)
        with no_remote_connections() as connections:
            harness, lifespan = await start_harness(settings)
            try:
                harness.fake.set_script([tool_call_turn("calculator", {"expression": "1+1"}), "2"])
                with capture_info_logs() as logs:
                    await _turn_without_trace(harness)
                    assert not tracing.enabled()
            finally:
                await lifespan.__aexit__(None, None, None)

        assert created == []
        # Only the database was connected to (asyncpg and psycopg connect outside Python's socket module;
        # anything else — an exporter, a collector — would show here).
        database_port = make_url(str(settings.database_url)).port or 5432
        others = [
            address
            for family, address in connections.local
            if not (family == "AF_UNIX" and str(address).endswith(f".s.PGSQL.{database_port}"))
            and not (isinstance(address, tuple) and address[1] == database_port)
        ]
        assert others == []
        assert connections.remote == []
        assert all("trace_id" not in line for line in logs.lines)


async def _turn_without_trace(harness: ChatHarness) -> None:
    headers = await harness.new_user()
    session_id = await harness.new_session(headers)
    async with harness.client() as http:
        response = await http.post(CHAT, json={"session_id": session_id, "message": "1+1?"}, headers=headers)
    assert response.status_code == 200, response.text
    assert "x-trace-id" not in response.headers
    assert response.json()["message"] == "2"
