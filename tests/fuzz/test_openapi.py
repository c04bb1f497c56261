"""Property-based fuzzing of every operation in the OpenAPI schema, in process, as a logged-in user.

The schema is read from the app itself, so new endpoints are fuzzed as soon as they are routed.
Schemathesis drives the app on its own event loop (its ASGI client), so the app here is one of its
own, on a database of its own (real commits: the fuzzer creates users, sessions and messages).
Bounds and checks: tests/fuzz/schemathesis.toml. Every failing operation is reported, not only the
first one.

(Schemathesis' own pytest plugin, `from_fixture(...).parametrize()`, does not run on this pytest:
it sets `request.node._nodeid`, which pytest no longer has. Hence the explicit loop.)
"""

from __future__ import annotations

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

CONFIG = schemathesis.Config.from_path(Path(__file__).with_name("schemathesis.toml"))
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


def _fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: schemathesis.GenerationMode, headers: dict[str, str]
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
        case.call_and_validate(headers=headers)

    run()


def test_no_server_errors_and_responses_match_the_schema(fuzz_app: FastAPI, auth_headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=CONFIG)
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
        for mode in modes:
            try:
                _fuzz(operation, mode, auth_headers)
            except Unsatisfiable:
                continue  # no way to make an invalid request (e.g. negative mode, no parameters at all)
            # Schemathesis' FailureGroup is a BaseExceptionGroup: caught explicitly, to report every operation.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"--- {operation.label} ({mode.value}) ---\n{str(exc)[:REPORT_CHARS]}")
    assert fuzzed > 0
    assert not failures, f"{len(failures)} failing operation/mode pairs:\n\n" + "\n\n".join(failures)
