"""Retries, fallback and an overall deadline around LangChain chat models, with metrics and logs per call.

`ResilientChatModel` is a Runnable over an ordered list of candidates (the default model, then
FALLBACK_MODELS), each already bound to the same tools. For each candidate it retries transient failures
(timeouts, connection errors, 408/409/429/5xx) with exponential backoff and jitter, waiting at least what
`Retry-After` asks; it never retries a request the provider refused (400/404/422...). Authentication
failures (401/403) skip to the next candidate, which may be another provider. One deadline bounds the
whole call, waits included.

The RunnableConfig (callbacks included) is handed to the underlying chat model unchanged, so LangGraph's
`stream_mode="messages"` and `astream_events` see the real per-token chunks of whichever attempt runs.
A retry after some tokens were already streamed streams again from the start under a new run id (the
consumer sees a new message id; the chat turn then sends clients a `reset` event to discard the partial one).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import anthropic
import httpx
import httpx2
import openai
import structlog
from langchain_core.callbacks import AsyncCallbackManagerForChainRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config, patch_config
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from agentserver.llm import registry
from agentserver.llm.errors import LLMRequestRejected, LLMUnavailable
from agentserver.llm.priority import ModelGate
from agentserver.llm.usage import estimated_usage
from agentserver.observability import tracing
from agentserver.observability.metrics import (
    LLM_CALLS,
    LLM_COST,
    LLM_FALLBACKS,
    LLM_LATENCY,
    LLM_RETRIES,
    LLM_TOKENS,
)

log = structlog.get_logger(__name__)

# A provider asking for a longer pause than this is treated as down for this call: fall back instead.
MAX_RETRY_AFTER_SECONDS = 60.0

Sleep = Callable[[float], Awaitable[None]]
FailureKind = Literal["timeout", "connection", "rate_limited", "server_error", "auth", "rejected", "unknown"]
TRANSIENT: frozenset[FailureKind] = frozenset({"timeout", "connection", "rate_limited", "server_error"})


def classify(exc: BaseException) -> FailureKind:
    """What kind of failure an exception from a provider client is (decides retry / fallback / give up)."""
    # The provider SDKs (on httpx2) wrap transport errors; raw httpx/httpx2 ones are classified for safety.
    if isinstance(
        exc,
        openai.APITimeoutError | anthropic.APITimeoutError | httpx.TimeoutException | httpx2.TimeoutException,
    ) or isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(
        exc, openai.APIConnectionError | anthropic.APIConnectionError | httpx.TransportError | httpx2.TransportError
    ):
        return "connection"
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        if status == 429:
            return "rate_limited"
        if status in (408, 409) or status >= 500:  # 409: Anthropic's "retry, a lock timed out"; 529: overloaded
            return "server_error"
        if status in (401, 403):
            return "auth"
        return "rejected"
    if isinstance(exc, openai.APIError | anthropic.APIError | ConnectionError):
        # An error event in the middle of a stream (no HTTP status): the provider's side failed.
        return "server_error"
    return "unknown"


def _outcome(kind: FailureKind) -> str:
    """The metric label for a failed call (success | error | timeout | rate_limited)."""
    return {"timeout": "timeout", "rate_limited": "rate_limited"}.get(kind, "error")


def retry_after_seconds(exc: BaseException) -> float | None:
    """The pause a provider asked for (`retry-after-ms`, `retry-after` seconds or HTTP date), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (value := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def to_messages(value: LanguageModelInput) -> list[BaseMessage]:
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return [HumanMessage(value)]
    return convert_to_messages(value)


@dataclass(frozen=True)
class Candidate:
    """One model to try: its registry name and the runnable (tools already bound)."""

    name: str
    runnable: Runnable[LanguageModelInput, BaseMessage]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    deadline_seconds: float = 180.0
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5


@dataclass
class _CallStats:
    """Attempts of one call over all its candidates (for its span)."""

    attempts: int = 0
    models: int = 0


def _usage_attributes(message: BaseMessage) -> dict[str, Any]:
    """The OpenTelemetry GenAI attributes of an answer (model, tokens) and its cost by our registry."""
    usage = getattr(message, "usage_metadata", None) or {}
    model = str(message.response_metadata.get("model_name") or "unknown")
    input_tokens, output_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    cost = registry.cost_usd(model, input_tokens, output_tokens)
    return {
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.usage.cost": float(cost),  # Langfuse reads the cost from here
        "agentserver.cost_usd": float(cost),
    }


class _GiveUpOnCandidate(Exception):
    """This candidate cannot answer (retries exhausted, auth refused...); try the next one."""

    def __init__(self, kind: FailureKind, cause: BaseException):
        super().__init__(kind)
        self.kind = kind
        self.cause = cause


class ResilientChatModel(Runnable[LanguageModelInput, BaseMessage]):
    """Retry + fallback + deadline over candidates; see the module docstring. Async only."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        policy: RetryPolicy,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        purpose: str = "chat",
        gate: ModelGate | None = None,
        background: bool = False,
    ) -> None:
        if not candidates:
            raise ValueError("at least one model is needed")
        self.candidates = list(candidates)
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self.purpose = purpose
        # With a gate, background calls wait for (and yield to) foreground ones: see llm/priority.py.
        self.gate = gate
        self.background = background
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff_initial, max=policy.backoff_max, jitter=policy.jitter
        )

    def invoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any) -> BaseMessage:
        raise NotImplementedError("ResilientChatModel is async only: use ainvoke")

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> BaseMessage:
        # A chain run of our own (like LangChain's RunnableRetry): each attempt is a child run with the
        # callbacks of the enclosing run (e.g. the LangGraph node, picked up from the context by
        # ensure_config), so the handlers that stream tokens reach the chat model below.
        config = ensure_config(config)
        if self.gate is None:
            return await self._acall_with_config(self._run, input, config, **kwargs)
        if self.background:
            # Each (re)start gets its own deadline: time spent waiting for chat to finish is not the model's.
            return await self.gate.background(lambda: self._acall_with_config(self._run, input, config, **kwargs))
        async with self.gate.foreground():
            return await self._acall_with_config(self._run, input, config, **kwargs)

    async def _run(
        self,
        input: LanguageModelInput,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        **kwargs: Any,
    ) -> BaseMessage:
        deadline = self._clock() + self.policy.deadline_seconds
        previous: str | None = None
        stats = _CallStats()
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.candidates[0].name,
            "agentserver.llm.purpose": self.purpose,
        }
        # Tracing on: one span per call, a child span per attempt (retries and fallbacks).
        with tracing.span(f"llm.chat {self.candidates[0].name}", attributes, kind=tracing.SpanKind.CLIENT):
            for candidate in self.candidates:
                if previous is not None:
                    LLM_FALLBACKS.labels(from_model=previous, to_model=candidate.name).inc()
                    log.warning("llm.fallback", from_model=previous, to_model=candidate.name, purpose=self.purpose)
                try:
                    message = await self._with_retries(candidate, input, config, run_manager, deadline, stats, **kwargs)
                except _GiveUpOnCandidate as exc:
                    log.warning(
                        "llm.model_failed", model=candidate.name, reason=exc.kind, error=type(exc.cause).__name__
                    )
                    previous = candidate.name
                    continue
                except Exception as exc:
                    tracing.annotate({"agentserver.llm.attempts": stats.attempts})
                    tracing.fail(type(exc).__name__)
                    raise
                if tracing.enabled():
                    tracing.annotate(
                        _usage_attributes(message)
                        | {
                            "agentserver.llm.attempts": stats.attempts,
                            "agentserver.llm.retries": stats.attempts - stats.models,
                            "agentserver.llm.fallback": previous is not None,
                        }
                    )
                return message
            tracing.annotate({"agentserver.llm.attempts": stats.attempts})
            tracing.fail("LLMUnavailable")
            raise LLMUnavailable()

    async def _with_retries(
        self,
        candidate: Candidate,
        input: LanguageModelInput,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForChainRun,
        deadline: float,
        stats: _CallStats,
        **kwargs: Any,
    ) -> BaseMessage:
        stats.models += 1

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after_seconds(exc) if exc is not None else None
            return max(self._backoff(state), asked or 0.0)

        def past_deadline(state: RetryCallState) -> bool:
            return self._clock() + (state.upcoming_sleep or 0.0) >= deadline

        def too_long_asked(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after_seconds(exc) if exc is not None else None
            return asked is not None and asked > MAX_RETRY_AFTER_SECONDS

        async def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            kind = classify(exc) if exc is not None else "unknown"
            LLM_RETRIES.labels(model=candidate.name, reason=kind).inc()
            log.info(
                "llm.retry",
                model=candidate.name,
                reason=kind,
                attempt=state.attempt_number,
                wait_seconds=round(state.upcoming_sleep, 3),
            )

        def stop(state: RetryCallState) -> bool:
            return state.attempt_number > self.policy.max_retries or past_deadline(state) or too_long_asked(state)

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda exc: classify(exc) in TRANSIENT),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    tag = f"{candidate.name}:attempt:{number}"
                    attempt_config = patch_config(config, callbacks=run_manager.get_child(tag))
                    stats.attempts += 1
                    attributes = {"gen_ai.request.model": candidate.name, "agentserver.llm.attempt": number}
                    with tracing.span("llm.attempt", attributes, kind=tracing.SpanKind.CLIENT):
                        return await self._attempt(candidate, input, attempt_config, deadline, **kwargs)
        except LLMUnavailable:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind == "rejected":
                log.warning("llm.rejected", model=candidate.name, error=type(exc).__name__, status=_status(exc))
                raise LLMRequestRejected() from exc
            if kind == "unknown":
                log.exception("llm.unexpected_error", model=candidate.name)
            raise _GiveUpOnCandidate(kind, exc) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        candidate: Candidate,
        input: LanguageModelInput,
        config: RunnableConfig,
        deadline: float,
        **kwargs: Any,
    ) -> AIMessage:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise LLMUnavailable("The language model did not answer in time; please try again.")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(remaining):
                message = await candidate.runnable.ainvoke(input, config, **kwargs)
        except TimeoutError as exc:
            # Our own deadline, not a provider timeout (those arrive as the client's timeout error).
            if self._clock() >= deadline:
                self._record_failure(candidate.name, "timeout", started)
                raise LLMUnavailable("The language model did not answer in time; please try again.") from exc
            self._record_failure(candidate.name, "timeout", started)
            raise
        except asyncio.CancelledError:
            log.info("llm.call_cancelled", model=candidate.name, latency_s=round(time.perf_counter() - started, 3))
            raise
        except Exception as exc:
            self._record_failure(candidate.name, classify(exc), started)
            raise
        if not isinstance(message, AIMessage):
            raise TypeError(f"expected an AIMessage from {candidate.name}, got {type(message).__name__}")
        return self._finish(candidate.name, input, message, started)

    def _record_failure(self, model: str, kind: FailureKind, started: float) -> None:
        latency = time.perf_counter() - started
        LLM_CALLS.labels(model=model, outcome=_outcome(kind)).inc()
        LLM_LATENCY.labels(model=model).observe(latency)
        log.warning("llm.call", model=model, outcome=_outcome(kind), reason=kind, latency_s=round(latency, 3))

    def _finish(self, model: str, input: LanguageModelInput, message: AIMessage, started: float) -> AIMessage:
        latency = time.perf_counter() - started
        metadata = dict(message.response_metadata)
        if "model_name" in metadata and metadata["model_name"] != model:
            metadata["provider_model_name"] = metadata["model_name"]
        metadata["model_name"] = model  # our registry name: what usage and cost are looked up by
        updates: dict[str, Any] = {"response_metadata": metadata}
        if not message.usage_metadata:
            updates["usage_metadata"] = estimated_usage(to_messages(input), message)
            metadata["usage_estimated"] = True
        message = message.model_copy(update=updates)
        assert message.usage_metadata is not None
        input_tokens = message.usage_metadata["input_tokens"]
        output_tokens = message.usage_metadata["output_tokens"]
        cost: Decimal = registry.cost_usd(model, input_tokens, output_tokens)
        LLM_CALLS.labels(model=model, outcome="success").inc()
        LLM_LATENCY.labels(model=model).observe(latency)
        LLM_TOKENS.labels(model=model, direction="input").inc(input_tokens)
        LLM_TOKENS.labels(model=model, direction="output").inc(output_tokens)
        LLM_COST.labels(model=model).inc(float(cost))
        if tracing.enabled():
            tracing.annotate(_usage_attributes(message))
        log.info(
            "llm.call",
            model=model,
            purpose=self.purpose,
            outcome="success",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=str(cost),
            tool_calls=len(message.tool_calls),
            latency_s=round(latency, 3),
        )
        return message


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None
