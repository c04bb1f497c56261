"""Log capture that sees exactly what the configured renderer writes, one parsed JSON object per line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agentserver.observability.logging import build_formatter


class _JsonLines(logging.Handler):
    """Formats at emit time, as the real handler does: foreign (stdlib) lines pick up the request
    context from contextvars while the request is still running."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(build_formatter("json"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """Every line logged at INFO or above while the test runs (the test settings log WARNING+)."""
    root = logging.getLogger()
    handler = _JsonLines()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
