"""HTTP metrics and the `/metrics` endpoint.

`observe_http_request()` is called once per HTTP request by RequestContextMiddleware (a pure ASGI
middleware, so streaming responses and contextvars keep working), with the route *template* it
already resolved for the access log: one timer, one route lookup, and the log line and the metric
always agree.

Scraping model: every process keeps its own counters in prometheus-client's default registry, and
Prometheus scrapes every process separately (each compose replica / Kubernetes pod is a target). Run
one uvicorn worker per container and scale with replicas; with `--workers N` a scrape would see
whichever worker answered (see `agentserver serve --help`).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from agentserver.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

METRICS_PATH = "/metrics"

router = APIRouter(tags=["observability"])


def observe_http_request(method: str, route: str, status: int, duration_seconds: float) -> None:
    # The scrape itself is left out: it would dominate request counts at low traffic.
    if route == METRICS_PATH:
        return
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(duration_seconds)


@router.get(METRICS_PATH, include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text exposition of this process's metrics (block it at the public edge)."""
    # Rendering ~100 KiB takes ~10 ms (bench/observability.py): off the loop, so streams do not stall.
    # Collectors are thread-safe (prometheus-client locks; the pool collector reads plain counters).
    body = await asyncio.to_thread(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
