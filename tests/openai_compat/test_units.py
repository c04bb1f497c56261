"""Pure parts of the OpenAI layer: history keys and the error shape."""

from __future__ import annotations

from agentserver.openai_compat.errors import openai_error
from agentserver.openai_compat.sessions import history_key, normalized, session_name


class TestHistoryKey:
    def test_folded_reasoning_and_whitespace_do_not_change_the_key(self) -> None:
        sent = [("user", "Hi"), ("assistant", "Hello  there")]
        resent = [
            ("user", " Hi\n"),
            ("assistant", '<details type="reasoning"><summary>Thought</summary>Calling x</details>Hello there'),
        ]

        assert history_key(sent) == history_key(resent)

    def test_system_and_tool_messages_do_not_count(self) -> None:
        plain = [("user", "Hi"), ("assistant", "Hello")]
        with_others = [("system", "Be brief"), ("user", "Hi"), ("tool", "42"), ("assistant", "Hello")]

        assert history_key(plain) == history_key(with_others)

    def test_the_order_of_turns_counts(self) -> None:
        assert history_key([("user", "a"), ("user", "b")]) != history_key([("user", "b"), ("user", "a")])

    def test_think_blocks_are_dropped(self) -> None:
        assert normalized("<think>hmm</think>Answer") == "Answer"


class TestSessionName:
    def test_the_start_of_the_first_message_on_one_line(self) -> None:
        assert session_name("What is\nthe weather?") == "What is the weather?"

    def test_long_messages_are_cut(self) -> None:
        assert session_name("x" * 100) == "x" * 59 + "…"


class TestOpenAIError:
    def test_validation_errors_are_400_with_the_field(self) -> None:
        body = {
            "error": "ValidationError",
            "detail": "temperature: too big",
            "errors": [{"loc": ["body", "temperature"]}],
        }

        assert openai_error(422, body) == (
            400,
            {
                "error": {
                    "message": "temperature: too big",
                    "type": "invalid_request_error",
                    "param": "temperature",
                    "code": "invalid_value",
                }
            },
        )

    def test_server_errors(self) -> None:
        status, body = openai_error(503, {"error": "LLMUnavailable", "detail": "try later"})

        assert status == 503
        assert body["error"] == {
            "message": "try later",
            "type": "server_error",
            "param": None,
            "code": "llm_unavailable",
        }

    def test_rate_limits(self) -> None:
        _, body = openai_error(429, {"error": "TooManyRequests", "detail": "slow down"})

        assert (body["error"]["type"], body["error"]["code"]) == ("rate_limit_error", "rate_limit_exceeded")
