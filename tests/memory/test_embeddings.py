"""The offline embedder: parity with the original float model, checksums, batching, truncation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from agentserver.memory import embeddings
from agentserver.memory.embeddings import DIMENSIONS, LocalEmbedder, Mem0LocalEmbedding
from agentserver.memory.errors import EmbeddingModelError

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "embeddings_reference.json"


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder.load()


@pytest.fixture(scope="module")
def reference() -> dict[str, list[str] | list[list[float]]]:
    data: dict[str, list[str] | list[list[float]]] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def _cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return result


class TestParity:
    async def test_matches_the_float_model_within_int8_error(
        self, embedder: LocalEmbedder, reference: dict[str, list[str] | list[list[float]]]
    ) -> None:
        # Reference: a numpy float64 BERT run on the original safetensors weights
        # (tests/fixtures/make_embeddings_reference.py). int8 weights cost at most ~0.0012 per sentence.
        vectors = await embedder.aembed(reference["sentences"])  # type: ignore[arg-type]

        cosines = _cosines(np.array(vectors, dtype=np.float32), np.array(reference["vectors"]))

        assert cosines.min() >= 0.998
        assert cosines.mean() >= 0.999

    async def test_reproduces_its_recorded_output(
        self, embedder: LocalEmbedder, reference: dict[str, list[str] | list[list[float]]]
    ) -> None:
        vectors = await embedder.aembed(reference["sentences"])  # type: ignore[arg-type]

        cosines = _cosines(np.array(vectors, dtype=np.float32), np.array(reference["onnx_int8_vectors"]))

        assert cosines.min() >= 0.9999


class TestVectors:
    async def test_are_unit_vectors_of_384_dimensions(self, embedder: LocalEmbedder) -> None:
        vectors = np.array(await embedder.aembed(["I am vegetarian.", "저는 채식주의자입니다."]))

        assert vectors.shape == (2, DIMENSIONS)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    async def test_batching_does_not_change_a_vector(self, embedder: LocalEmbedder) -> None:
        # Padding a short sentence to a long neighbour's length must not leak into its mean.
        texts = ["short", "a much longer sentence with many more tokens than the first one has"]

        batched = np.array(await embedder.aembed(texts))
        single = np.array([(await embedder.aembed([text]))[0] for text in texts])

        assert np.allclose(batched, single, atol=1e-5)

    async def test_truncates_at_256_tokens(self, embedder: LocalEmbedder) -> None:
        # Everything past the 256th token is ignored, so a different tail gives the same vector.
        head = " ".join(["memory"] * 300)

        a, b = await embedder.aembed([head + " apples", head + " a completely different ending"])

        assert np.allclose(a, b, atol=1e-6)

    async def test_empty_input_gives_no_vectors(self, embedder: LocalEmbedder) -> None:
        assert await embedder.aembed([]) == []

    async def test_blocking_call_is_refused_on_the_event_loop(self, embedder: LocalEmbedder) -> None:
        with pytest.raises(RuntimeError, match="aembed"):
            embedder.embed(["on the loop"])

    async def test_mem0_adapter_embeds_one_and_many(self, embedder: LocalEmbedder) -> None:
        adapter = Mem0LocalEmbedding(embedder)

        one = await asyncio.to_thread(adapter.embed, "hello", "search")
        many = await asyncio.to_thread(adapter.embed_batch, ["hello", "world"])

        assert len(one) == DIMENSIONS
        assert np.allclose(one, many[0], atol=1e-6)
        assert adapter.config.embedding_dims == DIMENSIONS


class TestChecksums:
    def test_a_modified_model_file_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        tampered = tmp_path / "model.onnx"
        tampered.write_bytes(embeddings.model_path().read_bytes()[:-1] + b"\x00")
        monkeypatch.setattr(embeddings, "model_path", lambda: tampered)

        with pytest.raises(EmbeddingModelError, match="refusing to use it"):
            LocalEmbedder.load()

    def test_a_modified_tokenizer_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        tampered = tmp_path / "tokenizer.json"
        tampered.write_text(embeddings.tokenizer_path().read_text(encoding="utf-8") + " ", encoding="utf-8")
        monkeypatch.setattr(embeddings, "tokenizer_path", lambda: tampered)

        with pytest.raises(EmbeddingModelError, match="refusing to use it"):
            LocalEmbedder.load()

    def test_a_missing_model_file_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(embeddings, "model_path", lambda: tmp_path / "missing.onnx")

        with pytest.raises(EmbeddingModelError, match="missing"):
            LocalEmbedder.load()
