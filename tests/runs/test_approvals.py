"""Human in the loop: a tool that needs approval pauses the run; POST /runs/{id}/resume continues it,
also after a server restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentserver.agent.graph import TOOL_DECLINED
from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from agentserver.models import MessageRole, RunStatus
from tests.chat.conftest import ChatHarness, collapse, parse_sse, parse_sse_frames, start_harness
from tests.runs.conftest import RUN_OVERRIDES, run_row, stream_turn, wait_for_status

APPROVAL = {**RUN_OVERRIDES, "tools_requiring_approval": ["calculator"]}


@pytest.fixture(scope="module")
async def approvals(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    harness, lifespan = await start_harness(await own_database_settings("agentserver_approvals", **APPROVAL))
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def fake(approvals: ChatHarness) -> FakeChatModel:
    await approvals.settle()
    approvals.fake.set_script([])
    return approvals.fake


async def pause(harness: ChatHarness, fake: FakeChatModel, headers: dict[str, str], session_id: str) -> tuple[str, int]:
    """A turn whose model calls the calculator: it pauses. (run id, id of the approval_required event)"""
    fake.push(tool_call_turn("calculator", {"expression": "6*7"}, call_id="c1", content="Let me compute."))
    response = await stream_turn(harness, headers, session_id, "What is 6 times 7?")
    frames = parse_sse_frames(response.text)
    last_id, name, data = frames[-1]
    assert name == "approval_required", frames
    run_id = response.headers["x-run-id"]
    assert data == {"run_id": run_id, "tool_call_id": "c1", "tool": "calculator", "args": {"expression": "6*7"}}
    assert last_id is not None
    return run_id, last_id


async def resume(harness: ChatHarness, headers: dict[str, str], run_id: str, body: dict[str, Any]) -> Any:
    async with harness.client() as http:
        return await http.post(f"/api/v1/runs/{run_id}/resume", json=body, headers=headers)


async def follow(
    harness: ChatHarness, headers: dict[str, str], run_id: str, after: int
) -> list[tuple[str, dict[str, Any]]]:
    async with harness.client() as http:
        response = await http.get(f"/api/v1/runs/{run_id}/stream", headers={**headers, "Last-Event-ID": str(after)})
    return collapse(parse_sse(response.text))


class TestPause:
    async def test_the_run_waits_with_its_tool_call(self, approvals: ChatHarness, fake: FakeChatModel) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)

        run_id, _ = await pause(approvals, fake, headers, session_id)

        run = await run_row(approvals, run_id)
        assert run.status is RunStatus.interrupted
        assert run.interrupt == {"tool_call_id": "c1", "tool": "calculator", "args": {"expression": "6*7"}}
        assert [(m.role, m.content) for m in await approvals.messages(session_id)] == [
            (MessageRole.user, "What is 6 times 7?")
        ]
        assert len(fake.calls) == 1  # the tool did not run, the model was not asked again

    async def test_the_one_shot_endpoint_says_so(self, approvals: ChatHarness, fake: FakeChatModel) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        fake.push(tool_call_turn("calculator", {"expression": "1+1"}, call_id="c2"))

        async with approvals.client() as http:
            response = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "1+1?"}, headers=headers
            )

        body = response.json()
        assert response.status_code == 200
        assert (body["finish_reason"], body["message_id"], body["message"]) == ("approval_required", None, "")
        assert body["approval"]["tool"] == "calculator"

    async def test_a_new_message_is_refused_while_it_waits(self, approvals: ChatHarness, fake: FakeChatModel) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        await pause(approvals, fake, headers, session_id)

        async with approvals.client() as http:
            response = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "hello?"}, headers=headers
            )

        assert (response.status_code, response.json()["error"]) == (409, "TurnInProgress")


class TestResume:
    async def test_approve_runs_the_tool_and_finishes_the_answer(
        self, approvals: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        run_id, paused_at = await pause(approvals, fake, headers, session_id)
        fake.push("It is 42.")

        accepted = await resume(approvals, headers, run_id, {"decision": "approve"})
        events = await follow(approvals, headers, run_id, paused_at)

        assert accepted.status_code == 202
        assert [name for name, _ in events] == ["tool_result", "token", "done"]
        assert events[0][1] == {"id": "c1", "name": "calculator", "content": "42"}
        run = await wait_for_status(approvals, run_id, RunStatus.success)
        answer = (await approvals.messages(session_id))[-1]
        assert str(answer.id) == events[-1][1]["message_id"] == str(run.assistant_message_id)
        assert answer.content == "It is 42."
        assert answer.tool_calls == [{"id": "c1", "name": "calculator", "args": {"expression": "6*7"}, "result": "42"}]

    async def test_reject_tells_the_model_the_tool_did_not_run(
        self, approvals: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        run_id, paused_at = await pause(approvals, fake, headers, session_id)
        fake.push("Alright, I will not compute it.")

        await resume(approvals, headers, run_id, {"decision": "reject"})
        events = await follow(approvals, headers, run_id, paused_at)

        assert events[0] == ("tool_result", {"id": "c1", "name": "calculator", "content": TOOL_DECLINED})
        assert fake.prompts[-1][-1].content == TOOL_DECLINED

    async def test_edit_runs_the_tool_with_the_new_arguments(self, approvals: ChatHarness, fake: FakeChatModel) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        run_id, paused_at = await pause(approvals, fake, headers, session_id)
        fake.push("It is 6.")

        await resume(approvals, headers, run_id, {"decision": "edit", "args": {"expression": "2*3"}})
        events = await follow(approvals, headers, run_id, paused_at)

        assert events[0] == ("tool_result", {"id": "c1", "name": "calculator", "content": "6"})

    async def test_edited_arguments_the_tool_refuses_are_422(self, approvals: ChatHarness, fake: FakeChatModel) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        run_id, _ = await pause(approvals, fake, headers, session_id)

        response = await resume(approvals, headers, run_id, {"decision": "edit", "args": {"formula": "1+1"}})

        assert (response.status_code, response.json()["error"]) == (422, "InvalidResume")
        assert (await run_row(approvals, run_id)).status is RunStatus.interrupted

    @pytest.mark.parametrize(
        "body", [{"decision": "maybe"}, {"decision": "edit"}, {"decision": "approve", "args": {"expression": "1"}}]
    )
    async def test_malformed_decisions_are_422(
        self, approvals: ChatHarness, fake: FakeChatModel, body: dict[str, Any]
    ) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        run_id, _ = await pause(approvals, fake, headers, session_id)

        response = await resume(approvals, headers, run_id, body)

        assert response.status_code == 422

    async def test_a_run_that_is_not_waiting_is_409(self, approvals: ChatHarness, fake: FakeChatModel) -> None:
        headers = await approvals.new_user()
        session_id = await approvals.new_session(headers)
        fake.push("No tools needed.")
        run_id = (await stream_turn(approvals, headers, session_id, "hi")).headers["x-run-id"]

        response = await resume(approvals, headers, run_id, {"decision": "approve"})

        assert (response.status_code, response.json()["error"]) == (409, "RunNotInterrupted")


class TestAcrossRestarts:
    async def test_a_run_paused_before_a_restart_resumes_after_it(
        self, own_database_settings: Callable[..., Awaitable[Settings]]
    ) -> None:
        settings = await own_database_settings("agentserver_approval_restart", **APPROVAL)
        first, lifespan = await start_harness(settings)
        try:
            headers = await first.new_user()
            session_id = await first.new_session(headers)
            run_id, paused_at = await pause(first, first.fake, headers, session_id)
        finally:
            await lifespan.__aexit__(None, None, None)

        second, lifespan = await start_harness(settings)
        try:
            second.fake.set_script(["It is 42."])
            accepted = await resume(second, headers, run_id, {"decision": "approve"})
            events = await follow(second, headers, run_id, paused_at)
            messages = await second.messages(session_id)
        finally:
            await lifespan.__aexit__(None, None, None)

        assert accepted.status_code == 202
        assert [name for name, _ in events] == ["tool_result", "token", "done"]
        assert [(m.role, m.content) for m in messages] == [
            (MessageRole.user, "What is 6 times 7?"),
            (MessageRole.assistant, "It is 42."),
        ]
