"""The SDK half of tracing (see `tracing.py`): provider, exporters, library instrumentations.

Imported by the application factory and the services; nothing here runs unless tracing is configured.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import unquote

import structlog
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default
from opentelemetry.trace import SpanKind, get_current_span
from sqlalchemy.ext.asyncio import AsyncEngine

from agentserver.config import Settings
from agentserver.observability import tracing

log = structlog.get_logger(__name__)

TRACER_NAME = "agentserver"
# Probes and scrapes every few seconds would be most of the traces, and say nothing.
EXCLUDED_URLS = "/health,/ready,/metrics"


def _parse_headers(raw: str | None) -> dict[str, str]:
    """`key=value,key2=value2` (the OTEL_EXPORTER_OTLP_HEADERS format; values may be %-encoded)."""
    headers = {}
    for item in (raw or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[key.strip().lower()] = unquote(value.strip())
    return headers


class NoOrphanClientSpans(Sampler):
    """Drops SQL and Redis calls (client spans) made outside any request or run: the worker's claims,
    heartbeats and reaper poll the database every few seconds, and each would be a trace of one span.
    Everything else is decided by the configured sampler (OTEL_TRACES_SAMPLER; default: every trace)."""

    def __init__(self, configured: Sampler) -> None:
        self.configured = configured

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT and not get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self.configured.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.configured.get_description()}}}"


class Tracing:
    """The process's tracing while it is on: an SDK TracerProvider, its exporters and instrumentations.

    Built by `create_app` (FastAPI's instrumentation needs the provider before the app serves) or by
    `open_services` in a worker-only process; started and stopped by the lifespan. `from_settings`
    returns None when tracing is off, and nothing is created at all.
    """

    def __init__(self, settings: Settings, exporters: list[SpanExporter], *, batch: bool = True) -> None:
        self.settings = settings
        self.exporters = exporters
        self.batch = batch
        resource = Resource.create(
            {"service.name": settings.otel_service_name, "deployment.environment": settings.environment.value}
        )
        # The SDK's own reading of OTEL_TRACES_SAMPLER(_ARG), wrapped.
        self.provider = TracerProvider(resource=resource, sampler=NoOrphanClientSpans(_get_from_env_or_default()))
        self._instrumentors: list[Any] = []
        self._started = False

    @classmethod
    def from_settings(cls, settings: Settings, *, exporter: SpanExporter | None = None) -> Tracing | None:
        """The tracing the settings ask for (an OTLP exporter, Langfuse), or None: off, nothing created.

        `exporter` (tests: the SDK's InMemorySpanExporter) turns tracing on and replaces the exporters;
        spans reach it synchronously.
        """
        if exporter is not None:
            return cls(settings, [exporter], batch=False)
        if not settings.tracing_configured:
            return None
        exporters: list[SpanExporter] = []
        endpoint = settings.otel_exporter_otlp_traces_endpoint or (
            f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"
            if settings.otel_exporter_otlp_endpoint
            else None
        )
        if endpoint:
            headers = settings.otel_exporter_otlp_headers
            exporters.append(
                OTLPSpanExporter(
                    endpoint=endpoint,
                    headers=_parse_headers(headers.get_secret_value()) if headers is not None else None,
                )
            )
        if settings.langfuse_public_key and settings.langfuse_secret_key:
            secret = settings.langfuse_secret_key.get_secret_value()
            basic = base64.b64encode(f"{settings.langfuse_public_key}:{secret}".encode()).decode()
            exporters.append(
                OTLPSpanExporter(
                    endpoint=f"{settings.langfuse_host.rstrip('/')}/api/public/otel/v1/traces",
                    headers={"Authorization": f"Basic {basic}", "x-langfuse-ingestion-version": "4"},
                )
            )
        return cls(settings, exporters)

    def instrument_app(self, app: FastAPI) -> None:
        """Server spans for every HTTP request and WebSocket (but probes and scrapes); incoming W3C
        `traceparent` headers are continued. No span per ASGI send/receive (one per SSE chunk otherwise)."""
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self.provider, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
        )

    def start(self) -> None:
        """Exporters on, our spans on, Redis and psycopg (checkpoints, memory) spans on. Call before the
        clients and pools are created."""
        for exporter in self.exporters:
            processor = BatchSpanProcessor(exporter) if self.batch else SimpleSpanProcessor(exporter)
            self.provider.add_span_processor(processor)
        redis = RedisInstrumentor()
        psycopg = PsycopgInstrumentor()
        for instrumentor in (redis, psycopg):
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=self.provider)
                self._instrumentors.append(instrumentor)
        tracing.activate(self.provider.get_tracer(TRACER_NAME))
        self._started = True
        log.info("tracing.started", exporters=[type(e).__name__ for e in self.exporters])

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """SQL spans for the app's SQLAlchemy engine (statements without their parameters)."""
        instrumentor = SQLAlchemyInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            # skip_dep_check: the instrumentation declares SQLAlchemy < 2.1; its engine events are unchanged in 2.1
            # (tests/observability/test_tracing.py sees the app's statements as spans).
            instrumentor.instrument(engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True)
            self._instrumentors.append(instrumentor)

    async def stop(self) -> None:
        """Instrumentations off, then the last spans flushed and the exporters shut down."""
        if not self._started:
            return
        tracing.activate(None)
        for instrumentor in reversed(self._instrumentors):
            instrumentor.uninstrument()
        self._instrumentors.clear()
        # Flushing exports over HTTP (bounded by OTEL_EXPORTER_OTLP_TIMEOUT): not on the event loop.
        await asyncio.to_thread(self.provider.shutdown)
        self._started = False
