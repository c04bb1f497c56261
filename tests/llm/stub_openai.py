"""A local stub of the OpenAI chat completions API (stream and non-stream, tool calls), run by uvicorn.

Each model has a queue of scripted replies; a request for a model takes the next one. Every request is
recorded (model, JSON body, arrival time) so tests can assert what the client sent, e.g. that the
fallback request carried the tools.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """One scripted answer: an HTTP error, or text / tool calls (after an optional delay)."""

    status: int = 200
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    prompt_tokens: int = 11
    completion_tokens: int = 7
    token_delay: float = 0.0  # seconds between streamed words (a slow model)


def error(status: int, **headers: str) -> Reply:
    return Reply(status=status, headers={k.replace("_", "-"): v for k, v in headers.items()})


def text(value: str, **kwargs: Any) -> Reply:
    return Reply(text=value, **kwargs)


def tool_call(name: str, args: dict[str, Any], **kwargs: Any) -> Reply:
    return Reply(tool_calls=[(name, args)], **kwargs)


@dataclass
class Recorded:
    model: str
    body: dict[str, Any]
    at: float

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.body.get("tools") or ()]


Responder = Callable[[dict[str, Any]], Reply]


class StubOpenAI:
    """`responder`, when set, answers every request that has no scripted reply (it sees the JSON body);
    otherwise a model answers `default` once its script is empty."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply(text="default answer")
        self.responder: Responder | None = None
        self.replies: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[Recorded] = []
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def script(self, model: str, *replies: Reply) -> None:
        self.replies[model].extend(replies)

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()
        self.responder = None

    def requests_for(self, model: str) -> list[Recorded]:
        return [r for r in self.requests if r.model == model]

    # --- protocol -----------------------------------------------------------------------------------
    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "stub-default", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        model = body["model"]
        self.requests.append(Recorded(model, body, time.monotonic()))
        queue = self.replies[model]
        if queue:
            reply = queue.popleft()
        elif self.responder is not None:
            reply = self.responder(body)
        else:
            reply = self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return JSONResponse(
                {"error": {"message": f"stub error {reply.status}", "type": "stub", "code": reply.status}},
                status_code=reply.status,
                headers=reply.headers,
            )
        if body.get("stream"):
            return StreamingResponse(self._stream(model, reply, body), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(reply.tool_calls)
            ]
        return JSONResponse(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": f"{model}-2026-01-01",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                },
            }
        )

    async def _stream(self, model: str, reply: Reply, body: dict[str, Any]) -> AsyncIterator[str]:
        def event(delta: dict[str, Any], finish: str | None = None) -> str:
            chunk = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": f"{model}-2026-01-01",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk)}\n\n"

        yield event({"role": "assistant", "content": ""})
        for i, word in enumerate(reply.text.split(" ") if reply.text else []):
            await asyncio.sleep(reply.token_delay)
            yield event({"content": word if i == 0 else " " + word})
        for i, (name, args) in enumerate(reply.tool_calls):
            yield event(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": f"call_{i}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                    ]
                }
            )
        yield event({}, "tool_calls" if reply.tool_calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            }
            final = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": f"{model}-2026-01-01",
                "choices": [],
                "usage": usage,
            }
            yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"

    # --- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, lifespan="off", access_log=False, timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
