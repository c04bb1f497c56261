"""Command line: `agentserver serve | worker | chat | db upgrade | db downgrade | model ... | users ...`.

Logging is configured here (or by create_app), never on import.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import prometheus_client
import structlog
import typer
import uvicorn
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from agentserver.admin.errors import UserNotFound
from agentserver.admin.service import admin as admin_service
from agentserver.agent.assistants import AssistantsFileError, load_assistants_file
from agentserver.chat import terminal
from agentserver.config import Settings, get_settings
from agentserver.kit import migrations
from agentserver.kit.db import (
    DatabaseUnreachableError,
    create_engine,
    create_sessionmaker,
    session_scope,
    wait_for_database,
)
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.llm.cli import model_app
from agentserver.models import UserRole
from agentserver.observability.logging import configure_logging

app = typer.Typer(help="agentserver: a production AI agent backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")
users_app = typer.Typer(help="Accounts: list, roles, budgets, disable (operators, without SQL).", no_args_is_help=True)
app.add_typer(users_app, name="users")

log = structlog.get_logger("agentserver.cli")

APP_FACTORY = "agentserver.main:create_app"


def load_settings() -> Settings:
    """Settings (and logging configured from them), or a readable explanation of what is wrong and exit 2."""
    settings = read_settings()
    configure_logging(settings)
    return settings


def read_settings() -> Settings:
    """Settings, or a readable explanation of what is wrong with the environment and exit 2."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]).upper()
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"  {where + ': ' if where else ''}{msg}")
        typer.echo("agentserver: invalid configuration:\n" + "\n".join(lines), err=True)
        raise typer.Exit(2) from None
    return settings


