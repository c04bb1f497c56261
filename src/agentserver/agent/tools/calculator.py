"""A safe arithmetic evaluator: a whitelist over Python's AST, never `eval`.

Bounded so a hostile expression cannot burn CPU or memory: the expression length, the number of AST
nodes, exponents, and the size of every intermediate integer are all capped, so `9**9**9**9` is refused
before any large power is computed.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

MAX_EXPRESSION_CHARS = 200
MAX_NODES = 100
MAX_EXPONENT = 1000
MAX_INT_BITS = 4096  # ~1233 decimal digits
MAX_FACTOR_ABS = 1e300


class CalculatorError(ValueError):
    """The expression is not allowed or cannot be computed; the message is shown to the model."""


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _check_size(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError("only numbers are supported")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("result is too large")
    if isinstance(value, float) and (math.isinf(value) or abs(value) > MAX_FACTOR_ABS):
        raise CalculatorError("result is too large")
    if isinstance(value, float) and math.isnan(value):
        raise CalculatorError("result is not a number")
    return value


def _power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent is too large (limit {MAX_EXPONENT})")
    # Bound the result size before computing it: bits(base**n) ~ n * bits(base).
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if base.bit_length() * exponent > MAX_INT_BITS:
            raise CalculatorError("result is too large")
    try:
        return operator.pow(base, exponent)
    except OverflowError:
        raise CalculatorError("result is too large") from None
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        return _check_size(node.value)
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check_size(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_size(_power(left, right))
        try:
            return _check_size(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise CalculatorError("keyword arguments are not supported")
        args = [_eval(arg) for arg in node.args]
        try:
            return _check_size(_FUNCTIONS[node.func.id](*args))
        except (ValueError, TypeError, OverflowError) as exc:
            raise CalculatorError(f"{node.func.id}: {exc}") from None
    raise CalculatorError(f"unsupported expression element: {type(node).__name__}")


# `15%` as a percentage (`15% of 240`, `240 * 15%`), not the modulo operator (`17 % 5` keeps a right operand).
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%(?!\s*[\d(.])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_OF = re.compile(r"\)\s*of\s*", re.IGNORECASE)


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression; raises CalculatorError with a message for the model."""
    expression = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    expression = _THOUSANDS.sub("", expression)
    expression = _OF.sub(") * ", _PERCENT.sub(r"(\1 / 100)", expression))
    if not expression:
        raise CalculatorError("empty expression")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise CalculatorError("not a valid arithmetic expression") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError("expression is too complex")
    result = _eval(tree)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result  # type: ignore[no-any-return]
