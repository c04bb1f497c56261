"""Memory fixtures: a running MemoryService (local ONNX embedder, scripted LLM) on a database of its own.

Memories are keyed by user id and written by mem0's own connections (committed, not in the test's
rolled-back transaction), so every test uses fresh random user ids instead of a fresh database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from agentserver.config import Environment, Settings
from agentserver.kit import migrations
from agentserver.kit.db import create_engine, create_sessionmaker
from agentserver.llm.fake import FakeChatModel
from agentserver.memory.backend import start_memory
from agentserver.memory.isolation import IsolatedLoop
from agentserver.memory.service import MemoryService


def extraction(*facts: str) -> str:
    """What the extraction model answers to mem0's prompt: the facts of the new exchange, as JSON."""
    return json.dumps({"memory": [{"id": str(index), "text": fact} for index, fact in enumerate(facts)]})


@pytest.fixture(scope="session")
def memory_database_url(make_database: Callable[[str], str]) -> str:
    url = make_database("agentserver_memory")
    migrations.upgrade(url)  # users and messages: erasure and the extraction job read them
    return url


@pytest.fixture(scope="session")
async def memory_engine(memory_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(memory_database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def memory_db(memory_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session on the memory database (its commits are real: mem0 writes with its own connections)."""
    async with create_sessionmaker(memory_engine)() as session:
        yield session


@pytest.fixture(scope="session")
def isolation() -> Iterator[IsolatedLoop]:
    loop = IsolatedLoop("mem0-test", 2)
    loop.start()
    yield loop
    loop.stop()


def memory_settings_for(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": Environment.test,
        "database_url": database_url,
        "agentserver_data_dir": data_dir,
        "log_level": "WARNING",
        "llm_provider": "fake",
        "memory_enabled": True,
        "run_heartbeat_seconds": 1.0,
        "run_poll_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def memory_settings(memory_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return memory_settings_for(memory_database_url, tmp_path_factory.mktemp("memory-data"))


@pytest.fixture(scope="session")
def extraction_model() -> FakeChatModel:
    # Strict: a test that triggers an extraction it did not script fails instead of storing an echo.
    return FakeChatModel(echo_when_exhausted=False)


@pytest.fixture(scope="session")
async def memory_service(
    memory_settings: Settings, memory_database_url: str, extraction_model: FakeChatModel
) -> AsyncIterator[MemoryService]:
    async with start_memory(memory_settings, memory_database_url, extraction_model) as service:
        yield service


@pytest.fixture
def scripted(extraction_model: FakeChatModel) -> FakeChatModel:
    """The extraction model with an empty script (each test scripts its own answers)."""
    extraction_model.set_script([])
    return extraction_model
