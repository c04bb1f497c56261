"""Property-based fuzzing of every operation in the OpenAPI schema, in process, logged in and anonymous.

The schema is read from the app itself, so new endpoints are fuzzed as soon as they are routed. One
generated string in four, in every parameter and every body field, comes from a dictionary of hostile
values (NUL, controls, separators, bidi, noncharacters...; see schemathesis.toml).
Schemathesis drives the app on its own event loop (its ASGI client), so the app here is one of its
own, on a database of its own (real commits: the fuzzer creates users, sessions and messages).
Bounds and checks: tests/fuzz/schemathesis.toml. Every failing operation is reported, not only the
first one.

(Schemathesis' own pytest plugin, `from_fixture(...).parametrize()`, does not run on this pytest:
it sets `request.node._nodeid`, which pytest no longer has. Hence the explicit loop.)
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.python import asgi

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.main import create_app
from tests.fuzz.openapi_fields import body_string_fields

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
CONFIG = schemathesis.Config.from_path(CONFIG_FILE)
PASSWORD = "correct horse battery staple"
REPORT_CHARS = 2500  # per failure: reproductions of oversized bodies are megabytes long
# Would delete the fuzzing user mid-run; covered by tests/auth.
EXCLUDED = {("DELETE", "/api/v1/auth/me")}


@pytest.fixture(scope="module")
def fuzz_app(make_database: Callable[[str], str], settings: Settings) -> Iterator[FastAPI]:
    url = make_database("agentserver_fuzz")
    migrations.upgrade(url)
    app = create_app(settings.model_copy(update={"database_url": url, "search_provider": "none"}))
    yield app
    # Stop the app (started by schemathesis' client) before its database is dropped.
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def auth_headers(fuzz_app: FastAPI) -> dict[str, str]:
    email = f"fuzz-{uuid.uuid4().hex[:8]}@example.com"
    with asgi.get_client(cast(Any, fuzz_app)) as client:
        created = client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert created.status_code == 201, created.text
        login = client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def fuzz_config(document: dict[str, Any]) -> schemathesis.Config:
    """schemathesis.toml, plus the hostile dictionary bound to every body string field of `document`.

    The file's type-wide binding reaches parameters (path, query, header) only; body fields need a
    binding each (`body.<name>`), so they are listed from the schema rather than by hand.
    """
    data = tomllib.loads(CONFIG_FILE.read_text())
    binding = data["generation"]["dictionaries"]["string"]
    data["parameters"] = {f"body.{name}": dict(binding) for name in sorted(body_string_fields(document))}
    return schemathesis.Config.from_dict(data)


def _fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: schemathesis.GenerationMode,
    headers: dict[str, str] | None,
) -> None:
    generation = CONFIG.projects.default.generation

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=generation.max_examples or 25,
        derandomize=generation.deterministic,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=headers) if headers is not None else case.call_and_validate()

    run()


def test_no_server_errors_and_responses_match_the_schema(fuzz_app: FastAPI, auth_headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=fuzz_config(fuzz_app.openapi()))
    modes = CONFIG.projects.default.generation.modes or [schemathesis.GenerationMode.POSITIVE]
    failures: list[str] = []
    fuzzed = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"--- invalid operation in the schema ---\n{result.err()}")
            continue
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        fuzzed += 1
        # Logged in, and as anyone: both the auth checks and what lies behind them get hostile input.
        for caller, headers in (("logged in", auth_headers), ("anonymous", None)):
            for mode in modes:
                try:
                    _fuzz(operation, mode, headers)
                except Unsatisfiable:
                    continue  # no way to make an invalid request (e.g. negative mode, no parameters at all)
                # Schemathesis' FailureGroup is a BaseExceptionGroup: caught explicitly, to report every operation.
                except (Exception, BaseExceptionGroup) as exc:
                    label = f"{operation.label} ({mode.value}, {caller})"
                    failures.append(f"--- {label} ---\n{str(exc)[:REPORT_CHARS]}")
    assert fuzzed > 0
    assert not failures, f"{len(failures)} failing operation/mode pairs:\n\n" + "\n\n".join(failures)
