"""`/api/v1/runs`: a chat message is a run that can be read, replayed, cancelled; double-texting strategies."""

from __future__ import annotations

import asyncio

import httpx
from langchain_core.messages import BaseMessage, SystemMessage
from sqlalchemy import func, select, text

from agentserver.llm.fake import FakeChatModel
from agentserver.models import Message, MessageRole, RunStatus
from tests.chat.conftest import ChatHarness, collapse, parse_sse
from tests.runs.conftest import latest_run_id, replay, run_row, stream_turn, wait_for_status

CHAT = "/api/v1/chatbot/chat"


async def chat(
    harness: ChatHarness, headers: dict[str, str], session_id: str, message: str, **extra: object
) -> httpx.Response:
    async with harness.client() as http:
        return await http.post(CHAT, json={"session_id": session_id, "message": message, **extra}, headers=headers)


def conversation(prompt: list[BaseMessage]) -> list[str]:
    """What the model saw of the conversation (the system messages left out)."""
    return [str(m.content) for m in prompt if not isinstance(m, SystemMessage)]


async def contents(harness: ChatHarness, session_id: str) -> list[tuple[MessageRole, str]]:
    return [(m.role, m.content) for m in await harness.messages(session_id)]


class TestReadRuns:
    async def test_a_finished_run_has_its_outcome(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["Hi there."])
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)

        answer = (await chat(runs, headers, session_id, "hello")).json()
        async with runs.client() as http:
            response = await http.get(f"/api/v1/runs/{answer['run_id']}", headers=headers)

        assert response.status_code == 200
        run = response.json()
        assert (run["status"], run["session_id"], run["attempt"]) == ("success", session_id, 1)
        assert run["assistant_message_id"] == answer["message_id"]
        assert run["usage"]["output_tokens"] == answer["usage"]["output_tokens"] == 2
        assert run["error"] is None
        assert run["ended_at"] is not None

    async def test_another_users_run_is_404(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["Hi."])
        headers = await runs.new_user()
        run_id = (await chat(runs, headers, await runs.new_session(headers), "hello")).json()["run_id"]
        intruder = await runs.new_user()

        async with runs.client() as http:
            for path in (f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}/stream"):
                response = await http.get(path, headers=intruder)
                assert (response.status_code, response.json()["error"]) == (404, "RunNotFound")
            for action in ("cancel", "resume"):
                body = {"decision": "approve"} if action == "resume" else None
                response = await http.post(f"/api/v1/runs/{run_id}/{action}", json=body, headers=intruder)
                assert (response.status_code, response.json()["error"]) == (404, "RunNotFound")

    async def test_a_sessions_runs_newest_first(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["One.", "Two."])
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        first = (await chat(runs, headers, session_id, "one")).json()["run_id"]
        second = (await chat(runs, headers, session_id, "two")).json()["run_id"]

        async with runs.client() as http:
            page = (await http.get(f"/api/v1/sessions/{session_id}/runs", params={"limit": 1}, headers=headers)).json()
            rest = (
                await http.get(
                    f"/api/v1/sessions/{session_id}/runs", params={"cursor": page["next_cursor"]}, headers=headers
                )
            ).json()
            theirs = await http.get(f"/api/v1/sessions/{session_id}/runs", headers=await runs.new_user())

        assert [r["id"] for r in page["runs"] + rest["runs"]] == [second, first]
        assert rest["next_cursor"] is None
        assert theirs.status_code == 404


class TestReplay:
    async def test_a_finished_run_replays_every_event_with_its_id(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["The answer is here."])
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        live = await stream_turn(runs, headers, session_id, "question")
        run_id = live.headers["x-run-id"]

        replayed = await replay(runs, headers, run_id)

        assert [f[0] for f in replayed] == list(range(1, len(replayed) + 1))
        assert [(name, data) for _, name, data in replayed] == parse_sse(live.text)

    async def test_last_event_id_gives_exactly_the_events_after_it(
        self, runs: ChatHarness, fake: FakeChatModel
    ) -> None:
        fake.set_script(["The answer is here."])
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        run_id = (await stream_turn(runs, headers, session_id, "question")).headers["x-run-id"]
        everything = await replay(runs, headers, run_id)

        after_two = await replay(runs, headers, run_id, after=2)

        assert after_two == everything[2:]
        assert await replay(runs, headers, run_id, after=len(everything)) == []


