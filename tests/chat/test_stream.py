"""SSE: real tokens, typed events in order, persistence, disconnects, one turn at a time."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from langchain_core.messages import SystemMessage

from agentserver.llm.fake import FakeChatModel, broken_stream, status_error, tool_call_turn
from agentserver.models import Message, MessageRole
from tests.chat.conftest import ChatHarness, collapse, parse_sse, parse_sse_frames, shown_text

STREAM = "/api/v1/chatbot/chat/stream"


async def stream(harness: ChatHarness, headers: dict[str, str], session_id: str, message: str) -> httpx.Response:
    async with harness.client() as http:
        return await http.post(STREAM, json={"session_id": session_id, "message": message}, headers=headers)


class TestStreamEvents:
    async def test_tokens_tool_call_tool_result_tokens_done(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(
            [
                tool_call_turn("calculator", {"expression": "6*7"}, call_id="call_1", content="Let me compute."),
                "The answer is 42.",
            ]
        )

        response = await stream(harness, headers, session_id, "What is 6 times 7?")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = parse_sse_frames(response.text)
        assert [frame_id for frame_id, _, _ in frames] == list(range(1, len(frames) + 1))
        run_id = response.headers["x-run-id"]
        assert frames[0][1:] == ("metadata", {"run_id": run_id, "session_id": session_id})
        events = collapse(parse_sse(response.text))
        assert [name for name, _ in events] == ["token", "tool_call", "tool_result", "token", "done"]
        assert events[0][1] == {"content": "Let me compute."}
        assert events[1][1] == {"id": "call_1", "name": "calculator", "args": {"expression": "6*7"}}
        assert events[2][1] == {"id": "call_1", "name": "calculator", "content": "42"}
        assert events[3][1] == {"content": "The answer is 42."}
        done = events[4][1]
        assert done["finish_reason"] == "complete"
        assert done["usage"]["model"] == "fake"
        # Summed over both model calls: "Let me compute." (3) + the call's JSON args (2) + "The answer is 42." (4)
        assert done["usage"]["output_tokens"] == 9

    async def test_the_turn_is_persisted_with_tool_calls_and_usage(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([tool_call_turn("calculator", {"expression": "2**10"}, call_id="c1"), "1024."])

        response = await stream(harness, headers, session_id, "2 to the 10th?")

        done = parse_sse(response.text)[-1][1]
        user_message, answer = await harness.messages(session_id)
        assert (user_message.role, user_message.content) == (MessageRole.user, "2 to the 10th?")
        assert answer.role is MessageRole.assistant
        assert str(answer.id) == done["message_id"]
        assert answer.content == "1024."
        assert answer.tool_calls == [
            {"id": "c1", "name": "calculator", "args": {"expression": "2**10"}, "result": "1024"}
        ]
        assert answer.model == "fake"
        assert answer.finish_reason == "complete"
        assert answer.output_tokens == 3  # the call's JSON args (2) + "1024." (1)

    async def test_a_failing_tool_becomes_a_tool_message(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([tool_call_turn("calculator", {"expression": "1/0"}, call_id="c1"), "Cannot divide by zero."])

        events = parse_sse((await stream(harness, headers, session_id, "1/0?")).text)

        assert ("tool_result", {"id": "c1", "name": "calculator", "content": "Error: division by zero"}) in events
        assert events[-1][0] == "done"
        assert fake.prompts[1][-1].content == "Error: division by zero"

    async def test_tool_rounds_are_bounded(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([tool_call_turn("calculator", {"expression": f"{i}+1"}) for i in range(5)])

        events = parse_sse((await stream(harness, headers, session_id, "loop forever")).text)

        assert [n for n, _ in events].count("tool_result") == 2  # MAX_TOOL_ROUNDS=2 in these tests
        assert events[-1][0] == "done"
        answer = (await harness.messages(session_id))[-1]
        assert answer.finish_reason == "max_tool_rounds"
        assert answer.content.startswith("I stopped after 2 rounds of tool use")

    async def test_a_failed_model_call_stores_no_half_answer(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([status_error(400, message="bad request")])

        events = parse_sse((await stream(harness, headers, session_id, "hello")).text)

        assert collapse(events) == [
            ("error", {"error": "LLMRequestRejected", "detail": "The language model rejected the request."})
        ]
        assert [m.role for m in await harness.messages(session_id)] == [MessageRole.user]

    async def test_the_session_is_free_again_after_a_failure(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([status_error(400), "second try works"])

        await stream(harness, headers, session_id, "first")
        events = parse_sse((await stream(harness, headers, session_id, "second")).text)

        assert events[-1][0] == "done"


class TestRetriedAttempts:
    async def test_a_retry_after_a_broken_stream_is_announced_with_reset(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([broken_stream("Echo: one"), "Echo: one two three four five"])

        events = parse_sse((await stream(harness, headers, session_id, "one two three four five")).text)

        shown = collapse(events)
        assert [name for name, _ in shown] == ["token", "reset", "token", "done"]
        assert shown[0][1] == {"content": "Echo: one"}
        assert shown[2][1] == {"content": "Echo: one two three four five"}

    async def test_the_stored_answer_is_what_a_client_honouring_reset_shows(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([broken_stream("Echo: one"), "Echo: one two three four five"])

        events = parse_sse((await stream(harness, headers, session_id, "one two three four five")).text)

        stored = (await harness.messages(session_id))[-1].content
        assert stored == "Echo: one two three four five"
        assert shown_text(events) == stored

    async def test_a_failure_before_any_token_needs_no_reset(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([status_error(503), "Fine now."])

        events = parse_sse((await stream(harness, headers, session_id, "hello")).text)

        assert [name for name, _ in collapse(events)] == ["token", "done"]


class TestOneTurnAtATime:
    async def test_a_second_message_while_answering_is_409(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        gate = asyncio.Event()
        fake.set_script(["one two three four"], gate=gate)

        first = asyncio.create_task(stream(harness, headers, session_id, "first"))
        await fake.wait_streaming()
        async with harness.client() as http:
            second = await http.post(
                "/api/v1/chatbot/chat", json={"session_id": session_id, "message": "second"}, headers=headers
            )
        gate.set()
        first_response = await first

        assert second.status_code == 409
        assert second.json()["error"] == "TurnInProgress"
        assert parse_sse(first_response.text)[-1][0] == "done"
        assert [m.content for m in await harness.messages(session_id)] == ["first", "one two three four"]


async def hang_up_after_first_token(live_url: str, headers: dict[str, str], body: dict[str, str]) -> str:
    """Start a stream, read up to the first token, hang up; the run's id."""
    async with httpx.AsyncClient(base_url=live_url) as http:
        async with http.stream("POST", STREAM, json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: token"):
                    return response.headers["x-run-id"]
    raise AssertionError("no token came")


async def wait_for_messages(harness: ChatHarness, session_id: str, count: int) -> list[Message]:
    for _ in range(200):  # the run ends on its own time
        messages = await harness.messages(session_id)
        if len(messages) >= count:
            return messages
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} messages, have {len(await harness.messages(session_id))}")


