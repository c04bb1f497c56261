"""What one chat turn costs the server: CPU per turn, turns/s, latency percentiles, statements per turn.

The harness of issue 14. Everything runs on this machine over loopback:

- PostgreSQL: the embedded server under .data/bench (with pg_stat_statements loaded, for statement counts);
- Redis (REDIS_TEST_URL) in the scenarios that say so;
- the model: the OpenAI-protocol stub of tests/llm, instant (or with a set time to first token and a
  token rate), on an event loop and thread of its own in this process;
- the server: `agentserver serve` in a process of its own (`--workers 2` for the two-process scenario).

For each scenario and repetition it records turns/s, turn latency p50/p95/p99, time to first token (streams),
**server CPU milliseconds per turn** (utime+stime of the server's process tree from /proc, before and after:
the figure least disturbed by a shared machine), DB statements per turn (pg_stat_statements, every
statement the server ran during the load, background work included), `/health` p99 probed from a thread
during the load, the server's event-loop lag p99 (its own `agentserver_event_loop_lag_seconds`), RSS and
the load average. The table holds the median of the repetitions.

Run: `python -m bench turns` (all scenarios, ~10 min) or `BENCH_QUICK=1 python -m bench turns` (one
repetition, fewer turns); `BENCH_ONLY=2,3` picks scenarios; `BENCH_STATEMENTS=1` prints statements per turn by
query; `BENCH_PROFILE=DIR` samples the server with py-spy. Writes bench/results/turns.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets
from sqlalchemy import text
from tests.llm.stub_openai import Reply

from agentserver.config import Settings
from agentserver.kit import migrations
from agentserver.kit.db import create_engine
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from bench._server import (
    DATA_DIR,
    REDIS_URL,
    HealthProbe,
    create_users,
    free_port,
    percentile,
    stop,
    stub_model,
    wait_until_ready,
)

RESULTS = Path(__file__).resolve().parent / "results" / "turns.md"
DATABASE = "turns_bench"
JWT_SECRET = "bench-secret-" + "x" * 40
QUICK = bool(os.environ.get("BENCH_QUICK"))
STATEMENT_BREAKDOWN = bool(os.environ.get("BENCH_STATEMENTS"))
PROFILE_DIR = Path(os.environ["BENCH_PROFILE"]) if os.environ.get("BENCH_PROFILE") else None
REPETITIONS = 1 if QUICK else 3
ANSWER = "a stubbed answer of a few words for the benchmark"


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # sequential | concurrent
    transport: str = "chat"  # chat | stream | ws | openai
    memory: bool = True
    redis: bool = False
    processes: int = 1  # uvicorn workers of `agentserver serve`
    sessions: int = 20  # concurrent sessions (concurrent kind)
    rounds: int = 5  # turns per session (concurrent kind); turns in the one session (sequential kind)


SCENARIOS = [
    Scenario("sequential /chat, 50 turns in one session", "sequential", rounds=50),
    Scenario("sequential /chat/stream, memory off", "sequential", "stream", memory=False, rounds=30),
    Scenario("20 concurrent /chat, memory on", "concurrent"),
    Scenario("20 concurrent /chat, memory off", "concurrent", memory=False),
    Scenario("20 concurrent /chat/stream, memory on", "concurrent", "stream"),
    Scenario("20 concurrent WebSocket, memory on", "concurrent", "ws"),
    Scenario("20 concurrent /chat, memory on, Redis", "concurrent", redis=True),
    Scenario("20 concurrent /chat, memory on, 2 processes", "concurrent", redis=True, processes=2),
    Scenario("100 concurrent sessions /chat, memory on", "concurrent", sessions=100, rounds=2),
]
if os.environ.get("BENCH_ONLY"):  # e.g. BENCH_ONLY=2,3: the scenarios at those positions
    SCENARIOS = [SCENARIOS[int(i)] for i in os.environ["BENCH_ONLY"].split(",")]
if QUICK:
    SCENARIOS = [
        Scenario(s.name, s.kind, s.transport, s.memory, s.redis, s.processes, s.sessions, max(2, s.rounds // 2))
        for s in SCENARIOS
    ]


@dataclass
class Measurement:
    turns: int = 0
    errors: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    statements: int = 0
    health: list[float] = field(default_factory=list)
    loop_lag_p99: float | None = None
    rss_mb: float = 0.0
    load: float = 0.0
    growth: float | None = None  # sequential: last-10 median / first-10 median - 1

    def row(self) -> dict[str, Any]:
        return {
            "turns/s": self.turns / self.wall if self.wall else 0.0,
            "p50 ms": percentile(self.latencies, 0.5) * 1000,
            "p95 ms": percentile(self.latencies, 0.95) * 1000,
            "p99 ms": percentile(self.latencies, 0.99) * 1000,
            "ttft p50 ms": percentile(self.ttft, 0.5) * 1000 if self.ttft else None,
            "cpu ms/turn": self.cpu_seconds * 1000 / self.turns if self.turns else 0.0,
            "stmts/turn": self.statements / self.turns if self.turns else 0.0,
            "/health p99 ms": percentile(self.health, 0.99) * 1000 if self.health else None,
            "loop lag p99 ms": self.loop_lag_p99 * 1000 if self.loop_lag_p99 is not None else None,
            "RSS MB": self.rss_mb,
            "errors": self.errors,
            "growth": self.growth,
            "load": self.load,
        }


# --- the server ------------------------------------------------------------------------------------------
@contextmanager
def server(database_url: str, model_url: str, scenario: Scenario) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG")}
    env.update(
        {
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "ENVIRONMENT": "development",
            "DATABASE_URL": database_url,
            "JWT_SECRET_KEY": JWT_SECRET,
            "LLM_PROVIDER": "openai_compatible",
            "LLM_BASE_URL": model_url,
            "DEFAULT_MODEL": "stub",
            "MEMORY_ENABLED": str(scenario.memory).lower(),
            "SEARCH_PROVIDER": "none",
            "RATE_LIMIT_ENABLED": "false",
            "AGENTSERVER_DATA_DIR": str(DATA_DIR),
        }
    )
    if scenario.redis:
        env["REDIS_URL"] = REDIS_URL
        env["REDIS_KEY_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}"
    args = [sys.executable, "-m", "agentserver", "serve", "--workers", str(scenario.processes)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, 300)
        yield url, psutil.Process(process.pid)
    finally:
        stop(process)


def tree_cpu_seconds(root: psutil.Process) -> float:
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def tree_rss_mb(root: psutil.Process) -> float:
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


def loop_lag_histogram(url: str) -> dict[float, float]:
    """Cumulative buckets of agentserver_event_loop_lag_seconds (le -> count), summed over processes."""
    buckets: dict[float, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("agentserver_event_loop_lag_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_p99(before: dict[float, float], after: dict[float, float]) -> float | None:
    deltas = sorted((le, after.get(le, 0) - before.get(le, 0)) for le in after)
    if not deltas or deltas[-1][1] <= 0:
        return None
    target = 0.99 * deltas[-1][1]
    return next(le for le, count in deltas if count >= target)


def run_sql(database_url: str, sql: str) -> list[Any]:
    """The rows of one statement, on a connection of its own (the benchmark's bookkeeping, not the load)."""

    async def run() -> list[Any]:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(sql))
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


