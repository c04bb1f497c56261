"""Assistants through the HTTP API: MCP tools, per-assistant tools/prompts/approvals, users' own assistants."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langchain_core.messages import SystemMessage, ToolMessage

from agentserver.agent.assistants import DEFAULT_ASSISTANT_ID
from agentserver.agent.prompts import SYSTEM_TEMPLATE
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from tests.chat.conftest import ChatHarness

ASSISTANTS = "/api/v1/assistants"
CHAT = "/api/v1/chatbot/chat"
MCP_TOOLS = {"testmcp__echo", "testmcp__add", "testmcp__hang", "testmcp__fail", "testmcp__big"}  # not whoami
BUILTINS = {"calculator", "get_weather"}  # web_search is off in these tests (SEARCH_PROVIDER=none)


async def _session(http: httpx.AsyncClient, headers: dict[str, str], assistant: str | None = None) -> str:
    body: dict[str, Any] = {"name": "test"}
    if assistant is not None:
        body["assistant_id"] = assistant
    response = await http.post("/api/v1/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _chat(http: httpx.AsyncClient, headers: dict[str, str], session_id: str, text: str) -> dict[str, Any]:
    response = await http.post(CHAT, json={"session_id": session_id, "message": text}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _tool_results(fake: FakeChatModel) -> list[ToolMessage]:
    """Every tool result the model was shown, once each, in order."""
    seen: dict[str, ToolMessage] = {}
    for prompt in fake.prompts:
        for m in prompt:
            if isinstance(m, ToolMessage):
                seen.setdefault(m.tool_call_id, m)
    return list(seen.values())


def _instructions(fake: FakeChatModel, call: int) -> str:
    first = fake.prompts[call][0]
    assert isinstance(first, SystemMessage)
    return str(first.content)


class TestMcpTools:
    async def test_the_agent_calls_an_mcp_tool_through_the_chat_api(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        fake.set_script([tool_call_turn("testmcp__echo", {"text": "hello mcp"}), "It said hello."])
        async with harness.client() as http:
            session_id = await _session(http, headers, "helper")
            answer = await _chat(http, headers, session_id, "echo something")

        assert answer["message"] == "It said hello."
        assert set(fake.calls[0].tools) == MCP_TOOLS
        [result] = _tool_results(fake)
        assert (result.name, result.content, result.status) == ("testmcp__echo", "echo: hello mcp", "success")

    async def test_error_results_and_long_results_reach_the_model_as_text(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        fake.set_script(
            [
                tool_call_turn("testmcp__fail", {"reason": "no"}),
                tool_call_turn("testmcp__big", {"chars": 5000}),
                "Done.",
            ]
        )
        async with harness.client() as http:
            session_id = await _session(http, headers, "helper")
            answer = await _chat(http, headers, session_id, "go")

        assert answer["message"] == "Done."
        failed, big = _tool_results(fake)
        assert failed.content == "Error: testmcp__fail failed: Error executing tool fail: cannot do that: no"
        assert failed.status == "error"
        # MCP_MAX_RESULT_CHARS=100 in these tests
        assert big.content == "x" * 100 + " …[truncated: the result had 5000 characters]"

    async def test_a_tool_the_assistant_does_not_have_is_not_bound_and_not_run(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        # The default assistant has the built-ins only; the model calls an MCP tool anyway.
        fake.set_script([tool_call_turn("testmcp__echo", {"text": "x"}), "ok"])
        async with harness.client() as http:
            session_id = await _session(http, headers)
            await _chat(http, headers, session_id, "try it")

        assert set(fake.calls[0].tools) == BUILTINS
        [result] = _tool_results(fake)
        assert result.status == "error"
        assert str(result.content).startswith("Error: unknown tool 'testmcp__echo'")

    async def test_a_hanging_tool_times_out_into_an_error_while_another_users_turn_completes(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        alice, bob = await harness.new_user(), await harness.new_user()
        fake.set_script([tool_call_turn("testmcp__hang", {})])
        async with harness.client() as http:
            alice_session = await _session(http, alice, "helper")
            bob_session = await _session(http, bob, "helper")
            alice_turn = asyncio.create_task(_chat(http, alice, alice_session, "wait forever"))
            # Alice's run is inside the hanging call once the model has been asked once and nothing is left.
            while not (len(fake.calls) == 1 and fake.remaining == 0):  # noqa: ASYNC110 - polling the fake
                await asyncio.sleep(0.02)
            fake.push(tool_call_turn("testmcp__add", {"a": 2, "b": 3}), "Bob: 5", "Alice: it timed out")

            bob_answer = await _chat(http, bob, bob_session, "add 2 and 3")
            assert not alice_turn.done()  # Bob's turn went through the same MCP server while Alice's waited
            alice_answer = await alice_turn

        assert bob_answer["message"] == "Bob: 5"
        assert alice_answer["message"] == "Alice: it timed out"
        by_name = {m.name: m for m in _tool_results(fake)}
        assert by_name["testmcp__add"].content == "5"
        assert by_name["testmcp__hang"].content == "Error: testmcp__hang did not answer within 8 seconds."


class TestAssistantsBehave:
    async def test_two_assistants_differ_in_prompt_tools_and_approvals_in_one_users_sessions(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        fake.set_script([tool_call_turn("calculator", {"expression": "6*7"}), "42", "echo it"])
        async with harness.client() as http:
            terse = await _session(http, headers, "terse")
            helper = await _session(http, headers, "helper")
            paused = await _chat(http, headers, terse, "what is 6*7")
            # terse needs approval for the calculator; the default assistant would have run it.
            assert paused["finish_reason"] == "approval_required"
            assert paused["approval"]["tool"] == "calculator"
            resumed = await http.post(
                f"/api/v1/runs/{paused['run_id']}/resume", json={"decision": "approve"}, headers=headers
            )
            assert resumed.status_code == 202, resumed.text
            await harness.settle()
            await _chat(http, headers, helper, "hello")

        terse_prompt, helper_prompt = _instructions(fake, 0), _instructions(fake, 2)
        assert "TERSE-INSTRUCTIONS" in terse_prompt
        assert "HELPER-INSTRUCTIONS" not in terse_prompt
        assert "HELPER-INSTRUCTIONS" in helper_prompt
        assert "TERSE-INSTRUCTIONS" not in helper_prompt
        # The server's own instructions stay first (the cached prefix), the assistant's come after them.
        assert terse_prompt.startswith(SYSTEM_TEMPLATE)
        assert helper_prompt.startswith(SYSTEM_TEMPLATE)
        assert fake.calls[0].tools == ["calculator"]
        assert set(fake.calls[2].tools) == MCP_TOOLS
        [result] = _tool_results(fake)
        assert result.content == "42"

    async def test_a_users_own_assistant_runs_with_its_instructions_and_tools(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        fake.set_script(["first", "second"])
        async with harness.client() as http:
            created = await http.post(
                ASSISTANTS,
                json={"name": "mine", "instructions": "MINE-V1", "tools": ["testmcp__add"]},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            session_id = await _session(http, headers, created.json()["id"])
            await _chat(http, headers, session_id, "hi")
            patched = await http.patch(
                f"{ASSISTANTS}/{created.json()['id']}", json={"instructions": "MINE-V2"}, headers=headers
            )
            assert patched.status_code == 200, patched.text
            await _chat(http, headers, session_id, "again")

        assert patched.json()["version"] == 2
        assert "MINE-V1" in _instructions(fake, 0)
        assert "MINE-V2" in _instructions(fake, 1)  # the new version's graph, not the cached old one
        assert fake.calls[0].tools == fake.calls[1].tools == ["testmcp__add"]


class TestAssistantsApi:
    async def test_lists_the_deployments_assistants_then_the_callers_own(self, harness: ChatHarness) -> None:
        alice, bob = await harness.new_user(), await harness.new_user()
        async with harness.client() as http:
            await http.post(ASSISTANTS, json={"name": "alices"}, headers=alice)
            listed = await http.get(ASSISTANTS, headers=alice)
            bobs = await http.get(ASSISTANTS, headers=bob)

        names = [(a["name"], a["owner"]) for a in listed.json()["assistants"]]
        assert names == [("agent", "deployment"), ("helper", "deployment"), ("terse", "deployment"), ("alices", "user")]
        assert listed.json()["assistants"][0]["id"] == str(DEFAULT_ASSISTANT_ID)
        assert [a["name"] for a in bobs.json()["assistants"]] == ["agent", "helper", "terse"]

    async def test_another_users_assistant_is_not_found_and_cannot_be_bound(self, harness: ChatHarness) -> None:
        alice, bob = await harness.new_user(), await harness.new_user()
        async with harness.client() as http:
            created = await http.post(ASSISTANTS, json={"name": "private"}, headers=alice)
            assistant_id = created.json()["id"]
            responses = [
                await http.get(f"{ASSISTANTS}/{assistant_id}", headers=bob),
                await http.get(f"{ASSISTANTS}/private", headers=bob),
                await http.patch(f"{ASSISTANTS}/{assistant_id}", json={"name": "x"}, headers=bob),
                await http.delete(f"{ASSISTANTS}/{assistant_id}", headers=bob),
                await http.post("/api/v1/sessions", json={"assistant_id": assistant_id}, headers=bob),
                await http.post("/api/v1/sessions", json={"assistant_id": "private"}, headers=bob),
            ]
            mine = await http.get(f"{ASSISTANTS}/{assistant_id}", headers=alice)

        assert [r.status_code for r in responses] == [404] * 6
        assert responses[4].json() == {"error": "AssistantNotFound", "detail": "Assistant not found"}
        assert mine.status_code == 200

    async def test_a_tool_or_model_the_deployment_does_not_allow_is_refused(self, harness: ChatHarness) -> None:
        headers = await harness.new_user()
        async with harness.client() as http:
            shell = await http.post(ASSISTANTS, json={"name": "a", "tools": ["shell"]}, headers=headers)
            other_mcp = await http.post(ASSISTANTS, json={"name": "b", "tools": ["other__tool"]}, headers=headers)
            model = await http.post(ASSISTANTS, json={"name": "c", "model": "gpt-9-ultra"}, headers=headers)
            ok = await http.post(ASSISTANTS, json={"name": "d", "tools": ["calculator"]}, headers=headers)
            patched = await http.patch(
                f"{ASSISTANTS}/{ok.json()['id']}", json={"tools": ["calculator", "shell"]}, headers=headers
            )

        assert [r.status_code for r in (shell, other_mcp, model, patched)] == [422] * 4
        assert shell.json() == {"error": "ToolNotAllowed", "detail": "Tools not available to your assistants: shell"}
        assert ok.status_code == 201

    @pytest.mark.parametrize(
        "body",
        [
            {"name": ""},
            {"name": "has space"},
            {"name": "x" * 65},
            {"name": "ok", "instructions": "x" * 8001},
            {"name": "ok", "instructions": "nul\x00"},
            {"name": "ok", "tools": ["calculator"], "approval": ["get_weather"]},
            {"name": "ok", "unknown": 1},
            {"name": "0b6e2a7e-3f1c-4a53-9d3c-1f0e8e6a9b11"},
        ],
    )
    async def test_bad_input_is_a_422(self, harness: ChatHarness, body: dict[str, Any]) -> None:
        headers = await harness.new_user()
        async with harness.client() as http:
            response = await http.post(ASSISTANTS, json=body, headers=headers)

        assert response.status_code == 422, response.text

    async def test_names_are_unique_per_user_and_never_shadow_the_deployments(self, harness: ChatHarness) -> None:
        headers = await harness.new_user()
        async with harness.client() as http:
            first = await http.post(ASSISTANTS, json={"name": "twin"}, headers=headers)
            second = await http.post(ASSISTANTS, json={"name": "twin"}, headers=headers)
            shadow = await http.post(ASSISTANTS, json={"name": "helper"}, headers=headers)

        assert first.status_code == 201
        assert (second.status_code, shadow.status_code) == (409, 409)

    async def test_the_deployments_assistants_are_read_only(self, harness: ChatHarness) -> None:
        headers = await harness.new_user()
        async with harness.client() as http:
            patched = await http.patch(f"{ASSISTANTS}/{DEFAULT_ASSISTANT_ID}", json={"name": "x"}, headers=headers)
            deleted = await http.delete(f"{ASSISTANTS}/{DEFAULT_ASSISTANT_ID}", headers=headers)

        assert (patched.status_code, deleted.status_code) == (403, 403)

    async def test_deleting_an_assistant_returns_its_sessions_to_the_default(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        fake.set_script(["answer"])
        async with harness.client() as http:
            created = await http.post(ASSISTANTS, json={"name": "gone", "instructions": "GONE-X"}, headers=headers)
            session_id = await _session(http, headers, "gone")
            deleted = await http.delete(f"{ASSISTANTS}/{created.json()['id']}", headers=headers)
            session = await http.get(f"/api/v1/sessions/{session_id}", headers=headers)
            await _chat(http, headers, session_id, "still there?")

        assert deleted.status_code == 204
        assert session.json()["assistant_id"] is None
        assert "GONE-X" not in _instructions(fake, 0)
        assert set(fake.calls[0].tools) == BUILTINS


class TestProtocols:
    async def test_openai_models_list_the_users_assistants_and_model_binds_new_sessions(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        fake.set_script(["terse answer"])
        async with harness.client() as http:
            await http.post(ASSISTANTS, json={"name": "own-model"}, headers=headers)
            models = await http.get("/v1/models", headers=headers)
            completion = await http.post(
                "/v1/chat/completions",
                json={"model": "terse", "messages": [{"role": "user", "content": "hi"}]},
                headers=headers,
            )
            unknown = await http.post(
                "/v1/chat/completions",
                json={"model": "nobody", "messages": [{"role": "user", "content": "hi"}]},
                headers=headers,
            )
            session = await http.get(f"/api/v1/sessions/{completion.headers['x-session-id']}", headers=headers)

        assert [m["id"] for m in models.json()["data"]] == ["agent", "helper", "terse", "own-model"]
        assert completion.status_code == 200, completion.text
        assert "TERSE-INSTRUCTIONS" in _instructions(fake, 0)
        assert session.json()["assistant_id"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "terse.assistants.agentserver"))
        assert unknown.status_code == 404

    async def test_agent_server_threads_are_bound_to_their_first_runs_assistant(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        fake.set_script(["from helper"])
        async with harness.client() as http:
            thread = (await http.post("/threads", json={}, headers=headers)).json()["thread_id"]
            run = {"input": {"messages": [{"role": "user", "content": "hi"}]}}
            first = await http.post(
                f"/threads/{thread}/runs/wait", json={**run, "assistant_id": "helper"}, headers=headers
            )
            other = await http.post(
                f"/threads/{thread}/runs/wait", json={**run, "assistant_id": "agent"}, headers=headers
            )
            runs = await http.get(f"/threads/{thread}/runs", headers=headers)

        assert first.status_code == 200, first.text
        assert "HELPER-INSTRUCTIONS" in _instructions(fake, 0)
        assert other.status_code == 409
        assert runs.json()[0]["assistant_id"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "helper.assistants.agentserver"))
