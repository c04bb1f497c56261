"""Deleting a session or an account while one of its runs streams: 204, the run stops, nothing is left."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from agentserver.llm.fake import FakeChatModel
from tests.chat.conftest import ChatHarness, collapse, parse_sse
from tests.harness import drain_jobs
from tests.runs.conftest import latest_run_id, stream_turn

LEFTOVERS = {
    "checkpoints": "SELECT count(*) FROM checkpoints WHERE thread_id = :s",
    "checkpoint_writes": "SELECT count(*) FROM checkpoint_writes WHERE thread_id = :s",
    "checkpoint_blobs": "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = :s",
    "messages": "SELECT count(*) FROM messages WHERE session_id = CAST(:s AS uuid)",
    "runs": "SELECT count(*) FROM runs WHERE session_id = CAST(:s AS uuid)",
    "run_events": "SELECT count(*) FROM run_events WHERE run_id = CAST(:r AS uuid)",
}


async def leftovers(harness: ChatHarness, session_id: str, run_id: str) -> dict[str, int]:
    async with harness.state["sessionmaker"]() as session:
        return {
            name: int(await session.scalar(text(sql), {"s": session_id, "r": run_id}) or 0)
            for name, sql in LEFTOVERS.items()
        }


async def streaming_run(
    harness: ChatHarness, fake: FakeChatModel, headers: dict[str, str]
) -> tuple[str, str, asyncio.Task]:  # type: ignore[type-arg]
    """A session with an earlier exchange (so it has checkpoints) and a run stuck mid-answer."""
    session_id = await harness.new_session(headers)
    fake.set_script(["Earlier answer.", "Hello there, this answer is long"])
    await stream_turn(harness, headers, session_id, "earlier")
    fake.gate = asyncio.Event()  # never set
    streaming = asyncio.create_task(stream_turn(harness, headers, session_id, "talk to me"))
    await fake.wait_streaming()
    return session_id, await latest_run_id(harness, headers, session_id), streaming


class TestDeleteWhileStreaming:
    async def test_deleting_the_session_stops_the_run_and_leaves_nothing(
        self, runs: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await runs.new_user()
        session_id, run_id, streaming = await streaming_run(runs, fake, headers)

        async with runs.client() as http:
            deleted = await http.delete(f"/api/v1/sessions/{session_id}", headers=headers)
        events = collapse(parse_sse((await asyncio.wait_for(streaming, 15)).text))
        await drain_jobs(runs.state["sessionmaker"])

        assert deleted.status_code == 204
        assert events[-1][0] == "error"
        assert await leftovers(runs, session_id, run_id) == dict.fromkeys(LEFTOVERS, 0)

    async def test_deleting_the_account_stops_the_run_and_leaves_nothing(
        self, runs: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await runs.new_user()
        session_id, run_id, streaming = await streaming_run(runs, fake, headers)

        async with runs.client() as http:
            deleted = await http.delete("/api/v1/auth/me", headers=headers)
        await asyncio.wait_for(streaming, 15)
        await drain_jobs(runs.state["sessionmaker"])

        assert deleted.status_code == 204
        assert await leftovers(runs, session_id, run_id) == dict.fromkeys(LEFTOVERS, 0)
