"""Liveness and readiness probes.

`/ready` fails (503) only for what the service cannot run without: the database and the LLM provider.
Optional dependencies (Redis) are checked too; one that fails leaves the service ready but
`"status": "degraded"`. Every check also sets `agentserver_dependency_up{dependency}`.
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agentserver.observability.metrics import DEPENDENCY_UP
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


async def _run_checks(checks: dict[str, ReadinessCheck]) -> dict[str, str | None]:
    results = dict(await asyncio.gather(*(_run_check(name, check) for name, check in checks.items())))
    for name, reason in results.items():
        DEPENDENCY_UP.labels(dependency=name).set(0 if reason else 1)
    return results


@router.get(
    "/ready",
    summary="Readiness: the dependencies the service cannot run without answer",
    responses={
        200: {"description": '`"status": "ready"`, or `"degraded"` when an optional dependency (Redis) is down'},
        503: {"description": "A required dependency (database, LLM) is down; `checks` says which"},
    },
)
async def ready(request: Request) -> JSONResponse:
    required: dict[str, ReadinessCheck] = request.state.readiness_checks
    optional: dict[str, ReadinessCheck] = getattr(request.state, "optional_checks", {})
    required_results, optional_results = await asyncio.gather(_run_checks(required), _run_checks(optional))
    body = {name: reason or "ok" for name, reason in {**required_results, **optional_results}.items()}
    failed = {name: reason for name, reason in required_results.items() if reason is not None}
    if failed:
        detail = ", ".join(f"{name} {reason}" for name, reason in failed.items())
        return JSONResponse(
            {"error": "ServiceUnavailable", "detail": f"not ready: {detail}", "checks": body}, status_code=503
        )
    degraded = any(reason is not None for reason in optional_results.values())
    return JSONResponse({"status": "degraded" if degraded else "ready", "checks": body})
