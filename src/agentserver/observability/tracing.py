"""OpenTelemetry tracing: one trace per chat message, from the HTTP request to the end of its run.

Off by default, and then it costs nothing: no TracerProvider, no exporter, no thread, no connection, no
library patched; `span()` hands back a shared no-op context manager and `current_traceparent()` is None.
It is on when an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or `..._TRACES_ENDPOINT`) or Langfuse keys
are set (and `OTEL_SDK_DISABLED` is not), or when a test hands in an exporter:

    HTTP request (opentelemetry-instrumentation-fastapi) ─┬─ run.enqueue ─► runs.traceparent (W3C)
                                                          │            ... another process ...
                                                          └─ run.execute (the worker; parent: traceparent)
                                                               ├─ graph.node summarize / chat / tools
                                                               │    ├─ llm.chat (model, tokens, cost,
                                                               │    │   retries, fallback) ─ llm.attempt
                                                               │    └─ tool.call <name>
                                                               └─ SQL (sqlalchemy, psycopg), Redis spans

LangGraph nodes, LLM calls and tools are spanned by our own code (graph.py, resilience.py, tools) rather
than a LangChain instrumentation library: those (openinference, opentelemetry-instrumentation-langchain)
span every internal runnable LangGraph builds (channel writes, branches, sequences), put prompts and
answers in span attributes by default (we keep conversation text out of telemetry), and patch LangChain's
callback manager process-wide; and what matters in an LLM span here — our registry's model name and cost,
retries, the fallback taken — only our retry layer knows.

This module is the cheap half (the OpenTelemetry API only), imported by the hot paths; `tracing_sdk.py`
builds the SDK provider, the exporters and the library instrumentations when tracing is on. The tracer is
the process's: the FastAPI app and the worker of one process share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACE_ID_HEADER = b"x-trace-id"

_PROPAGATOR = TraceContextTextMapPropagator()
# What `span()` hands out while tracing is off: one shared, reusable no-op (no allocation per call).
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)
# The tracer of the running Tracing, or None: the one global read the hot paths make.
_tracer: Tracer | None = None

__all__ = ["INVALID_SPAN", "SpanKind", "Status", "StatusCode", "activate", "span"]


def activate(tracer: Tracer | None) -> None:
    """Record our spans with `tracer` from now on (None: tracing off). Called by `tracing_sdk.Tracing`."""
    global _tracer
    _tracer = tracer


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    record_errors: bool = True,
) -> AbstractContextManager[Span]:
    """A span around a block, current inside it (children nest under it); a no-op while tracing is off.

    Exceptions that leave the block are recorded on the span and set its status to error, unless
    `record_errors` is False (control flow such as LangGraph's interrupts: the caller marks real failures).
    """
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(
        name,
        attributes=_clean(attributes),
        kind=kind,
        record_exception=record_errors,
        set_status_on_exception=record_errors,
    )


def span_from(
    traceparent: str | None, name: str, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Span]:
    """A span whose parent is a W3C `traceparent` stored by another process (a new trace if None)."""
    if _tracer is None:
        return _OFF
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    return _tracer.start_as_current_span(name, context=parent, attributes=_clean(attributes))


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (to store with work another process picks up)."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    """The current trace id, 32 hex digits (None while tracing is off or outside any span)."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the trace and span ids of the current span in every log line (tracing on)."""
    if _tracer is None:
        return event_dict
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def annotate(attributes: Mapping[str, Any]) -> None:
    """Set attributes on the current span (the outcome of a run, an LLM call); nothing while tracing is off."""
    if _tracer is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({key: value for key, value in attributes.items() if value is not None})


def fail(description: str) -> None:
    """Mark the current span as failed (a run that ended in error, a model call that gave up)."""
    if _tracer is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_status(Status(StatusCode.ERROR, description))


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # OpenTelemetry drops None values with a warning per call: drop them here instead.
    if attributes is None:
        return None
    return {key: value for key, value in attributes.items() if value is not None}
