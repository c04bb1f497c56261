"""Tracing across processes with a real OTLP exporter: the API (in this process) queues a run, a worker
process executes it and exports its spans to a local collector stub, and they are one trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentserver.config import Settings
from tests.chat.conftest import CHAT_OVERRIDES, start_harness
from tests.observability.otlp_collector import OtlpCollector
from tests.processes import AgentserverProcess, environment

CHAT = "/api/v1/chatbot/chat"


@pytest.fixture
async def collector() -> AsyncIterator[OtlpCollector]:
    async with OtlpCollector() as stub:
        yield stub


class TestAcrossProcesses:
    async def test_the_workers_run_span_is_a_child_of_the_api_request(
        self, own_database_settings: Callable[..., Awaitable[Settings]], collector: OtlpCollector
    ) -> None:
        settings = await own_database_settings("agentserver_tracing_procs", **CHAT_OVERRIDES, run_worker_enabled=False)
        env = environment(
            settings,
            LLM_PROVIDER="fake",
            MEMORY_ENABLED="false",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20collector-token",
            OTEL_SERVICE_NAME="agentserver-worker",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        worker = AgentserverProcess.start(["worker"], env)
        exporter = InMemorySpanExporter()
        api, lifespan = await start_harness(settings, span_exporter=exporter)
        try:
            await worker.wait_for_log("worker.ready")
            headers = await api.new_user()
            session_id = await api.new_session(headers)
            async with api.client() as http:
                response = await http.post(CHAT, json={"session_id": session_id, "message": "hi"}, headers=headers)
            executed = await collector.wait_for("run.execute")
            node = await collector.wait_for("graph.node chat")
        finally:
            await lifespan.__aexit__(None, None, None)
            worker.stop()

        assert response.status_code == 200, response.text
        assert response.json()["message"] == "You said: hi"
        enqueue = next(s for s in exporter.get_finished_spans() if s.name == "run.enqueue")
        assert enqueue.context is not None
        assert executed.trace_id == format(enqueue.context.trace_id, "032x") == response.headers["x-trace-id"]
        assert executed.parent_span_id == format(enqueue.context.span_id, "016x")
        assert node.parent_span_id == executed.span_id
        assert executed.attributes["agentserver.run.id"] == response.json()["run_id"]
        assert executed.service_name == "agentserver-worker"
        assert {h.get("authorization") for h in collector.headers} == {"Bearer collector-token"}