class TestCancel:
    async def test_cancel_keeps_the_partial_answer_once(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        gate = asyncio.Event()  # never set: the model stalls after its first token
        fake.set_script(["Hello there, this is long"], gate=gate)
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        streaming = asyncio.create_task(stream_turn(runs, headers, session_id, "talk"))
        await fake.wait_streaming()
        run_id = await latest_run_id(runs, headers, session_id)

        async with runs.client() as http:
            cancelled = await http.post(f"/api/v1/runs/{run_id}/cancel", headers=headers)
        events = collapse(parse_sse((await streaming).text))
        run = await wait_for_status(runs, run_id, RunStatus.cancelled)

        assert cancelled.status_code == 200
        assert events[-1] == (
            "done",
            {
                "message_id": str(run.assistant_message_id),
                "usage": events[-1][1]["usage"],
                "finish_reason": "cancelled",
            },
        )
        assert await contents(runs, session_id) == [(MessageRole.user, "talk"), (MessageRole.assistant, "Hello")]
        async with runs.client() as http:
            again = await http.post(f"/api/v1/runs/{run_id}/cancel", headers=headers)
        assert (again.status_code, again.json()["error"]) == (409, "RunAlreadyFinished")


class TestDoubleTexting:
    async def test_reject_is_409_and_the_first_answer_completes(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        gate = asyncio.Event()
        fake.set_script(["First answer here.", "unused"], gate=gate)
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        first = asyncio.create_task(stream_turn(runs, headers, session_id, "one"))
        await fake.wait_streaming()

        second = await chat(runs, headers, session_id, "two", multitask_strategy="reject")
        gate.set()
        await first

        assert (second.status_code, second.json()["error"]) == (409, "TurnInProgress")
        assert await contents(runs, session_id) == [
            (MessageRole.user, "one"),
            (MessageRole.assistant, "First answer here."),
        ]

    async def test_enqueue_runs_both_in_order(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        gate = asyncio.Event()
        fake.set_script(["First answer.", "Second answer."], gate=gate)
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        first = asyncio.create_task(stream_turn(runs, headers, session_id, "one"))
        await fake.wait_streaming()

        second = asyncio.create_task(chat(runs, headers, session_id, "two", multitask_strategy="enqueue"))
        await asyncio.sleep(0.3)  # queued behind the first: nothing of it runs yet
        assert len(fake.prompts) == 1
        gate.set()
        await first
        answer = await second

        assert answer.json()["message"] == "Second answer."
        assert await contents(runs, session_id) == [
            (MessageRole.user, "one"),
            (MessageRole.assistant, "First answer."),
            (MessageRole.user, "two"),
            (MessageRole.assistant, "Second answer."),
        ]
        assert conversation(fake.prompts[1]) == ["one", "First answer.", "two"]

    async def test_interrupt_cancels_the_first_and_keeps_its_partial_answer(
        self, runs: ChatHarness, fake: FakeChatModel
    ) -> None:
        fake.set_script(["Hello there, this is long", "Second."], gate=asyncio.Event())
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        first = asyncio.create_task(stream_turn(runs, headers, session_id, "one"))
        await fake.wait_streaming()
        fake.gate = None  # the first stays stuck; the next call streams freely

        answer = await chat(runs, headers, session_id, "two", multitask_strategy="interrupt")
        first_events = collapse(parse_sse((await first).text))

        assert answer.status_code == 200
        assert answer.json()["message"] == "Second."
        assert first_events[-1][0] == "done"
        assert first_events[-1][1]["finish_reason"] == "cancelled"
        messages = await runs.messages(session_id)
        assert [(m.role, m.content, m.finish_reason) for m in messages] == [
            (MessageRole.user, "one", None),
            (MessageRole.assistant, "Hello", "cancelled"),
            (MessageRole.user, "two", None),
            (MessageRole.assistant, "Second.", "complete"),
        ]
        assert conversation(fake.prompts[1]) == ["one", "Hello", "two"]

    async def test_rollback_erases_the_first_run(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script(["Hello there, this is long", "Second."], gate=asyncio.Event())
        headers = await runs.new_user()
        session_id = await runs.new_session(headers)
        first = asyncio.create_task(stream_turn(runs, headers, session_id, "one"))
        await fake.wait_streaming()
        first_run = await latest_run_id(runs, headers, session_id)
        fake.gate = None

        answer = await chat(runs, headers, session_id, "two", multitask_strategy="rollback")
        first_events = collapse(parse_sse((await first).text))

        assert answer.json()["message"] == "Second."
        assert first_events[-1] == ("done", {"message_id": None, "usage": {}, "finish_reason": "rolled_back"})
        assert await contents(runs, session_id) == [(MessageRole.user, "two"), (MessageRole.assistant, "Second.")]
        assert conversation(fake.prompts[1]) == ["two"]  # the agent's history forgot it too
        assert (await run_row(runs, first_run)).status is RunStatus.cancelled
        async with runs.state["sessionmaker"]() as session:
            left = await session.scalar(
                text("SELECT count(*) FROM checkpoints WHERE thread_id = :t AND metadata->>'run_id' = :r"),
                {"t": session_id, "r": first_run},
            )
        assert left == 0


class TestExactlyOneAnswer:
    async def test_every_run_has_at_most_one_assistant_message(self, runs: ChatHarness, fake: FakeChatModel) -> None:
        fake.set_script([])
        headers = await runs.new_user()
        sessions = [await runs.new_session(headers) for _ in range(5)]

        await asyncio.gather(*(chat(runs, headers, s, f"hi {n}") for n, s in enumerate(sessions)))

        async with runs.state["sessionmaker"]() as session:
            counts = (
                await session.execute(
                    select(Message.run_id, func.count())
                    .where(Message.session_id.in_(sessions), Message.role == MessageRole.assistant)
                    .group_by(Message.run_id)
                )
            ).all()
        assert sorted(count for _, count in counts) == [1] * 5
