"""Fixtures for the LLM layer: the OpenAI protocol stub, a recording sleep, services built on the stub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.config import Environment, Settings
from agentserver.llm.service import LLMService
from tests.llm.stub_openai import StubOpenAI


@pytest.fixture(scope="session")
async def stub_server() -> AsyncIterator[StubOpenAI]:
    stub = StubOpenAI()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
def stub(stub_server: StubOpenAI) -> StubOpenAI:
    stub_server.reset()
    return stub_server


class RecordingSleep:
    """Stands in for asyncio.sleep in the retry logic: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


def llm_settings(base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": Environment.test,
        "llm_provider": "openai_compatible",
        "llm_base_url": base_url,
        "default_model": "primary",
        "fallback_models": ["backup"],
        "llm_timeout_seconds": 5.0,
        "llm_max_retries": 2,
        "memory_enabled": False,
        **overrides,
    }
    return Settings(_env_file=None, **values)


ServiceFactory = Callable[..., Awaitable[LLMService]]


@pytest.fixture
async def make_service(stub: StubOpenAI, sleeps: RecordingSleep) -> AsyncIterator[ServiceFactory]:
    """Build an LLMService against the stub (settings overridable); closed after the test."""
    services: list[LLMService] = []

    async def make(**overrides: Any) -> LLMService:
        service = await LLMService.start(llm_settings(stub.url, **overrides), sleep=sleeps)
        services.append(service)
        return service

    yield make
    for service in services:
        await service.aclose()