# This database's statements, not the benchmark's own look at them.
_OURS = (
    "dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_statements%'"
)


def statements(database_url: str) -> int:
    sql = f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE {_OURS}"  # noqa: S608 (constants)
    return int(run_sql(database_url, sql)[0][0])


def print_statement_breakdown(database_url: str, turns: int) -> None:
    """BENCH_STATEMENTS=1: the statements of the last scenario, by calls per turn (what to cut next)."""
    sql = f"SELECT calls, query FROM pg_stat_statements WHERE {_OURS} ORDER BY calls DESC LIMIT 40"  # noqa: S608
    for calls, query in run_sql(database_url, sql):
        print(f"{int(calls) / max(turns, 1):6.2f}  {' '.join(str(query).split())[:160]}", flush=True)


def reset_statement_stats(database_url: str) -> None:
    run_sql(database_url, "SELECT pg_stat_statements_reset()")


# --- the load ---------------------------------------------------------------------------------------------
async def one_turn(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], session_id: str, transport: str, n: int
) -> tuple[bool, float, float | None]:
    """(ok, latency, time to first token)."""
    body = {"session_id": session_id, "message": f"message number {n}"}
    started = time.perf_counter()
    first: float | None = None
    if transport == "chat":
        response = await http.post("/api/v1/chatbot/chat", json=body, headers=headers)
        return response.status_code == 200, time.perf_counter() - started, None
    if transport == "stream":
        ok = False
        async with http.stream("POST", "/api/v1/chatbot/chat/stream", json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                if first is None and line.startswith("event: token"):
                    first = time.perf_counter() - started
                if line.startswith("event: done"):
                    ok = True
        return ok and response.status_code == 200, time.perf_counter() - started, first
    token = headers["Authorization"].removeprefix("Bearer ")
    ws_url = url.replace("http://", "ws://") + f"/api/v1/chatbot/ws/{session_id}?token={token}"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"message": body["message"]}))
        while True:
            frame = json.loads(await ws.recv())
            if first is None and frame["event"] == "token":
                first = time.perf_counter() - started
            if frame["event"] in ("done", "error"):
                return frame["event"] == "done", time.perf_counter() - started, first


