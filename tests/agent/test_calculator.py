from __future__ import annotations

import pytest

from agentserver.agent.tools.calculator import CalculatorError, evaluate


class TestEvaluate:
    @pytest.mark.parametrize(
        ("expression", "value"),
        [
            ("2 + 3 * 4", 14),
            ("(1 + 2) ** 10", 59049),
            ("2^10", 1024),
            ("7 / 2", 3.5),
            ("7 // 2", 3),
            ("-(3 - 5)", 2),
            ("sqrt(16) + abs(-2)", 6),
            ("round(pi, 2)", 3.14),
            ("max(1, 9, 3)", 9),
            ("12 × 3 ÷ 4", 9),
        ],
    )
    def test_arithmetic(self, expression: str, value: float) -> None:
        assert evaluate(expression) == value

    @pytest.mark.parametrize(
        ("expression", "message"),
        [
            ("9**9**9**9", "exponent is too large (limit 1000)"),
            ("__import__('os')", "unsupported expression element: Call"),
            ("().__class__", "unsupported expression element: Attribute"),
            ("open('/etc/passwd')", "unsupported expression element: Call"),
            ("[1] * 10**9", "unsupported expression element: List"),
            ("'a' * 10", "only numbers are supported"),
            ("(2**64)**64", "result is too large"),
            ("10.0 ** 400", "result is too large"),
            ("1 / 0", "division by zero"),
            ("sqrt(-1)", "sqrt: math domain error"),
            ("x + 1", "unknown name 'x'"),
            ("1 +", "not a valid arithmetic expression"),
            ("", "empty expression"),
            ("1+" * 150 + "1", "expression is longer than 200 characters"),
            ("+".join(["1"] * 90), "expression is too complex"),
        ],
    )
    def test_refuses_with_a_clear_message(self, expression: str, message: str) -> None:
        with pytest.raises(CalculatorError) as refused:
            evaluate(expression)

        assert str(refused.value) == message
