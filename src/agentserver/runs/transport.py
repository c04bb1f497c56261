"""Run events over the wire: Server-Sent Events (with `id:` and keep-alives) and WebSocket frames."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from agentserver.observability.metrics import ACTIVE_STREAMS
from agentserver.runs.events import RunEvent

KEEP_ALIVE = ": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_response(
    frames: AsyncIterator[RunEvent | None],
    *,
    headers: dict[str, str] | None = None,
    on_abandon: Callable[[], None] | None = None,
) -> StreamingResponse:
    """Stream events as SSE. `on_abandon` is called when the client goes away before the stream's last
    event; it must not await (the response is being cancelled): spawn a task for any I/O."""

    async def body() -> AsyncIterator[str]:
        ACTIVE_STREAMS.labels(transport="sse").inc()
        finished = False
        try:
            async for event in frames:
                if event is None:
                    yield KEEP_ALIVE
                    continue
                yield event.sse()
                finished = event.terminal
        finally:
            ACTIVE_STREAMS.labels(transport="sse").dec()
            if not finished and on_abandon is not None:
                on_abandon()

    return StreamingResponse(body(), media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})})


def parse_last_event_id(value: str | None) -> int:
    """`Last-Event-ID` as the run's event seq; anything else means "from the start"."""
    if value is None or not value.strip().isdigit() or len(value.strip()) > 9:
        return 0
    return int(value.strip())