async def new_sessions(
    http: httpx.AsyncClient, users: list[dict[str, str]], count: int
) -> list[tuple[dict[str, str], str]]:
    sessions = []
    for n in range(count):
        headers = users[n % len(users)]
        created = await http.post("/api/v1/sessions", json={"name": f"bench {n}"}, headers=headers)
        created.raise_for_status()
        sessions.append((headers, created.json()["id"]))
    return sessions


async def drive(url: str, users: list[dict[str, str]], scenario: Scenario, measurement: Measurement) -> None:
    limits = httpx.Limits(max_connections=scenario.sessions + 10, max_keepalive_connections=scenario.sessions + 10)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        sessions = await new_sessions(http, users, 1 if scenario.kind == "sequential" else scenario.sessions)

        async def conversation(headers: dict[str, str], session_id: str) -> None:
            for n in range(scenario.rounds):
                ok, latency, first = await one_turn(http, url, headers, session_id, scenario.transport, n)
                measurement.turns += 1
                measurement.errors += 0 if ok else 1
                measurement.latencies.append(latency)
                if first is not None:
                    measurement.ttft.append(first)

        started = time.perf_counter()
        await asyncio.gather(*(conversation(headers, session_id) for headers, session_id in sessions))
        measurement.wall = time.perf_counter() - started
    if scenario.kind == "sequential" and len(measurement.latencies) >= 20:
        first10 = statistics.median(measurement.latencies[:10])
        last10 = statistics.median(measurement.latencies[-10:])
        measurement.growth = last10 / first10 - 1


