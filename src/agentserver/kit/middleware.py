"""Pure ASGI middleware (no BaseHTTPMiddleware: it breaks streaming and contextvars)."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentserver.kit.db import is_database_outage
from agentserver.kit.errors import (
    DatabaseUnavailable,
    app_error_response,
    error_name,
    internal_error_response,
    log_failure,
)
from agentserver.observability import tracing
from agentserver.observability.http import observe_http_request

log = structlog.get_logger("agentserver.http")

# A client-supplied request id is echoed only when it is short and plain: it goes into headers and logs.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/sessions/{session_id}`), never the raw path.

    Unmatched paths collapse into one label so scanners cannot explode metric cardinality.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app = scope.get("app")
    router = getattr(app, "router", None)
    for candidate in getattr(router, "routes", ()):
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return str(getattr(candidate, "path", "<unmatched>"))
    return "<unmatched>"


class RequestContextMiddleware:
    """Request id in and out, request-scoped log context, one access log line, last-resort 500
    (or 503 when the database is what failed, wherever the failure was raised).

    Sits inside Starlette's ServerErrorMiddleware so even an unexpected failure gets the standard
    error body *and* the X-Request-ID header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        status = 500
        started = False
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                trace_id = tracing.current_trace_id()  # tracing on: the request's trace, to look it up
                if trace_id is not None:
                    headers.append((tracing.TRACE_ID_HEADER, trace_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if scope["type"] != "http" or started:
                log_failure(log, "http.unhandled_error", exc, path=scope.get("path"))
                raise
            if is_database_outage(exc):
                log.warning("http.database_unavailable", error=error_name(exc), path=scope.get("path"))
                await app_error_response(DatabaseUnavailable())(scope, receive, send_wrapper)
            else:
                log_failure(log, "http.unhandled_error", exc, path=scope.get("path"))
                await internal_error_response()(scope, receive, send_wrapper)
        finally:
            if scope["type"] == "http":
                route = route_template(scope)
                duration = time.perf_counter() - start
                observe_http_request(scope.get("method", ""), route, status, duration)
                log.info(
                    "http.request",
                    method=scope.get("method"),
                    route=route,
                    status=status,
                    duration_ms=round(duration * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()
