"""A chat turn holds no pooled database connection while it waits on the model (issue 11, case 1).

Before, the auth dependency's session lived through the whole one-shot `/chat` turn, so ~20
concurrent turns drained the pool (10 + 10) and the rest failed with 500s after 30 s.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness

CONCURRENT_TURNS = 3


async def _wait_for_calls(fake: FakeChatModel, count: int) -> None:
    async with asyncio.timeout(30):
        while len(fake.calls) < count:  # noqa: ASYNC110 - the fake records calls, it signals nothing
            await asyncio.sleep(0.01)


class TestConnectionsDuringTheModelWait:
    async def test_one_shot_turns_waiting_on_the_model_hold_no_connection(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        gate = asyncio.Event()
        fake.set_script([f"answer number {n}" for n in range(CONCURRENT_TURNS)], gate=gate)
        engine: AsyncEngine = harness.state["engine"]
        chats = []
        for _ in range(CONCURRENT_TURNS):
            headers = await harness.new_user()
            chats.append((headers, await harness.new_session(headers)))

        async with harness.client() as http:

            async def chat(headers: dict[str, str], session_id: str) -> httpx.Response:
                body = {"session_id": session_id, "message": "hello"}
                return await http.post("/api/v1/chatbot/chat", json=body, headers=headers)

            turns = [asyncio.create_task(chat(headers, session_id)) for headers, session_id in chats]
            try:
                await _wait_for_calls(fake, CONCURRENT_TURNS)  # every turn is inside its model call
                # Sampled a while: the workers touch the pool briefly (event log batches, heartbeats), but
                # a connection held through the model wait would show in every sample.
                samples = []
                for _ in range(20):
                    samples.append(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]
                    await asyncio.sleep(0.02)
                held_during_the_wait = min(samples)
            finally:
                gate.set()
            responses = await asyncio.gather(*turns)

        assert held_during_the_wait == 0
        assert [r.status_code for r in responses] == [200] * CONCURRENT_TURNS
