"""A tool call that needs approval, through an OpenAI client: the answer asks, the next message decides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import openai
import pytest

from agentserver.agent.graph import TOOL_DECLINED
from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, tool_call_turn
from agentserver.models import MessageRole, RunStatus
from tests.chat.conftest import ChatHarness, serving, start_harness
from tests.openai_compat.conftest import OVERRIDES, Caller, new_caller
from tests.runs.conftest import run_row

QUESTION = (
    'The agent wants to run the tool `calculator` with {"expression": "6*7"} and needs your approval. '
    'Reply "approve" to let it run, or "reject" to refuse.'
)


@pytest.fixture(scope="module")
async def approvals(own_database_settings: Callable[..., Awaitable[Settings]]) -> AsyncIterator[ChatHarness]:
    settings = await own_database_settings("agentserver_openai_approvals", **OVERRIDES)
    harness, lifespan = await start_harness(settings.model_copy(update={"tools_requiring_approval": ["calculator"]}))
    yield harness
    await lifespan.__aexit__(None, None, None)


@pytest.fixture(scope="module")
async def url(approvals: ChatHarness) -> AsyncIterator[str]:
    async with serving(approvals.asgi) as url:
        yield url


@pytest.fixture
async def fake(approvals: ChatHarness) -> FakeChatModel:
    await approvals.settle()
    approvals.fake.set_script([])
    return approvals.fake


@pytest.fixture
async def caller(approvals: ChatHarness, url: str) -> AsyncIterator[Caller]:
    caller = await new_caller(approvals, url)
    yield caller
    await caller.openai.close()


async def _ask(caller: Caller, fake: FakeChatModel) -> tuple[str, list[dict[str, str]]]:
    """A question whose answer needs the calculator: the completion asks for approval."""
    fake.set_script([tool_call_turn("calculator", {"expression": "6*7"}, call_id="c1")])
    raw = await caller.openai.chat.completions.with_raw_response.create(
        model="agent", messages=[{"role": "user", "content": "What is 6 times 7?"}]
    )
    question = raw.parse().choices[0].message.content
    assert question == QUESTION
    history = [{"role": "user", "content": "What is 6 times 7?"}, {"role": "assistant", "content": question}]
    return raw.headers["x-run-id"], history


class TestApprovals:
    async def test_the_answer_asks_and_the_run_waits(
        self, caller: Caller, fake: FakeChatModel, approvals: ChatHarness
    ) -> None:
        run_id, _ = await _ask(caller, fake)

        assert (await run_row(approvals, run_id)).status is RunStatus.interrupted

    async def test_approve_runs_the_tool_and_answers(
        self, caller: Caller, fake: FakeChatModel, approvals: ChatHarness
    ) -> None:
        run_id, history = await _ask(caller, fake)
        fake.push("It is 42.")

        raw = await caller.openai.chat.completions.with_raw_response.create(
            model="agent",
            messages=[*history, {"role": "user", "content": "approve"}],  # type: ignore[list-item]
        )

        assert raw.headers["x-run-id"] == run_id
        assert raw.parse().choices[0].message.content == "It is 42."
        assert (await run_row(approvals, run_id)).status is RunStatus.success
        stored = await approvals.messages(raw.headers["x-session-id"])
        assert [(m.role, m.content) for m in stored] == [
            (MessageRole.user, "What is 6 times 7?"),
            (MessageRole.assistant, "It is 42."),
        ]

    async def test_reject_tells_the_model_and_streams_its_answer(self, caller: Caller, fake: FakeChatModel) -> None:
        _, history = await _ask(caller, fake)
        fake.push("Alright, I will not compute it.")

        stream = await caller.openai.chat.completions.create(
            model="agent",
            messages=[*history, {"role": "user", "content": "Reject"}],  # type: ignore[list-item]
            stream=True,
        )
        assert isinstance(stream, openai.AsyncStream)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        assert text == "Alright, I will not compute it."
        assert fake.prompts[-1][-1].content == TOOL_DECLINED

    async def test_another_message_cancels_the_waiting_call(
        self, caller: Caller, fake: FakeChatModel, approvals: ChatHarness
    ) -> None:
        run_id, history = await _ask(caller, fake)
        fake.push("Sure, let us talk about cats.")

        completion = await caller.openai.chat.completions.create(
            model="agent",
            messages=[*history, {"role": "user", "content": "Never mind, tell me about cats"}],  # type: ignore[list-item]
        )

        assert completion.choices[0].message.content == "Sure, let us talk about cats."
        assert (await run_row(approvals, run_id)).status is RunStatus.cancelled
