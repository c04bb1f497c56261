"""`TolerantChatOpenAI`: ChatOpenAI for the embedded model and OpenAI-compatible servers.

Two ways to call tools (`tool_calling`):

- `native`: the tools go to the server as usual. Tool calls a small model writes as text are parsed and
  repaired (`llm.toolcalls`); one that cannot be repaired is never shown: a constrained decision is asked for
  once (`llm.constrained`), and if that names no valid call either, the answer is a plain apology.
- `constrained` (the embedded model): for a new user message, first a schema-constrained decision — no tool,
  or one bound tool with arguments valid by construction. Without a tool, the answer is generated with no tool
  definitions in the prompt (a small model shown tools answers jokes with JSON). After a tool ran, its result
  is written next to the question (`tool_results_as_text`) and the answer is generated the same way; when
  every tool failed the user gets a plain "cannot be reached" (`tool_failure_reply`), and an answer that lost
  the calculator's number gets the number (`checked_tool_answer`).

Streaming goes through `ToolCallGuard`, so tool-call JSON never reaches a token stream. The parent's token
callbacks are not passed down: LangChain reports tokens for what this class yields, after the guard.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

from agentserver.llm import constrained
from agentserver.llm.toolcalls import ToolCallGuard, Verdict, apology_for, is_korean, judge, last_user_text

ToolCalling = Literal["native", "constrained"]
# Request fields that only make sense with tool definitions in the request.
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")


def _without_tools(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if key not in _TOOL_FIELDS}


def tool_results_as_text(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation with each tool exchange folded into the user message it answered, as a plain note.

    Shown its own tool calls in the chat template's `<tool_call>` JSON, a small model answers in JSON too (and
    calls the tool again with its own result); given a trailing instruction, it repeats the instruction. With the
    result written next to the question, it answers the question. Earlier turns are folded the same way, so the
    prompt of one turn is the cached prefix of the next.
    """
    calls = {call["id"]: call for m in messages if isinstance(m, AIMessage) for call in m.tool_calls}
    out: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, ToolMessage):
            call = calls.get(message.tool_call_id)
            name = call["name"] if call else (message.name or "tool")
            args = ", ".join(str(v) for v in call["args"].values()) if call else ""
            result = message.content if isinstance(message.content, str) else str(message.content)
            asked = next((i for i in range(len(out) - 1, -1, -1) if isinstance(out[i], HumanMessage)), None)
            if asked is not None:
                question = out[asked]
                text = question.content if isinstance(question.content, str) else str(question.content)
                out[asked] = HumanMessage(f"{text}\n\n(Tool result: {name}({args}) → {result})", id=question.id)
            continue
        if isinstance(message, AIMessage) and message.tool_calls:
            if message.content:
                out.append(AIMessage(message.content))
            continue
        out.append(message)
    return out


def _current_results(messages: Sequence[BaseMessage]) -> list[tuple[ToolMessage, ToolCall | None]]:
    calls = {call["id"]: call for m in messages if isinstance(m, AIMessage) for call in m.tool_calls}
    results: list[tuple[ToolMessage, ToolCall | None]] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append((message, calls.get(message.tool_call_id)))
    return list(reversed(results))


def _plain_number(text: str) -> str:
    return text.replace(",", "").strip()


def checked_tool_answer(answer: str, messages: Sequence[BaseMessage]) -> str:
    """The answer after a tool ran, or a plain statement of the tool's result when the answer lost it.

    A small model sometimes repeats the question and the result note instead of answering, or writes its own
    (wrong) arithmetic next to the calculator's result; the user gets the result itself then.
    """
    results = _current_results(messages)
    if not results:
        return answer
    parroted = "(Tool result" in answer or not answer.strip()
    missing = [
        (result, call)
        for result, call in results
        if call is not None
        and call["name"] == "calculator"
        and result.status != "error"
        and _plain_number(str(result.content)) not in _plain_number(answer)
    ]
    if not parroted and not missing:
        return answer
    korean = is_korean(last_user_text(messages))
    lines = []
    for result, call in results:
        content = str(result.content)
        if call is not None and call["name"] == "calculator":
            expression = str(call["args"].get("expression", ""))
            lines.append(f"{expression} = {content}" if not korean else f"{expression}의 결과는 {content}입니다.")
        else:
            lines.append(content)
    return "\n".join(lines)


_SERVICES = {
    "get_weather": ("the weather service", "날씨 서비스"),
    "web_search": ("the web search service", "웹 검색 서비스"),
    "calculator": ("the calculator", "계산기"),
}


