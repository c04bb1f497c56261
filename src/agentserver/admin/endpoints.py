"""`/api/v1/admin`: usage across users and per-user budgets, for operators only (403 to everyone else)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter

from agentserver.admin.dependencies import AdminUser
from agentserver.admin.errors import AdminRequired, UserNotFound
from agentserver.admin.schemas import QuotaOverrides, UserQuotaRead
from agentserver.auth.dependencies import SettingsDep
from agentserver.auth.repository import UserRepository
from agentserver.kit.db import SessionDep
from agentserver.kit.errors import Unauthorized
from agentserver.usage.endpoints import From, To, usage_range
from agentserver.usage.errors import InvalidUsageRange
from agentserver.usage.limits import QuotaLimits
from agentserver.usage.repository import UsageRepository
from agentserver.usage.schemas import QuotaRead, UsageFigures, UsageGroup, UsageReport
from agentserver.usage.service import usage as usage_service

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {401: Unauthorized.schema(), 403: AdminRequired.schema()}


@router.get(
    "/usage",
    summary="Usage of every user (or one: user_id) over a time range, grouped",
    responses={**ADMIN_ERRORS, 422: InvalidUsageRange.schema()},
)
async def all_usage(
    _: AdminUser,
    session: SessionDep,
    start: From = None,
    end: To = None,
    group_by: Literal["day", "model", "session", "user"] = "user",
    user_id: uuid.UUID | None = None,
) -> UsageReport:
    start, end = usage_range(start, end)
    groups = await usage_service.report(session, user_id=user_id, start=start, end=end, group_by=group_by)
    totals = await usage_service.report(session, user_id=user_id, start=start, end=end, group_by="total")
    return UsageReport(
        start=start,
        end=end,
        group_by=group_by,
        totals=UsageFigures.of(totals[0]),
        groups=[UsageGroup.of_row(row) for row in groups],
    )


async def _quota_of(session: SessionDep, settings: SettingsDep, user_id: uuid.UUID) -> UserQuotaRead:
    override = await UsageRepository.from_session(session).get_override(user_id)
    status = await usage_service.status(session, user_id=user_id, defaults=QuotaLimits.from_settings(settings))
    return UserQuotaRead(
        overrides=QuotaOverrides.model_validate(override) if override is not None else QuotaOverrides(),
        effective=QuotaRead.of(status),
    )


@router.get(
    "/users/{user_id}/quota",
    summary="A user's budget overrides, effective budgets and spending this day and month",
    responses={**ADMIN_ERRORS, 404: UserNotFound.schema()},
)
async def get_user_quota(user_id: uuid.UUID, _: AdminUser, session: SessionDep, settings: SettingsDep) -> UserQuotaRead:
    if await UserRepository.from_session(session).get(user_id) is None:
        raise UserNotFound()
    return await _quota_of(session, settings, user_id)


@router.put(
    "/users/{user_id}/quota",
    summary="Set a user's budget overrides (a number replaces the default, 0 is unlimited, null restores it)",
    responses={**ADMIN_ERRORS, 404: UserNotFound.schema()},
)
async def set_user_quota(
    user_id: uuid.UUID, body: QuotaOverrides, _: AdminUser, session: SessionDep, settings: SettingsDep
) -> UserQuotaRead:
    if await UserRepository.from_session(session).get(user_id) is None:
        raise UserNotFound()
    await usage_service.set_override(session, user_id=user_id, values=body.model_dump())
    return await _quota_of(session, settings, user_id)
