"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agentserver.state import ReadinessCheck

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])

READINESS_TIMEOUT_SECONDS = 3.0


@router.get("/health", summary="Liveness: the process answers (no I/O)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _run_check(name: str, check: ReadinessCheck) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(check(), timeout=READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("health.check_failed", check=name, reason="timeout")
        return name, "timed out"
    except Exception as exc:
        log.warning("health.check_failed", check=name, reason=type(exc).__name__)
        return name, "unavailable"
    return name, None


@router.get(
    "/ready",
    summary="Readiness: every dependency answers",
    responses={503: {"description": "A dependency is down; `checks` says which"}},
)
async def ready(request: Request) -> JSONResponse:
    checks: dict[str, ReadinessCheck] = request.state.readiness_checks
    results = await asyncio.gather(*(_run_check(name, check) for name, check in checks.items()))
    failed = {name: reason for name, reason in results if reason is not None}
    body = {name: failed.get(name, "ok") for name, _ in results}
    if failed:
        detail = ", ".join(f"{name} {reason}" for name, reason in failed.items())
        return JSONResponse(
            {"error": "ServiceUnavailable", "detail": f"not ready: {detail}", "checks": body}, status_code=503
        )
    return JSONResponse({"status": "ready", "checks": body})