def check_assistants_file(settings: Settings) -> None:
    """Refuse to start, in one readable line, with an assistants file that cannot be used (exit 2)."""
    try:
        load_assistants_file(settings.assistants_file)
    except AssistantsFileError as exc:
        typer.echo(f"agentserver: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or the embedded server for the duration of the command."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    try:
        yield embedded.start()
    finally:
        embedded.stop()


def _check_reachable(url: str, timeout: float) -> None:
    async def check() -> None:
        engine = create_engine(url, pool_size=1, connect_timeout=timeout)
        try:
            await wait_for_database(engine, timeout)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except DatabaseUnreachableError as exc:
        typer.echo(f"agentserver: {exc}", err=True)
        raise typer.Exit(1) from None


def browse_url(host: str, port: int) -> str:
    """The URL a person on this machine opens for a server bound to host:port (0.0.0.0 and :: are not addresses
    a browser can open; loopback is)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"http://{host}:{port}/"


def ready_line(url: str) -> str:
    return f"agentserver is ready: open {url} and create an account"


class _ReadyServer(uvicorn.Server):
    """uvicorn's server, saying once where to go when it accepts connections (after the lifespan started)."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self._settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or self.should_exit:
            return
        bound = [sock.getsockname() for server in self.servers for sock in server.sockets]
        ip_bound = [address for address in bound if isinstance(address, tuple)]
        if not ip_bound:
            return  # a Unix socket: no URL to open
        host, port = ip_bound[0][0], ip_bound[0][1]
        url = browse_url(str(self.config.host) if host in ("0.0.0.0", "::") else str(host), int(port))
        log.info("server.ready", url=url)
        if self._settings.effective_log_format == "console":
            # The line a person looks for in the console; JSON logs keep one object per line.
            typer.echo(ready_line(url), err=True)


def _exit_now(code: int) -> None:
    """Leave without interpreter finalisation. The lifespan has closed every resource by now; finalisation
    would only garbage-collect the ~1 GB of imported libraries, which took 2-4 s here (5-29 s on a busy
    machine) after "Finished server process" while the terminal looked hung."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: HOST setting)."),
    port: int | None = typer.Option(None, help="Port (default: PORT setting)."),
    workers: int = typer.Option(
        1, min=1, help="Worker processes (needs DATABASE_URL; metrics are per worker: prefer 1 and more replicas)."
    ),
    run_worker: bool = typer.Option(
        True, "--run-worker/--no-run-worker", help="Also execute runs in this process (RUN_WORKER_ENABLED)."
    ),
) -> None:
    """Serve the API and the web UI (and, by default, execute the runs too)."""
    if not run_worker:
        os.environ["RUN_WORKER_ENABLED"] = "false"  # read by create_app() in every uvicorn worker process
        get_settings.cache_clear()
    settings = load_settings()
    check_assistants_file(settings)
    if workers > 1 and not settings.database_url:
        typer.echo("agentserver: --workers > 1 needs DATABASE_URL (the embedded database is per process)", err=True)
        raise typer.Exit(2)
    if workers > 1:
        # Each worker keeps its own Prometheus registry and a scrape reaches whichever worker answers.
        log.warning(
            "serve.workers_metrics",
            workers=workers,
            detail="/metrics shows one worker per scrape; run one worker per container and scale with replicas",
        )
    if settings.database_url:
        _check_reachable(settings.database_url, settings.database_connect_timeout_seconds)
    options: dict[str, Any] = {
        "factory": True,
        "host": host or settings.host,
        "port": port or settings.port,
        "workers": workers,
        "log_config": None,  # structlog owns logging (configured by create_app)
        "proxy_headers": False,  # client IPs come from TRUSTED_PROXIES handling, not blind trust
        "timeout_graceful_shutdown": 30,
        "server_header": False,  # do not advertise the server software
        "ws_max_size": settings.max_request_body_bytes,  # WebSocket frames obey the same limit as HTTP bodies
    }
    if workers > 1:
        uvicorn.run(APP_FACTORY, **options)
        return
    # The longest silence of a first start: importing FastAPI, LangGraph, mem0, onnxruntime and llama.cpp.
    log.info("serve.loading", detail="importing the application: a few seconds, up to a minute on a cold machine")
    server = _ReadyServer(uvicorn.Config(APP_FACTORY, **options), settings)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn has shut down gracefully and re-raised it
    if not server.started:
        raise typer.Exit(3)  # uvicorn's start-up failure code; the reason was logged
    _exit_now(0)


@app.command()
def worker(
    metrics_port: int | None = typer.Option(
        None, min=1, max=65535, help="Serve Prometheus metrics on this port (the worker has no HTTP API)."
    ),
) -> None:
    """Execute runs and background jobs without serving HTTP (scale workers apart from the API)."""
    settings = load_settings()
    check_assistants_file(settings)
    if not settings.database_url:
        typer.echo("agentserver: `worker` needs DATABASE_URL (the embedded database belongs to `serve`)", err=True)
        raise typer.Exit(2)
    _check_reachable(settings.database_url, settings.database_connect_timeout_seconds)
    if metrics_port is not None:
        prometheus_client.start_http_server(metrics_port, addr=settings.host)
    asyncio.run(_run_worker(settings))
    _exit_now(0)


async def _run_worker(settings: Settings) -> None:
    # Not at the top: the whole agent stack takes seconds to import, and every other command (and a
    # refused configuration) should answer without paying for it.
    from agentserver.services import open_services  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncExitStack() as stack:
        services = await open_services(settings.model_copy(update={"run_worker_enabled": True}), stack, worker=True)
        assert services.worker is not None
        log.info("worker.ready", worker_id=services.worker.id)
        await stop.wait()
        log.info("worker.stopping")


@app.command("chat")
def chat_command(
    url: str | None = typer.Option(None, help="The server's base URL (default: from the HOST and PORT settings)."),
    email: str = typer.Option(..., prompt=True, help="Your account's email."),
    password: str = typer.Option(..., prompt=True, hide_input=True, help="Your password."),
    register: bool = typer.Option(False, help="Create the account first if it does not exist."),
) -> None:
    """Chat with a running server from the terminal (streams the answers)."""
    if url is None:
        settings = read_settings()  # the client logs nothing: no logging set-up
        url = browse_url(settings.host, settings.port).rstrip("/")
    terminal.run(url, email, password, register)


# PostgreSQL's own words when the server has no pgvector installed (CREATE EXTENSION in the first migration).
_NO_PGVECTOR = 'extension "vector" is not available'
PGVECTOR_MISSING = (
    'agentserver: this PostgreSQL has no pgvector (it answered: extension "vector" is not available). '
    "Install pgvector on the database server (the pgvector/pgvector image, your distribution's "
    "postgresql-<version>-pgvector package, or a managed PostgreSQL with the vector extension), "
    "or unset DATABASE_URL to use the embedded database, which has it."
)


def _migrate(settings: Settings, step: Callable[[str, str], None], revision: str) -> None:
    with database_url(settings) as url:
        if settings.database_url:
            _check_reachable(url, settings.database_connect_timeout_seconds)
        try:
            step(url, revision)
        except DBAPIError as exc:
            if _NO_PGVECTOR in str(exc.orig):
                typer.echo(PGVECTOR_MISSING, err=True)
                raise typer.Exit(1) from None
            raise


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    _migrate(load_settings(), migrations.upgrade, revision)
    log.info("db.upgraded", revision=revision)


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("-1")) -> None:
    """Revert migrations down to REVISION (default: one step)."""
    _migrate(load_settings(), migrations.downgrade, revision)
    log.info("db.downgraded", revision=revision)


# --- users ---------------------------------------------------------------------------------------------
T = TypeVar("T")


def _in_database(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on DATABASE_URL (or the embedded database); a user that
    does not exist is a one-line error and exit 1."""
    settings = load_settings()

    async def run(url: str) -> T:
        engine = create_engine(url, pool_size=1, connect_timeout=settings.database_connect_timeout_seconds)
        try:
            async with session_scope(create_sessionmaker(engine)) as db:
                return await work(db)
        finally:
            await engine.dispose()

    with database_url(settings) as url:
        if settings.database_url:
            _check_reachable(url, settings.database_connect_timeout_seconds)
        try:
            return asyncio.run(run(url))
        except UserNotFound:
            typer.echo("agentserver: no user with this email", err=True)
            raise typer.Exit(1) from None


@users_app.command("list")
def users_list(limit: int = typer.Option(100, min=1, max=100_000, help="At most this many, oldest first.")) -> None:
    """Users: id, email, role, disabled since, created."""

    async def work(db: AsyncSession) -> list[str]:
        users = await admin_service.list_users(db, limit=limit)
        return [
            f"{u.id}  {u.email}  {u.role}  {'disabled ' + u.disabled_at.isoformat() if u.disabled_at else 'active'}"
            f"  {u.created_at.isoformat()}"
            for u in users
        ]

    for line in _in_database(work):
        typer.echo(line)


@users_app.command("set-role")
def users_set_role(email: str, role: Annotated[UserRole, typer.Argument(help="user | admin")]) -> None:
    """Make a user an admin (GET /api/v1/admin/*), or a user again."""
    _in_database(lambda db: admin_service.set_role(db, email, role))
    typer.echo(f"{email}: role {role.value}")


def _budget(value: str | None, *, integer: bool) -> Any:
    """A budget option: a number (0 = unlimited) or `default` (the deployment's QUOTA_* setting)."""
    if value is None or value == "default":
        return None
    try:
        number = int(value) if integer else Decimal(value)
    except (ValueError, InvalidOperation):
        raise typer.BadParameter(f"{value!r}: a number (0 = unlimited) or 'default'") from None
    if number < 0:
        raise typer.BadParameter(f"{value!r}: must not be negative")
    return number


@users_app.command("set-quota")
def users_set_quota(
    email: str,
    daily_tokens: str | None = typer.Option(None, help="Tokens per UTC day: a number (0 = unlimited) or 'default'."),
    monthly_tokens: str | None = typer.Option(None, help="Tokens per UTC month (as above)."),
    daily_cost: str | None = typer.Option(None, help="US dollars per UTC day (as above)."),
    monthly_cost: str | None = typer.Option(None, help="US dollars per UTC month (as above)."),
) -> None:
    """Override a user's budgets (only the options given change)."""
    given = {
        "daily_tokens": (daily_tokens, True),
        "monthly_tokens": (monthly_tokens, True),
        "daily_cost_usd": (daily_cost, False),
        "monthly_cost_usd": (monthly_cost, False),
    }
    values = {key: _budget(raw, integer=integer) for key, (raw, integer) in given.items() if raw is not None}
    if not values:
        raise typer.BadParameter("give at least one of --daily-tokens, --monthly-tokens, --daily-cost, --monthly-cost")
    _in_database(lambda db: admin_service.set_quota(db, email, values))
    typer.echo(f"{email}: " + ", ".join(f"{k}={'default' if v is None else v}" for k, v in values.items()))


@users_app.command("disable")
def users_disable(email: str) -> None:
    """The user cannot log in any more; their access and refresh tokens stop working at once."""
    _in_database(lambda db: admin_service.disable(db, email))
    typer.echo(f"{email}: disabled")


@users_app.command("enable")
def users_enable(email: str) -> None:
    """Undo `disable` (the user logs in again; old refresh tokens stay revoked)."""
    _in_database(lambda db: admin_service.enable(db, email))
    typer.echo(f"{email}: enabled")


def main() -> None:  # pragma: no cover - console entry point
    app()
    sys.exit(0)
