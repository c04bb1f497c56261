"""OpenAI's error shape under `/v1`, whatever produced the error.

Every other route answers `{"error": "<Class>", "detail": "..."}` (kit/errors.py). OpenAI's clients read
`{"error": {"message", "type", "param", "code"}}` and map the status to their exception classes (400
BadRequestError, 401 AuthenticationError, 404 NotFoundError, 409 ConflictError, 429 RateLimitError, 5xx
InternalServerError). `OpenAIErrorShape` rewrites error answers of `/v1` paths on the way out, so errors
raised anywhere — authentication, validation, the rate limiter, the body size limit, the last-resort
500 — reach these clients in their shape; a validation error (our 422) becomes OpenAI's 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentserver.kit.errors import NotFound

PREFIX = "/v1/"


class ModelNotFound(NotFound):
    """No assistant of that name (the OpenAI `model`) is available to the caller."""

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model[:100]}` does not exist or you do not have access to it.")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail


def openai_error_schema(description: str) -> dict[str, Any]:
    """An OpenAPI `responses=` entry for a `/v1` error."""
    return {"model": OpenAIErrorBody, "description": description}


OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    400: openai_error_schema(
        "Invalid request (`invalid_request_error`): a missing or wrong field, a body "
        "that cannot be parsed, a message that is too long"
    ),
    401: openai_error_schema("Missing, invalid, revoked or expired API key or access token (`invalid_api_key`)"),
    413: openai_error_schema("The request body is larger than MAX_REQUEST_BODY_BYTES"),
    429: openai_error_schema("Too many requests (`rate_limit_exceeded`); see Retry-After"),
    503: openai_error_schema("A dependency (the database, the language model) is unavailable; retry later"),
}

_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "rate_limit_error"}
_CODES = {
    "Unauthorized": "invalid_api_key",
    "ModelNotFound": "model_not_found",
    "TooManyRequests": "rate_limit_exceeded",
    "QuotaExceeded": "insufficient_quota",
    "ValidationError": "invalid_value",
}


def _snake(name: str) -> str:
    """`LLMRequestRejected` → `llm_request_rejected`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def openai_error(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Our error body as OpenAI's, with OpenAI's status (422 → 400)."""
    name = str(body.get("error") or "Error")
    detail = str(body.get("detail") or name)
    param = None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        loc = [str(part) for part in errors[0].get("loc") or () if part != "body"]
        param = ".".join(loc) or None
    if status == 422:
        status = 400
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, {"error": {"message": detail, "type": kind, "param": param, "code": _CODES.get(name, _snake(name))}}


class OpenAIErrorShape:
    """Pure ASGI: rewrites JSON error answers (status >= 400) of `/v1` paths; everything else passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                is_json = headers.get(b"content-type", b"").startswith(b"application/json")
                if message["status"] >= 400 and is_json:
                    start = message  # held until the body is complete
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await _send_rewritten(send, start, b"".join(chunks))
                return
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def _send_rewritten(send: Send, start: Message, raw: bytes) -> None:
    status = start["status"]
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        status, body = openai_error(status, body)
        raw = json.dumps(body, ensure_ascii=False).encode()
    headers = [(k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(raw)).encode()))
    await send({**start, "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw, "more_body": False})
