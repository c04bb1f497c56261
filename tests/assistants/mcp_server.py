"""An MCP server for the tests, run as a script: over stdio (the default), or over streamable HTTP with
`--http PORT`. Two tools, one that hangs, and one that tells which Authorization header it got (HTTP)."""

from __future__ import annotations

import sys

import anyio
from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("test", host="127.0.0.1", port=int(sys.argv[2]) if len(sys.argv) > 2 else 8000, log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Repeat the text back."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot do that: {reason}")


@server.tool()
def big(chars: int) -> str:
    """A long result."""
    return "x" * chars


@server.tool()
async def hang() -> str:
    """Never answers."""
    await anyio.sleep_forever()
    return "unreachable"


@server.tool()
def whoami(ctx: Context) -> str:  # type: ignore[type-arg]
    """The Authorization header of the request (streamable HTTP only)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    return f"authorization: {headers.get('authorization') if headers is not None else None}"


if __name__ == "__main__":
    server.run("streamable-http" if "--http" in sys.argv else "stdio")
