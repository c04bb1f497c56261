from __future__ import annotations

from agentserver.kit.errors import AppError, Conflict, NotFound


class AssistantNotFound(NotFound):
    """No such assistant (id or name) for the caller: another user's is not found either."""

    def __init__(self) -> None:
        super().__init__("Assistant not found")


class ToolNotAllowed(AppError):
    """The assistant names a tool (or model) this deployment does not let users' assistants use."""

    status_code = 422


class AssistantNameTaken(Conflict):
    """The caller, or the deployment, already has an assistant of that name."""


class TooManyAssistants(Conflict):
    """The caller has as many assistants as one user may have."""


class ReadOnlyAssistant(AppError):
    """The deployment's assistants are configured in ASSISTANTS_FILE, not through the API."""

    status_code = 403
