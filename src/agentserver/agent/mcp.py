"""MCP servers' tools as agent tools (through langchain-mcp-adapters).

One long-lived client session per configured server, opened when the app starts and closed with it (a
stdio server is one child process for the app's life, never one per call). Sessions are entered and left
by the lifespan's task, which anyio's cancel scopes require. Calls from any number of runs share a
session: MCP requests carry ids, so a slow call does not hold up the others.

Each tool is renamed `<server>__<tool>` and wrapped: a call gets MCP_TOOL_TIMEOUT_SECONDS, its result is
cut to MCP_MAX_RESULT_CHARS, and a failure (an error result, a dead server, a timeout) becomes text for the
model (agent.tools.run_tool_call, like every tool's: counted, traced, never failing the turn). A server
that fails to start is logged and left out: the app and the other servers still start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import structlog
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_mcp_adapters.sessions import Connection, create_session
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp.shared.exceptions import McpError

from agentserver.agent.assistants import MCP_SEPARATOR, McpServerSpec
from agentserver.agent.tools import TIMEOUT_METADATA_KEY, ToolError

log = structlog.get_logger(__name__)


def _connection(spec: McpServerSpec) -> Connection:
    if spec.transport == "stdio":
        assert spec.command is not None
        stdio: dict[str, Any] = {"transport": "stdio", "command": spec.command, "args": list(spec.args)}
        if spec.env is not None:
            stdio["env"] = dict(spec.env)
        if spec.cwd is not None:
            stdio["cwd"] = spec.cwd
        return stdio  # type: ignore[return-value]
    assert spec.url is not None
    http: dict[str, Any] = {"transport": "streamable_http", "url": spec.url}
    if spec.headers is not None:
        http["headers"] = dict(spec.headers)
    return http  # type: ignore[return-value]


def _text_of(result: Any) -> str:
    """An MCP result (text, or LangChain content blocks) as the text the model reads."""
    if isinstance(result, str):
        return result
    if isinstance(result, list):
        parts = []
        for block in result:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict):
                parts.append(f"[{block.get('type', 'content')} omitted]")
        return "\n".join(parts)
    return str(result)


def wrap_tool(tool: BaseTool, server: str, *, timeout_seconds: float, max_chars: int) -> BaseTool:
    """`tool` named `<server>__<name>`, with its own time limit (run_tool_call enforces it) and a size cap;
    failures raise ToolError, which run_tool_call turns into text for the model (and counts as errors)."""
    name = f"{server}{MCP_SEPARATOR}{tool.name}"

    async def call(**arguments: Any) -> str:
        try:
            result = await tool.ainvoke(arguments)
        except (ToolException, McpError) as exc:
            # The server's own error (an error result, a refused request): its message is for the model.
            raise ToolError(f"{name} failed: {str(exc).strip()[:500] or 'no detail'}") from None
        except Exception as exc:
            # A dead server or a transport error: said plainly (its text may hold URLs or paths).
            log.warning("mcp.tool_failed", tool=name, error=type(exc).__name__)
            raise ToolError(f"{name} is unavailable (its server cannot be reached).") from None
        text = _text_of(result)
        if len(text) > max_chars:
            text = text[:max_chars] + f" …[truncated: the result had {len(text)} characters]"
        return text

    return StructuredTool(
        name=name,
        description=tool.description or f"{tool.name} (MCP server {server})",
        args_schema=tool.args_schema,
        coroutine=call,
        metadata={TIMEOUT_METADATA_KEY: timeout_seconds, "mcp_server": server},
    )


class McpTools:
    """The tools of every MCP server that started, by namespaced name."""

    def __init__(self) -> None:
        self.tools: dict[str, BaseTool] = {}
        self.servers: list[str] = []

    @classmethod
    async def open(
        cls,
        servers: Mapping[str, McpServerSpec],
        stack: AsyncExitStack,
        *,
        start_timeout_seconds: float,
        call_timeout_seconds: float,
        max_result_chars: int,
    ) -> McpTools:
        found = cls()
        for server, spec in servers.items():
            # A stack per server: one that fails to start is closed alone, the others keep running.
            server_stack = AsyncExitStack()
            try:
                async with asyncio.timeout(start_timeout_seconds):
                    session = await server_stack.enter_async_context(create_session(_connection(spec)))
                    await session.initialize()
                    # Error results raise (ToolException), so the wrapper can say they are errors.
                    tools = await load_mcp_tools(session, server_name=server, handle_tool_errors=False)
            except Exception as exc:
                await _close_quietly(server_stack, server)
                log.error("mcp.server_unavailable", server=server, error=type(exc).__name__, detail=str(exc)[:300])
                continue
            stack.push_async_callback(_close_quietly, server_stack, server)
            for tool in tools:
                wrapped = wrap_tool(tool, server, timeout_seconds=call_timeout_seconds, max_chars=max_result_chars)
                found.tools[wrapped.name] = wrapped
            found.servers.append(server)
            log.info("mcp.server_ready", server=server, transport=spec.transport, tools=[t.name for t in tools])
        return found


async def _close_quietly(stack: AsyncExitStack, server: str) -> None:
    try:
        await stack.aclose()
    except BaseException as exc:  # a server that died already: nothing left to close
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        log.warning("mcp.close_failed", server=server, error=type(exc).__name__)
