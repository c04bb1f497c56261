"""What may become a long-term memory: only facts the user stated about themselves.

mem0 asks the model to extract facts from an exchange; a small model, given the chance, stores the user's
questions, the assistant's answers, whole paragraphs, and the example facts of the prompt itself (every user
"lived in Busan"). This module narrows each step, independently of how extraction jobs are queued:

1. `ExtractionRequest.from_mem0(...)` reads the user's message and the known memories out of mem0's prompt.
   The assistant's reply is not shown to the model at all: it is never a source of facts about the user.
2. `worth_extracting(...)`: a message that is only a question or a request states nothing: no model call.
3. `EXTRACTION_PROMPT` holds rules and the answer's shape, no example facts to copy; the answer is constrained
   by `RESPONSE_FORMAT` (JSON schema) on every provider.
4. `filter_facts(...)` drops what still slips through: questions, requests, multi-sentence blobs, text copied
   from the assistant, and facts whose words the user never wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

MAX_FACT_CHARS = 160
MAX_FACTS = 5
MAX_KNOWN_MEMORIES = 10

EXTRACTION_PROMPT = """You keep a long-term memory about the user. Rewrite each thing the user's message states about
the user themselves (name, home, work, family, pets, likes and dislikes, diet, health, plans) as one short
sentence in the third person. {language_rule} Keep the user's own words and add nothing: no guesses, no
details the message does not give. Skip what "Already known" lists.

Answer with JSON only: {"memory": [{"id": "0", "text": "<one sentence>"}]}"""
LANGUAGE_RULES = {
    "en": 'Write in English; each sentence starts with "User".',
    "ko": 'Write in Korean; each sentence starts with "사용자는".',
}

RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "memory": {
            "type": "array",
            # Only messages that state something about the user are sent (`worth_extracting`): asking for at
            # least one item keeps a small model from answering an empty list out of caution; the filter drops
            # whatever it makes up.
            "minItems": 1,
            "maxItems": MAX_FACTS,
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string", "maxLength": 8}, "text": {"type": "string", "maxLength": 200}},
                "required": ["id", "text"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["memory"],
    "additionalProperties": False,
}
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "memories", "schema": RESPONSE_SCHEMA},
}
NOTHING = json.dumps({"memory": []})

_SECTION = re.compile(r"^## (?P<name>[^\n]+)\n(?P<body>.*?)(?=\n\n## |\n\n# Output:|\Z)", re.DOTALL | re.MULTILINE)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_HANGUL = re.compile(r"[\uac00-\ud7a3]")

# First-person markers: a message without one (and without a Korean declarative sentence) talks about the
# world, not about the user.
_FIRST_PERSON_EN = re.compile(r"\b(i|i'm|im|i've|i'd|i'll|my|mine|myself|we|we're|our|ours)\b", re.IGNORECASE)
_FIRST_PERSON_KO = re.compile(r"(^|\s)(저|제|나|내|난|전|저희|우리)(는|가|의|도|를|랑|한테)?(\s|$)")
# How Korean questions and requests end (the last word of the message).
_KO_REQUEST_ENDINGS = (
    "줘",
    "줘요",
    "주세요",
    "줄래",
    "줄래요",
    "어때",
    "어때요",
    "할까",
    "할까요",
    "나요",
    "까요",
    "니",
    "냐",
    "래",
)

_STOPWORDS = frozenset(
    "user users said the a an is are was were be been am in on at of to for and or with from by as has have had "
    "their they them his her he she it its this that these those very really also not no do does did "
    "사용자 사용자는 사용자의 사용자가 있습니다 있어요 있다 합니다 해요 한다 입니다 이다 예요 이에요".split()
)
# Reports of what the user asked or requested are not facts about them.
_REQUEST_WORDS = re.compile(
    r"\b(asked|asks|asking|inquired|wants to know|wanted to know|requested|requests)\b|질문|물었|물어|요청",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ExtractionRequest:
    """One exchange to extract from: the user's message (the only source), the reply, what is known."""

    user_message: str
    assistant_message: str = ""
    known: tuple[str, ...] = ()

    @classmethod
    def from_mem0(cls, messages: Sequence[dict[str, str]]) -> ExtractionRequest | None:
        """Read mem0's additive-extraction prompt (sections "## Existing Memories", "## New Messages")."""
        user_prompt = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        sections = {match["name"].strip(): match["body"] for match in _SECTION.finditer(user_prompt)}
        new_messages = sections.get("New Messages")
        if new_messages is None:
            return None
        user, assistant = _split_exchange(new_messages)
        if not user.strip():
            return None
        known: tuple[str, ...] = ()
        try:
            existing = json.loads(sections.get("Existing Memories", "[]"))
            known = tuple(str(m["text"]) for m in existing if isinstance(m, dict) and m.get("text"))
        except (ValueError, TypeError, KeyError):
            known = ()
        return cls(user.strip(), assistant.strip(), known[:MAX_KNOWN_MEMORIES])

    def prompt(self) -> list[BaseMessage]:
        known = "\n".join(f"- {fact}" for fact in self.known) or "(nothing yet)"
        return [
            SystemMessage(extraction_prompt(self.user_message)),
            HumanMessage(f"Already known:\n{known}\n\nThe user's message:\n{self.user_message}"),
        ]

    def filtered_answer(self, answer: str) -> str:
        """The model's answer reduced to the facts that pass `filter_facts`, as mem0 expects it."""
        facts = filter_facts(parse_facts(answer), self.user_message, self.assistant_message, self.known)
        return json.dumps(
            {"memory": [{"id": str(i), "text": fact} for i, fact in enumerate(facts)]}, ensure_ascii=False
        )


