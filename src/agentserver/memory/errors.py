"""Errors of the memory domain."""

from __future__ import annotations

from agentserver.kit.errors import RETRY_AFTER_SECONDS, NotFound, ServiceUnavailable


class EmbeddingModelError(RuntimeError):
    """The embedding model or tokenizer is missing or fails its checksum (a start-up failure, not a 5xx)."""


class MemoryUnavailable(ServiceUnavailable):
    """The memory store could not be reached; try again later."""

    def __init__(self) -> None:
        super().__init__(
            "Long-term memory is temporarily unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )


class MemoryNotFound(NotFound):
    """The memory does not exist, or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("Memory not found")
