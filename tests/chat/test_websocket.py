"""WebSocket: the same events as SSE, authenticated by `?token=` or a first `{"token"}` frame."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from agentserver.llm.fake import FakeChatModel, broken_stream, tool_call_turn
from tests.chat.conftest import ChatHarness, shown_text


def ws_url(live_url: str, session_id: str) -> str:
    return live_url.replace("http://", "ws://") + f"/api/v1/chatbot/ws/{session_id}"


async def receive_turn(ws: Any) -> list[tuple[str, dict[str, Any]]]:
    events = []
    while True:
        frame = json.loads(await ws.recv())
        events.append((frame["event"], frame["data"]))
        if frame["event"] in ("done", "error"):
            return events


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


class TestWebSocket:
    async def test_streams_the_same_events_as_sse(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([tool_call_turn("calculator", {"expression": "3*3"}, call_id="c9"), "Nine."])

        async with websockets.connect(ws_url(live_url, session_id) + f"?token={token_of(headers)}") as ws:
            await ws.send(json.dumps({"message": "3 times 3?"}))
            events = await receive_turn(ws)

        assert [name for name, _ in events] == ["tool_call", "tool_result", "token", "done"]
        assert events[1][1] == {"id": "c9", "name": "calculator", "content": "9"}
        assert [m.content for m in await harness.messages(session_id)] == ["3 times 3?", "Nine."]

    async def test_a_retried_attempt_is_announced_with_reset(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([broken_stream("Echo: one"), "Echo: one two"])

        async with websockets.connect(ws_url(live_url, session_id) + f"?token={token_of(headers)}") as ws:
            await ws.send(json.dumps({"message": "one two"}))
            events = await receive_turn(ws)

        assert [name for name, _ in events] == ["token", "token", "reset", "token", "token", "token", "done"]
        assert shown_text(events) == (await harness.messages(session_id))[-1].content == "Echo: one two"

    async def test_token_as_first_frame_and_several_turns(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["first answer", "second answer"])

        async with websockets.connect(ws_url(live_url, session_id)) as ws:
            await ws.send(json.dumps({"token": token_of(headers)}))
            await ws.send(json.dumps({"message": "one"}))
            first = await receive_turn(ws)
            await ws.send(json.dumps({"message": "two"}))
            second = await receive_turn(ws)

        assert first[-1][0] == second[-1][0] == "done"
        assert fake.prompts[1][-1].content == "two"

    @pytest.mark.parametrize(
        ("frame", "error"),
        [
            ("not json", "InvalidFrame"),
            (json.dumps({"message": ""}), "InvalidFrame"),
            (json.dumps({"message": "hi", "role": "system"}), "InvalidFrame"),
        ],
    )
    async def test_a_bad_frame_is_an_error_event_and_the_socket_stays_open(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str, frame: str, error: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["still here"])

        async with websockets.connect(ws_url(live_url, session_id) + f"?token={token_of(headers)}") as ws:
            await ws.send(frame)
            bad = await receive_turn(ws)
            await ws.send(json.dumps({"message": "ok now"}))
            good = await receive_turn(ws)

        assert bad[0][0] == "error"
        assert bad[0][1]["error"] == error
        assert good[-1][0] == "done"

    async def test_a_bad_token_closes_with_policy_violation(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)

        async with websockets.connect(ws_url(live_url, session_id) + "?token=not-a-jwt") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()

        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008

    async def test_a_binary_first_frame_closes_with_unsupported_data(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        session_id = await harness.new_session(await harness.new_user())

        async with websockets.connect(ws_url(live_url, session_id)) as ws:
            await ws.send(b'{"token": "x"}')
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()

        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003

    async def test_a_binary_message_frame_closes_with_unsupported_data(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)

        async with websockets.connect(ws_url(live_url, session_id) + f"?token={token_of(headers)}") as ws:
            await ws.send(json.dumps({"message": "hi"}).encode())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()

        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003
        assert closed.value.rcvd.reason == "Send JSON in text frames"

    async def test_another_users_session_is_an_error_event(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        session_id = await harness.new_session(await harness.new_user())
        intruder = await harness.new_user()

        async with websockets.connect(ws_url(live_url, session_id) + f"?token={token_of(intruder)}") as ws:
            await ws.send(json.dumps({"message": "let me in"}))
            events = await receive_turn(ws)

        assert events == [("error", {"error": "SessionNotFound", "detail": "Chat session not found"})]
        assert await harness.messages(session_id) == []
