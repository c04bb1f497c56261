"""Token usage and cost of one model answer, and the metrics/log line recorded for every call."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata

from agentserver.llm import registry

# Rough characters per token for text whose tokenizer we do not have (only used when a provider
# reports no usage at all; every supported provider, llama.cpp included, normally does).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Usage:
    """What one assistant message cost. `model` is the model that actually answered (after fallbacks)."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (cost as a string, so no precision is lost)."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
        }


def usage_of(message: AIMessage) -> Usage:
    """Usage of an answer returned by `LLMService.chat_model(...)` (model name and usage are always set)."""
    model = str(message.response_metadata.get("model_name") or "unknown")
    meta = message.usage_metadata or UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)
    input_tokens, output_tokens = int(meta["input_tokens"]), int(meta["output_tokens"])
    return Usage(model, input_tokens, output_tokens, registry.cost_usd(model, input_tokens, output_tokens))


def _text_length(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_length(part.get("text", "") if isinstance(part, dict) else part) for part in content)
    return len(str(content))


def estimate_tokens(messages: list[BaseMessage]) -> int:
    return sum(max(1, _text_length(m.content) // CHARS_PER_TOKEN) for m in messages)


def estimated_usage(prompt: list[BaseMessage], answer: AIMessage) -> UsageMetadata:
    input_tokens = estimate_tokens(prompt)
    output_tokens = max(1, _text_length(answer.content) // CHARS_PER_TOKEN) + sum(
        len(str(call["args"])) // CHARS_PER_TOKEN for call in answer.tool_calls
    )
    total = input_tokens + output_tokens
    return UsageMetadata(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=total)
