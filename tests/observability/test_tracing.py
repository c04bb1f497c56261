"""Tracing: one trace per run, from the HTTP request through the run, its nodes, LLM calls and tools, SQL and
Redis; the trace id in the response and in every log line; nothing at all while tracing is off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentserver.config import Settings
from agentserver.llm.fake import tool_call_turn
from tests.chat.conftest import CHAT_OVERRIDES, ChatHarness, start_harness
from tests.fixtures.logs import capture_info_logs
from tests.ratelimit.apps import REDIS_TEST_URL

pytestmark = pytest.mark.redis

CHAT = "/api/v1/chatbot/chat"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced(
    own_database_settings: Callable[..., Awaitable[Settings]], exporter: InMemorySpanExporter
) -> AsyncIterator[ChatHarness]:
    settings = await own_database_settings(
        "agentserver_tracing",
        **CHAT_OVERRIDES,
        redis_url=REDIS_TEST_URL,
        redis_key_prefix=f"tracing-{uuid.uuid4().hex[:8]}",
    )
    harness, lifespan = await start_harness(settings, span_exporter=exporter)
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def spans(traced: ChatHarness, exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    await traced.settle()
    traced.fake.set_script([])
    exporter.clear()
    return exporter


def trace_of(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]


def named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {sorted(s.name for s in spans)}"
    return found[0]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


async def one_turn(harness: ChatHarness, message: str = "what is 2+2?") -> tuple[dict[str, Any], str]:
    headers = await harness.new_user()
    session_id = await harness.new_session(headers)
    async with harness.client() as http:
        response = await http.post(CHAT, json={"session_id": session_id, "message": message}, headers=headers)
    assert response.status_code == 200, response.text
    await harness.settle()
    return response.json(), response.headers["x-trace-id"]


async def run_spans(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    """The finished `run.execute` spans, once there are `count`: the answer is stored (and the run settled)
    a moment before the worker's span of it ends."""
    for _ in range(200):
        found = [s for s in exporter.get_finished_spans() if s.name == "run.execute"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} run.execute spans expected, {len(found)} finished")


class TestOneTracePerRun:
    async def test_the_request_run_nodes_llm_and_tool_spans_form_one_trace(
        self, traced: ChatHarness, spans: InMemorySpanExporter
    ) -> None:
        traced.fake.set_script([tool_call_turn("calculator", {"expression": "2+2"}), "It is 4."])

        body, trace_header = await one_turn(traced)

        [run_span] = await run_spans(spans, 1)
        assert run_span.context is not None
        trace = trace_of(spans, run_span.context.trace_id)
        assert format(run_span.context.trace_id, "032x") == trace_header
        request = named(trace, "POST /api/v1/chatbot/chat")
        enqueue = named(trace, "run.enqueue")
        chat_nodes = [s for s in trace if s.name == "graph.node chat"]
        tools_node = named(trace, "graph.node tools")
        llm_calls = [s for s in trace if s.name == "llm.chat fake"]
        tool = named(trace, "tool.call calculator")
        # HTTP request → run.enqueue (API) → run.execute (worker) → nodes → LLM calls / tools.
        assert parent_id(enqueue) == span_id(request)
        assert parent_id(run_span) == span_id(enqueue)
        assert not [s for s in trace if s.name == "graph.node summarize"]  # nothing to fold: not run at all
        assert [parent_id(node) for node in chat_nodes] == [span_id(run_span)] * 2
        assert parent_id(tools_node) == span_id(run_span)
        assert sorted(parent_id(call) or 0 for call in llm_calls) == sorted(span_id(node) for node in chat_nodes)
        assert parent_id(tool) == span_id(tools_node)
        assert run_span.attributes is not None
        assert run_span.attributes["agentserver.run.id"] == body["run_id"]
        assert run_span.attributes["agentserver.run.status"] == "success"

    async def test_llm_spans_carry_model_tokens_cost_and_attempts(
        self, traced: ChatHarness, spans: InMemorySpanExporter
    ) -> None:
        traced.fake.set_script(["four words in reply"])

        body, _ = await one_turn(traced)

        call = next(s for s in spans.get_finished_spans() if s.name == "llm.chat fake")
        attempt = next(s for s in spans.get_finished_spans() if s.name == "llm.attempt")
        assert call.attributes is not None
        assert {k: call.attributes[k] for k in call.attributes if k.startswith(("gen_ai.", "agentserver."))} == {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "fake",
            "gen_ai.response.model": "fake",
            "gen_ai.usage.input_tokens": body["usage"]["input_tokens"],
            "gen_ai.usage.output_tokens": 4,
            "gen_ai.usage.cost": 0.0,
            "agentserver.cost_usd": 0.0,
            "agentserver.llm.purpose": "chat",
            "agentserver.llm.attempts": 1,
            "agentserver.llm.retries": 0,
            "agentserver.llm.fallback": False,
        }
        assert parent_id(attempt) == span_id(call)

    async def test_sql_and_redis_calls_are_spans_of_the_run(
        self, traced: ChatHarness, spans: InMemorySpanExporter
    ) -> None:
        traced.fake.set_script(["hello"])

        await one_turn(traced)

        [run_span] = await run_spans(spans, 1)
        assert run_span.context is not None
        trace = trace_of(spans, run_span.context.trace_id)
        systems = {
            str((s.attributes or {}).get("db.system", (s.attributes or {}).get("db.system.name"))) for s in trace
        }
        assert {"postgresql", "redis"} <= systems
        statements = [str((s.attributes or {}).get("db.statement", "")) for s in trace]
        # The app's own statements (SQLAlchemy) and the checkpointer's writes (psycopg).
        assert any("UPDATE runs SET" in statement for statement in statements)
        assert any("checkpoint" in statement for statement in statements)

    async def test_polling_outside_requests_and_runs_makes_no_traces(
        self, traced: ChatHarness, spans: InMemorySpanExporter
    ) -> None:
        await asyncio.sleep(3 * traced.settings.run_poll_seconds)  # the worker claims, heartbeats, reaps

        assert spans.get_finished_spans() == ()

    async def test_each_run_is_its_own_trace(self, traced: ChatHarness, spans: InMemorySpanExporter) -> None:
        traced.fake.set_script(["one", "two"])

        _, first = await one_turn(traced)
        _, second = await one_turn(traced)

        run_traces = {format(s.context.trace_id, "032x") for s in await run_spans(spans, 2) if s.context}
        assert run_traces == {first, second}
        assert first != second


class TestTraceIds:
    async def test_every_log_line_of_the_request_carries_its_trace_id(
        self, traced: ChatHarness, spans: InMemorySpanExporter
    ) -> None:
        traced.fake.set_script(["hello"])

        with capture_info_logs() as logs:
            _, trace_id = await one_turn(traced)

        request_line = next(line for line in logs.lines if line["event"] == "http.request" and line["route"] == CHAT)
        llm_line = next(line for line in logs.lines if line["event"] == "llm.call")
        assert request_line["trace_id"] == trace_id
        assert llm_line["trace_id"] == trace_id

    async def test_an_incoming_traceparent_is_continued(self, traced: ChatHarness, spans: InMemorySpanExporter) -> None:
        incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        async with traced.client() as http:
            response = await http.get("/api/v1/sessions", headers={"traceparent": incoming})

        assert response.headers["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"

    async def test_probes_are_not_traced(self, traced: ChatHarness, spans: InMemorySpanExporter) -> None:
        async with traced.client() as http:
            response = await http.get("/health")

        assert "x-trace-id" not in response.headers
        assert spans.get_finished_spans() == ()
