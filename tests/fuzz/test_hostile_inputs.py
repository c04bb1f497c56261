"""Hostile bytes in every string field of every operation, logged in and anonymous: never a 5xx.

Schemathesis (test_openapi.py) generates what JSON and TOML can spell. This sweep sends what they cannot,
byte for byte: lone surrogates (as JSON escapes and as the UTF-8-style bytes json.loads lets through),
invalid and overlong UTF-8, NUL, C0/C1 controls, and overlong values — in JSON and form bodies, query
strings, path segments and headers. Every operation comes from the app's own OpenAPI document (plus the
routes outside it), so a new endpoint is swept as soon as it is routed; each request carries exactly one
hostile field, the others hold plausible values (the caller's own session id, an email, ...).

Deterministic and exhaustive over the catalogue below (a few thousand requests in process, seconds).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.main import create_app
from tests.chat.conftest import serving
from tests.factories import DEFAULT_PASSWORD, auth_headers_for, create_user
from tests.fuzz.openapi_fields import Field, Operation, operations
from tests.harness import StateInjector

# str values are encoded per location (JSON escapes in JSON, UTF-8 with surrogatepass elsewhere);
# bytes values go on the wire exactly as they are (percent-encoded in URLs and forms).
# Padded with text, so values pass the length rules (a password's 8 characters) and reach what lies behind.
HOSTILE: dict[str, str | bytes] = {
    "nul": "text with a \x00 nul",
    "only-nul": "\x00",
    "lone-high-surrogate": "text with \ud800 a lone surrogate",
    "lone-low-surrogate": "text with \udfff a lone surrogate",
    "reversed-surrogate-pair": "text with \ude00\ud83d a reversed pair",
    "utf8-encoded-surrogate": b"text with \xed\xa0\x80 an encoded surrogate",
    "invalid-utf8": b"text with \xff\xfe\xfd invalid utf-8",
    "truncated-utf8": b"text with truncated utf-8 \xe2\x82",
    "overlong-utf8-slash": b"text with \xc0\xaf an overlong slash",
    "overlong-utf8-nul": b"text with \xc0\x80 an overlong nul",
    "raw-c0-controls": b"text with raw controls " + bytes(range(1, 32)) + b"\x7f",
    "c0-controls": "text with controls " + "".join(chr(c) for c in range(1, 32)) + "\x7f",
    "c1-and-separators": "text with \x85\x9b\u2028\u2029 separators",
    "bidi-zero-width-bom": "text with \u202e\u200b\ufeff invisibles",
    "non-bmp-and-noncharacters": "text with \U0001f600\U0010ffff\uffff\ufffe",
    "overlong-value": "x" * 100_000,
}
# httpx refuses URLs past 64 KiB (so do servers, sooner): in a URL, overlong is 8 KiB (x3 when percent-encoded).
URL_OVERLONG = "x" * 8_000
# Routes outside the OpenAPI document, and a path nothing matches.
EXTRA_OPERATIONS = [Operation("GET", "/"), Operation("GET", "/metrics"), Operation("GET", "/static/{asset}")]
EXTRA_OPERATIONS[-1].fields.append(Field("path", "asset", {"type": "string"}, True))
# Would delete the sweeping user mid-run; covered by tests/auth.
EXCLUDED = {("DELETE", "/api/v1/auth/me")}
# Every request also gets these, hostile one at a time.
HEADER_FIELDS = [
    Field("header", "X-Request-ID", {"type": "string"}, False),
    Field("header", "X-Api-Key", {"type": "string"}, False),  # a credential outside the OpenAPI security schemes
]
REPORT_LIMIT = 40


def _wire(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _percent(value: str | bytes) -> str:
    return "".join(f"%{byte:02X}" for byte in _wire(value))


def _json_value(value: Any) -> bytes:
    # Raw bytes between quotes: exactly what a client could put on the wire (invalid JSON included).
    return b'"' + value + b'"' if isinstance(value, bytes) else json.dumps(value).encode()


@dataclass
class Caller:
    headers: dict[str, str]
    session_id: str
    email: str


def _plausible(f: Field, caller: Caller) -> Any:
    """A value the endpoint would accept, so the request gets past the other fields."""
    known = {
        "session_id": caller.session_id,
        "thread_id": caller.session_id,  # Agent Server API threads are sessions
        "username": caller.email,
        "password": DEFAULT_PASSWORD,
    }
    if f.name in known:
        return known[f.name]
    schema = f.schema
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if schema.get("format") == "email":
        return f"sweep-{uuid.uuid4().hex[:10]}@example.com"
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    return "plausible text"


def _request(operation: Operation, hostile: Field, value: str | bytes, caller: Caller | None) -> httpx.Request:
    plausible = Caller({}, str(uuid.uuid4()), "nobody@example.com") if caller is None else caller
    if hostile.location in ("path", "query") and value == HOSTILE["overlong-value"]:
        value = URL_OVERLONG
    path = operation.path
    query, body_fields, headers = [], [], dict(caller.headers if caller else {})
    for f in operation.fields:
        is_hostile = f is hostile
        if not is_hostile and not f.required and f.location not in ("path",):
            continue
        given: Any = value if is_hostile else _plausible(f, plausible)
        if f.location == "path":
            path = path.replace("{" + f.name + "}", _percent(given) if is_hostile else str(given))
        elif f.location == "query":
            query.append(f"{f.name}={_percent(given) if is_hostile else _percent(str(given))}")
        elif f.location in ("json", "form"):
            body_fields.append((f, given, is_hostile))
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    if hostile.location == "header":
        raw_headers.append((hostile.name.encode(), _wire(value)))
    content: bytes | None = None
    if operation.body == "json":
        members = [json.dumps(f.name).encode() + b": " + _json_value(given) for f, given, _ in body_fields]
        content = b"{" + b", ".join(members) + b"}"
        raw_headers.append((b"content-type", b"application/json"))
    elif operation.body == "form":
        content = "&".join(f"{f.name}={_percent(given if h else str(given))}" for f, given, h in body_fields).encode()
        raw_headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    url = "http://testserver" + path + ("?" + "&".join(query) if query else "")
    return httpx.Request(operation.method, url, headers=raw_headers, content=content)


@pytest.fixture(scope="module")
async def sweep_app(make_database: Callable[[str], str], settings: Settings) -> AsyncIterator[tuple[FastAPI, Any]]:
    url = make_database("agentserver_hostile")
    await asyncio.to_thread(migrations.upgrade, url)
    app = create_app(settings.model_copy(update={"database_url": url, "search_provider": "none"}))
    async with app.router.lifespan_context(app) as state:
        yield app, dict(state or {})


async def _caller(http: httpx.AsyncClient, state: dict[str, Any]) -> Caller:
    async with state["sessionmaker"]() as session:
        user = await create_user(session)
        await session.commit()
    headers = auth_headers_for(state["settings"], user)
    created = await http.post("/api/v1/sessions", json={"name": "sweep"}, headers=headers)
    assert created.status_code == 201, created.text
    return Caller(headers, str(created.json()["id"]), user.email)


async def test_no_hostile_byte_in_any_field_is_a_server_error(sweep_app: tuple[FastAPI, Any]) -> None:
    app, state = sweep_app
    transport = httpx.ASGITransport(app=StateInjector(app, state))
    failures: list[str] = []
    sent = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as http:
        caller = await _caller(http, state)
        targets = [op for op in operations(app.openapi()) if (op.method, op.path) not in EXCLUDED]
        for operation in targets + EXTRA_OPERATIONS:
            string_fields = [f for f in operation.fields if f.is_string] + HEADER_FIELDS
            for who in (caller, None):
                for hostile_field in string_fields:
                    for name, value in HOSTILE.items():
                        request = _request(operation, hostile_field, value, who)
                        response = await http.send(request)
                        sent += 1
                        if response.status_code >= 500:
                            failures.append(
                                f"{operation.label} {hostile_field.location}.{hostile_field.name}={name} "
                                f"({'logged in' if who else 'anonymous'}): {response.status_code} {response.text[:200]}"
                            )

    assert sent > 1000
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures[:REPORT_LIMIT])


# WebSocket frames: as the first frame (authentication) and as a message frame once authenticated.
HOSTILE_FRAMES: dict[str, str | bytes] = {
    "binary": b'{"message": "hi"}',
    "invalid-json": "{",
    "not-an-object": "[1, 2]",
    "lone-surrogate": '{"message": "text \\ud800", "token": "text \\ud800"}',
    "nul": '{"message": "text \\u0000 nul", "token": "a\\u0000b"}',
    "controls": json.dumps({"message": "".join(chr(c) for c in range(1, 32)), "token": "\x01"}),
    "wrong-types": '{"message": 1, "token": 2}',
    "overlong": json.dumps({"message": "x" * 200_000, "token": "x" * 200_000}),
}
# What a hostile frame may end in: an event (error, or done when the text is merely odd) or one of these.
ACCEPTABLE_CLOSE_CODES = {1003, 1007, 1008, 1009}


async def _outcome(ws: Any) -> str:
    """`event:<name>` for the next event, `close:<code>` when the server closes instead."""
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            if frame["event"] in ("error", "done"):
                return f"event:{frame['event']}"
    except ConnectionClosed as closed:
        return f"close:{closed.rcvd.code if closed.rcvd else 'none'}"


async def test_no_hostile_websocket_frame_is_a_server_error(sweep_app: tuple[FastAPI, Any]) -> None:
    app, state = sweep_app
    asgi = StateInjector(app, state)
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        caller = await _caller(http, state)
    token = caller.headers["Authorization"].removeprefix("Bearer ")
    outcomes: dict[str, str] = {}
    async with serving(asgi) as url:
        ws_url = url.replace("http://", "ws://") + f"/api/v1/chatbot/ws/{caller.session_id}"
        for name, frame in HOSTILE_FRAMES.items():
            async with websockets.connect(ws_url, max_size=None) as ws:
                await ws.send(frame)
                outcomes[f"first frame {name}"] = await _outcome(ws)
            async with websockets.connect(ws_url + f"?token={token}", max_size=None) as ws:
                await ws.send(frame)
                outcomes[f"message frame {name}"] = await _outcome(ws)

    unacceptable = {
        frame: outcome
        for frame, outcome in outcomes.items()
        if not (outcome.startswith("event:") or outcome.removeprefix("close:") in map(str, ACCEPTABLE_CLOSE_CODES))
    }
    assert unacceptable == {}
    assert outcomes["message frame binary"] == "close:1003"
    assert outcomes["message frame lone-surrogate"] == "event:error"
