"""mem0 wiring: the table per embedding model, the hosted (OpenAI) embedder against a local stub of the
embeddings API, and the LLM adapter's guard against deadlocking the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentserver.llm.fake import FakeChatModel
from agentserver.memory.backend import (
    OPENAI_EMBEDDING_DIMENSIONS,
    LangChainExtractionLLM,
    _build_embedder,
    _vector_table,
)
from tests.memory.conftest import memory_settings_for


class _EmbeddingsAPI(BaseHTTPRequestHandler):
    """POST /v1/embeddings as OpenAI answers it; remembers the request bodies."""

    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        dims = body.get("dimensions", 1536)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        answer = {
            "object": "list",
            "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": [0.5] * dims} for i in range(len(inputs))],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def embeddings_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_EmbeddingsAPI]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _EmbeddingsAPI.requests = []
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    yield _EmbeddingsAPI
    server.shutdown()
    thread.join()


class TestVectorTable:
    def test_local_embeddings_get_a_384_dimension_table(self, tmp_path: Path) -> None:
        table = _vector_table(memory_settings_for("postgresql://unused/db", tmp_path))

        assert (table.name, table.dimensions) == ("mem0_minilm_l6_384", 384)

    def test_openai_embeddings_get_a_table_of_their_own(self, tmp_path: Path) -> None:
        settings = memory_settings_for("postgresql://unused/db", tmp_path, embedding_provider="openai")

        table = _vector_table(settings)

        assert (table.name, table.dimensions) == ("mem0_openai_te3_small_1536", 1536)


class TestOpenAIEmbedder:
    async def test_embeds_through_the_embeddings_api(
        self, embeddings_api: type[_EmbeddingsAPI], tmp_path: Path
    ) -> None:
        settings = memory_settings_for(
            "postgresql://unused/db", tmp_path, embedding_provider="openai", openai_api_key="sk-test"
        )
        embedder = _build_embedder(settings)

        vector = await asyncio.to_thread(embedder.embed, "I am vegetarian", "add")

        assert len(vector) == OPENAI_EMBEDDING_DIMENSIONS
        assert embeddings_api.requests == [
            {
                "input": ["I am vegetarian"],
                "model": "text-embedding-3-small",
                "encoding_format": "float",
                "dimensions": OPENAI_EMBEDDING_DIMENSIONS,
            }
        ]

    def test_needs_an_api_key(self, tmp_path: Path) -> None:
        settings = memory_settings_for("postgresql://unused/db", tmp_path, embedding_provider="openai")

        with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
            _build_embedder(settings)


class TestExtractionLLM:
    async def test_answers_from_a_worker_thread(self) -> None:
        llm = LangChainExtractionLLM(FakeChatModel(script=['{"memory": []}']), asyncio.get_running_loop(), 5.0)

        answer = await asyncio.to_thread(
            llm.generate_response, [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
        )

        assert answer == '{"memory": []}'

    async def test_refuses_to_block_the_event_loop(self) -> None:
        llm = LangChainExtractionLLM(FakeChatModel(), asyncio.get_running_loop(), 5.0)

        with pytest.raises(RuntimeError, match="deadlock"):
            llm.generate_response([{"role": "user", "content": "u"}])

    async def test_shutdown_releases_a_thread_waiting_for_the_model(self) -> None:
        model = FakeChatModel(script=["never delivered"], gate=asyncio.Event())  # the answer waits on the gate
        llm = LangChainExtractionLLM(model, asyncio.get_running_loop(), 5.0)

        def call() -> str:
            try:
                return llm.generate_response([{"role": "user", "content": "u"}])
            except concurrent.futures.CancelledError:
                return "released"

        waiting = asyncio.create_task(asyncio.to_thread(call))
        await model.wait_streaming()  # the call has reached the model and waits on the gate

        llm.cancel_pending()

        assert await waiting == "released"


class TestExtractionLLMShutdownRace:
    async def test_a_call_that_registers_after_shutdown_is_released_at_once(self) -> None:
        model = FakeChatModel(script=["never delivered"], gate=asyncio.Event())
        llm = LangChainExtractionLLM(model, asyncio.get_running_loop(), 5.0)
        llm.cancel_pending()  # shutdown happened before this worker thread registered its call

        def call() -> str:
            try:
                return llm.generate_response([{"role": "user", "content": "u"}])
            except concurrent.futures.CancelledError:
                return "released"

        assert await asyncio.to_thread(call) == "released"
