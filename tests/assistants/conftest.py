"""Assistants and MCP tests: the real app with an assistants file naming a real stdio MCP server
(mcp_server.py, a child process of the app), on a database of its own, with the scripted model."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness, start_harness

MCP_SERVER = Path(__file__).with_name("mcp_server.py")
OVERRIDES: dict[str, Any] = {
    "summary_after_turns": 4,
    "max_tool_rounds": 2,
    "search_provider": "none",
    # Long enough for another user's whole turn to finish meanwhile on a busy machine.
    "mcp_tool_timeout_seconds": 8.0,
    "mcp_max_result_chars": 100,
}

ASSISTANTS_YAML = f"""
default: agent
mcp_servers:
  testmcp:
    transport: stdio
    command: {sys.executable}
    args: ["{MCP_SERVER}"]
assistants:
  - name: agent
    description: The default.
  - name: helper
    description: Uses the test MCP server.
    instructions: HELPER-INSTRUCTIONS use the test tools.
    tools: [testmcp__echo, testmcp__add, testmcp__hang, testmcp__fail, testmcp__big]
  - name: terse
    instructions: TERSE-INSTRUCTIONS answer in one word.
    tools: [calculator]
    approval: [calculator]
    memory: false
"""


def write_assistants(directory: Path, text: str = ASSISTANTS_YAML, name: str = "assistants.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="package")
async def assistants_settings(
    own_database_settings: Callable[..., Awaitable[Settings]], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    path = write_assistants(tmp_path_factory.mktemp("assistants"))
    return await own_database_settings("agentserver_assistants", assistants_file=path, **OVERRIDES)


@pytest.fixture(scope="package")
async def harness(assistants_settings: Settings) -> AsyncIterator[ChatHarness]:
    harness, lifespan = await start_harness(assistants_settings)
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def fake(harness: ChatHarness) -> FakeChatModel:
    await harness.settle()
    harness.fake.set_script([])
    return harness.fake
