"""The agent: a LangGraph StateGraph `summarize → chat ⇄ tools`, checkpointed per chat session.

    START → summarize → chat ─(tool calls)→ tools → chat … ─(answer)→ END
                          └─(tool rounds used up)→ give_up → END

The model is reached through `AgentDeps.chat_model(tools)` (retries, fallbacks and usage accounting
live in the LLM layer). Per-turn facts the server knows — user, session, long-term memory — come in as
the run's `context` (TurnContext), never from the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agentserver.agent import summarize
from agentserver.agent.history import drop_dangling_tool_calls, fit_to_budget, turn_starts
from agentserver.agent.prompts import SystemPrompt, render_system_prompt
from agentserver.agent.state import AgentState, TurnContext
from agentserver.agent.tools import run_tool_call

ChatModel = Runnable[LanguageModelInput, BaseMessage]

GIVE_UP_MESSAGE = (
    "I stopped after {rounds} rounds of tool use without reaching a final answer. "
    "Please rephrase or narrow the question and I will try again."
)
TOOL_NOT_RUN = "Not run: the tool round limit for this turn was reached."


@dataclass(frozen=True)
class AgentDeps:
    chat_model: Callable[[Sequence[BaseTool]], ChatModel]
    summary_model: Callable[[], ChatModel]
    tools: Sequence[BaseTool]
    max_tool_rounds: int
    summary_after_turns: int
    # Characters of history sent to the model (the system prompt is bounded separately).
    max_history_chars: int = 24_000
    # The per-turn context goes in its own system message right before the latest turn, so the static
    # instructions and the conversation so far form a prefix the server can cache. Off for providers that
    # only take one leading system message (Anthropic): the context is appended to the instructions.
    context_in_place: bool = True

    @property
    def keep_turns(self) -> int:
        return max(2, self.summary_after_turns // 2)


def _last_ai(state: AgentState) -> AIMessage | None:
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    return last if isinstance(last, AIMessage) else None


def _latest_user_text(messages: Sequence[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.content if isinstance(message.content, str) else ""
    return ""


def model_input(prompt: SystemPrompt, history: Sequence[AnyMessage], context_in_place: bool) -> list[BaseMessage]:
    """[instructions, earlier turns…, context, latest turn…]: static first, so the cached prefix is the longest."""
    if not context_in_place:
        return [SystemMessage(prompt.joined()), *history]
    starts = turn_starts(history)
    cut = starts[-1] if starts else len(history)
    return [SystemMessage(prompt.instructions), *history[:cut], SystemMessage(prompt.context), *history[cut:]]


def build_graph(
    deps: AgentDeps, checkpointer: BaseCheckpointSaver[Any] | None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    async def summarize_node(state: AgentState) -> dict[str, Any]:
        folded, _ = summarize.split_for_summary(state.get("messages") or [], deps.summary_after_turns, deps.keep_turns)
        if not folded:
            return {}
        summary = await summarize.extend_summary(deps.summary_model(), state.get("summary", ""), folded)
        return {"summary": summary, "messages": summarize.removals(folded)}

    async def chat_node(state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        context = runtime.context
        history = fit_to_budget(drop_dangling_tool_calls(state.get("messages") or []), deps.max_history_chars)
        prompt = render_system_prompt(
            long_term_memory=await context.long_term_memory() if context else "",
            conversation_summary=state.get("summary", ""),
            latest_user_message=_latest_user_text(history),
        )
        response = await deps.chat_model(deps.tools).ainvoke(model_input(prompt, history, deps.context_in_place))
        return {"messages": [response]}

    async def tools_node(state: AgentState) -> dict[str, Any]:
        last = _last_ai(state)
        calls = last.tool_calls if last else []
        results = await asyncio.gather(*(run_tool_call(deps.tools, call) for call in calls))
        return {"messages": list(results), "tool_rounds": state.get("tool_rounds", 0) + 1}

    async def give_up_node(state: AgentState) -> dict[str, Any]:
        last = _last_ai(state)
        # Answer the pending calls so the history stays valid for the provider on the next turn.
        skipped = [
            ToolMessage(TOOL_NOT_RUN, tool_call_id=call["id"] or "", name=call["name"], status="error")
            for call in (last.tool_calls if last else [])
        ]
        final = AIMessage(
            GIVE_UP_MESSAGE.format(rounds=deps.max_tool_rounds), response_metadata={"finish_reason": "max_tool_rounds"}
        )
        return {"messages": [*skipped, final]}

    def route_after_chat(state: AgentState) -> Literal["tools", "give_up", "__end__"]:
        last = _last_ai(state)
        if last is None or not last.tool_calls:
            return "__end__"
        if state.get("tool_rounds", 0) >= deps.max_tool_rounds:
            return "give_up"
        return "tools"

    builder = StateGraph(AgentState, context_schema=TurnContext)
    builder.add_node("summarize", summarize_node)
    builder.add_node("chat", chat_node)
    builder.add_node("tools", tools_node)
    builder.add_node("give_up", give_up_node)
    builder.add_edge(START, "summarize")
    builder.add_edge("summarize", "chat")
    builder.add_conditional_edges("chat", route_after_chat, {"tools": "tools", "give_up": "give_up", END: END})
    builder.add_edge("tools", "chat")
    builder.add_edge("give_up", END)
    return builder.compile(checkpointer=checkpointer)
