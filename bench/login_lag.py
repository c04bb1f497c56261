"""Event-loop lag while 8 logins run at once: argon2id in worker threads vs hashing on the loop.

The real app (real lifespan, embedded PostgreSQL under .data/bench, production argon2id cost:
t=3, 64 MiB, 4 lanes) is driven in-process through httpx's ASGI transport. While 8 concurrent
`POST /api/v1/auth/login` requests run, a ticker sleeps 5 ms in a loop; how much later than 5 ms
each tick wakes up is the lag every other request on this worker would see.

- threaded: the app's PasswordHasher (asyncio.to_thread), what production runs.
- on-loop baseline: the same hasher with its async methods calling argon2 directly on the loop
  (what bcrypt-on-the-loop in the guide does).

Writes bench/results/login_lag.md. Run: `python -m bench login_lag`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from fastapi import FastAPI

from agentserver.auth.dependencies import get_password_hasher
from agentserver.auth.security import PasswordHasher
from agentserver.config import Environment, Settings
from agentserver.kit import migrations
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.main import create_app

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "login_lag.md"
DATA_DIR = ROOT / ".data" / "bench"
CONCURRENT_LOGINS = 8
ROUNDS = 3
TICK_SECONDS = 0.005
EMAIL = "bench@example.com"
PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway account in a throwaway database


class OnLoopHasher(PasswordHasher):
    """The baseline: argon2 runs on the event loop thread and blocks everything else meanwhile."""

    async def hash(self, password: str) -> str:
        return self._hash(password)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        return self._verify(password, password_hash)


class _WithLifespanState:
    """What uvicorn does: copy the lifespan state into every request's scope."""

    def __init__(self, app: FastAPI, state: dict[str, object]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        scope["state"] = dict(self.state)
        await self.app(scope, receive, send)  # type: ignore[arg-type]


async def _ticker(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(TICK_SECONDS)
        lags.append(loop.time() - start - TICK_SECONDS)


async def _measure(login: Callable[[], Awaitable[httpx.Response]]) -> tuple[list[float], list[float]]:
    """(ticker lags, wall time of each round of 8 concurrent logins), in seconds."""
    lags: list[float] = []
    walls: list[float] = []
    for _ in range(ROUNDS):
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(stop, lags))
        await asyncio.sleep(TICK_SECONDS * 4)  # the ticker is running before the logins start
        started = time.perf_counter()
        responses = await asyncio.gather(*(login() for _ in range(CONCURRENT_LOGINS)))
        walls.append(time.perf_counter() - started)
        stop.set()
        await ticker
        assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    return lags, walls


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(name: str, lags: list[float], walls: list[float]) -> str:
    ms = [lag * 1000 for lag in lags]
    return (
        f"| {name} | {len(ms)} | {_percentile(ms, 0.5):.1f} | {_percentile(ms, 0.99):.1f} | {max(ms):.1f} "
        f"| {statistics.median(walls) * 1000:.0f} |"
    )


async def _run(settings: Settings) -> tuple[list[str], float]:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        transport = httpx.ASGITransport(app=_WithLifespanState(app, dict(state)))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            created = await client.post("/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD})
            assert created.status_code == 201, created.text

            async def login() -> httpx.Response:
                return await client.post("/api/v1/auth/login", data={"username": EMAIL, "password": PASSWORD})

            hasher: PasswordHasher = state["password_hasher"]
            started = time.perf_counter()
            await hasher.verify(PASSWORD, await hasher.hash(PASSWORD))
            single_verify = time.perf_counter() - started

            await login()  # warm-up: connections, first-request imports
            threaded = await _measure(login)

            cost = {"time_cost": settings.password_hash_time_cost, "memory_kib": settings.password_hash_memory_kib}
            unbounded = PasswordHasher(**cost, max_concurrent=CONCURRENT_LOGINS)
            app.dependency_overrides[get_password_hasher] = lambda: unbounded
            threaded_unbounded = await _measure(login)

            on_loop_hasher = OnLoopHasher(**cost)
            app.dependency_overrides[get_password_hasher] = lambda: on_loop_hasher
            on_loop = await _measure(login)
            app.dependency_overrides.clear()
    rows = [
        _row(f"threaded, {os.cpu_count()} hashing slots (production default)", *threaded),
        _row(f"threaded, {CONCURRENT_LOGINS} hashing slots (no queue)", *threaded_unbounded),
        _row("on-loop baseline", *on_loop),
    ]
    return rows, single_verify


def main() -> None:
    load_before = os.getloadavg()[0]
    server = EmbeddedPostgres(DATA_DIR / "postgres")
    server.start(database="postgres")
    try:
        url = server.ensure_database("login_lag_bench", recreate=True)
        migrations.upgrade(url)
        settings = Settings(
            _env_file=None,
            environment=Environment.development,
            database_url=url,
            agentserver_data_dir=DATA_DIR,
            log_level="WARNING",
            llm_provider="fake",
            memory_enabled=False,
            rate_limit_enabled=False,
        )
        rows, single_verify = asyncio.run(_run(settings))
        server.drop_database("login_lag_bench")
    finally:
        server.stop()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "\n".join(
            [
                "# Event-loop lag during concurrent logins",
                "",
                f"`python -m bench login_lag` on {platform.machine()}, {os.cpu_count()} CPUs, "
                f"Python {platform.python_version()}. argon2id t={settings.password_hash_time_cost}, "
                f"m={settings.password_hash_memory_kib} KiB, p=4 (the production default); one hash+verify "
                f"took {single_verify * 1000:.0f} ms. Load average before the run: {load_before:.1f} "
                "(other work shares the machine).",
                "",
                f"{CONCURRENT_LOGINS} concurrent `POST /api/v1/auth/login` (real app, real PostgreSQL), "
                f"{ROUNDS} rounds per mode. Lag = how late a {TICK_SECONDS * 1000:.0f} ms `asyncio.sleep` ticker "
                "wakes up while the logins run: the delay every other request on the worker sees.",
                "",
                "| mode | ticks | lag p50 (ms) | lag p99 (ms) | lag max (ms) | 8 logins wall, median (ms) |",
                "|---|---|---|---|---|---|",
                *rows,
                "",
                "On the loop, a tick waits for whole argon2 runs back to back (the max is about the whole",
                "burst). In worker threads the loop keeps ticking; what lag remains is the loop thread losing",
                "CPU to the hashing threads on few (here shared, busy) cores, which the hashing slots (one per",
                "core, `PasswordHasher(max_concurrent=...)`) reduce while also capping memory at",
                "slots x 64 MiB. Figures are noisy on a shared machine: compare modes within one run.",
                "",
            ]
        )
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
