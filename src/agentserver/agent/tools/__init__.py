"""The agent's tools and the one place that runs them safely.

Each tool is a LangChain StructuredTool with a bounded pydantic schema. `run_tool_call` turns every
failure — unknown tool, invalid arguments, an exception, a timeout — into an error text for the model,
so a failing tool never aborts the turn. Identity (user, session) never comes from model arguments:
tools that need it read the server-side turn context.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field, ValidationError

from agentserver.agent.tools.calculator import CalculatorError, evaluate
from agentserver.agent.tools.weather import OpenMeteo, WeatherError
from agentserver.agent.tools.web_search import (
    MAX_RESULTS,
    SearchBackend,
    SearchUnavailableError,
    format_results,
)
from agentserver.observability import tracing
from agentserver.observability.metrics import TOOL_CALLS, TOOL_LATENCY

log = structlog.get_logger(__name__)

TOOL_TIMEOUT_SECONDS = 20.0
MAX_TOOL_OUTPUT_CHARS = 4000
# A tool's own time limit (e.g. MCP_TOOL_TIMEOUT_SECONDS), in its metadata; TOOL_TIMEOUT_SECONDS otherwise.
TIMEOUT_METADATA_KEY = "timeout_seconds"


class ToolError(Exception):
    """A tool failed in a way its message explains to the model (e.g. an MCP server's error result)."""


class CalculatorArgs(BaseModel):
    # No example value here: small models copy examples from schemas verbatim.
    expression: str = Field(max_length=200, description="The arithmetic expression to evaluate, using numbers only")


class SearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=300, description="What to search the web for")


class WeatherArgs(BaseModel):
    location: str = Field(min_length=1, max_length=100, description="City or place name")


def build_tools(
    *, search: SearchBackend | None, weather: OpenMeteo | None, extra: Sequence[BaseTool] = ()
) -> list[BaseTool]:
    async def calculator(expression: str) -> str:
        return str(evaluate(expression))

    tools: list[BaseTool] = [
        StructuredTool.from_function(
            coroutine=calculator,
            name="calculator",
            description="Evaluate an arithmetic expression with numbers. Only for math questions.",
            args_schema=CalculatorArgs,
        )
    ]
    if search is not None:
        backend = search

        async def web_search(query: str) -> str:
            return format_results(query, await backend.search(query, MAX_RESULTS))

        tools.append(
            StructuredTool.from_function(
                coroutine=web_search,
                name="web_search",
                description="Search the web for current information. Returns titles, links and snippets.",
                args_schema=SearchArgs,
            )
        )
    if weather is not None:
        service = weather

        async def get_weather(location: str) -> str:
            return await service.current(location)

        tools.append(
            StructuredTool.from_function(
                coroutine=get_weather,
                name="get_weather",
                description="Current weather for a city or place.",
                args_schema=WeatherArgs,
            )
        )
    # Tools of other domains (documents' search_documents), built there.
    tools.extend(extra)
    return tools


# Failures whose message is written for the model; anything else is logged and reported generically.
_EXPECTED_ERRORS = (CalculatorError, WeatherError, ToolError)


async def run_tool_call(tools: Sequence[BaseTool], call: ToolCall) -> ToolMessage:
    """Run one tool call; always returns a ToolMessage (status "error" on failure)."""
    name, call_id = call["name"], call.get("id") or ""
    # Tracing on: a span per call (name, call id, outcome; never its arguments or result: they are content).
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id}
    with tracing.span(f"tool.call {name}", attributes):
        message = await _run_tool_call(tools, name, call_id, call)
        tracing.annotate({"agentserver.tool.outcome": "success" if message.status == "success" else "error"})
        if message.status != "success":
            tracing.fail("tool error")
        return message


async def _run_tool_call(tools: Sequence[BaseTool], name: str, call_id: str, call: ToolCall) -> ToolMessage:
    by_name = {tool.name: tool for tool in tools}
    tool = by_name.get(name)
    if tool is None:
        TOOL_CALLS.labels(tool="unknown", outcome="error").inc()
        available = ", ".join(sorted(by_name)) or "none"
        return ToolMessage(
            f"Error: unknown tool {name!r}. Available: {available}.", tool_call_id=call_id, name=name, status="error"
        )
    started = time.perf_counter()
    outcome, content = "success", ""
    timeout = float((tool.metadata or {}).get(TIMEOUT_METADATA_KEY, TOOL_TIMEOUT_SECONDS))
    try:
        result: Any = await asyncio.wait_for(tool.ainvoke(call.get("args") or {}), timeout)
        content = str(result)
    except ValidationError as exc:
        outcome = "error"
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        content = f"Error: invalid arguments for {name}: {problems}"
    except _EXPECTED_ERRORS as exc:
        outcome = "error"
        content = f"Error: {exc}"
    except SearchUnavailableError:
        outcome = "error"
        # Said plainly, so the answer tells the user instead of passing off the model's guesses as results.
        content = (
            "Error: web search unavailable: the search service cannot be reached (no network access). "
            "Tell the user the search could not be done; do not make up results."
        )
    except TimeoutError:
        outcome = "timeout"
        content = f"Error: {name} did not answer within {timeout:g} seconds."
    except Exception:
        outcome = "error"
        log.exception("tool.failed", tool=name)
        content = f"Error: {name} failed unexpectedly."
    finally:
        TOOL_LATENCY.labels(tool=name).observe(time.perf_counter() - started)
    TOOL_CALLS.labels(tool=name, outcome=outcome).inc()
    log.info("tool.called", tool=name, outcome=outcome, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    if len(content) > MAX_TOOL_OUTPUT_CHARS:
        content = content[:MAX_TOOL_OUTPUT_CHARS] + " …[truncated]"
    return ToolMessage(content, tool_call_id=call_id, name=name, status="error" if outcome != "success" else "success")
