"""`agentserver serve` on the embedded database, as `make run` starts it: serves, then stops clean."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


def _serve_until_ready(data_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(AGENTSERVER_DATA_DIR=str(data_dir), PORT=str(port), LLM_PROVIDER="fake", MEMORY_ENABLED="false")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentserver", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = started + 300  # generous: CI machines are shared and slow
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc, time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not become ready within 300 s")


class TestEmbeddedLifecycle:
    def test_serves_then_sigint_leaves_no_postgres_and_the_data_is_reused(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        port = _free_port()

        first, _ = _serve_until_ready(data_dir, port)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
        assert _postgres_processes(data_dir)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 0
        assert _postgres_processes(data_dir) == []

        # The second start finds an initialised, migrated data dir and serves again.
        second, _ = _serve_until_ready(data_dir, port)
        second.send_signal(signal.SIGTERM)
        # After its graceful shutdown uvicorn re-raises SIGTERM, so a supervisor sees how it ended.
        assert second.wait(timeout=60) == -signal.SIGTERM
        assert _postgres_processes(data_dir) == []
        assert (data_dir / "postgres" / "PG_VERSION").exists()