class TestClientDisconnect:
    async def test_the_run_goes_on_and_its_answer_is_stored_once(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        gate = asyncio.Event()
        fake.set_script(["Hello there, this answer is long"], gate=gate)

        await hang_up_after_first_token(live_url, headers, {"session_id": session_id, "message": "talk to me"})
        gate.set()  # the model goes on after the client left

        messages = await wait_for_messages(harness, session_id, 2)
        await asyncio.sleep(0.2)  # nothing else arrives later
        assert [(m.role, m.content) for m in await harness.messages(session_id)] == [
            (MessageRole.user, "talk to me"),
            (MessageRole.assistant, "Hello there, this answer is long"),
        ]
        assert messages[1].finish_reason == "complete"

    async def test_on_disconnect_cancel_keeps_the_partial_answer_once(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        gate = asyncio.Event()  # never set: the model stalls after its first token
        fake.set_script(["Hello there, this answer is long"], gate=gate)

        body = {"session_id": session_id, "message": "talk to me", "on_disconnect": "cancel"}
        await hang_up_after_first_token(live_url, headers, body)

        messages = await wait_for_messages(harness, session_id, 2)
        assert messages[1].finish_reason == "cancelled"
        assert messages[1].content == "Hello"

        # The session is free again, and the agent's history holds what the user saw.
        fake.set_script(["Welcome back."])
        events = parse_sse((await stream(harness, headers, session_id, "still there?")).text)
        assert events[-1][0] == "done"
        conversation = [m.content for m in fake.prompts[-1] if not isinstance(m, SystemMessage)]
        assert conversation == ["talk to me", "Hello", "still there?"]
        assert len(await harness.messages(session_id)) == 4


@pytest.mark.parametrize("path", [STREAM, "/api/v1/chatbot/chat"])
class TestOwnershipAndValidation:
    async def test_another_users_session_is_404(self, harness: ChatHarness, fake: FakeChatModel, path: str) -> None:
        owner = await harness.new_user()
        session_id = await harness.new_session(owner)
        intruder = await harness.new_user()

        async with harness.client() as http:
            response = await http.post(path, json={"session_id": session_id, "message": "hi"}, headers=intruder)

        assert response.status_code == 404
        assert response.json() == {"error": "SessionNotFound", "detail": "Chat session not found"}
        assert await harness.messages(session_id) == []

    @pytest.mark.parametrize(
        ("body", "location"),
        [
            ({"message": "hi"}, ["body", "session_id"]),
            ({"session_id": "not-a-uuid", "message": "hi"}, ["body", "session_id"]),
            ({"session_id": "00000000-0000-0000-0000-000000000000"}, ["body", "message"]),
            ({"session_id": "00000000-0000-0000-0000-000000000000", "message": ""}, ["body", "message"]),
            ({"session_id": "00000000-0000-0000-0000-000000000000", "message": "  \n "}, ["body", "message"]),
            (
                {"session_id": "00000000-0000-0000-0000-000000000000", "message": "hi", "role": "system"},
                ["body", "role"],
            ),
        ],
    )
    async def test_bad_bodies_are_422_with_the_field(
        self, harness: ChatHarness, fake: FakeChatModel, path: str, body: dict[str, str], location: list[str]
    ) -> None:
        headers = await harness.new_user()

        async with harness.client() as http:
            response = await http.post(path, json=body, headers=headers)

        assert response.status_code == 422
        assert response.json()["error"] == "ValidationError"
        assert response.json()["errors"][0]["loc"] == location

    async def test_an_oversized_message_is_422(self, harness: ChatHarness, fake: FakeChatModel, path: str) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)

        async with harness.client() as http:
            body = {"session_id": session_id, "message": "x" * (harness.settings.max_message_chars + 1)}
            response = await http.post(path, json=body, headers=headers)

        assert response.status_code == 422
        assert response.json() == {"error": "MessageTooLong", "detail": "message: must be at most 16000 characters"}
        assert await harness.messages(session_id) == []

    async def test_no_token_is_401(self, harness: ChatHarness, fake: FakeChatModel, path: str) -> None:
        async with harness.client() as http:
            response = await http.post(
                path, json={"session_id": "00000000-0000-0000-0000-000000000000", "message": "x"}
            )

        assert response.status_code == 401
