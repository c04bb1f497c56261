"""Errors of runs and of the chat turns built on them."""

from __future__ import annotations

from agentserver.kit.errors import AppError, Conflict, NotFound


class SessionNotFound(NotFound):
    """The chat session does not exist or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("Chat session not found")


class RunNotFound(NotFound):
    """The run does not exist or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("Run not found")


class TurnInProgress(Conflict):
    """The session is still answering a previous message (multitask_strategy=reject)."""

    def __init__(self) -> None:
        super().__init__("This session is still answering the previous message; retry when it is done")


class RunNotInterrupted(Conflict):
    """Only a run waiting for a decision (status `interrupted`) can be resumed."""

    def __init__(self) -> None:
        super().__init__("This run is not waiting for a decision")


class RunAlreadyFinished(Conflict):
    """The run has already ended."""

    def __init__(self) -> None:
        super().__init__("This run has already finished")


class MessageTooLong(AppError):
    """The message is longer than MAX_MESSAGE_CHARS."""

    status_code = 422

    def __init__(self, limit: int) -> None:
        super().__init__(f"message: must be at most {limit} characters")


class InvalidResume(AppError):
    """The resume decision does not fit the paused tool call (e.g. edited arguments it does not accept)."""

    status_code = 422
