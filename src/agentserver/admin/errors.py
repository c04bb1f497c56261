"""Errors of the admin API."""

from __future__ import annotations

from agentserver.kit.errors import AppError, NotFound


class AdminRequired(AppError):
    """The endpoint is for operators (the admin role, or an email in ADMIN_EMAILS)."""

    status_code = 403

    def __init__(self) -> None:
        super().__init__("This endpoint is for administrators")


class UserNotFound(NotFound):
    """No user has this id (or email)."""

    def __init__(self) -> None:
        super().__init__("User not found")
