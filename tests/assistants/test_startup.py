"""Start-up and shutdown: the assistants file is validated first, MCP servers live and die with the app."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest
from langchain_core.messages import ToolMessage

from agentserver.agent.assistants import AssistantsFileError, load_assistants_file
from agentserver.agent.runtime import AgentRuntime
from agentserver.config import Settings
from agentserver.llm.fake import tool_call_turn
from tests.assistants.conftest import ASSISTANTS_YAML, MCP_SERVER, OVERRIDES, write_assistants
from tests.chat.conftest import start_harness
from tests.processes import AGENTSERVER


def _mcp_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if str(MCP_SERVER) in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


class TestAssistantsFile:
    async def test_an_invalid_file_stops_start_up_naming_the_file_the_assistant_and_the_field(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        path = write_assistants(
            tmp_path,
            "assistants:\n  - name: fine\n  - name: broken\n    tools: calculator\n",
        )

        with pytest.raises(AssistantsFileError) as raised:
            await start_harness(settings.model_copy(update={"assistants_file": path}))

        message = str(raised.value)
        assert message.startswith(f"assistants file {path}: ")
        assert "assistant 'broken', field tools: Input should be a valid list" in message

    @pytest.mark.parametrize(
        ("name", "text", "expected"),
        [
            (
                "a.toml",
                '[[assistants]]\nname = "x"\nmemroy = false\n',
                "assistant 'x', field memroy: Extra inputs are not permitted",
            ),
            (
                "b.yaml",
                "assistants:\n  - name: x\n    tools: [calculator]\n    approval: [web_search]\n",
                "assistant 'x', field (whole entry): Value error, approval names tools the assistant does not have",
            ),
            ("c.yaml", "assistants:\n  - description: nameless\n", "assistant #1, field name: Field required"),
            (
                "d.yaml",
                "assistants:\n  - name: x\nmcp_servers:\n  srv:\n    transport: stdio\n",
                "MCP server 'srv', field (whole entry): Value error, a stdio server needs `command`",
            ),
            ("e.yaml", "assistants: [\n", "not valid YAML"),
            (
                "g.yaml",
                "assistants:\n  - name: x\nmcp_servers:\n  srv:\n    transport: streamable_http\n"
                "    url: http://127.0.0.1:1/mcp\n    headers: {Authorization: 'Bearer ${AS_UNSET_TOKEN}'}\n",
                "MCP server 'srv', field headers: Value error, environment variable AS_UNSET_TOKEN is not set",
            ),
            ("f.yaml", "default: nobody\nassistants:\n  - name: x\n", "default names no assistant: 'nobody'"),
        ],
    )
    def test_problems_are_reported_precisely(self, tmp_path: Path, name: str, text: str, expected: str) -> None:
        path = write_assistants(tmp_path, text, name)

        with pytest.raises(AssistantsFileError) as raised:
            load_assistants_file(path)

        assert str(raised.value).startswith(f"assistants file {path}: ")
        assert expected in str(raised.value)

    @pytest.mark.parametrize("command", ["serve", "worker"])
    def test_the_cli_refuses_to_start_in_one_line(self, tmp_path: Path, command: str) -> None:
        path = write_assistants(tmp_path, "assistants:\n  - name: broken\n    memory: sometimes\n")
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ENVIRONMENT")}
        env["ASSISTANTS_FILE"] = str(path)

        done = subprocess.run([AGENTSERVER, command], env=env, capture_output=True, text=True, timeout=120)  # noqa: S603

        assert done.returncode == 2
        assert done.stderr == (
            f"agentserver: invalid configuration: assistants file {path}: "
            "assistant 'broken', field memory: Input should be a valid boolean, unable to interpret input\n"
        )

    def test_a_missing_file_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(AssistantsFileError, match=f"assistants file {tmp_path / 'nope.yaml'}: cannot be read"):
            load_assistants_file(tmp_path / "nope.yaml")

    def test_the_built_in_default_has_the_agent_and_a_researcher_asking_before_searching(self) -> None:
        config = load_assistants_file(None)

        assert [a.name for a in config.assistants] == ["agent", "researcher"]
        researcher = config.assistants[1]
        assert researcher.approval == ["web_search"]
        assert researcher.tools == ["web_search", "calculator"]


class TestMcpServerLifetime:
    async def test_one_process_per_server_for_the_apps_life_and_none_after_shutdown(
        self, own_database_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
    ) -> None:
        # Beside the working server, one that cannot start: it is left out, the app starts anyway.
        text = ASSISTANTS_YAML.replace(
            "mcp_servers:\n", "mcp_servers:\n  broken:\n    transport: stdio\n    command: /nonexistent/server\n"
        )
        settings = await own_database_settings(
            "agentserver_mcp_lifetime", assistants_file=write_assistants(tmp_path, text), **OVERRIDES
        )
        before = _mcp_children()

        harness, lifespan = await start_harness(settings)
        try:
            running = [p for p in _mcp_children() if p not in before]
            agent: AgentRuntime = harness.state["agent"]
            mcp_tools = sorted(t.name for t in agent.tools if "__" in t.name)
        finally:
            await lifespan.__aexit__(None, None, None)

        assert len(running) == 1
        assert mcp_tools == [
            "testmcp__add",
            "testmcp__big",
            "testmcp__echo",
            "testmcp__fail",
            "testmcp__hang",
            "testmcp__whoami",
        ]
        assert [p for p in _mcp_children() if p not in before] == []
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in running)

    async def test_a_server_that_dies_fails_a_call_as_text_and_is_started_again(
        self, own_database_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
    ) -> None:
        settings = await own_database_settings(
            "agentserver_mcp_dies", assistants_file=write_assistants(tmp_path), **OVERRIDES
        )
        before = _mcp_children()
        harness, lifespan = await start_harness(settings)
        try:
            [server] = [p for p in _mcp_children() if p not in before]
            server.kill()
            server.wait(10)
            headers = await harness.new_user()
            harness.fake.set_script([tool_call_turn("testmcp__echo", {"text": "anyone?"}), "The tool is down."])
            async with harness.client() as http:
                created = await http.post("/api/v1/sessions", json={"assistant_id": "helper"}, headers=headers)
                answer = await http.post(
                    "/api/v1/chatbot/chat",
                    json={"session_id": created.json()["id"], "message": "echo"},
                    headers=headers,
                )
                prompts = list(harness.fake.prompts)
                agent: AgentRuntime = harness.state["agent"]
                assert agent.mcp is not None
                mcp_server = agent.mcp.servers["testmcp"]
                restarted: list[psutil.Process] = []
                for _ in range(600):  # it starts again after RECONNECT_FIRST_SECONDS
                    restarted = [p for p in _mcp_children() if p not in before and p.pid != server.pid]
                    if restarted and mcp_server.connected:
                        break
                    await asyncio.sleep(0.05)
                harness.fake.set_script([tool_call_turn("testmcp__echo", {"text": "again"}), "Back."])
                later = await http.post(
                    "/api/v1/chatbot/chat",
                    json={"session_id": created.json()["id"], "message": "echo again"},
                    headers=headers,
                )
                later_prompts = list(harness.fake.prompts)
        finally:
            await lifespan.__aexit__(None, None, None)

        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "The tool is down."
        [result] = [m for m in prompts[1] if isinstance(m, ToolMessage)]
        assert result.content == "Error: testmcp__echo is unavailable (its server cannot be reached)."
        assert result.status == "error"
        # The failed call made the server's task start it again: a new process answered the next call.
        assert len(restarted) == 1
        assert later.json()["message"] == "Back."
        assert [str(m.content) for m in later_prompts[-1] if isinstance(m, ToolMessage)][-1] == "echo: again"
        assert _mcp_children() == before  # and that one is stopped with the app
