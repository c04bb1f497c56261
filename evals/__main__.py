"""`python -m evals`: run the eval suite against a server and write `evals/results/<label>.md`.

    python -m evals --serve                      # start `agentserver serve` (embedded model), run, stop it
    python -m evals --serve --local-model qwen2.5-coder-1.5b
    python -m evals --base-url http://host:8000  # any running deployment (any LLM provider)
    python -m evals --serve --smoke              # the 10-case CI subset

With --serve the server gets its own data directory (`.data/eval`, sharing the model files in `.data/models`),
rate limits off, and the raw llama.cpp speed is measured first (`agentserver model bench`, same machine, same
run) for the generation-speed target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from evals import report
from evals.cases import CASES, Case, smoke_cases
from evals.client import EvalClient
from evals.runner import CaseResult, RunSummary, run_cases

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 900.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _eval_data_dir() -> Path:
    data = ROOT / ".data" / "eval"
    data.mkdir(parents=True, exist_ok=True)
    models = data / "models"
    if not models.exists():
        (ROOT / ".data" / "models").mkdir(parents=True, exist_ok=True)
        models.symlink_to(ROOT / ".data" / "models", target_is_directory=True)
    return data


@contextmanager
def served(local_model: str | None, overrides: dict[str, str] | None = None) -> Iterator[str]:
    """`agentserver serve` on a free loopback port until the block ends."""
    port = _free_port()
    env = {
        **os.environ,
        "AGENTSERVER_DATA_DIR": str(_eval_data_dir()),
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
    }
    env.update(overrides or {})
    if local_model:
        env["LOCAL_MODEL"] = local_model
    agentserver = str(Path(sys.executable).parent / "agentserver")
    process = subprocess.Popen([agentserver, "serve", "--port", str(port)], env=env, cwd=ROOT)  # noqa: S603 - our CLI
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise SystemExit(f"evals: the server exited with code {process.returncode}")
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("evals: the server did not become ready")
            time.sleep(1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def raw_speed(local_model: str | None) -> tuple[float | None, float | None]:
    """Median generation and prompt tokens/s of llama.cpp alone (what `agentserver model bench` measures)."""
    # Imported here: only --serve runs need the project's own code; --base-url runs need nothing of it.
    from agentserver.config import Settings  # noqa: PLC0415
    from agentserver.llm import registry  # noqa: PLC0415
    from agentserver.llm.cli import run_bench  # noqa: PLC0415

    settings = Settings(agentserver_data_dir=_eval_data_dir())
    info = registry.lookup(local_model or settings.local_model)
    if info is None or info.local_file is None:
        return None, None
    results = asyncio.run(run_bench(settings, info, runs=3, max_tokens=64))
    return (
        statistics.median(r.generation_tokens_per_second for r in results),
        statistics.median(r.prompt_tokens_per_second for r in results),
    )


async def evaluate(base_url: str, cases: list[Case]) -> RunSummary:
    client, memory_client = EvalClient(base_url), EvalClient(base_url)
    try:
        await client.new_account()
        await memory_client.new_account()
        warm = await client.say(await client.new_session("warm-up"), "Hi")  # pages the prompt cache in
        if warm.error:
            raise SystemExit(f"evals: the warm-up request failed: {warm.error}")
        load_start = os.getloadavg()
        started = time.time()

        def progress(result: CaseResult) -> None:
            turn = result.scored
            ttft = f"{turn.ttft:.1f}s" if turn and turn.ttft is not None else "-"
            status = "pass" if result.passed else "FAIL " + ", ".join(k for k, v in result.checks.items() if not v)
            print(f"{result.case.id:16s} ttft {ttft:>6s}  {status}", flush=True)  # noqa: T201 - a CLI

        results, memories, false = await run_cases(client, memory_client, cases, progress)
        return RunSummary(results, memories, false, started, time.time(), load_start, os.getloadavg())
    finally:
        await client.aclose()
        await memory_client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("EVAL_BASE_URL"), help="a running server")
    parser.add_argument("--serve", action="store_true", help="start `agentserver serve` for the run")
    parser.add_argument("--local-model", default=os.environ.get("LOCAL_MODEL"), help="LOCAL_MODEL for --serve")
    parser.add_argument("--smoke", action="store_true", help="only the 10-case CI subset")
    parser.add_argument("--only", default="", help="comma-separated case ids or id prefixes")
    parser.add_argument("--label", default=None, help="results file name (default: the model's name)")
    parser.add_argument("--out", default=str(ROOT / "evals" / "results"), help="results directory")
    parser.add_argument("--no-raw-bench", action="store_true", help="skip the raw llama.cpp speed measurement")
    args = parser.parse_args()
    cases = smoke_cases() if args.smoke else CASES
    if args.only:
        prefixes = tuple(p.strip() for p in args.only.split(",") if p.strip())
        cases = [case for case in cases if case.id.startswith(prefixes)]
    if not args.serve and not args.base_url:
        parser.error("give --base-url (or EVAL_BASE_URL), or --serve")
    raw: tuple[float | None, float | None] = (None, None)
    if args.serve:
        if not args.no_raw_bench:
            raw = raw_speed(args.local_model)
        with served(args.local_model) as url:
            summary = asyncio.run(evaluate(url, cases))
        base = "agentserver serve (embedded model)"
    else:
        summary = asyncio.run(evaluate(args.base_url, cases))
        base = args.base_url
    summary.raw_generation_tps, summary.raw_prompt_tps = raw
    label = args.label or summary.model() + ("-smoke" if args.smoke else "")
    path = report.write(summary, base, label, Path(args.out))
    print(f"evals: {sum(r.passed for r in summary.results)}/{len(summary.results)} passed; wrote {path}")  # noqa: T201


if __name__ == "__main__":
    main()
