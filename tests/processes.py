"""agentserver processes for tests that need several of them (workers, API replicas) on one database.

proc = AgentserverProcess.start(["worker"], env)   # `agentserver worker`, logs as JSON lines
await proc.wait_for_log("worker.ready")
proc.kill()                                          # SIGKILL: a crash, nothing is cleaned up
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentserver.config import Settings

AGENTSERVER = str(Path(sys.executable).with_name("agentserver"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment that gives a child process the same settings as `settings` (plus overrides)."""
    values: dict[str, Any] = {
        "ENVIRONMENT": settings.environment.value,
        "DATABASE_URL": settings.database_url,
        "JWT_SECRET_KEY": settings.jwt_secret_key.get_secret_value(),
        "PASSWORD_HASH_TIME_COST": settings.password_hash_time_cost,
        "PASSWORD_HASH_MEMORY_KIB": settings.password_hash_memory_kib,
        "RATE_LIMIT_ENABLED": "false",
        "SEARCH_PROVIDER": "none",
        "RUN_HEARTBEAT_SECONDS": settings.run_heartbeat_seconds,
        "RUN_POLL_SECONDS": settings.run_poll_seconds,
        "AGENTSERVER_DATA_DIR": settings.agentserver_data_dir,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        **overrides,
    }
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update({key: str(value) for key, value in values.items() if value is not None})
    return env


@dataclass
class AgentserverProcess:
    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, args: list[str], env: Mapping[str, str]) -> AgentserverProcess:
        process = subprocess.Popen(  # noqa: S603 - our own console script
            [AGENTSERVER, *args],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self = cls(process)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw.append(line)
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    self.lines.append(parsed)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_for_log(self, event: str, *, within: float = 90.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            found = next((line for line in self.lines if isinstance(line, dict) and line.get("event") == event), None)
            if found is not None:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"process exited ({self.process.returncode}):\n{''.join(self.raw[-40:])}")
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {event!r} within {within} s:\n{''.join(self.raw[-40:])}")

    async def wait_until_healthy(self, url: str, *, within: float = 90.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with httpx.AsyncClient(base_url=url, timeout=2) as http:
            while loop.time() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"process exited:\n{''.join(self.raw[-40:])}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise AssertionError(f"{url} not ready within {within} s:\n{''.join(self.raw[-40:])}")

    def kill(self) -> None:
        """SIGKILL: the process dies mid-work, as in a crash or an OOM kill."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
