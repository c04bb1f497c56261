"""Conversation memory across turns and restarts; summaries keep the prompt bounded; history listing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from langchain_core.messages import SystemMessage

from agentserver.agent.prompts import SYSTEM_TEMPLATE
from agentserver.agent.summarize import SUMMARY_INSTRUCTIONS
from agentserver.config import Settings
from agentserver.llm.fake import FakeChatModel, count_tokens, status_error
from agentserver.runs.translate import StreamTranslator
from tests.chat.conftest import ChatHarness, start_harness

CHAT = "/api/v1/chatbot/chat"


async def say(harness: ChatHarness, headers: dict[str, str], session_id: str, message: str) -> httpx.Response:
    async with harness.client() as http:
        return await http.post(CHAT, json={"session_id": session_id, "message": message}, headers=headers)


def chat_prompts(fake: FakeChatModel) -> list[list[str]]:
    """The text of every prompt sent for an answer (summary calls left out), system messages included."""
    return [
        [str(m.content) for m in prompt]
        for prompt in fake.prompts
        if not str(prompt[0].content).startswith(SUMMARY_INSTRUCTIONS)
    ]


def conversations(fake: FakeChatModel) -> list[list[str]]:
    """The conversation part of every answer prompt: the instructions and the per-turn context left out."""
    return [
        [str(m.content) for m in prompt if not isinstance(m, SystemMessage)]
        for prompt in fake.prompts
        if not str(prompt[0].content).startswith(SUMMARY_INSTRUCTIONS)
    ]


class TestChat:
    async def test_answers_with_the_message_id_and_usage(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["Hi! How can I help?"])

        response = await say(harness, headers, session_id, "Hello")

        assert response.status_code == 200
        body = response.json()
        assert body["session_id"] == session_id
        assert body["message"] == "Hi! How can I help?"
        assert body["usage"]["model"] == "fake"
        assert body["usage"]["output_tokens"] == 5
        stored = await harness.messages(session_id)
        assert str(stored[1].id) == body["message_id"]

    async def test_the_second_turn_sees_the_first(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["Nice to meet you, Chul-soo.", "Your name is Chul-soo."])

        await say(harness, headers, session_id, "My name is Chul-soo.")
        await say(harness, headers, session_id, "What is my name?")

        assert conversations(fake)[1] == ["My name is Chul-soo.", "Nice to meet you, Chul-soo.", "What is my name?"]

    async def test_the_static_instructions_come_first_and_the_context_right_before_the_new_message(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["Hello!", "ok"])

        await say(harness, headers, session_id, "hi")
        await say(harness, headers, session_id, "안녕하세요")

        prompt = chat_prompts(fake)[1]
        assert prompt[0] == SYSTEM_TEMPLATE
        assert prompt[1:3] == ["hi", "Hello!"]
        assert prompt[3].startswith("# Current time\n20")
        assert "# What you remember about this user\n(nothing yet)" in prompt[3]
        assert prompt[3].endswith("# Language\nAnswer in Korean. 한국어로 답하세요.\n")
        assert prompt[4] == "안녕하세요"

    async def test_the_instructions_are_the_same_for_every_user_and_turn(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        fake.set_script(["one", "two"])
        for text in ("first user", "second user"):
            headers = await harness.new_user()
            await say(harness, headers, await harness.new_session(headers), text)

        first, second = chat_prompts(fake)
        assert first[0] == second[0] == SYSTEM_TEMPLATE


class TestRestart:
    async def test_a_restarted_server_continues_the_conversation(
        self, own_chat_settings: Callable[[str], Awaitable[Settings]]
    ) -> None:
        chat_settings = await own_chat_settings("agentserver_chat_restart")
        first, lifespan = await start_harness(chat_settings)
        headers = await first.new_user()
        session_id = await first.new_session(headers)
        first.fake.set_script(["Noted: you like green tea."])
        await say(first, headers, session_id, "I like green tea.")
        await lifespan.__aexit__(None, None, None)

        second, lifespan = await start_harness(chat_settings)
        try:
            second.fake.set_script(["Green tea."])
            response = await say(second, headers, session_id, "What do I like?")
            prompt = conversations(second.fake)[0]
        finally:
            await lifespan.__aexit__(None, None, None)

        assert response.status_code == 200
        assert prompt == ["I like green tea.", "Noted: you like green tea.", "What do I like?"]


class TestSummaries:
    async def test_old_turns_are_folded_and_the_prompt_stops_growing(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        # SUMMARY_AFTER_TURNS=4 keeping 2 recent turns: the 5th user turn triggers a fold of 3 turns, and
        # every 3rd turn after it folds again (turns 4, 7 and 10, counting from 0). A fold's summary call
        # comes right before that turn's answer.
        script: list[str] = []
        for turn in range(12):
            if turn in (4, 7, 10):
                script.append(f"Summary version {turn}.")
            script.append(f"Answer {turn}.")
        fake.set_script(script)

        for turn in range(12):
            response = await say(harness, headers, session_id, f"Turn {turn}: " + "blah " * 40)
            assert response.json()["message"] == f"Answer {turn}."

        prompts = chat_prompts(fake)
        sizes = [sum(count_tokens(text) for text in prompt) for prompt in prompts]
        summary_calls = [p for p in fake.prompts if str(p[0].content).startswith(SUMMARY_INSTRUCTIONS)]
        assert len(summary_calls) == 3
        # Growth stops: after the first fold the prompt size repeats with a period of 3 turns.
        assert sizes[10:12] == sizes[7:9] == sizes[4:6]
        assert max(sizes[4:]) < sizes[3] + count_tokens("Summary version 10.")
        # The last prompt: instructions, the 2 kept turns (9, 10), the context and the new message.
        assert len(prompts[-1]) == 1 + 2 * 2 + 1 + 1
        assert prompts[-1][1].startswith("Turn 9:")
        assert "# Earlier in this conversation\nSummary version 10." in prompts[-1][-2]
        # The summary is extended, not recomputed: each call starts from the previous summary.
        assert "Existing summary:\n(empty)" in str(summary_calls[0][1].content)
        assert "Existing summary:\nSummary version 4." in str(summary_calls[1][1].content)
        assert "Existing summary:\nSummary version 7." in str(summary_calls[2][1].content)

    async def test_a_failing_summary_is_skipped_and_the_turn_answers(
        self, harness: ChatHarness, fake: FakeChatModel
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        # Turn 4 folds (SUMMARY_AFTER_TURNS=4): its summary call fails, the answer comes anyway.
        fake.set_script([*(f"Answer {n}." for n in range(4)), status_error(400), "Answer 4."])

        for turn in range(4):
            await say(harness, headers, session_id, f"Turn {turn}")
        response = await say(harness, headers, session_id, "Turn 4")

        assert response.status_code == 200
        assert response.json()["message"] == "Answer 4."
        # Nothing was folded away: the whole history is still in the prompt (with the two system messages).
        assert len(chat_prompts(fake)[-1]) == 2 + 2 * 4 + 1

    async def test_a_summarys_tokens_count_in_the_runs_usage(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([*(f"Answer {n}." for n in range(4)), "A short summary.", "Answer 4."])
        for turn in range(4):
            await say(harness, headers, session_id, f"Turn {turn}")

        usage = (await say(harness, headers, session_id, "Turn 4")).json()["usage"]

        summary_call, answer_call = fake.prompts[-2], fake.prompts[-1]
        assert str(summary_call[0].content).startswith(SUMMARY_INSTRUCTIONS)
        assert usage["input_tokens"] == sum(count_tokens(str(m.content)) for m in summary_call + answer_call)
        assert usage["output_tokens"] == count_tokens("A short summary.") + count_tokens("Answer 4.")
        assert usage["model"] == "fake"


class TestMessageHistory:
    async def test_lists_oldest_first_with_cursor_pages(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["a1", "a2", "a3"])
        for text in ("q1", "q2", "q3"):
            await say(harness, headers, session_id, text)

        async with harness.client() as http:
            url = f"/api/v1/chatbot/sessions/{session_id}/messages"
            first = (await http.get(url, params={"limit": 4}, headers=headers)).json()
            second = (await http.get(url, params={"limit": 4, "cursor": first["next_cursor"]}, headers=headers)).json()

        assert [(m["role"], m["content"]) for m in first["messages"]] == [
            ("user", "q1"),
            ("assistant", "a1"),
            ("user", "q2"),
            ("assistant", "a2"),
        ]
        assert [(m["role"], m["content"]) for m in second["messages"]] == [("user", "q3"), ("assistant", "a3")]
        assert second["next_cursor"] is None

    async def test_another_users_history_is_404(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        owner = await harness.new_user()
        session_id = await harness.new_session(owner)

        async with harness.client() as http:
            response = await http.get(
                f"/api/v1/chatbot/sessions/{session_id}/messages", headers=await harness.new_user()
            )

        assert response.status_code == 404

    async def test_a_tampered_cursor_is_422(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)

        async with harness.client() as http:
            response = await http.get(
                f"/api/v1/chatbot/sessions/{session_id}/messages", params={"cursor": "bm9wZQ"}, headers=headers
            )

        assert response.status_code == 422
        assert response.json()["error"] == "InvalidCursor"


class TestDeletion:
    async def test_deleting_a_session_erases_its_checkpoints(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["remembered"])
        await say(harness, headers, session_id, "remember this")
        config = {"configurable": {"thread_id": session_id}}
        graph = harness.state["agent"].graph
        assert (await graph.aget_state(config)).values["messages"]

        async with harness.client() as http:
            response = await http.delete(f"/api/v1/sessions/{session_id}", headers=headers)

        assert response.status_code == 204
        assert (await graph.aget_state(config)).values == {}

    async def test_deleting_the_user_erases_their_checkpoints(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["remembered"])
        await say(harness, headers, session_id, "remember this")

        async with harness.client() as http:
            response = await http.delete("/api/v1/auth/me", headers=headers)

        assert response.status_code == 204
        state = await harness.state["agent"].graph.aget_state({"configurable": {"thread_id": session_id}})
        assert state.values == {}


class TestChatFailures:
    async def test_a_rejected_request_is_a_typed_502(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([status_error(400)])

        response = await say(harness, headers, session_id, "hello")

        assert response.status_code == 502
        assert response.json() == {"error": "LLMRequestRejected", "detail": "The language model rejected the request."}
        assert [m.content for m in await harness.messages(session_id)] == ["hello"]

    async def test_a_crashing_model_is_a_typed_503(self, harness: ChatHarness, fake: FakeChatModel) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script([RuntimeError("password=hunter2 in a driver message")])

        response = await say(harness, headers, session_id, "hello")

        assert response.status_code == 503, response.text
        assert response.json()["error"] == "LLMUnavailable"
        assert "hunter2" not in response.text

    async def test_an_unexpected_failure_is_a_bare_500(
        self, harness: ChatHarness, fake: FakeChatModel, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        headers = await harness.new_user()
        session_id = await harness.new_session(headers)
        fake.set_script(["fine"])

        def broken(*args: object) -> None:
            raise RuntimeError("password=hunter2 in an internal message")

        monkeypatch.setattr(StreamTranslator, "_on_update", broken)
        response = await say(harness, headers, session_id, "hello")

        assert response.status_code == 500
        assert response.json() == {"error": "InternalServerError", "detail": "Internal server error"}
        assert [m.content for m in await harness.messages(session_id)] == ["hello"]
