"""A stdio MCP server for the tests (run as a script by the app under test): two tools, and one that hangs."""

from __future__ import annotations

import anyio
from mcp.server.fastmcp import FastMCP

server = FastMCP("test")


@server.tool()
def echo(text: str) -> str:
    """Repeat the text back."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def hang() -> str:
    """Never answers."""
    await anyio.sleep_forever()
    return "unreachable"


if __name__ == "__main__":
    server.run()  # stdio
