from __future__ import annotations

from agentserver.kit.errors import AppError, Conflict, NotFound


class SessionNotFound(NotFound):
    """The chat session does not exist or is not the caller's."""

    def __init__(self) -> None:
        super().__init__("Chat session not found")


class TurnInProgress(Conflict):
    """The session is still answering a previous message; send the next one when it is done."""

    def __init__(self) -> None:
        super().__init__("This session is still answering the previous message; retry when it is done")


class MessageTooLong(AppError):
    """The message is longer than MAX_MESSAGE_CHARS."""

    status_code = 422

    def __init__(self, limit: int) -> None:
        super().__init__(f"message: must be at most {limit} characters")
