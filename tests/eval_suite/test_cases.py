"""The eval suite's cases and deterministic checks (no model needed)."""

from __future__ import annotations

from collections import Counter

import pytest
from evals import checks
from evals.cases import CASES, SMOKE_IDS, smoke_cases


class TestCases:
    def test_at_least_eighty_cases_half_english_half_korean(self) -> None:
        languages = Counter(case.lang for case in CASES)

        assert len(CASES) >= 80
        assert languages["en"] == languages["ko"]

    def test_ids_are_unique(self) -> None:
        assert len({case.id for case in CASES}) == len(CASES)

    def test_the_smoke_subset_has_ten_cases_of_every_kind(self) -> None:
        cases = smoke_cases()

        assert [case.id for case in cases] == list(SMOKE_IDS)
        assert len(cases) == 10
        assert {case.kind for case in cases} == {"tool", "chat", "language", "recall", "no_fact"}

    def test_every_arithmetic_case_has_its_number(self) -> None:
        assert all(case.number is not None for case in CASES if case.tool == "calculator")


class TestChecks:
    @pytest.mark.parametrize(
        ("answer", "lang", "ok"),
        [
            ("파리는 프랑스의 수도입니다.", "ko", True),
            ("Paris is the capital of France.", "ko", False),
            ("Paris is the capital.", "en", True),
            ("수도는 Paris입니다.", "en", False),
            ("```python\nprint('hi')\n```", "ko", True),
        ],
    )
    def test_language(self, answer: str, lang: str, ok: bool) -> None:
        assert checks.language_matches(answer, lang) is ok

    @pytest.mark.parametrize(
        ("answer", "found"),
        [
            ('{"name": "calculator", "arguments": {}}', True),
            ("<tool_call>", True),
            ('Here: { "arguments": 1 }', True),
            ('{"result": 42}', False),
            ("The answer is 42.", False),
        ],
    )
    def test_tool_call_json(self, answer: str, found: bool) -> None:
        assert checks.has_tool_json(answer) is found

    def test_numbers_with_thousands_separators(self) -> None:
        assert checks.contains_number("1234 × 5678 = 7,006,652.", 7006652)

    def test_a_wrong_number_is_not_the_number(self) -> None:
        assert not checks.contains_number("It is 6830252.", 7006652)

    def test_unreachable_in_both_languages(self) -> None:
        assert checks.says_unreachable("Sorry, the weather service could not be reached.")
        assert checks.says_unreachable("날씨 서비스에 연결할 수 없습니다.")
        assert not checks.says_unreachable("It is sunny in Seoul.")

    def test_an_invented_temperature(self) -> None:
        assert checks.invents_temperature("It is 21°C and sunny.")
        assert checks.invents_temperature("현재 기온은 15도입니다.")

    def test_grounded_memories(self) -> None:
        said = ["Hi, my name is Minji.", "저는 광주에 살아요."]

        assert checks.grounded("User said: my name is Minji.", said)
        assert checks.grounded("사용자는 광주에 산다", said)
        assert not checks.grounded("User lives in Busan", said)
        assert not checks.grounded("What is my name?", said)
