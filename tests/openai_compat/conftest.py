"""OpenAI-compatible API tests: the real app on a real socket, driven by the official `openai` SDK and
LangChain's ChatOpenAI, on a database of its own with the scripted model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from openai import AsyncOpenAI

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness, serving, start_harness

OVERRIDES = {"summary_after_turns": 4, "max_tool_rounds": 2, "search_provider": "none"}


@dataclass
class Caller:
    """A user of the live server: their access-token headers, an API key, and an SDK client with it."""

    headers: dict[str, str]
    key: str
    key_id: str
    openai: AsyncOpenAI


async def new_caller(harness: ChatHarness, url: str) -> Caller:
    headers = await harness.new_user()
    key, key_id = await harness.new_api_key(headers)
    return Caller(headers, key, key_id, AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0))


@pytest.fixture(scope="package")
async def openai_harness(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    harness, lifespan = await start_harness(await own_database_settings("agentserver_openai", **OVERRIDES))
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture(scope="package")
async def openai_url(openai_harness: ChatHarness) -> AsyncIterator[str]:
    async with serving(openai_harness.asgi) as url:
        yield url


@pytest.fixture
async def fake(openai_harness: ChatHarness) -> FakeChatModel:
    await openai_harness.settle()
    openai_harness.fake.set_script([])
    return openai_harness.fake


@pytest.fixture
async def caller(openai_harness: ChatHarness, openai_url: str) -> AsyncIterator[Caller]:
    caller = await new_caller(openai_harness, openai_url)
    yield caller
    await caller.openai.close()