def tool_failure_reply(messages: Sequence[BaseMessage]) -> str | None:
    """A plain answer when every tool of the current turn failed; None when one succeeded (or none ran).

    A small model told "the service is unreachable" still invents a forecast; the user gets the truth instead.
    """
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append(message)
    if not results or any(result.status != "error" for result in results):
        return None
    name = results[0].name or ""
    english, korean = _SERVICES.get(name, (f"the {name} tool", f"{name} 도구"))
    detail = str(results[0].content).removeprefix("Error: ").split(". ")[0]
    unreachable = any(word in detail for word in ("unavailable", "cannot be reached", "timed out"))
    if is_korean(last_user_text(messages)):
        if unreachable:
            return f"죄송합니다. 지금은 {korean}에 연결할 수 없어 답을 드릴 수 없습니다. 잠시 후 다시 시도해 주세요."
        return f"죄송합니다. {korean}로 요청을 처리하지 못했습니다 ({detail})."
    if unreachable:
        return f"Sorry, {english} cannot be reached right now, so I can't answer that. Please try again later."
    return f"Sorry, {english} could not complete that request ({detail})."


def _call_chunks(calls: Sequence[ToolCall]) -> list[ToolCallChunk]:
    return [
        ToolCallChunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i, type="tool_call_chunk")
        for i, call in enumerate(calls)
    ]


def _merge_usage(first: UsageMetadata | None, second: UsageMetadata | None) -> UsageMetadata | None:
    if first is None:
        return second
    if second is None:
        return first
    return add_usage(first, second)