def extraction_prompt(user_message: str) -> str:
    """The extraction instructions, asking for facts in the language of the user's message (never translated:
    a translated fact no longer uses the user's words, and the filter rightly drops it)."""
    return EXTRACTION_PROMPT.replace("{language_rule}", LANGUAGE_RULES["ko" if is_korean(user_message) else "en"])


def _split_exchange(text: str) -> tuple[str, str]:
    """mem0 writes the exchange as `user: ...\\nassistant: ...`; the user's part may span lines."""
    if not text.startswith("user: "):
        return "", ""
    body = text[len("user: ") :]
    marker = body.rfind("\nassistant: ")
    if marker < 0:
        return body, ""
    return body[:marker], body[marker + len("\nassistant: ") :]


def parse_facts(answer: str) -> list[str]:
    """The fact texts of a `{"memory": [{"text": ...}]}` answer (a fenced or slightly wrapped one too)."""
    text = answer.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return []
    try:
        value = json.loads(text[start : end + 1])
    except ValueError:
        return []
    items = value.get("memory") if isinstance(value, dict) else None
    if not isinstance(items, list):
        return []
    facts = []
    for item in items:
        fact = item.get("text") if isinstance(item, dict) else item
        if isinstance(fact, str):
            facts.append(fact)
    return facts


