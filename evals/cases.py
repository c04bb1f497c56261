"""The eval cases: half English, half Korean, each scored by deterministic checks (see `checks.py`).

Kinds:
- `tool`: one message in a new session that needs `calculator`, `get_weather` or `web_search`. The tool must be
  called with valid arguments; arithmetic answers must contain the right number; offline, weather and search
  answers must say the service could not be reached (and invent no temperature).
- `chat`: one message that needs no tool (facts, jokes, code, greetings): no tool call, no JSON in the answer,
  and the expected word when there is one.
- `language`: two turns in one session in different languages: the second answer is in the second language.
- `recall`: a fact stated in one session is recalled in a new session (long-term memory), or later in the same
  session (`same_session=True`).
- `no_fact`: messages that state nothing about the user: nothing may be stored.
Every answer of every case is also checked for language and for tool-call JSON.

Numbers, cities and names here differ from the examples in the server's prompts, so a pass measures the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["en", "ko"]
Kind = Literal["tool", "chat", "language", "recall", "no_fact"]


@dataclass(frozen=True)
class Case:
    id: str
    kind: Kind
    lang: Lang  # the language of the message the scored answer replies to
    messages: tuple[str, ...]  # sent in order, in one session (recall: the statements)
    tool: str | None = None  # tool cases: the tool that must be called
    number: float | None = None  # calculator cases: the number the answer must contain
    expect_any: tuple[str, ...] = ()  # the answer must contain one of these (case-insensitive)
    question: str = ""  # recall: asked after the statements
    same_session: bool = False  # recall: ask in the same session instead of a new one

    @property
    def category(self) -> str:
        if self.kind == "tool":
            return {"calculator": "arithmetic", "get_weather": "weather", "web_search": "search"}[self.tool or ""]
        return {"chat": "no-tool chat", "language": "language switch", "recall": "memory recall"}.get(
            self.kind, "memory: nothing to store"
        )


def _calc(id: str, lang: Lang, message: str, number: float) -> Case:
    return Case(id, "tool", lang, (message,), tool="calculator", number=number)


def _tool(id: str, lang: Lang, message: str, tool: str) -> Case:
    return Case(id, "tool", lang, (message,), tool=tool)


def _chat(id: str, lang: Lang, message: str, *expect_any: str) -> Case:
    return Case(id, "chat", lang, (message,), expect_any=expect_any)


def _switch(id: str, first: str, second: str, lang: Lang) -> Case:
    return Case(id, "language", lang, (first, second))


def _recall(id: str, lang: Lang, statement: str, question: str, *expect_any: str, same: bool = False) -> Case:
    return Case(id, "recall", lang, (statement,), expect_any=expect_any, question=question, same_session=same)


def _no_fact(id: str, lang: Lang, *messages: str) -> Case:
    return Case(id, "no_fact", lang, messages)


CASES: list[Case] = [
    # --- arithmetic (calculator) ------------------------------------------------------------------------------
    _calc("calc-en-1", "en", "Calculate 1234 * 5678.", 7006652),
    _calc("calc-en-2", "en", "What is 99 times 101?", 9999),
    _calc("calc-en-3", "en", "What's 15% of 240?", 36),
    _calc("calc-en-4", "en", "How much is 2 to the power of 20?", 1048576),
    _calc("calc-en-5", "en", "What is 987654 + 123456?", 1111110),
    _calc("calc-en-6", "en", "Compute 144 divided by 12.", 12),
    _calc("calc-en-7", "en", "What is 3.5 * 4.2?", 14.7),
    _calc("calc-en-8", "en", "What is 10000 - 7531?", 2469),
    _calc("calc-en-9", "en", "Please calculate (48 + 52) * 3.", 300),
    _calc("calc-en-10", "en", "What's 7 to the 5th power?", 16807),
    _calc("calc-ko-1", "ko", "1234 곱하기 5678은?", 7006652),
    _calc("calc-ko-2", "ko", "345 더하기 789 계산해줘", 1134),
    _calc("calc-ko-3", "ko", "250의 20%는 얼마야?", 50),
    _calc("calc-ko-4", "ko", "2의 10제곱을 계산해 줘", 1024),
    _calc("calc-ko-5", "ko", "9876 빼기 1234는?", 8642),
    _calc("calc-ko-6", "ko", "1000을 8로 나누면?", 125),
    _calc("calc-ko-7", "ko", "56 곱하기 78은 얼마인가요?", 4368),
    _calc("calc-ko-8", "ko", "(15 + 25) * 4를 계산해 주세요", 160),
    _calc("calc-ko-9", "ko", "123456 더하기 654321은?", 777777),
    _calc("calc-ko-10", "ko", "12.5 곱하기 8은 얼마야?", 100),
    # --- weather (offline: the service is unreachable) ----------------------------------------------------------
    _tool("weather-en-1", "en", "What's the weather in Seoul?", "get_weather"),
    _tool("weather-en-2", "en", "Is it raining in London right now?", "get_weather"),
    _tool("weather-en-3", "en", "What's the temperature in Tokyo today?", "get_weather"),
    _tool("weather-en-4", "en", "How is the weather in New York?", "get_weather"),
    _tool("weather-en-5", "en", "Tell me the current weather in Berlin.", "get_weather"),
    _tool("weather-ko-1", "ko", "부산 날씨 어때?", "get_weather"),
    _tool("weather-ko-2", "ko", "오늘 도쿄 날씨 알려줘", "get_weather"),
    _tool("weather-ko-3", "ko", "지금 제주도 날씨는 어떤가요?", "get_weather"),
    _tool("weather-ko-4", "ko", "런던 날씨 알려 줘", "get_weather"),
    _tool("weather-ko-5", "ko", "서울의 현재 기온이 궁금해요", "get_weather"),
    # --- web search (offline: the service is unreachable) --------------------------------------------------------
    _tool("search-en-1", "en", "Search the web for the latest Python release.", "web_search"),
    _tool("search-en-2", "en", "What are today's top news headlines?", "web_search"),
    _tool("search-en-3", "en", "Look up the latest news about SpaceX.", "web_search"),
    _tool("search-en-4", "en", "Search online for recent reviews of the iPhone.", "web_search"),
    _tool("search-en-5", "en", "Find the latest stock market news.", "web_search"),
    _tool("search-ko-1", "ko", "최신 AI 뉴스 검색해줘", "web_search"),
    _tool("search-ko-2", "ko", "오늘 주요 뉴스 찾아줘", "web_search"),
    _tool("search-ko-3", "ko", "웹에서 최신 파이썬 버전을 검색해 줘", "web_search"),
    _tool("search-ko-4", "ko", "요즘 반도체 관련 뉴스를 검색해 주세요", "web_search"),
    _tool("search-ko-5", "ko", "최근 축구 경기 결과를 인터넷에서 찾아줘", "web_search"),
    # --- no-tool chat ------------------------------------------------------------------------------------------
    _chat("chat-en-1", "en", "Tell me a short joke."),
    _chat("chat-en-2", "en", "Hello!"),
    _chat("chat-en-3", "en", "What is the capital of France?", "Paris"),
    _chat("chat-en-4", "en", "Write a Python function that reverses a string.", "def "),
    _chat("chat-en-5", "en", "Who wrote Hamlet?", "Shakespeare"),
    _chat("chat-en-6", "en", "Thanks for your help!"),
    _chat("chat-en-7", "en", "Explain in one sentence what photosynthesis is.", "light", "sun"),
    _chat("chat-en-8", "en", "Give me three tips for sleeping better."),
    _chat("chat-en-9", "en", "What is the largest planet in our solar system?", "Jupiter"),
    _chat("chat-en-10", "en", "Write a haiku about autumn."),
    _chat("chat-ko-1", "ko", "재미있는 농담 하나 해줘"),
    _chat("chat-ko-2", "ko", "안녕하세요!"),
    _chat("chat-ko-3", "ko", "프랑스의 수도는 어디야?", "파리", "Paris"),
    _chat("chat-ko-4", "ko", "파이썬으로 리스트를 정렬하는 방법 알려줘", "sort"),
    _chat("chat-ko-5", "ko", "햄릿을 쓴 작가는 누구야?", "셰익스피어", "Shakespeare"),
    _chat("chat-ko-6", "ko", "도와줘서 고마워요!"),
    _chat("chat-ko-7", "ko", "광합성이 무엇인지 한 문장으로 설명해 줘", "빛", "햇빛", "태양"),
    _chat("chat-ko-8", "ko", "잠을 잘 자는 방법 세 가지만 알려줘"),
    _chat("chat-ko-9", "ko", "태양계에서 가장 큰 행성은 뭐야?", "목성", "Jupiter"),
    _chat("chat-ko-10", "ko", "가을에 대한 짧은 시를 써 줘"),
    # --- language switches in one session ------------------------------------------------------------------------
    _switch("lang-ko-en-1", "안녕하세요! 오늘 기분이 좋네요.", "What is the capital of Italy?", "en"),
    _switch("lang-ko-en-2", "파이썬이 뭐야?", "Can you explain what a list is in Python?", "en"),
    _switch("lang-ko-en-3", "좋은 아침이에요.", "Tell me a fun fact about cats.", "en"),
    _switch("lang-en-ko-1", "Hi there! How are you?", "이탈리아의 수도는 어디야?", "ko"),
    _switch("lang-en-ko-2", "What is Python?", "파이썬에서 리스트가 뭔지 설명해 줘", "ko"),
    _switch("lang-en-ko-3", "Good morning!", "고양이에 대한 재미있는 사실을 알려줘", "ko"),
    # --- long-term memory: stated in one session, recalled in another ---------------------------------------------
    _recall("recall-en-1", "en", "Hi, my name is Minji.", "What is my name?", "Minji"),
    _recall("recall-en-2", "en", "I am a vegetarian.", "What kind of food do I eat? Do I eat meat?", "vegetarian"),
    _recall("recall-en-3", "en", "I live in Daejeon.", "Which city do I live in?", "Daejeon"),
    _recall("recall-en-4", "en", "I have a dog named Coco.", "What is my dog's name?", "Coco"),
    _recall("recall-en-5", "en", "I work as a nurse.", "What is my job?", "nurse"),
    _recall("recall-ko-1", "ko", "안녕하세요, 제 이름은 지수예요.", "제 이름이 뭐예요?", "지수"),
    _recall("recall-ko-2", "ko", "저는 광주에 살아요.", "제가 어느 도시에 살죠?", "광주"),
    _recall("recall-ko-3", "ko", "저는 고양이 나비를 키워요.", "제 고양이 이름이 뭐예요?", "나비"),
    _recall("recall-ko-4", "ko", "저는 초등학교 교사예요.", "제 직업이 뭐예요?", "교사", "선생"),
    _recall("recall-ko-5", "ko", "저는 매운 음식을 좋아해요.", "제가 좋아하는 음식 종류는요?", "매운"),
    # --- memory within one session ----------------------------------------------------------------------------
    _recall("session-en-1", "en", "My name is Daniel.", "What did I say my name was?", "Daniel", same=True),
    _recall("session-en-2", "en", "My favourite colour is green.", "What is my favourite colour?", "green", same=True),
    _recall("session-ko-1", "ko", "제 이름은 하늘이에요.", "제 이름이 뭐라고 했죠?", "하늘", same=True),
    _recall("session-ko-2", "ko", "저는 테니스를 좋아해요.", "제가 좋아하는 운동이 뭐예요?", "테니스", same=True),
    # --- nothing about the user: nothing may be stored -----------------------------------------------------------
    _no_fact("nofact-en-1", "en", "What is the boiling point of water?"),
    _no_fact("nofact-en-2", "en", "Calculate 45 * 3."),
    _no_fact("nofact-en-3", "en", "Can you tell me a fun fact about octopuses?"),
    _no_fact("nofact-ko-1", "ko", "물의 끓는점은 몇 도야?"),
    _no_fact("nofact-ko-2", "ko", "45 곱하기 3은?"),
    _no_fact("nofact-ko-3", "ko", "문어에 대한 재미있는 사실을 알려줘"),
]

# The CI smoke subset (tests/evals): one or two of each kind, both languages, fast on the embedded model.
SMOKE_IDS = (
    "calc-en-1",
    "calc-ko-2",
    "weather-en-1",
    "search-ko-2",
    "chat-en-3",
    "chat-ko-2",
    "lang-ko-en-1",
    "recall-en-1",
    "session-ko-1",
    "nofact-en-1",
)


def smoke_cases() -> list[Case]:
    by_id = {case.id: case for case in CASES}
    return [by_id[case_id] for case_id in SMOKE_IDS]
