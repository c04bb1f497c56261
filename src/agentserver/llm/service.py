"""`LLMService`: the one object the rest of the app uses to talk to language models.

Built in the app lifespan (`await LLMService.start(settings)`, stored in `state["llm"]`, closed with
`aclose()`):

    model = llm.chat_model(tools)           # default model, tools bound, retries + fallbacks + deadline
    answer = await model.ainvoke(messages)  # an AIMessage; tokens stream through LangGraph callbacks
    usage = llm.usage_of(answer)            # Usage(model, input_tokens, output_tokens, cost_usd)

`cheap_model()` is the cheapest configured model (registry prices), for summaries inside a chat turn;
`background_model()` is the same for work off the request path (memory extraction): on the embedded model it
yields to chat (`llm/priority.py`).
With `LLM_PROVIDER=fake` every model is one scripted `FakeChatModel` (`llm.fake`), which tests re-script.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import structlog
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from agentserver.config import LLMProvider, Settings
from agentserver.llm import providers
from agentserver.llm.errors import LLMConfigurationError
from agentserver.llm.fake import FakeChatModel
from agentserver.llm.local import LocalModelServer
from agentserver.llm.priority import ModelGate
from agentserver.llm.registry import ModelInfo
from agentserver.llm.resilience import Candidate, ResilientChatModel, RetryPolicy, Sleep
from agentserver.llm.usage import Usage, usage_of

log = structlog.get_logger(__name__)

DISCOVERY_TIMEOUT_SECONDS = 5.0


class LLMService:
    """Chat models with tools, retries and fallbacks, from the settings. See the module docstring."""

    def __init__(
        self,
        models: Sequence[tuple[ModelInfo, BaseChatModel]],
        policy: RetryPolicy,
        *,
        provider: LLMProvider,
        local_server: LocalModelServer | None = None,
        check_url: str | None = None,
        check_headers: dict[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
        settings: Settings | None = None,
    ) -> None:
        if not models:
            raise LLMConfigurationError("no model configured")
        self._models = list(models)
        self.policy = policy
        self.provider = provider
        self._local_server = local_server
        self._check_url = check_url
        self._check_headers = check_headers or {}
        self._sleep = sleep
        self._settings = settings
        self._http = httpx.AsyncClient(timeout=DISCOVERY_TIMEOUT_SECONDS)
        # The embedded model's CPU is the API host's: background calls must not slow a chat answer.
        self.gate = ModelGate() if local_server is not None else None

    # --- lifecycle --------------------------------------------------------------------------------
    @classmethod
    async def start(cls, settings: Settings, *, sleep: Sleep = asyncio.sleep) -> LLMService:
        """Resolve the provider and models; start the embedded model server when a model needs it."""
        provider = providers.resolve_provider(settings)
        discovered = None
        if provider is LLMProvider.openai_compatible and not settings.default_model:
            discovered = await _discover_default_model(settings)
        plan = providers.plan_models(settings, discovered_default=discovered)
        policy = RetryPolicy(max_retries=settings.llm_max_retries, deadline_seconds=settings.llm_deadline_seconds)

        local_server = None
        if plan.needs_local_server:
            local_info = next(info for info in plan.models if info.provider is LLMProvider.local)
            local_server = await LocalModelServer.start(settings, local_info)
        try:
            fake = FakeChatModel() if provider is LLMProvider.fake else None
            models = [
                (
                    info,
                    providers.build_chat_model(
                        info,
                        settings,
                        local_base_url=local_server.base_url if local_server else None,
                        local_api_key=local_server.api_key if local_server else None,
                        fake=fake,
                    ),
                )
                for info in plan.models
            ]
        except BaseException:
            if local_server is not None:
                await local_server.stop()
            raise
        check_url, check_headers = None, {}
        if local_server is not None and provider is LLMProvider.local:
            check_url = f"{local_server.root_url}/health"
        elif provider is LLMProvider.openai_compatible and settings.llm_base_url:
            check_url = f"{settings.llm_base_url.rstrip('/')}/models"
            if settings.llm_api_key:
                check_headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value()}"}
        service = cls(
            models,
            policy,
            provider=provider,
            local_server=local_server,
            check_url=check_url,
            check_headers=check_headers,
            sleep=sleep,
            settings=settings,
        )
        log.info(
            "llm.started",
            provider=provider.value,
            default_model=service.default_model,
            fallback_models=service.model_names[1:],
        )
        return service

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._local_server is not None:
            await self._local_server.stop()

    # --- models -----------------------------------------------------------------------------------
    @property
    def default_model(self) -> str:
        return self._models[0][0].name

    @property
    def context_window(self) -> int:
        """Tokens the default model accepts (prompt + answer); for the embedded model, LOCAL_MODEL_CONTEXT."""
        info = self._models[0][0]
        if info.provider is LLMProvider.local and self._local_server is not None:
            return min(info.context_window, self._local_server.context)
        return info.context_window

    @property
    def model_names(self) -> list[str]:
        return [info.name for info, _ in self._models]

    def chat_model(
        self, tools: Sequence[BaseTool] = (), models: Sequence[str] | None = None
    ) -> Runnable[LanguageModelInput, BaseMessage]:
        """The default model with `tools` bound, retrying transient errors, then each fallback (tools bound too).

        `models`: an assistant's own model and fallbacks, by name, in order (among the configured ones)."""
        chosen = self._models
        if models:
            by_name = {info.name: (info, model) for info, model in self._models}
            chosen = [by_name[name] for name in dict.fromkeys(models) if name in by_name] or self._models
        candidates = [Candidate(info.name, model.bind_tools(list(tools)) if tools else model) for info, model in chosen]
        return ResilientChatModel(candidates, self.policy, sleep=self._sleep, purpose="chat", gate=self.gate)

    def cheap_model(self) -> Runnable[LanguageModelInput, BaseMessage]:
        """The cheapest configured model first (by registry price), the others as fallbacks; no tools."""
        return ResilientChatModel(
            self._cheap_candidates(), self.policy, sleep=self._sleep, purpose="cheap", gate=self.gate
        )

    def background_model(self) -> Runnable[LanguageModelInput, BaseMessage]:
        """`cheap_model()` for work off the request path: on the embedded model it waits for, and yields to, chat.

        Callers may pass `response_format=` (OpenAI's JSON mode or JSON schema) to `ainvoke`: it reaches every
        provider (ChatAnthropic turns it into its own structured-output setting).
        """
        return ResilientChatModel(
            self._cheap_candidates(),
            self.policy,
            sleep=self._sleep,
            purpose="background",
            gate=self.gate,
            background=True,
        )

    def _cheap_candidates(self) -> list[Candidate]:
        ranked = sorted(self._models, key=lambda pair: _price(pair[0]))  # stable: ties keep the configured order
        return [Candidate(info.name, model) for info, model in ranked]

    @staticmethod
    def usage_of(message: AIMessage) -> Usage:
        """Tokens and cost of an answer from `chat_model`/`cheap_model`, to store with the assistant message."""
        return usage_of(message)

    @property
    def fake(self) -> FakeChatModel:
        """The scripted model (LLM_PROVIDER=fake only): tests call `llm.fake.set_script([...])`."""
        model = self._models[0][1]
        if not isinstance(model, FakeChatModel):
            raise RuntimeError("the LLM provider is not `fake`")
        return model

    @property
    def local_server(self) -> LocalModelServer | None:
        return self._local_server

    def openai_endpoint(self) -> OpenAIEndpoint | None:
        """Where the cheapest model speaks the OpenAI protocol (for libraries that take a URL, e.g. mem0).

        None for Anthropic and the fake: such callers should use `cheap_model()` instead.
        """
        info = sorted((info for info, _ in self._models), key=_price)[0]
        if info.provider is LLMProvider.local and self._local_server is not None:
            return OpenAIEndpoint(self._local_server.base_url, self._local_server.api_key, info.api_model)
        settings = self._settings
        if settings is None:
            return None
        if info.provider is LLMProvider.openai_compatible and settings.llm_base_url:
            key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else providers.PLACEHOLDER_KEY
            return OpenAIEndpoint(settings.llm_base_url, key, info.api_model)
        if info.provider is LLMProvider.openai and settings.openai_api_key:
            base = settings.llm_base_url or "https://api.openai.com/v1"
            return OpenAIEndpoint(base, settings.openai_api_key.get_secret_value(), info.api_model)
        return None

    # --- readiness --------------------------------------------------------------------------------
    async def check(self) -> None:
        """Raise when the provider cannot serve requests (embedded server down, OpenAI-compatible URL dead).

        Hosted providers are not called: a readiness probe every few seconds must not cost money or quota;
        their keys were checked at startup and failures surface per call (with fallbacks).
        """
        if self._local_server is not None:
            self._local_server.ensure_running()
        if self._check_url is None:
            return
        response = await self._http.get(self._check_url, headers=self._check_headers)
        response.raise_for_status()


@dataclass(frozen=True)
class OpenAIEndpoint:
    base_url: str
    api_key: str = field(repr=False)
    model: str


def _price(info: ModelInfo) -> Decimal:
    return info.input_price_per_mtok + info.output_price_per_mtok


async def _discover_default_model(settings: Settings) -> str | None:
    """The first model an OpenAI-compatible server lists (Ollama, vLLM and llama.cpp all serve GET /models)."""
    assert settings.llm_base_url is not None
    headers = {}
    if settings.llm_api_key:
        headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
    try:
        async with httpx.AsyncClient(timeout=DISCOVERY_TIMEOUT_SECONDS) as http:
            response = await http.get(f"{settings.llm_base_url.rstrip('/')}/models", headers=headers)
            response.raise_for_status()
            data = response.json().get("data") or []
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("llm.discovery_failed", error=type(exc).__name__)
        return None
    return str(data[0]["id"]) if data and isinstance(data[0], dict) and "id" in data[0] else None
