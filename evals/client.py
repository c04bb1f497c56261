"""An HTTP client of the agentserver API for the eval: accounts, sessions, streamed chat with timings, memories.

Only the public API is used (what any client of a deployment sees), so the eval runs against the embedded
model and any `LLM_BASE_URL` or hosted provider alike.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

CHAT_TIMEOUT_SECONDS = 600.0
# Durable background jobs by kind and status (refreshed by the workers every second); memory extraction's kind.
_QUEUE_DEPTH = re.compile(
    r'^agentserver_jobs_queued\{[^}]*kind="memory\.extract"[^}]*\}\s+([0-9.eE+-]+)$', re.MULTILINE
)


@dataclass
class Turn:
    """One message and everything the stream said about its answer."""

    message: str
    answer: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    model: str | None = None
    ttft: float | None = None  # seconds from sending to the first answer token
    total: float = 0.0
    token_times: list[float] = field(default_factory=list)
    output_tokens: int = 0

    @property
    def generation_tokens_per_second(self) -> float | None:
        """Streamed tokens per second between the first and the last token of the answer."""
        if len(self.token_times) < 20:
            return None
        span = self.token_times[-1] - self.token_times[0]
        return (len(self.token_times) - 1) / span if span > 0 else None


class EvalClient:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=CHAT_TIMEOUT_SECONDS)
        self.headers: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def new_account(self) -> None:
        email = f"eval-{secrets.token_hex(6)}@example.com"
        password = secrets.token_urlsafe(18)
        response = await self.http.post("/api/v1/auth/register", json={"email": email, "password": password})
        response.raise_for_status()
        response = await self.http.post("/api/v1/auth/login", data={"username": email, "password": password})
        response.raise_for_status()
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def new_session(self, name: str = "eval") -> str:
        response = await self.http.post("/api/v1/sessions", json={"name": name}, headers=self.headers)
        response.raise_for_status()
        return str(response.json()["id"])

    async def say(self, session_id: str, message: str) -> Turn:
        """Send one message on the SSE endpoint and record the events with their arrival times."""
        turn = Turn(message)
        started = time.perf_counter()
        body = {"session_id": session_id, "message": message}
        event = ""
        async with self.http.stream("POST", "/api/v1/chatbot/chat/stream", json=body, headers=self.headers) as response:
            if response.status_code != 200:
                turn.error = f"HTTP {response.status_code}: {(await response.aread()).decode()[:300]}"
                return turn
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                    continue
                if not line.startswith("data: "):
                    continue
                data = json.loads(line[len("data: ") :])
                now = time.perf_counter() - started
                if event == "token":
                    if turn.ttft is None:
                        turn.ttft = now
                    turn.token_times.append(now)
                    turn.answer += data["content"]
                elif event == "tool_call":
                    turn.tool_calls.append(data)
                    # A new model answer follows the tool: time to first token is measured on the final answer.
                elif event == "tool_result":
                    turn.tool_results.append(data)
                elif event == "done":
                    usage = data.get("usage") or {}
                    turn.model = usage.get("model")
                    turn.output_tokens = int(usage.get("output_tokens") or 0)
                elif event == "error":
                    turn.error = f"{data.get('error')}: {data.get('detail')}"
        turn.total = time.perf_counter() - started
        return turn

    async def memories(self) -> list[str]:
        response = await self.http.get("/api/v1/memories", headers=self.headers)
        response.raise_for_status()
        return [str(item["text"]) for item in response.json()["memories"]]

    async def forget_all(self) -> None:
        response = await self.http.delete("/api/v1/memories", headers=self.headers)
        response.raise_for_status()

    async def queue_depth(self) -> float | None:
        """Memory extraction jobs waiting or running (from /metrics), None when the server does not say."""
        try:
            response = await self.http.get("/metrics")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        if "# TYPE agentserver_jobs_queued" not in response.text:
            return None
        return sum(float(value) for value in _QUEUE_DEPTH.findall(response.text))

    async def settle_memory(self, limit_seconds: float = 600.0, fallback_wait: float = 20.0) -> float:
        """Wait until memory extraction has caught up (queue empty twice in a row); returns the seconds waited."""
        started = time.perf_counter()
        if await self.queue_depth() is None:
            await asyncio.sleep(fallback_wait)
            return fallback_wait
        quiet = 0
        await asyncio.sleep(1.5)  # the gauge is refreshed every second: let it see the last turn's job
        while time.perf_counter() - started < limit_seconds:
            depth = await self.queue_depth()
            quiet = quiet + 1 if depth == 0 else 0
            if quiet >= 3:
                break
            await asyncio.sleep(0.5)
        return time.perf_counter() - started
