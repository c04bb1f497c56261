"""Agent Server API tests: the real app on a real socket, driven by the official `langgraph-sdk` (and
LangGraph's RemoteGraph), on a database of its own with the scripted model. The calculator needs approval
here, so approvals can be tested; the other tests do not call tools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness, serving, start_harness

OVERRIDES = {
    "summary_after_turns": 4,
    "max_tool_rounds": 2,
    "search_provider": "none",
    "tools_requiring_approval": ["calculator"],
}


@dataclass
class Caller:
    headers: dict[str, str]
    key: str
    client: LangGraphClient


async def new_caller(harness: ChatHarness, url: str) -> Caller:
    headers = await harness.new_user()
    key, _ = await harness.new_api_key(headers)
    return Caller(headers, key, get_client(url=url, api_key=key))


@pytest.fixture(scope="package")
async def lg_harness(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    harness, lifespan = await start_harness(await own_database_settings("agentserver_langgraph", **OVERRIDES))
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture(scope="package")
async def lg_url(lg_harness: ChatHarness) -> AsyncIterator[str]:
    async with serving(lg_harness.asgi) as url:
        yield url


@pytest.fixture
async def fake(lg_harness: ChatHarness) -> FakeChatModel:
    await lg_harness.settle()
    lg_harness.fake.set_script([])
    return lg_harness.fake


@pytest.fixture
async def caller(lg_harness: ChatHarness, lg_url: str) -> AsyncIterator[Caller]:
    caller = await new_caller(lg_harness, lg_url)
    yield caller
    await caller.client.aclose()
