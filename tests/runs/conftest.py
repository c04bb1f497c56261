"""Run tests: apps on databases of their own, with real commits and a worker each (tests/chat/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from agentserver.models import Run, RunStatus
from tests.chat.conftest import ChatHarness, parse_sse_frames, start_harness

RUN_OVERRIDES = {"summary_after_turns": 4, "max_tool_rounds": 2, "search_provider": "none"}


@pytest.fixture(scope="package")
async def runs_settings(own_database_settings: Callable[..., Awaitable[Settings]]) -> Settings:
    return await own_database_settings("agentserver_runs", **RUN_OVERRIDES)


@pytest.fixture(scope="package")
async def runs(runs_settings: Settings) -> AsyncIterator[ChatHarness]:
    harness, lifespan = await start_harness(runs_settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def fake(runs: ChatHarness) -> FakeChatModel:
    await runs.settle()
    runs.fake.set_script([])
    return runs.fake


STREAM = "/api/v1/chatbot/chat/stream"
Frames = list[tuple[int | None, str, dict[str, Any]]]


async def stream_turn(
    harness: ChatHarness, headers: dict[str, str], session_id: str, message: str, **extra: Any
) -> httpx.Response:
    async with harness.client() as http:
        return await http.post(STREAM, json={"session_id": session_id, "message": message, **extra}, headers=headers)


async def replay(harness: ChatHarness, headers: dict[str, str], run_id: str, after: int | None = None) -> Frames:
    """GET /api/v1/runs/{id}/stream (from the start, or after an event id as `Last-Event-ID`)."""
    extra = {"Last-Event-ID": str(after)} if after is not None else {}
    async with harness.client() as http:
        response = await http.get(f"/api/v1/runs/{run_id}/stream", headers={**headers, **extra})
    assert response.status_code == 200, response.text
    return parse_sse_frames(response.text)


async def run_row(harness: ChatHarness, run_id: str) -> Run:
    async with harness.state["sessionmaker"]() as session:
        run: Run | None = await session.get(Run, run_id)
    assert run is not None
    return run


async def wait_for_status(harness: ChatHarness, run_id: str, *statuses: RunStatus, within: float = 15.0) -> Run:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        run = await run_row(harness, run_id)
        if run.status in statuses:
            return run
        if loop.time() > deadline:
            raise AssertionError(f"run {run_id} is {run.status}, not {statuses}")
        await asyncio.sleep(0.05)


async def latest_run_id(harness: ChatHarness, headers: dict[str, str], session_id: str) -> str:
    async with harness.client() as http:
        response = await http.get(f"/api/v1/sessions/{session_id}/runs", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["runs"][0]["id"])
