"""Command line: `agentserver serve | db upgrade | db downgrade`.

Logging is configured here (or by create_app), never on import.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
import typer
import uvicorn
from pydantic import ValidationError

from agentserver.chat import terminal
from agentserver.config import Settings, get_settings
from agentserver.kit import migrations
from agentserver.kit.db import DatabaseUnreachableError, create_engine, wait_for_database
from agentserver.kit.embedded_postgres import EmbeddedPostgres
from agentserver.llm.cli import model_app
from agentserver.observability.logging import configure_logging

app = typer.Typer(help="agentserver: a production AI agent backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")

log = structlog.get_logger("agentserver.cli")


def load_settings() -> Settings:
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
    configure_logging(settings)
    return settings


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


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: HOST setting)."),
    port: int | None = typer.Option(None, help="Port (default: PORT setting)."),
    workers: int = typer.Option(
        1, min=1, help="Worker processes (needs DATABASE_URL; metrics are per worker: prefer 1 and more replicas)."
    ),
) -> None:
    """Serve the API and the web UI."""
    settings = load_settings()
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
    uvicorn.run(
        "agentserver.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,  # structlog owns logging (configured by create_app)
        proxy_headers=False,  # client IPs come from TRUSTED_PROXIES handling, not blind trust
        timeout_graceful_shutdown=30,
        server_header=False,  # do not advertise the server software
        ws_max_size=settings.max_request_body_bytes,  # WebSocket frames obey the same limit as HTTP bodies
    )


@app.command("chat")
def chat_command(
    url: str = typer.Option("http://127.0.0.1:8000", help="The server's base URL."),
    email: str = typer.Option(..., prompt=True, help="Your account's email."),
    password: str = typer.Option(..., prompt=True, hide_input=True, help="Your password."),
    register: bool = typer.Option(False, help="Create the account first if it does not exist."),
) -> None:
    """Chat with a running server from the terminal (streams the answers)."""
    terminal.run(url, email, password, register)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = load_settings()
    with database_url(settings) as url:
        if settings.database_url:
            _check_reachable(url, settings.database_connect_timeout_seconds)
        migrations.upgrade(url, revision)
    log.info("db.upgraded", revision=revision)


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("-1")) -> None:
    """Revert migrations down to REVISION (default: one step)."""
    settings = load_settings()
    with database_url(settings) as url:
        if settings.database_url:
            _check_reachable(url, settings.database_connect_timeout_seconds)
        migrations.downgrade(url, revision)
    log.info("db.downgraded", revision=revision)


def main() -> None:  # pragma: no cover - console entry point
    app()
    sys.exit(0)
