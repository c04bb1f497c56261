"""An MCP server over streamable HTTP, with a credential header taken from the environment."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage

from agentserver.config import Settings
from agentserver.llm.fake import tool_call_turn
from tests.assistants.conftest import MCP_SERVER, OVERRIDES, write_assistants
from tests.chat.conftest import start_harness
from tests.processes import free_port


@pytest.fixture
def http_mcp_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own test server
        [sys.executable, str(MCP_SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _wait_listening(port: int) -> None:
    for _ in range(500):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"the MCP server did not listen on {port}")


async def test_a_streamable_http_server_gets_its_header_from_the_environment(
    own_database_settings: Callable[..., Awaitable[Settings]],
    tmp_path: Path,
    http_mcp_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTSERVER_TEST_MCP_TOKEN", "s3cret")
    text = f"""
mcp_servers:
  web:
    transport: streamable_http
    url: http://127.0.0.1:{http_mcp_port}/mcp
    headers: {{Authorization: "Bearer ${{AGENTSERVER_TEST_MCP_TOKEN}}"}}
assistants:
  - name: agent
  - name: remote
    tools: [web__whoami, web__add]
"""
    settings = await own_database_settings(
        "agentserver_mcp_http", assistants_file=write_assistants(tmp_path, text), **OVERRIDES
    )
    await _wait_listening(http_mcp_port)
    harness, lifespan = await start_harness(settings)
    try:
        headers = await harness.new_user()
        harness.fake.set_script([tool_call_turn("web__whoami", {}), "done"])
        async with harness.client() as http:
            created = await http.post("/api/v1/sessions", json={"assistant_id": "remote"}, headers=headers)
            answer = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": created.json()["id"], "message": "who?"}, headers=headers
            )
        prompts = harness.fake.prompts
        tools = harness.fake.calls[0].tools
    finally:
        await lifespan.__aexit__(None, None, None)

    assert answer.status_code == 200, answer.text
    assert sorted(tools) == ["web__add", "web__whoami"]
    [result] = [m for m in prompts[1] if isinstance(m, ToolMessage)]
    assert result.content == "authorization: Bearer s3cret"