def is_korean(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(1 for ch in letters if _HANGUL.match(ch)) * 2 >= len(letters)


def _statements(text: str) -> list[str]:
    """The sentences of a message that are not questions."""
    sentences = re.findall(r"[^.!?。\n]+[.!?。]*", text)
    return [sentence.strip() for sentence in sentences if sentence.strip() and not sentence.strip().endswith("?")]


def worth_extracting(user_message: str) -> bool:
    """False for messages that cannot state a fact about the user: questions and requests about the world."""
    text = " ".join(user_message.split())
    for sentence in _statements(text):
        if is_korean(sentence):
            last = sentence.rstrip(".!~ ").split(" ")[-1]
            if _FIRST_PERSON_KO.search(sentence) or not last.endswith(_KO_REQUEST_ENDINGS):
                return True
        elif _FIRST_PERSON_EN.search(sentence):
            return True
    return False


def _tokens(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def _grounded(token: str, source_words: set[str], source_text: str) -> bool:
    """Whether the user wrote this word (or, for inflected words, its stem)."""
    if token in source_words:
        return True
    if _HANGUL.match(token):
        # Korean attaches particles and endings to stems: 부산에 / 부산은, 살아요 / 살고 / 산다 (irregular: the
        # first syllable of a verb is the most a stem shares).
        return token[:2] in source_text or (len(token) >= 2 and token[0] in source_text)
    stem = token[:4] if len(token) >= 5 else token
    return len(stem) >= 3 and any(word.startswith(stem) for word in source_words)


_GREETING = re.compile(
    r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|안녕하세요|안녕|반갑습니다|반가워요)\b[\s,!.~]*",
    re.IGNORECASE,
)
_FIRST_PERSON_START = re.compile(
    r"^(?:i|i'm|i've|my|we|our)\b|^(?:저|제|나|내|난|전|저희|우리)(?:는|가|의|도)?\s", re.IGNORECASE
)
_THIRD_PERSON_SUBJECT = re.compile(r"^(?:the user|user)(?:'s| said:)?\s*|^사용자(?:는|가|의)?\s*", re.IGNORECASE)
_THIRD_PERSON_START = re.compile(r"^(?:user|the user)\b|^사용자", re.IGNORECASE)


def _sentences(text: str) -> list[str]:
    """Split at sentence ends: a stored memory is never more than one sentence."""
    parts = re.split(r"(?<=[.!?。])\s+", " ".join(text.split()))
    return [part.strip() for part in parts if part.strip()]


_EN_SUBJECT = [
    (re.compile(r"^(?:i am|i'm)\b", re.IGNORECASE), "User is"),
    (re.compile(r"^(?:i have|i've)\b", re.IGNORECASE), "User has"),
    (re.compile(r"^i was\b", re.IGNORECASE), "User was"),
    (re.compile(r"^my\b", re.IGNORECASE), "User's"),
]
_EN_VERB = re.compile(r"^i (\w+)\b", re.IGNORECASE)
_EN_OBJECT = [(re.compile(r"\bmy\b", re.IGNORECASE), "their"), (re.compile(r"\bme\b", re.IGNORECASE), "them")]
_KO_SUBJECT = [
    (re.compile(r"^(?:저|나)(?:는|도)?\s"), "사용자는 "),
    (re.compile(r"^(?:제가|내가)\s"), "사용자가 "),
    (re.compile(r"^(?:제|내|저의|나의|저희|우리)\s"), "사용자의 "),
]


def _third_person_verb(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def third_person(sentence: str) -> str | None:
    """The user's own sentence about themselves in the third person ("I live in X" → "User lives in X")."""
    for pattern, replacement in _KO_SUBJECT:
        if pattern.match(sentence):
            return pattern.sub(replacement, sentence, count=1)
    for pattern, replacement in _EN_SUBJECT:
        if pattern.match(sentence):
            rest = pattern.sub(replacement, sentence, count=1)
            break
    else:
        verb = _EN_VERB.match(sentence)
        if verb is None:
            return None
        rest = f"User {_third_person_verb(verb.group(1).lower())}" + sentence[verb.end() :]
    head, tail = rest[:7], rest[7:]
    for pattern, replacement in _EN_OBJECT:
        tail = pattern.sub(replacement, tail)
    return head + tail


def _as_memory(sentence: str) -> str:
    """A sentence as a memory: greetings cut, the user's own first-person words turned into a fact about them."""
    sentence = _GREETING.sub("", sentence).strip()
    if _FIRST_PERSON_START.match(sentence) and not _THIRD_PERSON_START.match(sentence):
        # A small model often copies the user's words instead of rewriting them: still true, once rewritten.
        return third_person(sentence) or f"User said: {sentence}"
    return sentence


def filter_facts(
    facts: Sequence[str], user_message: str, assistant_message: str = "", known: Sequence[str] = ()
) -> list[str]:
    """The facts that are one sentence the user stated about themselves; see the module docstring."""
    source_text = user_message.lower()
    source_words = set(_tokens(user_message))
    assistant = " ".join(assistant_message.split()).lower()
    seen = {" ".join(fact.split()).lower() for fact in known}
    kept: list[str] = []
    candidates = [_as_memory(sentence) for raw in facts if "\n" not in raw.strip() for sentence in _sentences(raw)]
    for fact in candidates:
        lowered = fact.lower()
        if not fact or len(fact) > MAX_FACT_CHARS or lowered in seen:
            continue
        if "?" in fact or _REQUEST_WORDS.search(fact):
            continue
        if not _THIRD_PERSON_START.match(fact):
            continue  # not about the user (an assistant's remark, a general statement, a guess)
        content = [token for token in _tokens(fact) if token not in _STOPWORDS and len(token) >= 2]
        if not content or _GREETING.fullmatch(_THIRD_PERSON_SUBJECT.sub("", fact).strip()):
            continue  # nothing left but the subject, or a greeting
        grounded = sum(1 for token in content if _grounded(token, source_words, source_text))
        # Korean inflects stems (살아요 / 산다), so half the words suffice there; two thirds elsewhere.
        needed = 0.5 if is_korean(fact) else 2 / 3
        if grounded == 0 or grounded < len(content) * needed:
            continue  # words the user never wrote: invented, or taken from the assistant
        body = lowered.removeprefix("user said:").removeprefix("user").strip()
        if assistant and len(body) >= 12 and body in assistant and body not in source_text:
            continue
        seen.add(lowered)
        kept.append(fact)
        if len(kept) == MAX_FACTS:
            break
    return kept
