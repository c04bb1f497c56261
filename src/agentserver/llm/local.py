"""The embedded offline model: llama.cpp's server (xllamacpp), in process, on loopback, behind a random key.

We talk to it over its OpenAI-compatible HTTP API with the same ChatOpenAI client as any other
OpenAI-compatible provider, so the local model shares every code path (retries, streaming, tools, usage).

- Inference runs on llama.cpp's own threads; the event loop only does HTTP. Loading and unloading block
  (seconds), so they run in a worker thread.
- Concurrency: `PARALLEL_SLOTS` requests decode together (continuous batching) over one unified KV cache
  (each may use the whole context); further requests wait in llama.cpp's FIFO task queue, so they are
  served in arrival order.
- Cancellation: when a client closes the HTTP stream, llama.cpp notices on its next write and stops
  generating for that request (checked in tests/llm/test_local_model.py).
- The key is random per process and never leaves it: nothing else on the machine can use the server.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

from agentserver.config import Settings
from agentserver.llm import model_files
from agentserver.llm.errors import LLMConfigurationError, ModelFileError
from agentserver.llm.registry import ModelInfo

log = structlog.get_logger(__name__)

PARALLEL_SLOTS = 2
MISSING_RUNTIME = (
    "the embedded model needs llama.cpp (xllamacpp, the `local` extra), which this installation does not have: "
    "install it (`make install`, or build the image with WITH_LOCAL_MODEL=true) or configure a hosted model "
    "(OPENAI_API_KEY, ANTHROPIC_API_KEY or LLM_BASE_URL)"
)


def _xllamacpp() -> Any:
    """llama.cpp's bindings, imported on first use: an image built without the `local` extra must still start
    (with a hosted model) and run every other command."""
    try:
        return importlib.import_module("xllamacpp")
    except ModuleNotFoundError as exc:
        if exc.name != "xllamacpp":
            raise
        raise LLMConfigurationError(MISSING_RUNTIME) from None


def default_threads() -> int:
    """All cores this process may use but one, which stays free for the API itself (event loop, database,
    embeddings). llama.cpp's threads spin while they wait for each other, so a single shared core stalls
    them all: on 2 busy cores generation measured 0.7 tok/s with 2 threads and 11.4 tok/s with 1
    (bench/results/llm_local.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


class _ProgressLog:
    """Logs assembly progress every 10% (the lifespan has no progress bar)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.next_percent = 10

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent >= self.next_percent:
            log.info("llm.model_pull_progress", model=self.name, percent=percent)
            self.next_percent = percent - percent % 10 + 10


def _server_params(path: Path, api_key: str, *, threads: int, context: int) -> Any:
    params = _xllamacpp().CommonParams()
    params.model.path = str(path)
    params.n_ctx = context
    params.n_parallel = PARALLEL_SLOTS
    params.kv_unified = True  # slots share the KV cache: each request may use the whole context
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.api_keys = [api_key]
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # any free port; read back from listening_address
    params.ui = False
    params.endpoint_metrics = True
    params.verbosity = 0
    return params


class LocalModelServer:
    """A running embedded llama.cpp server. Build with `await LocalModelServer.start(...)`."""

    def __init__(self, server: Any, *, api_key: str, info: ModelInfo, path: Path, threads: int, context: int):
        self._server: Any = server
        self.api_key = api_key
        self.info = info
        self.path = path
        self.threads = threads
        self.context = context
        self.root_url = str(server.listening_address).rstrip("/")

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (for ChatOpenAI's base_url)."""
        return f"{self.root_url}/v1"

    @classmethod
    async def start(
        cls,
        settings: Settings,
        info: ModelInfo,
        *,
        threads: int | None = None,
        context: int | None = None,
    ) -> LocalModelServer:
        """Assemble the model file if missing (verified), then load it; both in a worker thread."""
        if info.local_file is None:
            raise ModelFileError(f"{info.name!r} is not an embedded model")
        llama = _xllamacpp()  # before assembling 491 MB for a runtime that is not there
        path = await asyncio.to_thread(model_files.ensure_model, settings.data_dir, info, _ProgressLog(info.name))
        threads = threads or settings.local_model_threads or default_threads()
        context = context or settings.local_model_context
        api_key = secrets.token_urlsafe(32)
        params = _server_params(path, api_key, threads=threads, context=context)
        started = time.perf_counter()
        server = await asyncio.to_thread(llama.Server, params)
        self = cls(server, api_key=api_key, info=info, path=path, threads=threads, context=context)
        log.info(
            "llm.local_started",
            model=info.name,
            threads=threads,
            context=context,
            slots=PARALLEL_SLOTS,
            load_seconds=round(time.perf_counter() - started, 2),
        )
        return self

    def ensure_running(self) -> None:
        if self._server is None:
            raise RuntimeError("the embedded model server is stopped")

    async def stop(self) -> None:
        """Unload the model. Dropping the last reference stops the server and joins its threads: do it off-loop."""
        if self._server is None:
            return

        def release() -> None:
            self._server = None

        await asyncio.to_thread(release)
        log.info("llm.local_stopped", model=self.info.name)


@dataclass(frozen=True)
class Throughput:
    """llama.cpp's own timings for one request (prompt processing and generation, tokens per second)."""

    prompt_tokens: int
    prompt_tokens_per_second: float
    generated_tokens: int
    generation_tokens_per_second: float
    wall_seconds: float


BENCH_TEXT = (
    "The embedded model runs on the CPU of the API host, so its speed decides how long a user waits. "
    "This paragraph is repeated to give the prompt a realistic length for a chat with some history. "
)


async def measure_throughput(server: LocalModelServer, *, prompt_repeats: int = 8, max_tokens: int = 64) -> Throughput:
    """One request with the prompt cache off and EOS ignored, so both phases process a known token count."""
    body = {
        "messages": [{"role": "user", "content": BENCH_TEXT * prompt_repeats + "Summarise the text above."}],
        "max_tokens": max_tokens,
        "cache_prompt": False,
        "ignore_eos": True,
        "temperature": 0,
    }
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        response = await http.post(
            f"{server.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {server.api_key}"}
        )
    response.raise_for_status()
    timings = response.json()["timings"]
    return Throughput(
        prompt_tokens=int(timings["prompt_n"]),
        prompt_tokens_per_second=float(timings["prompt_per_second"]),
        generated_tokens=int(timings["predicted_n"]),
        generation_tokens_per_second=float(timings["predicted_per_second"]),
        wall_seconds=time.perf_counter() - started,
    )
