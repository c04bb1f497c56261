"""Cost of the observability on the request path and of a scrape.

- `observe_http_request`: the per-request metric update RequestContextMiddleware makes (counter + histogram).
- `redact`: the log redaction processor on a typical access-log event.
- access-log line: one `http.request` line rendered as JSON through the configured stdlib handler.
- `/metrics`: rendering the exposition with a realistic label set (60 route/method/status series and their
  latency histograms, 4 models, 3 tools).

Single process, bounded loops; writes bench/results/observability.md.
"""

from __future__ import annotations

import io
import logging
import platform
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import structlog
from prometheus_client import REGISTRY, generate_latest

from agentserver.config import Settings
from agentserver.observability.http import observe_http_request
from agentserver.observability.logging import configure_logging, redact
from agentserver.observability.metrics import LLM_CALLS, LLM_LATENCY, LLM_TOKENS, TOOL_CALLS, TOOL_LATENCY

RESULTS = Path(__file__).resolve().parent / "results" / "observability.md"
ROUTES = [f"/api/v1/route{n}/{{item_id}}" for n in range(20)]


def _per_call_us(stmt: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e6


def bench_observe() -> float:
    return _per_call_us(lambda: observe_http_request("GET", "/api/v1/sessions/{session_id}", 200, 0.012), 50_000)


def bench_redact() -> float:
    event = {
        "event": "http.request",
        "method": "GET",
        "route": "/api/v1/sessions/{session_id}",
        "status": 200,
        "duration_ms": 12.5,
        "request_id": "0123456789abcdef0123456789abcdef",
        "user_id": "7f1c1f0e-6f3a-4a7e-9d7e-2f9d1c1e8a11",
    }
    return _per_call_us(lambda: redact(None, "info", dict(event)), 50_000)


def bench_access_line() -> float:
    configure_logging(Settings(_env_file=None, log_format="json", log_level="INFO"))
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())  # rendering cost only, no terminal I/O
    log = structlog.get_logger("agentserver.http")
    structlog.contextvars.bind_contextvars(request_id="0123456789abcdef0123456789abcdef")

    def line() -> None:
        log.info("http.request", method="GET", route="/api/v1/sessions/{session_id}", status=200, duration_ms=12.5)

    try:
        return _per_call_us(line, 5_000)
    finally:
        structlog.contextvars.clear_contextvars()


def bench_scrape() -> tuple[float, int]:
    for route in ROUTES:
        for method, status in (("GET", "200"), ("POST", "201"), ("GET", "404")):
            observe_http_request(method, route, int(status), 0.02)
    for model in ("gpt-4o", "gpt-4o-mini", "claude-haiku-4-5", "qwen2.5-coder-0.5b"):
        LLM_CALLS.labels(model, "success").inc()
        LLM_LATENCY.labels(model).observe(1.5)
        LLM_TOKENS.labels(model, "input").inc(100)
        LLM_TOKENS.labels(model, "output").inc(20)
    for tool in ("calculator", "web_search", "get_weather"):
        TOOL_CALLS.labels(tool, "success").inc()
        TOOL_LATENCY.labels(tool).observe(0.2)
    size = len(generate_latest(REGISTRY))
    return _per_call_us(lambda: generate_latest(REGISTRY), 200) / 1000, size


def main() -> None:
    started = time.perf_counter()
    observe = bench_observe()
    redaction = bench_redact()
    access_line = bench_access_line()
    scrape_ms, scrape_bytes = bench_scrape()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Observability overhead\n\n"
        f"`python -m bench observability` on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}; best of 5 repeats.\n\n"
        "| what | cost |\n|---|---|\n"
        f"| metric update per request (`observe_http_request`: counter + histogram) | {observe:.2f} µs |\n"
        f"| log redaction processor, access-log event | {redaction:.2f} µs |\n"
        f"| one access-log line rendered as JSON (all processors + handler) | {access_line:.1f} µs |\n"
        f"| `/metrics` render, {scrape_bytes / 1024:.0f} KiB exposition | {scrape_ms:.2f} ms |\n\n"
        f"Total run {time.perf_counter() - started:.1f} s.\n"
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
