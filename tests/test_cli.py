"""The command line as a new user meets it: the ready line, the chat client's default URL, clean output."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from agentserver import cli
from agentserver.chat import terminal
from agentserver.config import get_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell would have: no XDG_RUNTIME_DIR (servers, containers, CI), no overrides."""
    drop = ("XDG_RUNTIME_DIR", "DATABASE_URL", "REDIS_URL", "ENVIRONMENT", "LOG_FORMAT", "HOST", "PORT")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(extra)
    return env


class TestBrowseUrl:
    @pytest.mark.parametrize(
        ("host", "url"),
        [
            ("127.0.0.1", "http://127.0.0.1:8000/"),
            ("0.0.0.0", "http://127.0.0.1:8000/"),
            ("::", "http://[::1]:8000/"),
            ("::1", "http://[::1]:8000/"),
            ("localhost", "http://localhost:8000/"),
        ],
    )
    def test_gives_an_address_a_browser_can_open(self, host: str, url: str) -> None:
        assert cli.browse_url(host, 8000) == url


class TestServe:
    def test_says_when_it_is_ready_and_where_to_go_then_exits_cleanly(self, database_url: str, tmp_path: Path) -> None:
        port = _free_port()
        env = _clean_env(
            DATABASE_URL=database_url,
            PORT=str(port),
            LLM_PROVIDER="fake",
            MEMORY_ENABLED="false",
            AGENTSERVER_DATA_DIR=str(tmp_path),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentserver", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stderr is not None
        stderr = proc.stderr

        def read() -> None:
            for line in stderr:
                lines.put(line.rstrip("\n"))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        seen: list[str] = []
        expected = f"agentserver is ready: open http://127.0.0.1:{port}/ and create an account"
        deadline = time.monotonic() + 300  # a deadline, not a measurement: CI machines are shared and slow
        try:
            while expected not in seen:
                assert time.monotonic() < deadline, "\n".join(seen)
                assert proc.poll() is None, "\n".join(seen)
                try:
                    seen.append(lines.get(timeout=1))
                except queue.Empty:
                    pass
            page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
            reader.join(timeout=30)
        while not lines.empty():
            seen.append(lines.get())

        assert page.status_code == 200
        assert code == 0
        loading = next(i for i, line in enumerate(seen) if "serve.loading" in line)
        started = next(i for i, line in enumerate(seen) if "Started server process" in line)
        assert loading < started
        assert "up to a minute on a cold machine" in seen[loading]
        assert "Finished server process" in seen[-1]
        assert [line for line in seen if "Warning" in line or "Traceback" in line] == []


class TestChatCommand:
    @pytest.fixture
    def runs(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
        urls: list[str] = []
        monkeypatch.setattr(terminal, "run", lambda url, email, password, register: urls.append(url))
        get_settings.cache_clear()
        yield urls
        get_settings.cache_clear()

    def test_the_url_defaults_to_the_port_setting(self, runs: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PORT", "9123")
        monkeypatch.setenv("HOST", "0.0.0.0")

        result = CliRunner().invoke(cli.app, ["chat", "--email", "a@example.com", "--password", "pw"])

        assert result.exit_code == 0, result.output
        assert runs == ["http://127.0.0.1:9123"]

    def test_an_explicit_url_wins(self, runs: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PORT", "9123")

        result = CliRunner().invoke(
            cli.app, ["chat", "--url", "http://api.example:80", "--email", "a@example.com", "--password", "pw"]
        )

        assert result.exit_code == 0, result.output
        assert runs == ["http://api.example:80"]


class TestHelp:
    def test_prints_no_runtime_dir_warning(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "agentserver", "--help"],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert result.returncode == 0
        assert "Usage: agentserver" in result.stdout
        assert result.stderr == ""

    def test_works_without_the_embedded_model_runtime(self) -> None:
        # An image built without the `local` extra has no xllamacpp: every command must still load.
        code = "import sys; sys.modules['xllamacpp'] = None; from agentserver.cli import app; app(['--help'])"

        result = subprocess.run(  # noqa: S603 - our own command
            [sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=120, check=False
        )

        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout


HOST_POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def database_without_pgvector() -> Iterator[str]:
    """A scratch database on the machine's own PostgreSQL (no pgvector there); skips where there is none."""
    try:
        admin = psycopg.connect(f"{HOST_POSTGRES}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 to play a server without pgvector")
    with admin:
        if admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
            pytest.skip("the PostgreSQL at 127.0.0.1:5432 has pgvector")
        name = f"agentserver_nopgvector_{os.getpid()}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{HOST_POSTGRES}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TestDbUpgrade:
    def test_a_server_without_pgvector_gets_one_clear_line(self, database_without_pgvector: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "agentserver", "db", "upgrade"],
            env=_clean_env(DATABASE_URL=database_without_pgvector),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert result.returncode == 1
        assert result.stderr == cli.PGVECTOR_MISSING + "\n"
