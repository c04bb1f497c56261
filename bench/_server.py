"""What the black-box benchmarks share: `agentserver serve` in a process of its own, users, percentiles.

Benchmarks that measure the server from outside (chat_load, outages) run it exactly as production
does (`agentserver serve`, one uvicorn worker) and talk to it over HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from tests.llm.stub_openai import Reply, StubOpenAI

from agentserver.auth.security import PasswordHasher, TokenType, issue_token
from agentserver.config import Settings
from agentserver.kit.db import create_engine, create_sessionmaker, session_scope
from agentserver.models import User

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".data" / "bench"
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], *, ready_within: float = 300) -> Iterator[str]:
    """`agentserver serve` with `env` on a free port until /ready is 200; its base URL. Stopped (SIGINT,
    then SIGKILL) on exit."""
    port = free_port()
    full_env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    full_env.update({"PORT": str(port), "LOG_LEVEL": "WARNING", "ENVIRONMENT": "development", **env})
    # BENCH_SERVER_LOG=path keeps the server's log (e.g. with PYTHONASYNCIODEBUG=1: slow loop callbacks).
    log_path = os.environ.get("BENCH_SERVER_LOG")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "agentserver", "serve"], env=full_env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, ready_within)
        yield url
    finally:
        stop(process)
        if log_path and not isinstance(log, int):
            log.close()


def wait_until_ready(process: subprocess.Popen[bytes], url: str, within: float) -> None:
    """Until the server's /ready is 200; raises if it exits first or is not ready `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"agentserver serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"agentserver serve not ready within {within} s")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (a graceful shutdown), then SIGKILL after a minute."""
    process.send_signal(2)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class HealthProbe:
    """GET /health every `interval` seconds from a thread of its own (its own client, off the load
    generator's event loop: what a load balancer's probe sees). `latencies` of the 200s, `failures` the rest."""

    def __init__(self, url: str, *, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                response = http.get("/health")
                elapsed = time.perf_counter() - started
                if response.status_code == 200:
                    self.latencies.append(elapsed)
                else:
                    self.failures += 1
                time.sleep(self.interval)


async def create_users(database_url: str, settings: Settings, count: int) -> list[dict[str, str]]:
    """`count` users straight in the database (no argon2 at production cost), with access tokens."""
    engine = create_engine(database_url, pool_size=1)
    sessionmaker: async_sessionmaker = create_sessionmaker(engine)  # type: ignore[type-arg]
    password_hash = await PasswordHasher(time_cost=1, memory_kib=64).hash("bench password")
    headers = []
    try:
        for n in range(count):
            async with session_scope(sessionmaker) as session:
                user = User(email=f"bench-{n}-{os.urandom(4).hex()}@example.com", password_hash=password_hash)
                session.add(user)
                await session.flush()
                token = issue_token(settings, user.id, TokenType.access).token
            headers.append({"Authorization": f"Bearer {token}"})
    finally:
        await engine.dispose()
    return headers


@contextmanager
def stub_model(reply: Reply) -> Iterator[str]:
    """The OpenAI-protocol stub answering `reply` to every request, on an event loop and thread of its
    own (whatever blocks the benchmark's own loop never delays the model); its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stub = StubOpenAI(default=reply)
    asyncio.run_coroutine_threadsafe(stub.start(), loop).result(timeout=30)
    try:
        yield stub.url
    finally:
        asyncio.run_coroutine_threadsafe(stub.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
