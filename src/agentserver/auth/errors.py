"""Auth errors. Every credential failure is the same 401 so clients cannot tell which part was wrong."""

from __future__ import annotations

from agentserver.kit.errors import Conflict, Unauthorized


class InvalidCredentials(Unauthorized):
    """Wrong email or password."""

    def __init__(self) -> None:
        # One message for unknown email and wrong password: no account enumeration through login.
        super().__init__("Incorrect email or password")


class InvalidRefreshToken(Unauthorized):
    """The refresh token is invalid, expired, spent or revoked."""

    def __init__(self) -> None:
        super().__init__("Invalid or expired refresh token")


class EmailAlreadyRegistered(Conflict):
    """An account with this email already exists."""

    def __init__(self) -> None:
        super().__init__("An account with this email already exists")


class AccountDisabled(Unauthorized):
    """The account was disabled by an administrator (told only to whoever has its password)."""

    def __init__(self) -> None:
        super().__init__("This account is disabled")