class TolerantChatOpenAI(ChatOpenAI):
    """ChatOpenAI that turns text tool calls into real ones and never shows tool-call JSON; see the module doc."""

    tool_calling: ToolCalling = "native"

    # --- the constrained decision -------------------------------------------------------------------------------
    async def _decide(
        self, messages: list[BaseMessage], tools: Sequence[dict[str, Any]], kwargs: dict[str, Any]
    ) -> tuple[ToolCall | None, UsageMetadata | None]:
        """Which bound tool the latest user message needs (None: none), asked with a schema-constrained answer."""
        request = _without_tools(kwargs)
        request.update(
            response_format=constrained.response_format(tools),
            max_tokens=constrained.DECISION_MAX_TOKENS,
            temperature=0,
        )
        user_text = last_user_text(messages)
        prompt = constrained.decision_messages(tools, user_text)
        result = await super()._agenerate(prompt, None, None, **request)
        message = result.generations[0].message
        text = message.content if isinstance(message.content, str) else ""
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        return constrained.parse_decision(text, tools, user_text), usage

    def _decides_first(self, messages: list[BaseMessage], tools: Sequence[dict[str, Any]] | None) -> bool:
        return bool(tools) and self.tool_calling == "constrained" and constrained.latest_user_text(messages) is not None

    def _answer_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return _without_tools(kwargs) if self.tool_calling == "constrained" else kwargs

    def _answer_messages(self, messages: list[BaseMessage]) -> list[BaseMessage]:
        return tool_results_as_text(messages) if self.tool_calling == "constrained" else messages

    def _answer_tools(self, tools: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        """Tools an answer may still call: none in constrained mode (one decision per user message)."""
        return () if self.tool_calling == "constrained" else tools

    # --- non-streaming ------------------------------------------------------------------------------------------
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = kwargs.get("tools")
        if not tools:
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        usage: UsageMetadata | None = None
        decided = False
        if self._decides_first(messages, tools):
            call, usage = await self._decide(messages, tools, kwargs)
            decided = True
            if call is not None:
                return _result(AIMessage(content="", tool_calls=[call], usage_metadata=usage))
        failure = tool_failure_reply(messages) if self.tool_calling == "constrained" else None
        if failure is not None:
            return _result(AIMessage(content=failure))
        answer_messages = self._answer_messages(messages)
        result = await super()._agenerate(answer_messages, stop, run_manager, **self._answer_kwargs(kwargs))
        generation = result.generations[0]
        message = generation.message
        if not isinstance(message, AIMessage) or message.tool_calls or not isinstance(message.content, str):
            return result
        judgement = judge(message.content, self._answer_tools(tools))
        usage = _merge_usage(usage, message.usage_metadata)
        if judgement.verdict is Verdict.TEXT:
            content = judgement.content
            if self.tool_calling == "constrained":
                content = checked_tool_answer(content, messages)
            fixed = message.model_copy(update={"content": content, "usage_metadata": usage})
        elif judgement.verdict is Verdict.CALLS:
            fixed = message.model_copy(
                update={"content": judgement.content, "tool_calls": judgement.calls, "usage_metadata": usage}
            )
        else:
            fixed = await self._recover(messages, tools, kwargs, message, usage, decided)
        return ChatResult(
            generations=[ChatGeneration(message=fixed, generation_info=generation.generation_info)],
            llm_output=result.llm_output,
        )

    async def _recover(
        self,
        messages: list[BaseMessage],
        tools: Sequence[dict[str, Any]],
        kwargs: dict[str, Any],
        message: AIMessage,
        usage: UsageMetadata | None,
        decided: bool,
    ) -> AIMessage:
        """A broken tool call: ask once for a constrained decision (unless one was made), else apologise."""
        if not decided and self.tool_calling == "native":
            call, more = await self._decide(messages, tools, kwargs)
            usage = _merge_usage(usage, more)
            if call is not None:
                return message.model_copy(update={"content": "", "tool_calls": [call], "usage_metadata": usage})
        return message.model_copy(update={"content": apology_for(messages), "usage_metadata": usage})

    # --- streaming ----------------------------------------------------------------------------------------------
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        tools = kwargs.get("tools")
        # run_manager is not passed down: ChatOpenAI would report every raw token itself, before the guard.
        if not tools:
            async for chunk in super()._astream(messages, stop, None, **kwargs):
                yield chunk
            return
        decided = False
        if self._decides_first(messages, tools):
            call, usage = await self._decide(messages, tools, kwargs)
            decided = True
            if call is not None:
                yield _chunk(AIMessageChunk(content="", tool_call_chunks=_call_chunks([call]), usage_metadata=usage))
                return
            if usage is not None:
                yield _chunk(AIMessageChunk(content="", usage_metadata=usage))
        failure = tool_failure_reply(messages) if self.tool_calling == "constrained" else None
        if failure is not None:
            yield _chunk(AIMessageChunk(content=failure))
            return
        if self.tool_calling == "constrained" and _current_results(messages):
            # A short answer about a tool's result: judged whole before it is shown (see checked_tool_answer).
            result = await self._agenerate(messages, stop, None, **kwargs)
            final = result.generations[0].message
            assert isinstance(final, AIMessage)
            yield _chunk(
                AIMessageChunk(
                    content=final.content,
                    tool_call_chunks=_call_chunks(final.tool_calls),
                    usage_metadata=final.usage_metadata,
                    response_metadata=final.response_metadata,
                    id=final.id,
                )
            )
            return
        guard = ToolCallGuard(self._answer_tools(tools))
        last: AIMessageChunk | None = None
        answer_messages = self._answer_messages(messages)
        async for chunk in super()._astream(answer_messages, stop, None, **self._answer_kwargs(kwargs)):
            message = chunk.message
            if not isinstance(message, AIMessageChunk) or message.tool_call_chunks:
                yield chunk  # the server parsed a tool call itself
                continue
            last = message
            piece = message.content if isinstance(message.content, str) else ""
            if not piece:
                yield chunk  # role, finish reason, usage: nothing to guard
                continue
            shown = guard.feed(piece)
            if shown:
                yield _chunk(message.model_copy(update={"content": shown}))
        judgement, held = guard.finish()
        template = last if last is not None else AIMessageChunk(content="")
        if judgement.verdict is Verdict.TEXT:
            if held:
                yield _chunk(_empty_like(template, content=held))
            return
        if judgement.verdict is Verdict.CALLS:
            yield _chunk(
                _empty_like(template, content=judgement.content, tool_call_chunks=_call_chunks(judgement.calls))
            )
            return
        if not decided and self.tool_calling == "native":
            call, usage = await self._decide(messages, tools, kwargs)
            if call is not None:
                yield _chunk(
                    _empty_like(template, content="", tool_call_chunks=_call_chunks([call]), usage_metadata=usage)
                )
                return
            if usage is not None:
                yield _chunk(_empty_like(template, content="", usage_metadata=usage))
        yield _chunk(_empty_like(template, content=apology_for(messages)))

    # --- sync API: same behaviour for scripts; the server is async-only -------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = super()._generate(messages, stop, run_manager, **kwargs)
        tools = kwargs.get("tools")
        if not tools:
            return result
        generations = []
        for generation in result.generations:
            message = generation.message
            if isinstance(message, AIMessage) and not message.tool_calls and isinstance(message.content, str):
                judgement = judge(message.content, tools)
                if judgement.verdict is Verdict.CALLS:
                    message = message.model_copy(update={"content": judgement.content, "tool_calls": judgement.calls})
                elif judgement.verdict is Verdict.BROKEN_CALL:
                    message = message.model_copy(update={"content": apology_for(messages)})
            generations.append(ChatGeneration(message=message, generation_info=generation.generation_info))
        return ChatResult(generations=generations, llm_output=result.llm_output)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # Whole answers only: the guard needs the end of the text to judge it.
        result = self._generate(messages, stop, None, **kwargs)
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        yield _chunk(
            AIMessageChunk(
                content=message.content,
                tool_call_chunks=_call_chunks(message.tool_calls),
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                id=message.id,
            )
        )


def _chunk(message: AIMessageChunk) -> ChatGenerationChunk:
    return ChatGenerationChunk(message=message)


def _empty_like(template: AIMessageChunk, **update: Any) -> AIMessageChunk:
    """A chunk of the same answer (same id) carrying only `update`; usage and metadata were already sent."""
    return AIMessageChunk(id=template.id, **{"content": "", **update})


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])