@contextmanager
def profiled(process: psutil.Process, scenario: Scenario) -> Iterator[None]:
    """BENCH_PROFILE=DIR: py-spy (on PATH or BENCH_PYSPY) samples the server while the load runs, into
    DIR/<scenario>.raw (collapsed stacks: flamegraph.pl or speedscope read them)."""
    if not PROFILE_DIR:
        yield
        return
    pyspy = os.environ.get("BENCH_PYSPY") or shutil.which("py-spy") or "py-spy"
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    out = PROFILE_DIR / (scenario.name.replace(" ", "_").replace("/", "").replace(",", "") + ".raw")
    recorder = subprocess.Popen(  # noqa: S603 - our own arguments
        [
            pyspy,
            "record",
            "-p",
            str(process.pid),
            "--subprocesses",
            "--nonblocking",
            "-r",
            "100",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)


def measure(database_url: str, model_url: str, scenario: Scenario) -> Measurement:
    settings = Settings(_env_file=None, jwt_secret_key=JWT_SECRET)
    with server(database_url, model_url, scenario) as (url, process):
        users = asyncio.run(create_users(database_url, settings, min(scenario.sessions, 20)))
        warm = Scenario("warm-up", "sequential", scenario.transport, rounds=3)
        asyncio.run(drive(url, users[:1], warm, Measurement()))
        time.sleep(1.0)  # the warm-up's background work (memory extraction) settles
        measurement = Measurement(load=os.getloadavg()[0])
        lag_before = loop_lag_histogram(url)
        if STATEMENT_BREAKDOWN:
            reset_statement_stats(database_url)
        statements_before = statements(database_url)
        cpu_before = tree_cpu_seconds(process)
        with HealthProbe(url, interval=0.02) as probe, profiled(process, scenario):
            asyncio.run(drive(url, users, scenario, measurement))
        measurement.cpu_seconds = tree_cpu_seconds(process) - cpu_before
        measurement.statements = statements(database_url) - statements_before
        measurement.health = probe.latencies
        measurement.loop_lag_p99 = histogram_p99(lag_before, loop_lag_histogram(url))
        measurement.rss_mb = tree_rss_mb(process)
        if STATEMENT_BREAKDOWN:
            print_statement_breakdown(database_url, measurement.turns)
    return measurement


# --- the database -----------------------------------------------------------------------------------------
def database_with_statement_stats() -> tuple[EmbeddedPostgres, str]:
    postgres = EmbeddedPostgres(DATA_DIR / "postgres")
    postgres.start(database="postgres")
    postgres.ensure_preloaded("pg_stat_statements")
    url = postgres.ensure_database(DATABASE, recreate=True)
    migrations.upgrade(url)
    postgres._require_server().psql(f"\\c {DATABASE}\nCREATE EXTENSION IF NOT EXISTS pg_stat_statements;")
    return postgres, url


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def main() -> None:
    load_before = os.getloadavg()[0]
    postgres, database_url = database_with_statement_stats()
    rows = []
    try:
        with stub_model(Reply(text=ANSWER)) as model_url:
            for scenario in SCENARIOS:
                runs = [measure(database_url, model_url, scenario) for _ in range(REPETITIONS)]
                medians = {
                    key: statistics.median(value for value in values if value is not None)
                    if any(value is not None for value in values)
                    else None
                    for key, values in zip(
                        runs[0].row(), zip(*(run.row().values() for run in runs), strict=True), strict=True
                    )
                }
                rows.append((scenario, medians))
                print(scenario.name, {k: fmt(v) for k, v in medians.items()}, flush=True)
    finally:
        postgres.drop_database(DATABASE)
        postgres.stop()
    columns = [
        "turns/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft p50 ms",
        "cpu ms/turn",
        "stmts/turn",
        "/health p99 ms",
        "loop lag p99 ms",
        "RSS MB",
        "errors",
        "growth",
        "load",
    ]
    lines = [
        "# What a chat turn costs",
        "",
        f"`python -m bench turns` on {platform.machine()}, {os.cpu_count()} CPUs shared with other work (load "
        f"average before: {load_before:.1f}), Python {platform.python_version()}; medians of {REPETITIONS} "
        "repetition(s). Instant OpenAI-protocol stub model; embedded PostgreSQL; one `agentserver serve` "
        "process (with its in-process worker) unless the scenario says 2.",
        "",
        "| scenario | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for scenario, medians in rows:
        values = []
        for column in columns:
            value = medians[column]
            if column == "growth" and value is not None:
                values.append(f"{value * 100:+.0f} %")
            else:
                values.append(fmt(value, 2 if column in ("stmts/turn",) else 1))
        lines.append(f"| {scenario.name} | " + " | ".join(values) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = RESULTS.read_text() if RESULTS.exists() else ""
    notes = existing.split("<!-- notes -->", 1)[1] if "<!-- notes -->" in existing else "\n"
    RESULTS.write_text("\n".join(lines) + "\n\n<!-- notes -->" + notes)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
