"""Deterministic checks on answers: language, tool-call JSON, numbers, "the service is unreachable", grounding.

Written independently of the server's own filters, so the eval does not grade the server by its own rules.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`", re.DOTALL)
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
_TOOL_JSON = re.compile(r"<tool_call>|\{\s*\"(?:name|function|tool|tool_name|arguments)\"\s*:", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_UNREACHABLE = re.compile(
    r"unavailable|unreachable|not available|could ?n[o']t|can ?n[o']t|unable|no (?:network|internet|access)|"
    r"offline|failed|error|not (?:able|possible)|don't have access|do not have access|"
    r"없|못|불가|실패|오류|연결|접속|이용할 수|확인할 수",
    re.IGNORECASE,
)
_TEMPERATURE = re.compile(r"-?\d+(?:\.\d+)?\s*(?:°|º|도|degrees?)", re.IGNORECASE)


def prose(text: str) -> str:
    """The text outside code blocks and inline code."""
    return _CODE.sub(" ", text)


def hangul_share(text: str) -> float:
    letters = [ch for ch in prose(text) if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if _HANGUL.match(ch)) / len(letters)


def language_matches(answer: str, lang: str) -> bool:
    """Korean answers are mostly Hangul outside code; English answers have (almost) none."""
    letters = [ch for ch in prose(answer) if ch.isalpha()]
    if not letters:
        return True  # an answer that is only code or numbers has no language to get wrong
    share = hangul_share(answer)
    return share >= 0.3 if lang == "ko" else share < 0.05


def has_tool_json(answer: str) -> bool:
    return bool(_TOOL_JSON.search(answer))


def numbers_in(text: str) -> list[float]:
    out = []
    for match in _NUMBER.findall(text):
        try:
            out.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return out


def contains_number(answer: str, expected: float) -> bool:
    return any(abs(value - expected) <= max(1e-6, abs(expected) * 1e-9) for value in numbers_in(answer))


def says_unreachable(answer: str) -> bool:
    return bool(_UNREACHABLE.search(answer))


def invents_temperature(answer: str) -> bool:
    return bool(_TEMPERATURE.search(prose(answer)))


def contains_any(answer: str, words: tuple[str, ...]) -> bool:
    lowered = answer.lower()
    return not words or any(word.lower() in lowered for word in words)


_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    "user users the a an is are was were be been am in on at of to for and or with from by as has have had their "
    "they them his her he she it its this that named name called very really also".split()
    + ["사용자", "사용자는", "사용자의", "사용자가", "있습니다", "있어요", "있다", "합니다", "해요", "입니다", "예요"]
)


def grounded(memory: str, said: list[str]) -> bool:
    """A memory is grounded when at least half of its words (or their stems) appear in what the user wrote.

    "User lives in Busan" from a user who never wrote "Busan" is not; "사용자는 광주에 살고 있습니다" from
    "저는 광주에 살아요" is.
    """
    if "?" in memory:
        return False  # a question is not a fact
    source = " ".join(said).lower()
    source_words = set(_WORD.findall(source))
    words = [w.lower() for w in _WORD.findall(memory) if w.lower() not in _STOP and len(w) >= 2]
    if not words:
        return False

    def found(word: str) -> bool:
        if word in source_words:
            return True
        if _HANGUL.match(word):
            # Korean inflects stems (살아요 / 살고 / 산다): the first syllable is what a paraphrase keeps.
            return word[:2] in source or word[0] in source
        stem = word[:4] if len(word) >= 5 else word
        return len(stem) >= 3 and any(w.startswith(stem) for w in source_words)

    hits = sum(1 for word in words if found(word))
    return hits * 2 >= len(words) and hits > 0
