"""A deterministic, scripted chat model for tests and offline demos (`LLM_PROVIDER=fake`).

The model replays a script of turns, one per call:

- a `str`: the assistant answers with that text;
- an `AIMessage`: returned as is (use `tool_call_turn()` for one that calls tools);
- an exception instance: raised by that call (use `status_error()` for a realistic provider error);
- a `BrokenStream`: the call streams some text, then fails (`broken_stream()`: a connection dropped
  mid-answer, which the retry logic retries).

When the script is exhausted it echoes the last human message (`You said: ...`), so the app keeps working
with the fake provider outside tests. Every call is recorded (`calls`, `prompts`), streaming yields one
chunk per word (so LangGraph's `stream_mode="messages"` sees real per-token chunks), every answer carries
`usage_metadata` (whitespace tokens, see `count_tokens`) and `response_metadata["model_name"]`, and an
optional `gate` event holds the stream between chunks (disconnect and conflict tests).

    fake = FakeChatModel(script=["Hello there", tool_call_turn("calculator", {"expression": "2+2"})])
    answer = await fake.bind_tools([calculator]).ainvoke([HumanMessage("hi")])
    assert fake.prompts[0][-1].content == "hi"
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

FAKE_MODEL_NAME = "fake"


@dataclass(frozen=True)
class BrokenStream:
    """A scripted turn that streams `text` word by word, then raises `error` (before any usage chunk).

    Called without streaming, it raises at once: nothing was received.
    """

    text: str
    error: BaseException


# A turn of the script: text, a full AIMessage (e.g. with tool_calls), an exception to raise, or a
# stream that breaks off.
FakeTurn = str | AIMessage | BaseException | BrokenStream

_TOKEN = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """The fake tokenizer: words with their leading whitespace. `"".join(split_tokens(t)) == t`."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(split_tokens(text))


def _message_text(message: BaseMessage) -> str:
    return message.text if isinstance(message.text, str) else str(message.content)


def tool_call_turn(name: str, args: dict[str, Any], *, call_id: str | None = None, content: str = "") -> AIMessage:
    """A scripted turn in which the model calls one tool."""
    return AIMessage(
        content=content,
        tool_calls=[ToolCall(name=name, args=args, id=call_id or f"call_{uuid.uuid4().hex[:12]}", type="tool_call")],
    )


def status_error(status: int, *, retry_after: float | None = None, message: str = "scripted failure") -> Exception:
    """The exception the OpenAI client raises for an HTTP `status` answer (what the retry logic classifies)."""
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    # the openai client is built on httpx2 (not httpx)
    request = httpx2.Request("POST", "http://fake.invalid/v1/chat/completions")
    response = httpx2.Response(status, headers=headers, request=request, json={"error": {"message": message}})
    error_class: type[openai.APIStatusError] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        429: openai.RateLimitError,
    }.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    return error_class(message, response=response, body=None)


def connection_error() -> Exception:
    """What the OpenAI client raises when the connection drops (a transient failure: retried)."""
    return openai.APIConnectionError(request=httpx2.Request("POST", "http://fake.invalid/v1/chat/completions"))


def broken_stream(text: str, error: BaseException | None = None) -> BrokenStream:
    """A turn that streams `text`, then loses the connection (or raises `error`)."""
    return BrokenStream(text, error if error is not None else connection_error())


@dataclass
class FakeCall:
    """One call the fake model received: the prompt and the tools bound for it (by name)."""

    messages: list[BaseMessage]
    tools: list[str] = field(default_factory=list)
    # Call parameters besides the tools (temperature, max_tokens, stop, ...).
    options: dict[str, Any] = field(default_factory=dict)


