"""Memory fixtures: a running MemoryService (local ONNX embedder, scripted LLM) on a database of its own.

Memories are keyed by user id and written by mem0's own connections (committed, not in the test's
rolled-back transaction), so every test uses fresh random user ids instead of a fresh database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agentserver.config import Environment, Settings
from agentserver.llm.fake import FakeChatModel
from agentserver.memory.backend import start_memory
from agentserver.memory.service import MemoryService


def extraction(*facts: str) -> str:
    """What the extraction model answers to mem0's prompt: the facts of the new exchange, as JSON."""
    return json.dumps({"memory": [{"id": str(index), "text": fact} for index, fact in enumerate(facts)]})


@pytest.fixture(scope="session")
def memory_database_url(make_database: Callable[[str], str]) -> str:
    return make_database("agentserver_memory")


def memory_settings_for(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": Environment.test,
        "database_url": database_url,
        "agentserver_data_dir": data_dir,
        "log_level": "WARNING",
        "llm_provider": "fake",
        "memory_enabled": True,
        "memory_drain_timeout_seconds": 5.0,
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
