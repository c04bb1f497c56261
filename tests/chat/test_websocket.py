"""WebSocket: the same events as SSE, authenticated by `?token=` or a first `{"token"}` frame."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from agentserver.llm.fake import FakeChatModel, broken_stream, tool_call_turn
from tests.chat.conftest import ChatHarness, collapse, shown_text


def ws_url(live_url: str, session_id: str) -> str:
    return live_url.replace("http://", "ws://") + f"/api/v1/chatbot/ws/{session_id}"


async def receive_turn(ws: Any) -> list[tuple[str, dict[str, Any]]]:
    """The frames of one turn, up to its last, as (event, data) with tokens collapsed."""
    events = []
    while True:
        frame = json.loads(await ws.recv())
        events.append((frame["event"], frame["data"]))
        if frame["event"] in ("done", "error", "approval_required"):
            return collapse(events)


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
        assert events[2][1] == {"content": "Nine."}
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

        assert [name for name, _ in events] == ["token", "reset", "token", "done"]
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


class TestWebSocketReconnect:
    async def test_after_replays_exactly_the_missed_events_of_the_run(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        gate = asyncio.Event()
        fake.set_script(["one two three four"], gate=gate)
        url = ws_url(live_url, session_id) + f"?token={token_of(headers)}"

        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"message": "count"}))
            seen = [json.loads(await ws.recv()) for _ in range(2)]  # metadata and the first token; then hang up
        run_id = seen[0]["run_id"]
        gate.set()
        async with websockets.connect(url + f"&run_id={run_id}&after={seen[-1]['id']}") as ws:
            rest: list[dict[str, Any]] = []
            while not rest or rest[-1]["event"] != "done":
                rest.append(json.loads(await ws.recv()))

        ids = [frame["id"] for frame in seen + rest]
        assert ids == list(range(1, len(ids) + 1))
        assert "".join(f["data"]["content"] for f in seen + rest if f["event"] == "token") == "one two three four"

    async def test_another_users_run_cannot_be_replayed(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str
    ) -> None:
        owner = await harness.new_user()
        session_id = await harness.new_session(owner)
        fake.set_script(["mine"])
        async with websockets.connect(ws_url(live_url, session_id) + f"?token={token_of(owner)}") as ws:
            await ws.send(json.dumps({"message": "hi"}))
            run_id = json.loads(await ws.recv())["run_id"]
            await receive_turn(ws)
        intruder = await harness.new_user()
        intruder_session = await harness.new_session(intruder)

        url = ws_url(live_url, intruder_session) + f"?token={token_of(intruder)}&run_id={run_id}"
        async with websockets.connect(url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()

        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


class TestNoTokenInLogs:
    async def test_a_query_token_never_reaches_a_log_line(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str, info_logs: list[str]
    ) -> None:
        # uvicorn writes "<client> - "WebSocket <path with query>" [accepted]" at INFO (tests log WARNING+).
        uvicorn_log = logging.getLogger("uvicorn.error")
        level = uvicorn_log.level
        uvicorn_log.setLevel(logging.INFO)
        try:
            await self._chat_over_a_query_token(harness, fake, live_url, info_logs)
        finally:
            uvicorn_log.setLevel(level)

    async def _chat_over_a_query_token(
        self, harness: ChatHarness, fake: FakeChatModel, live_url: str, info_logs: list[str]
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        token = token_of(headers)
        fake.set_script(["hello"])

        async with websockets.connect(ws_url(live_url, session_id) + f"?token={token}") as ws:
            await ws.send(json.dumps({"message": "hi"}))
            await receive_turn(ws)

        assert any("WebSocket" in line and "token=[redacted]" in line for line in info_logs)
        assert not [line for line in info_logs if token in line or token[-20:] in line]
