"""`/api/v1/usage`: what the caller's runs cost, and the caller's budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from agentserver.auth.dependencies import CurrentUser, SettingsDep
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.usage.errors import InvalidUsageRange
from agentserver.usage.limits import QuotaLimits
from agentserver.usage.schemas import QuotaRead, UsageFigures, UsageGroup, UsageReport
from agentserver.usage.service import usage as usage_service

router = APIRouter(prefix="/api/v1/usage", tags=["usage"])

MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30


def usage_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end) in UTC: `to` defaults to now, `from` to 30 days before `to`; naive times are UTC."""
    end = _utc(end) if end is not None else datetime.now(UTC)
    start = _utc(start) if start is not None else end - timedelta(days=DEFAULT_RANGE_DAYS)
    if start >= end:
        raise InvalidUsageRange("from: must be before to")
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidUsageRange(f"from: the range is at most {MAX_RANGE_DAYS} days")
    return start, end


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


From = Annotated[datetime | None, Query(alias="from", description="Start (inclusive), ISO 8601; default: to − 30 days")]
To = Annotated[datetime | None, Query(alias="to", description="End (exclusive), ISO 8601; default: now")]


@router.get(
    "",
    summary="The caller's usage (tokens, cost, runs, tool calls) over a time range, grouped",
    responses={401: Unauthorized.schema(), 422: InvalidUsageRange.schema()},
)
async def my_usage(
    user: CurrentUser,
    session: SessionDep,
    start: From = None,
    end: To = None,
    group_by: Literal["day", "model", "session"] = "day",
) -> UsageReport:
    start, end = usage_range(start, end)
    groups = await usage_service.report(session, user_id=user.id, start=start, end=end, group_by=group_by)
    totals = await usage_service.report(session, user_id=user.id, start=start, end=end, group_by="total")
    return UsageReport(
        start=start,
        end=end,
        group_by=group_by,
        totals=UsageFigures.of(totals[0]),
        groups=[UsageGroup.of_row(row) for row in groups],
    )


@router.get(
    "/quota",
    summary="The caller's budgets for this UTC day and month, and what they spent of them",
    responses={401: Unauthorized.schema()},
)
async def my_quota(user: CurrentUser, session: SessionDep, settings: SettingsDep) -> QuotaRead:
    status = await usage_service.status(session, user_id=user.id, defaults=QuotaLimits.from_settings(settings))
    return QuotaRead.of(status)
