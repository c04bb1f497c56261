"""What may become a memory: the extraction prompt, the request read from mem0's prompt, and the filter."""

from __future__ import annotations

import json
import re

import pytest
from mem0.configs.prompts import ADDITIVE_EXTRACTION_PROMPT, generate_additive_extraction_prompt

from agentserver.memory.extraction import (
    EXTRACTION_PROMPT,
    RESPONSE_FORMAT,
    ExtractionRequest,
    extraction_prompt,
    filter_facts,
    parse_facts,
    worth_extracting,
)


def mem0_messages(user: str, assistant: str, existing: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    """The two messages mem0's additive extraction sends to the LLM."""
    prompt = generate_additive_extraction_prompt(
        existing_memories=existing or [], new_messages=f"user: {user}\nassistant: {assistant}\n", last_k_messages=[]
    )
    return [{"role": "system", "content": ADDITIVE_EXTRACTION_PROMPT}, {"role": "user", "content": prompt}]


class TestPrompt:
    def test_holds_no_example_fact_to_copy(self) -> None:
        quoted = re.findall(r'"text": "([^"]*)"', EXTRACTION_PROMPT)

        assert quoted == ["<one sentence>"]
        assert not re.search(r"\bUser (is|lives|likes|has|works)\b", EXTRACTION_PROMPT)

    def test_asks_for_facts_in_the_language_of_the_message(self) -> None:
        assert 'Write in English; each sentence starts with "User".' in extraction_prompt("I am Minji")
        assert 'Write in Korean; each sentence starts with "사용자는".' in extraction_prompt("저는 민지예요")

    def test_the_answer_is_constrained_by_a_json_schema(self) -> None:
        schema = RESPONSE_FORMAT["json_schema"]["schema"]

        assert RESPONSE_FORMAT["type"] == "json_schema"
        assert schema["properties"]["memory"]["items"]["properties"]["text"]["maxLength"] == 200

    def test_the_model_sees_the_users_message_and_not_the_reply(self) -> None:
        request = ExtractionRequest("I am vegetarian", "Noted, I will suggest meat-free dishes.", ("User said: hi",))

        system, user = request.prompt()

        assert system.content == extraction_prompt("I am vegetarian")
        assert user.content == "Already known:\n- User said: hi\n\nThe user's message:\nI am vegetarian"


class TestFromMem0:
    def test_reads_the_exchange_and_the_known_memories(self) -> None:
        messages = mem0_messages("I live in Daejeon\nnear the river", "Nice!", [{"id": "0", "text": "User said: hi"}])

        assert ExtractionRequest.from_mem0(messages) == ExtractionRequest(
            "I live in Daejeon\nnear the river", "Nice!", ("User said: hi",)
        )

    def test_a_prompt_without_new_messages_is_not_an_extraction(self) -> None:
        assert ExtractionRequest.from_mem0([{"role": "user", "content": "## Summary\nnothing"}]) is None


class TestWorthExtracting:
    @pytest.mark.parametrize(
        "message",
        ["My name is Minji.", "I am vegetarian. What should I cook?", "저는 부산에 살아요", "고양이를 키워요"],
    )
    def test_statements_about_oneself_are(self, message: str) -> None:
        assert worth_extracting(message)

    @pytest.mark.parametrize(
        "message",
        ["What is my name?", "Calculate 1234 * 5678.", "Tell me a joke", "부산 날씨 어때?", "계산해줘", "Hello!"],
    )
    def test_questions_and_requests_are_not(self, message: str) -> None:
        assert not worth_extracting(message)


class TestFilter:
    def test_a_stated_fact_is_kept(self) -> None:
        assert filter_facts(["User likes green tea"], "I like green tea in the morning") == ["User likes green tea"]

    def test_facts_the_user_never_stated_are_dropped(self) -> None:
        facts = ["User lives in Busan", "User is vegetarian", "User likes green tea"]

        assert filter_facts(facts, "I like green tea") == ["User likes green tea"]

    def test_questions_are_dropped(self) -> None:
        assert filter_facts(["User asked what the capital of France is", "What is my name?"], "What is my name?") == []

    def test_copies_of_the_assistants_reply_are_dropped(self) -> None:
        reply = "Paris is the capital of France and its largest city."

        assert filter_facts(["assistant: Paris is the capital of France", reply], "I love Paris", reply) == []

    def test_a_multi_sentence_blob_keeps_only_the_stated_sentence(self) -> None:
        blob = "Hi, my name is Minji. I'm a software developer and a fan of cooking."

        assert filter_facts([blob], "Hi, my name is Minji.") == ["User's name is Minji."]

    def test_the_users_own_words_become_a_fact_about_the_user(self) -> None:
        assert filter_facts(["Hi, I have a dog named Coco."], "Hi, I have a dog named Coco.") == [
            "User has a dog named Coco."
        ]

    def test_korean_first_person_becomes_the_user(self) -> None:
        assert filter_facts(["제 이름은 지수예요."], "안녕하세요, 제 이름은 지수예요.") == ["사용자의 이름은 지수예요."]

    def test_first_person_it_cannot_rewrite_is_attributed(self) -> None:
        assert filter_facts(["We love hiking."], "We love hiking.") == ["User said: We love hiking."]

    def test_korean_facts_match_inflected_words(self) -> None:
        facts = ["사용자는 광주에 산다", "사용자는 광주에 살고 있습니다."]

        assert filter_facts(facts, "저는 광주에 살아요") == facts

    def test_a_korean_fact_about_another_city_is_dropped(self) -> None:
        assert filter_facts(["사용자는 서울에 산다"], "저는 광주에 살아요") == []

    def test_a_greeting_is_no_fact(self) -> None:
        assert filter_facts(["사용자는 안녕하세요! 오늘 기분이 좋네요."], "안녕하세요! 오늘 기분이 좋네요.") == []

    def test_known_facts_are_not_stored_again(self) -> None:
        assert filter_facts(["User likes tea"], "I like tea", known=["User likes tea"]) == []

    def test_the_answer_keeps_mem0s_shape(self) -> None:
        request = ExtractionRequest("I like green tea")
        answer = json.dumps(
            {"memory": [{"id": "0", "text": "User likes green tea"}, {"id": "1", "text": "User is 30"}]}
        )

        assert json.loads(request.filtered_answer(answer)) == {"memory": [{"id": "0", "text": "User likes green tea"}]}

    def test_fenced_answers_are_read(self) -> None:
        assert parse_facts('```json\n{"memory": [{"id": "0", "text": "User likes tea"}]}\n```') == ["User likes tea"]
