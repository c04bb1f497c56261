"""HTTP hardening: body size limit, CORS, security headers, text guard, trusted hosts and HTTPS in production.

Every piece is a pure ASGI middleware (no BaseHTTPMiddleware: it breaks streaming). The order, from
the outside in (see `main.create_app`):

    SecurityHeaders -> RequestContext (X-Request-ID, last-resort 500) -> TrustedHost* -> HTTPSRedirect*
    -> CORS -> BodySizeLimit -> RateLimit -> JSONTextGuard -> the app          (* production only)

so that every response, errors included, carries the security headers and X-Request-ID, and
refusals (400 host, 413, 429) are readable by browsers through CORS.

Probes (`/health`, `/ready`) and scrapes (`/metrics`) skip the host check and the HTTPS redirect:
kubelets and Prometheus call pods by IP over plain HTTP.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import URL, Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentserver.config import Settings
from agentserver.kit.errors import ErrorBody, error_response
from agentserver.kit.proxy import TrustedProxies
from agentserver.ratelimit import RateLimitMiddleware

PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})

# The web UI at / is served from this origin only: no inline scripts, no third-party anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# /docs (DEBUG only) is FastAPI's Swagger UI: an inline bootstrap script and assets from jsDelivr.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"

CORS_METHODS = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"]
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Accept",
    "X-Request-ID",
    "Last-Event-ID",
    # API keys as LangGraph's SDK sends them; the session pin and Open WebUI's chat id (/v1).
    "X-Api-Key",
    "X-Session-Id",
    "X-OpenWebUI-Chat-Id",
]
CORS_EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-Run-Id",
    "X-Session-Id",
    "Content-Location",
    "Location",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a streamed body passes the limit.

    An HTTPException on purpose: FastAPI re-raises those from body parsing (any other exception there
    becomes a 400), so the app's error handler renders the standard 413 body.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body larger than {limit} bytes")


class BodySizeLimitMiddleware:
    """413 for a request body over `max_bytes`: declared (Content-Length) or counted while streaming
    (chunked uploads have no Content-Length, and a client may lie in it)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Routes that take bigger bodies (uploads): their own limit, exact path match.
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(str(scope.get("path", "")), self.max_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False  # the server rejects a malformed Content-Length before we see it
            if too_large:
                await self._reject(scope, receive, send, limit)
                return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Only reached when the body was read outside FastAPI's parsing (e.g. a raw `request.stream()`).
            if response_started:
                raise
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"Request body larger than {limit} bytes"
        # Connection: close: the unread body must not be parsed as the next request on this connection.
        response = error_response("PayloadTooLarge", detail, 413, headers={"Connection": "close"})
        await response(scope, receive, send)


# Room for the multipart envelope around an upload's file (boundaries, part headers, small fields).
MULTIPART_OVERHEAD_BYTES = 64 * 1024
UPLOAD_PATHS = ("/api/v1/files",)


# A lone surrogate reaches Python through a JSON `\uD800`-`\uDFFF` escape or, since json.loads reads bytes
# with "surrogatepass", the UTF-8-style bytes of one (ED A0..BF xx). Bodies without either skip the check.
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
LONE_SURROGATE_MESSAGE = "text must be valid Unicode: it holds a lone surrogate"


def _may_be_json(scope: Scope) -> bool:
    # FastAPI parses a body without a Content-Type as JSON too.
    content_type = Headers(scope=scope).get("content-type", "").split(";", 1)[0].strip().lower()
    return not content_type or content_type == "application/json" or content_type.endswith("+json")


def holds_lone_surrogate(body: bytes) -> bool:
    """Whether a JSON document has a string (or key) with a lone surrogate; invalid JSON is not our call."""
    # json.loads also reads UTF-16 and UTF-32, where the hint's bytes look different: check those fully.
    if json.detect_encoding(body) == "utf-8" and not _SURROGATE_HINT.search(body):
        return False
    try:
        document = json.loads(body)
    except ValueError:
        return False  # the app answers malformed JSON with its own 422
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class JSONTextGuardMiddleware:
    """422 for a JSON body whose text holds a lone surrogate (`"\\ud800"`), whatever the endpoint or field.

    Python accepts such strings from JSON, but nothing downstream can encode them: password hashing,
    PostgreSQL, the logs all raise UnicodeEncodeError, deep inside, as a 500. One check at the door
    covers every field of every endpoint, present and future. The body (already bounded by
    BodySizeLimit) is read once and replayed to the app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_be_json(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if holds_lone_surrogate(b"".join(chunks)):
            error = {"loc": ["body"], "msg": LONE_SURROGATE_MESSAGE, "type": "string_unicode"}
            response = error_response("ValidationError", f"body: {LONE_SURROGATE_MESSAGE}", 422, errors=[error])
            await response(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class SecurityHeadersMiddleware:
    """Security headers on every HTTP response (a route's own value for a header wins)."""

    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        self.production = production

    def _headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = DOCS_CONTENT_SECURITY_POLICY if path == "/docs" else CONTENT_SECURITY_POLICY
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", csp.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        if path.startswith("/api/"):
            # API answers hold tokens and conversations: no shared or browser cache may keep them.
            headers.append((b"cache-control", b"no-store"))
        if self.production:
            headers.append((b"strict-transport-security", HSTS.encode()))
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers_for(str(scope.get("path", "")))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_allowed(host: str, allowed: list[str]) -> bool:
    if "*" in allowed:
        return True
    for pattern in allowed:
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


class TrustedHostMiddleware:
    """400 for a Host header not in TRUSTED_HOSTS (`example.com`, `*.example.com`, `*`).

    Starlette has one, but it answers in plain text; this one uses the standard error body and lets
    probes through.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed_hosts = [host.lower() for host in allowed_hosts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "").lower()
        host = host.rsplit(":", 1)[0] if not host.endswith("]") else host  # drop the port, keep IPv6 literals
        if _host_allowed(host, self.allowed_hosts):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await error_response("BadRequest", "Invalid host header", 400)(scope, receive, send)


class HTTPSRedirectMiddleware:
    """Redirect plain-HTTP requests to https:// (308 keeps the method and body).

    TLS normally ends at a proxy: its `X-Forwarded-Proto` is believed only when it is one of
    TRUSTED_PROXIES, otherwise every request would look like http and loop.
    """

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in PROBE_PATHS or self.proxies.scheme(scope) == "https":
            await self.app(scope, receive, send)
            return
        url = URL(scope=scope).replace(scheme="https", port=None)
        await RedirectResponse(str(url), status_code=308)(scope, receive, send)


_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_GUARD_RESPONSES = {
    "429": "Too many requests (rate limit); see Retry-After and X-RateLimit-*",
    "413": "The request body is larger than MAX_REQUEST_BODY_BYTES",
    "400": "The request body could not be parsed",
    "503": "A dependency is temporarily unavailable (DatabaseUnavailable: no database connection could be "
    "had in time); retry after Retry-After",
}


def _document_guard_responses(app: FastAPI) -> None:
    """The middlewares answer 429 and 503 (a database outage, wherever it surfaces) on any route, and
    413/400 on any route with a body: say so in the OpenAPI schema, so clients (and the schema fuzzer)
    know these answers are part of the contract."""
    generate = app.openapi
    documented = False

    def openapi() -> dict[str, Any]:
        nonlocal documented
        schema = generate()
        if documented:
            return schema
        documented = True
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "ErrorBody", ErrorBody.model_json_schema()
        )
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                codes = [] if path in PROBE_PATHS else ["429", "503"]
                if "requestBody" in operation:
                    codes += ["413", "400"]
                for code in codes:
                    operation["responses"].setdefault(
                        code,
                        {
                            "description": _GUARD_RESPONSES[code],
                            "content": {"application/json": {"schema": _ERROR_REF}},
                        },
                    )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_request_guards(app: FastAPI, settings: Settings) -> None:
    """The middlewares that sit inside RequestContextMiddleware (call before adding it)."""
    _document_guard_responses(app)
    add = app.add_middleware
    # add_middleware wraps outside the previous one: added innermost first.
    add(JSONTextGuardMiddleware)
    add(RateLimitMiddleware)
    add(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_body_bytes,
        # The upload route counts its file itself (413 FileTooLarge); this bounds the whole body.
        path_limits=dict.fromkeys(UPLOAD_PATHS, settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES),
    )
    add(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        # Bearer tokens travel in a header, not cookies: nothing needs credentialed CORS.
        allow_credentials=False,
        max_age=600,
    )
    if settings.is_production:
        if settings.https_redirect:
            add(HTTPSRedirectMiddleware, proxies=TrustedProxies(settings.trusted_proxies))
        add(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)


def install_security_headers(app: FastAPI, settings: Settings) -> None:
    """Outermost (call after adding RequestContextMiddleware): even the last-resort 500 gets them."""
    app.add_middleware(SecurityHeadersMiddleware, production=settings.is_production)
