"""Errors of usage and quotas."""

from __future__ import annotations

import math
from datetime import datetime

from agentserver.kit.errors import AppError, TooManyRequests


class QuotaExceeded(TooManyRequests):
    """A token or cost budget of the caller is spent (or has no room for another run right now).

    `Retry-After` (seconds) and `reset_at` say when to come back; `limit` names the budget.
    """

    def __init__(self, message: str, *, limit: str, reset_at: datetime, retry_after_seconds: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after_seconds)))})
        self.extra = {"limit": limit, "reset_at": reset_at.isoformat()}


class InvalidUsageRange(AppError):
    """`from` must be before `to`, and the range at most MAX_RANGE_DAYS long."""

    status_code = 422
