"""Errors a chat turn can end with when the model cannot answer. Messages are safe to show to clients."""

from __future__ import annotations

from agentserver.kit.errors import AppError


class LLMError(AppError):
    """The language model could not produce an answer."""

    status_code = 502


class LLMUnavailable(LLMError):
    """Every configured model failed or timed out; trying again later may work."""

    status_code = 503

    def __init__(self, message: str = "The language model is unavailable right now; please try again later."):
        super().__init__(message)


class LLMRequestRejected(LLMError):
    """The provider refused the request itself (e.g. too long); retrying the same request will not help."""

    status_code = 502

    def __init__(self, message: str = "The language model rejected the request."):
        super().__init__(message)


class LLMConfigurationError(ValueError):
    """The LLM settings cannot work (raised at startup, never during a request)."""


class ModelFileError(RuntimeError):
    """The embedded model file is missing, incomplete or does not match its checksum."""
