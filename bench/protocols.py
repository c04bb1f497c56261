"""What the protocol APIs cost: API-key authentication, the OpenAI and Agent Server layers over a turn,
and the stream-mode events Agent Server runs add to the event log.

- `GET /api/v1/auth/me`, sequential: with an access token, and with an API key (bearer and `x-api-key`).
  A key is looked up in the database on every request (no cache), so a revoked key fails at once.
- One turn, sequential, fresh session each, the scripted model (`LLM_PROVIDER=fake`, no model time):
  `POST /api/v1/chatbot/chat`, `POST /v1/chat/completions`, `POST /threads/{id}/runs/wait`, and
  `POST /threads/{id}/runs/stream` with `values` + `updates` + `messages-tuple`.
- The event log (PostgreSQL `run_events`, no Redis) of one run, in bytes of JSON, as the 1st and as the
  20th turn of a conversation of ~300-character messages: a chat run logs its chat events only; a run
  streamed through the Agent Server API with every mode also logs the state after each step.
- In process: `jsonable()` + `json.dumps` of a state of 20 / 100 / 400 such messages (what one `values`
  event costs the worker).

One `agentserver serve` process on the embedded PostgreSQL; writes bench/results/protocols.md.
Run: `python -m bench protocols`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import AIMessage, HumanMessage
from sqlalchemy import text

from agentserver.agent.jsonable import jsonable
from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import create_engine
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from bench._server import DATA_DIR, create_users, percentile, serving

RESULTS = Path(__file__).resolve().parent / "results" / "protocols.md"
DATABASE = "protocols_bench"
JWT_SECRET = "bench-secret-" + "x" * 40
AUTH_REQUESTS = 300
TURNS = 30
TEXT = ("The quick brown fox jumps over the lazy dog near the quiet river bank at dawn. " * 4).strip()
LONG_CONVERSATION = 20
COUNT_EVENTS = text("SELECT count(*), coalesce(sum(octet_length(data::text)), 0) FROM run_events WHERE run_id = :r")


def _chat(session_id: str) -> dict[str, str]:
    return {"session_id": session_id, "message": TEXT}


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:.1f} / {percentile(values, 0.95) * 1000:.1f}"


async def _timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - start)
    return seconds


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:200]}")
    return response


async def _auth_rows(http: httpx.AsyncClient, headers: dict[str, str], key: str) -> list[str]:
    rows = []
    for label, used in (
        ("access token (JWT, one user lookup)", headers),
        ("API key as `Authorization: Bearer`", {"Authorization": f"Bearer {key}"}),
        ("API key as `x-api-key`", {"x-api-key": key}),
    ):

        async def me(used: dict[str, str] = used) -> None:
            _ok(await http.get("/api/v1/auth/me", headers=used))

        seconds = await _timed(me, AUTH_REQUESTS)
        rows.append(f"| {label} | {AUTH_REQUESTS} | {_ms(seconds)} |")
    return rows


async def _new_session(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((_ok(await http.post("/api/v1/sessions", json={}, headers=headers))).json()["id"])


async def _turn_rows(http: httpx.AsyncClient, headers: dict[str, str], key: str) -> list[str]:
    keyed = {"x-api-key": key}

    async def chat() -> None:
        session_id = await _new_session(http, headers)
        _ok(await http.post("/api/v1/chatbot/chat", json=_chat(session_id), headers=headers))

    async def completion() -> None:
        body = {"model": "agent", "messages": [{"role": "user", "content": TEXT}]}
        _ok(await http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}))

    async def wait() -> None:
        thread = (_ok(await http.post("/threads", json={}, headers=keyed))).json()["thread_id"]
        body = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": TEXT}]}}
        _ok(await http.post(f"/threads/{thread}/runs/wait", json=body, headers=keyed))

    async def stream() -> None:
        thread = (_ok(await http.post("/threads", json={}, headers=keyed))).json()["thread_id"]
        body = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": TEXT}]},
            "stream_mode": ["values", "updates", "messages-tuple"],
        }
        _ok(await http.post(f"/threads/{thread}/runs/stream", json=body, headers=keyed))

    rows = []
    for label, call in (
        ("`POST /api/v1/chatbot/chat` (+ creating the session)", chat),
        ("`POST /v1/chat/completions` (a new chat: session created)", completion),
        ("`POST /threads/{id}/runs/wait` (+ `POST /threads`)", wait),
        ("`POST /threads/{id}/runs/stream`, values+updates+messages-tuple (+ `POST /threads`)", stream),
    ):
        await call()  # warm-up
        rows.append(f"| {label} | {TURNS} | {_ms(await _timed(call, TURNS))} |")
    return rows


async def _log_bytes(database_url: str, run_id: str) -> tuple[int, int]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(octet_length(data::text)), 0) FROM run_events WHERE run_id = :r"
                    ),
                    {"r": run_id},
                )
            ).one()
    finally:
        await engine.dispose()
    return int(row[0]), int(row[1])


async def _log_rows(http: httpx.AsyncClient, headers: dict[str, str], key: str, database_url: str) -> list[str]:
    keyed = {"x-api-key": key}
    rows = []
    for turns in (1, LONG_CONVERSATION):
        session_id = await _new_session(http, headers)
        for _ in range(turns - 1):
            _ok(
                await http.post(
                    "/api/v1/chatbot/chat", json={"session_id": session_id, "message": TEXT}, headers=headers
                )
            )
        chat = _ok(await http.post("/api/v1/chatbot/chat", json=_chat(session_id), headers=headers))
        events, size = await _log_bytes(database_url, chat.json()["run_id"])
        rows.append(f"| chat API | {turns} | {events} | {size:,} |")

        thread = (_ok(await http.post("/threads", json={}, headers=keyed))).json()["thread_id"]
        body = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": TEXT}]}}
        for _ in range(turns - 1):
            _ok(await http.post(f"/threads/{thread}/runs/wait", json=body, headers=keyed))
        streamed = _ok(
            await http.post(
                f"/threads/{thread}/runs/stream",
                json={**body, "stream_mode": ["values", "updates", "messages-tuple"]},
                headers=keyed,
            )
        )
        run_id = streamed.headers["content-location"].rsplit("/", 1)[-1]
        events, size = await _log_bytes(database_url, run_id)
        rows.append(f"| Agent Server API, values+updates+messages-tuple | {turns} | {events} | {size:,} |")
    return rows


def _jsonable_rows() -> list[str]:
    rows = []
    for count in (20, 100, 400):
        messages = [
            (HumanMessage(TEXT, id=str(uuid.uuid4())) if i % 2 == 0 else AIMessage(TEXT, id=f"lc_run--{uuid.uuid4()}"))
            for i in range(count)
        ]
        state = {"messages": messages, "tool_rounds": 0}
        n = 200 if count < 400 else 50
        start = time.perf_counter()
        for _ in range(n):
            encoded = json.dumps(jsonable(state), ensure_ascii=False)
        per_call = (time.perf_counter() - start) / n
        rows.append(f"| {count} | {per_call * 1000:.2f} | {len(encoded.encode()):,} |")
    return rows


async def _measure(url: str, database_url: str) -> tuple[list[str], list[str], list[str]]:
    settings = Settings(_env_file=None, jwt_secret_key=JWT_SECRET)
    headers = (await create_users(database_url, settings, 1))[0]
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        created = _ok(await http.post("/api/v1/auth/api-keys", json={"name": "bench"}, headers=headers))
        key = created.json()["key"]
        auth = await _auth_rows(http, headers, key)
        turns = await _turn_rows(http, headers, key)
        logs = await _log_rows(http, headers, key, database_url)
    return auth, turns, logs


def main() -> None:
    load_before = os.getloadavg()[0]
    server = EmbeddedPostgres(DATA_DIR / "postgres")
    server.start(database="postgres")
    try:
        database_url = server.ensure_database(DATABASE, recreate=True)
        migrations.upgrade(database_url)
        env = {
            "DATABASE_URL": database_url,
            "JWT_SECRET_KEY": JWT_SECRET,
            "LLM_PROVIDER": "fake",
            "MEMORY_ENABLED": "false",
            "RATE_LIMIT_ENABLED": "false",
            "SEARCH_PROVIDER": "none",
        }
        with serving(env) as url:
            auth, turns, logs = asyncio.run(_measure(url, database_url))
        server.drop_database(DATABASE)
    finally:
        server.stop()
    serialisation = _jsonable_rows()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "\n".join(
            [
                "# Protocol APIs: API keys, OpenAI and Agent Server layers, stream-mode events",
                "",
                f"`python -m bench protocols` on {platform.machine()}, {os.cpu_count()} CPUs (shared with other "
                f"work; load average before the run {load_before:.1f}), Python {platform.python_version()}. One "
                "`agentserver serve` process (embedded PostgreSQL, no Redis: the event log is `run_events`), "
                "the scripted model (no model time), requests sequential over loopback.",
                "",
                "## Authentication",
                "",
                "| credential | requests | p50 / p95 (ms) |",
                "|---|---|---|",
                *auth,
                "",
                "## One turn, end to end",
                "",
                f"Each turn on a fresh session with a message of {len(TEXT)} characters.",
                "",
                "| API | turns | p50 / p95 (ms) |",
                "|---|---|---|",
                *turns,
                "",
                "## Event log of one run",
                "",
                f"A conversation of ~{len(TEXT)}-character messages; the run measured is its last turn.",
                "",
                "| run started by | turn | events | bytes (JSON) |",
                "|---|---|---|---|",
                *logs,
                "",
                "## `values` event: serialising the state (in process)",
                "",
                "| messages in the state | jsonable + json.dumps (ms) | bytes |",
                "|---|---|---|",
                *serialisation,
                "",
            ]
        )
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
