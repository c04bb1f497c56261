"""Typed application errors and the one place that renders every error as `{"error", "detail"}`.

Domain modules subclass `AppError` next to their code (e.g. `auth.errors`). Nothing internal — stack
traces, SQL, keys — ever reaches a client: unexpected exceptions become a bare 500 and a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class AppError(Exception):
    """Base of every error a client may see. `message` is safe to show to the client."""

    status_code: int = 500
    headers: dict[str, str] | None = None
    # More fields of the error body beside "error" and "detail" (e.g. QuotaExceeded's "reset_at").
    extra: dict[str, Any] | None = None

    def __init__(self, message: str, status_code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if headers is not None:
            self.headers = headers

    @property
    def name(self) -> str:
        """What clients see as `error`: the class name."""
        return type(self).__name__

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """An OpenAPI `responses=` entry for endpoints that declare this error."""
        return {"model": ErrorBody, "description": cls.__doc__ or cls.__name__}


def _subclasses(cls: type[AppError]) -> list[type[AppError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


class RelayedError(AppError):
    """An error that happened in another process (a worker running the request's run), relayed to the
    client with its own name and status."""

    def __init__(self, name: str, message: str) -> None:
        known = next((c for c in _subclasses(AppError) if c.__name__ == name and c is not RelayedError), None)
        super().__init__(message, known.status_code if known is not None else 500)
        self._name = name if known is not None else "InternalServerError"

    @property
    def name(self) -> str:
        return self._name


class BadRequest(AppError):
    """The request is well-formed but cannot be processed."""

    status_code = 400


class Unauthorized(AppError):
    """Missing, invalid or expired credentials."""

    status_code = 401

    def __init__(self, message: str = "Could not validate credentials"):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(AppError):
    """The resource does not exist, or is not the caller's."""

    status_code = 404


class Conflict(AppError):
    """The request conflicts with the current state."""

    status_code = 409


class PayloadTooLarge(AppError):
    """The request body is larger than allowed."""

    status_code = 413


class TooManyRequests(AppError):
    """A rate limit was hit; retry after the given time."""

    status_code = 429


class InternalServerError(AppError):
    """An unexpected failure; the cause is in the log, never in the response."""

    status_code = 500

    def __init__(self) -> None:
        super().__init__("Internal server error")


class ServiceUnavailable(AppError):
    """A dependency (database, LLM provider, ...) is not available right now."""

    status_code = 503


# What 503s ask clients to wait before retrying: outages worth answering 503 for (a pool drained by a
# burst, a database restarting) are over in seconds.
RETRY_AFTER_SECONDS = 2


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot serve the request right now (no free connection, connection lost, restarting)."""

    def __init__(self) -> None:
        super().__init__(
            "The database is temporarily unavailable; please retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class ErrorBody(BaseModel):
    error: str
    detail: str


class ValidationErrorBody(ErrorBody):
    errors: list[dict[str, Any]]


def error_response(
    error: str, detail: str, status_code: int, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status_code, headers=headers)


def app_error_response(exc: AppError) -> JSONResponse:
    return error_response(exc.name, exc.message, exc.status_code, exc.headers, **(exc.extra or {}))


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.status_code >= 500:
        log.warning("http.app_error", error=exc.name, status=exc.status_code, detail=exc.message)
    return app_error_response(exc)


def _clean_validation_error(err: Any) -> dict[str, Any]:
    # `input` may echo a password or a whole oversized body back; `ctx` may hold exception objects.
    return {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_clean_validation_error(e) for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"] if part != "body")
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return error_response("ValidationError", detail, 422, errors=errors)


_HTTP_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Framework-raised HTTP errors (unknown route, wrong method, ...) get the same body shape."""
    assert isinstance(exc, StarletteHTTPException)
    name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
    detail = exc.detail if isinstance(exc.detail, str) else name
    return error_response(name, detail, exc.status_code, dict(exc.headers or {}) or None)


def internal_error_response() -> JSONResponse:
    """What a client sees for any unexpected failure: nothing about the cause (it is in the log)."""
    error = InternalServerError()
    return error_response(type(error).__name__, error.message, error.status_code)


def error_name(exc: BaseException) -> str:
    """`sqlalchemy.exc.TimeoutError`, `builtins.KeyError`: the class, unambiguous across libraries."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def error_origin(exc: BaseException) -> str | None:
    """`module:line` where `exc` was raised (the innermost frame of its traceback)."""
    traceback = exc.__traceback__
    if traceback is None:
        return None
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return f"{traceback.tb_frame.f_globals.get('__name__', '?')}:{traceback.tb_lineno}"


def log_failure(logger: Any, event: str, exc: BaseException, **context: Any) -> None:
    """One ERROR line for an unexpected failure: its class and origin (the request id comes from the
    log context). The traceback only at DEBUG: in an outage, one multi-hundred-line traceback per
    request buries the cause and stalls the event loop that writes them."""
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    logger.error(event, error=error_name(exc), origin=error_origin(exc), exc_info=exc if debug else None, **context)


def _document_validation_errors(app: FastAPI) -> None:
    """FastAPI documents every 422 as its own `HTTPValidationError` ({"detail": [...]}); the handler
    above answers `{"error", "detail", "errors"}`. Make the schema say what the API really sends."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in components:
                components["HTTPValidationError"] = ValidationErrorBody.model_json_schema()
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Unexpected exceptions are caught by RequestContextMiddleware, inside the X-Request-ID wrapper.
    _document_validation_errors(app)
