"""The agent: a LangGraph StateGraph `summarize → chat ⇄ tools`, checkpointed per chat session.

    START ─(history long enough to fold)→ summarize → chat ─(tool calls)→ tools → chat … ─(answer)→ END
      └──────────────────────────────────────────────┘   └─(tool rounds used up)→ give_up → END

The model is reached through `AgentDeps.chat_model(tools)` (retries, fallbacks and usage accounting
live in the LLM layer). Per-turn facts the server knows — user, session, long-term memory — come in as
the run's `context` (TurnContext), never from the model.

Approvals: a call of a tool in `AgentDeps.approval_tools` pauses the run with `interrupt()` (the
checkpoint keeps it across restarts); the run resumes with `Command(resume={"decision": "approve" |
"reject" | "edit", "args": {...}})`. The summary step is best effort: if its model call fails the turn goes
on with the old summary. Model usage outside the chat node (summaries) is reported on the `custom` stream
as `{"usage": {...}}`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agentserver.agent import summarize
from agentserver.agent.history import drop_dangling_tool_calls, fit_to_budget, turn_starts
from agentserver.agent.prompts import SYSTEM_TEMPLATE, SystemPrompt, render_system_prompt
from agentserver.agent.state import AgentState, TurnContext, reset_current_turn, set_current_turn
from agentserver.agent.tools import run_tool_call
from agentserver.cache import ResponseCache, request_key
from agentserver.llm.usage import usage_of
from agentserver.observability import tracing

log = structlog.get_logger(__name__)

ChatModel = Runnable[LanguageModelInput, BaseMessage]

GIVE_UP_MESSAGE = (
    "I stopped after {rounds} rounds of tool use without reaching a final answer. "
    "Please rephrase or narrow the question and I will try again."
)
TOOL_NOT_RUN = "Not run: the tool round limit for this turn was reached."
TOOL_DECLINED = "Not run: the user declined this tool call."
# Tools that act on the user's uploaded files (documents/tool.py): bound only when the session has some.
FILE_TOOLS = frozenset({"search_documents"})


@dataclass(frozen=True)
class AgentDeps:
    chat_model: Callable[[Sequence[BaseTool]], ChatModel]
    summary_model: Callable[[], ChatModel]
    tools: Sequence[BaseTool]
    max_tool_rounds: int
    summary_after_turns: int
    # Characters of history sent to the model (the system prompt is bounded separately).
    max_history_chars: int = 24_000
    # Tools whose calls wait for a human decision (approve / reject / edit) before they run.
    approval_tools: frozenset[str] = field(default_factory=frozenset)
    # CACHE_ENABLED: answers keyed by the whole model request and the user (cache.py).
    cache: ResponseCache | None = None
    model_name: str = ""
    # The per-turn context goes in its own system message right before the latest turn, so the static
    # instructions and the conversation so far form a prefix the server can cache. Off for providers that
    # only take one leading system message (Anthropic): the context is appended to the instructions.
    context_in_place: bool = True
    # The static instructions: the server's, then the assistant's own (prompts.with_instructions).
    instructions: str = SYSTEM_TEMPLATE

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


Node = Callable[..., Awaitable[dict[str, Any]]]


def traced_node(name: str, node: Node) -> Node:
    """The node inside a span `graph.node <name>` (tracing on): its LLM and tool spans nest under it.

    `functools.wraps` keeps the node's signature, from which LangGraph decides what to pass (runtime).
    """

    @functools.wraps(node)
    async def traced(*args: Any, **kwargs: Any) -> dict[str, Any]:
        with tracing.span(f"graph.node {name}", {"langgraph.node": name}, record_errors=False):
            try:
                return await node(*args, **kwargs)
            except GraphBubbleUp:
                raise  # an interrupt (approval) or a parent command: control flow, not a failure
            except Exception as exc:
                tracing.fail(type(exc).__name__)
                raise

    return traced


def build_graph(
    deps: AgentDeps, checkpointer: BaseCheckpointSaver[Any] | None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    # Bound once, on first use (an API-only process builds the graph but has no model): binding the tools
    # converts every tool's schema, which is not free on each model call.
    bound: dict[bool, ChatModel] = {}
    without_files = [tool for tool in deps.tools if tool.name not in FILE_TOOLS]

    def chat_model(has_files: bool) -> ChatModel:
        # Tools over the user's files are offered only on turns whose session has files: a small model
        # offered a tool it cannot use well tends to call it anyway.
        if has_files not in bound:
            bound[has_files] = deps.chat_model(deps.tools if has_files else without_files)
        return bound[has_files]

    async def summarize_node(state: AgentState) -> dict[str, Any]:
        folded, _ = summarize.split_for_summary(state.get("messages") or [], deps.summary_after_turns, deps.keep_turns)
        if not folded:
            return {}
        try:
            summary, answer = await summarize.extend_summary(deps.summary_model(), state.get("summary", ""), folded)
        except Exception:
            # A summary makes long chats cheaper; failing to write one must not fail the user's turn.
            # The turns stay in the history (bounded by max_history_chars) and are folded next time.
            log.exception("agent.summary_failed")
            return {}
        usage = usage_of(answer)
        get_stream_writer()({"usage": usage.as_dict()})
        return {"summary": summary, "messages": summarize.removals(folded)}

    async def chat_node(state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        context = runtime.context
        history = fit_to_budget(drop_dangling_tool_calls(state.get("messages") or []), deps.max_history_chars)
        files = await context.files() if context else ""
        prompt = render_system_prompt(
            long_term_memory=await context.long_term_memory() if context else "",
            conversation_summary=state.get("summary", ""),
            latest_user_message=_latest_user_text(history),
            files=files,
            instructions=deps.instructions,
        )
        messages = model_input(prompt, history, deps.context_in_place)
        options = dict(context.model_options) if context else {}
        cache, key = deps.cache, ""
        if cache is not None and context is not None:
            key = request_key(deps.model_name, messages, deps.tools if files else without_files, options)
            if (hit := await cache.get(context.user_id, key)) is not None:
                return {"messages": [hit]}
        response = await chat_model(bool(files)).ainvoke(messages, **options)
        if cache is not None and context is not None and isinstance(response, AIMessage):
            await cache.set(context.user_id, key, response)
        return {"messages": [response]}

    async def tools_node(state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        last = _last_ai(state)
        calls = last.tool_calls if last else []
        # Decisions first, one interrupt per call that needs one (on resume the node runs again and each
        # interrupt() returns its decision in order), then every call runs concurrently.
        decisions = {
            call["id"]: interrupt({"tool_call_id": call["id"], "tool": call["name"], "args": call["args"]})
            for call in calls
            if call["name"] in deps.approval_tools
        }

        async def run(call: ToolCall) -> ToolMessage:
            decision = decisions.get(call["id"])
            if isinstance(decision, dict):
                if decision.get("decision") == "reject":
                    return ToolMessage(TOOL_DECLINED, tool_call_id=call["id"] or "", name=call["name"], status="error")
                if decision.get("decision") == "edit" and isinstance(decision.get("args"), dict):
                    call = ToolCall(name=call["name"], args=decision["args"], id=call["id"], type="tool_call")
            return await run_tool_call(deps.tools, call)

        # The calls' tasks copy this context: tools acting for the user read the turn from it.
        token = set_current_turn(runtime.context)
        try:
            results = await asyncio.gather(*(run(call) for call in calls))
        finally:
            reset_current_turn(token)
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
    builder.add_node("summarize", traced_node("summarize", summarize_node))
    builder.add_node("chat", traced_node("chat", chat_node))
    builder.add_node("tools", traced_node("tools", tools_node))
    builder.add_node("give_up", traced_node("give_up", give_up_node))

    def route_from_start(state: AgentState) -> Literal["summarize", "chat"]:
        # Most turns have nothing to fold: they skip the summary step (a superstep of its own) entirely.
        messages = state.get("messages") or []
        return "summarize" if len(turn_starts(messages)) > deps.summary_after_turns else "chat"

    builder.add_conditional_edges(START, route_from_start, {"summarize": "summarize", "chat": "chat"})
    builder.add_edge("summarize", "chat")
    builder.add_conditional_edges("chat", route_after_chat, {"tools": "tools", "give_up": "give_up", END: END})
    builder.add_edge("tools", "chat")
    builder.add_edge("give_up", END)
    return builder.compile(checkpointer=checkpointer)
