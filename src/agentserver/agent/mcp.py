"""MCP servers' tools as agent tools (through langchain-mcp-adapters).

One long-lived client session per configured server, opened when the app starts and closed with it (a
stdio server is one child process, never one per call), held by a task of its own (`McpServer`) that
reopens it when a call finds it broken (a crashed process, a dropped connection). Calls from any number of
runs share a session: MCP requests carry ids, so a slow call does not hold up the others.

Each tool is renamed `<server>__<tool>` and wrapped: a call gets MCP_TOOL_TIMEOUT_SECONDS, its result is
cut to MCP_MAX_RESULT_CHARS, and a failure (an error result, a dead server, a timeout) becomes text for the
model (agent.tools.run_tool_call, like every tool's: counted, traced, never failing the turn). A server
that fails to start is logged and left out: the app and the other servers still start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from typing import Any

import structlog
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_mcp_adapters.sessions import Connection, create_session
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp.shared.exceptions import McpError
from mcp.types import CONNECTION_CLOSED

from agentserver.agent.assistants import MCP_SEPARATOR, McpServerSpec
from agentserver.agent.tools import TIMEOUT_METADATA_KEY, ToolError

log = structlog.get_logger(__name__)

RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
CLOSE_TIMEOUT_SECONDS = 10.0


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


def wrap_tool(tool: BaseTool, server: McpServer, *, timeout_seconds: float, max_chars: int) -> BaseTool:
    """`tool` named `<server>__<name>`, with its own time limit (run_tool_call enforces it) and a size cap;
    failures raise ToolError, which run_tool_call turns into text for the model (and counts as errors).
    A call goes through the server's current session (a new one after a reconnect)."""
    name = f"{server.name}{MCP_SEPARATOR}{tool.name}"
    unavailable = f"{name} is unavailable (its server cannot be reached)."

    async def call(**arguments: Any) -> str:
        current = server.tools.get(tool.name)
        if current is None:
            raise ToolError(unavailable)
        try:
            result = await current.ainvoke(arguments)
        except McpError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                server.failed()
                raise ToolError(unavailable) from None
            raise ToolError(f"{name} failed: {str(exc).strip()[:500] or 'no detail'}") from None
        except ToolException as exc:
            # The server's own error result: its message is for the model.
            raise ToolError(f"{name} failed: {str(exc).strip()[:500] or 'no detail'}") from None
        except Exception as exc:
            # A dead server or a transport error: said plainly (its text may hold URLs or paths); reconnect.
            log.warning("mcp.tool_failed", tool=name, error=type(exc).__name__)
            server.failed()
            raise ToolError(unavailable) from None
        text = _text_of(result)
        if len(text) > max_chars:
            text = text[:max_chars] + f" …[truncated: the result had {len(text)} characters]"
        return text

    return StructuredTool(
        name=name,
        description=tool.description or f"{tool.name} (MCP server {server.name})",
        args_schema=tool.args_schema,
        coroutine=call,
        metadata={TIMEOUT_METADATA_KEY: timeout_seconds, "mcp_server": server.name},
    )


class McpServer:
    """One configured server and the task that owns its session.

    anyio (under the MCP client) needs a session entered and left by the same task: that task opens it,
    holds it until a call reports it broken (`failed()`) or the app stops, closes it, and opens a new one
    after a pause that doubles up to RECONNECT_MAX_SECONDS. Calls meanwhile are told the tool is unavailable.
    """

    def __init__(self, name: str, spec: McpServerSpec, *, start_timeout_seconds: float) -> None:
        self.name = name
        self.spec = spec
        self.start_timeout_seconds = start_timeout_seconds
        self.tools: dict[str, BaseTool] = {}  # the session's tools by MCP name; empty while it is down
        self._broken = asyncio.Event()
        self._stop = asyncio.Event()
        self._first: asyncio.Future[list[BaseTool]] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return bool(self.tools)

    def failed(self) -> None:
        """A call found the session broken: reopen it."""
        self._broken.set()

    async def start(self) -> list[BaseTool]:
        """Open the first session; its tools ([] if the server cannot be started: it is then left out)."""
        self._first = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"mcp-{self.name}")
        return await asyncio.shield(self._first)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                # Closing a stdio session waits for the process (the MCP client kills it after a few seconds).
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_TIMEOUT_SECONDS)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                log.warning("mcp.close_timeout", server=self.name)

    async def _run(self) -> None:
        assert self._first is not None
        failures = 0
        while not self._stop.is_set():
            stack = AsyncExitStack()
            try:
                async with asyncio.timeout(self.start_timeout_seconds):
                    session = await stack.enter_async_context(create_session(_connection(self.spec)))
                    await session.initialize()
                    # Error results raise (ToolException), so the wrapper can say they are errors.
                    tools = await load_mcp_tools(session, server_name=self.name, handle_tool_errors=False)
            except Exception as exc:
                await _close_quietly(stack, self.name)
                log.error("mcp.server_unavailable", server=self.name, error=type(exc).__name__, detail=str(exc)[:300])
                if not self._first.done():
                    self._first.set_result([])
                    return  # never started: left out (its tools are unknown)
                failures += 1
            else:
                failures = 0
                self._broken.clear()
                self.tools = {tool.name: tool for tool in tools}
                if not self._first.done():
                    self._first.set_result(tools)
                    log.info(
                        "mcp.server_ready", server=self.name, transport=self.spec.transport, tools=list(self.tools)
                    )
                else:
                    log.info("mcp.server_reconnected", server=self.name)
                await _first_of(self._broken.wait(), self._stop.wait())
                self.tools = {}
                await _close_quietly(stack, self.name)
                if not self._stop.is_set():
                    log.warning("mcp.server_lost", server=self.name)
            if not self._stop.is_set():
                delay = min(RECONNECT_MAX_SECONDS, RECONNECT_FIRST_SECONDS * 2 ** max(0, failures - 1))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)


class McpTools:
    """Every configured server that started, and its tools by namespaced name."""

    def __init__(self) -> None:
        self.tools: dict[str, BaseTool] = {}
        self.servers: dict[str, McpServer] = {}

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
        for name, spec in servers.items():
            server = McpServer(name, spec, start_timeout_seconds=start_timeout_seconds)
            stack.push_async_callback(server.stop)
            tools = await server.start()
            if not tools:
                continue
            found.servers[name] = server
            for tool in tools:
                wrapped = wrap_tool(tool, server, timeout_seconds=call_timeout_seconds, max_chars=max_result_chars)
                found.tools[wrapped.name] = wrapped
        return found


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close_quietly(stack: AsyncExitStack, server: str) -> None:
    try:
        await stack.aclose()
    except BaseException as exc:  # a server that died already: nothing left to close
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        log.warning("mcp.close_failed", server=server, error=type(exc).__name__)