class FakeChatModel(BaseChatModel):
    """Scripted chat model; see the module docstring."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = FAKE_MODEL_NAME
    script: list[Any] = []
    # Exhausted script: echo the last human message (True) or fail loudly (False, for strict tests).
    echo_when_exhausted: bool = True
    # When set, the stream waits for this event before every chunk after the first.
    gate: asyncio.Event | None = None

    _turns: deque[FakeTurn] = PrivateAttr(default_factory=deque)
    _calls: list[FakeCall] = PrivateAttr(default_factory=list)
    _bound_tools: list[list[str]] = PrivateAttr(default_factory=list)
    _streaming: asyncio.Event | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._turns = deque(self.script)

    # --- test helpers ---------------------------------------------------------------------------
    def set_script(self, turns: Sequence[FakeTurn], *, gate: asyncio.Event | None = None) -> None:
        """Replace the remaining script and forget every recorded call (one test, one script)."""
        self._turns = deque(turns)
        self._calls.clear()
        self._bound_tools.clear()
        self.gate = gate
        self._streaming = None

    def push(self, *turns: FakeTurn) -> None:
        """Append turns to the script."""
        self._turns.extend(turns)

    @property
    def remaining(self) -> int:
        return len(self._turns)

    @property
    def calls(self) -> list[FakeCall]:
        return self._calls

    @property
    def prompts(self) -> list[list[BaseMessage]]:
        """Every prompt received, in order (a list of message lists)."""
        return [call.messages for call in self._calls]

    @property
    def bound_tools(self) -> list[list[str]]:
        """Tool names passed to each `bind_tools` call."""
        return self._bound_tools

    async def wait_streaming(self) -> None:
        """Return once a call has emitted its first chunk (so a test can disconnect mid-stream)."""
        if self._streaming is None:
            self._streaming = asyncio.Event()
        await self._streaming.wait()

    # --- LangChain interface --------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "fake-scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def get_num_tokens(self, text: str) -> int:
        return count_tokens(text)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        self._bound_tools.append([tool["function"]["name"] for tool in formatted])
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _next_turn(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        message, failure = self._take_turn(messages, kwargs)
        if failure is not None:
            raise failure
        return message

    def _take_turn(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[AIMessage, BaseException | None]:
        """The next answer, and the error its stream breaks off with (BrokenStream turns only)."""
        tools = [tool["function"]["name"] for tool in kwargs.get("tools") or ()]
        options = {key: value for key, value in kwargs.items() if key != "tools"}
        self._calls.append(FakeCall(messages=list(messages), tools=tools, options=options))
        if self._turns:
            turn = self._turns.popleft()
        elif self.echo_when_exhausted:
            last_human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
            turn = f"You said: {_message_text(last_human)}" if last_human else "Hello!"
        else:
            raise AssertionError("FakeChatModel: the script is exhausted")
        if isinstance(turn, BaseException):
            raise turn
        failure = None
        if isinstance(turn, BrokenStream):
            failure = turn.error
            turn = turn.text
        message = AIMessage(content=turn) if isinstance(turn, str) else turn.model_copy(deep=True)
        input_tokens = sum(count_tokens(_message_text(m)) for m in messages)
        output_tokens = count_tokens(_message_text(message)) + sum(
            count_tokens(json.dumps(call["args"])) for call in message.tool_calls
        )
        message.usage_metadata = UsageMetadata(
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
        )
        message.response_metadata = {**message.response_metadata, "model_name": self.model_name}
        return message, failure

    def _chunks(self, message: AIMessage, failure: BaseException | None = None) -> Iterator[AIMessageChunk]:
        """The message as a stream: one chunk per word, then one per tool call, then usage and metadata.

        With `failure`, the stream raises it after the words."""
        for token in split_tokens(_message_text(message)):
            yield AIMessageChunk(content=token)
        if failure is not None:
            raise failure
        for index, call in enumerate(message.tool_calls):
            yield AIMessageChunk(
                content="",
                tool_call_chunks=[
                    ToolCallChunk(
                        name=call["name"],
                        args=json.dumps(call["args"]),
                        id=call["id"],
                        index=index,
                        type="tool_call_chunk",
                    )
                ],
            )
        yield AIMessageChunk(
            content="",
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
            chunk_position="last",
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next_turn(messages, kwargs))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # BaseChatModel reports each chunk to the callbacks (on_llm_new_token); yielding is enough.
        for chunk in self._chunks(*self._take_turn(messages, kwargs)):
            yield ChatGenerationChunk(message=chunk)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._next_turn(messages, kwargs)
        if self.gate is not None:
            self._mark_streaming()
            await self.gate.wait()
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        message, failure = self._take_turn(messages, kwargs)
        for position, chunk in enumerate(self._chunks(message, failure)):
            if position > 0 and self.gate is not None:
                await self.gate.wait()
            else:
                # A real client yields to the loop between network reads; so does the fake.
                await asyncio.sleep(0)
            yield ChatGenerationChunk(message=chunk)
            self._mark_streaming()

    def _mark_streaming(self) -> None:
        if self._streaming is None:
            self._streaming = asyncio.Event()
        self._streaming.set()
