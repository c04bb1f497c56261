"""The provider factory: settings -> which models to use, and a LangChain chat model for each.

Every provider goes through a LangChain client (ChatOpenAI, ChatAnthropic); the embedded model and any
OpenAI-compatible server (vLLM, Ollama, llama.cpp) use ChatOpenAI pointed at their URL, with tolerant
tool-call parsing for small models. Client-side retries are off (`max_retries=0`): `resilience.py` owns
retries, so one policy and one set of metrics apply to every provider.

`google` is accepted by LLM_PROVIDER but not included: langchain-google-genai is not a dependency (use
Gemini through its OpenAI-compatible endpoint with `openai_compatible` instead).
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from agentserver.config import LLMProvider, Settings
from agentserver.llm import registry
from agentserver.llm.chat_openai import TolerantChatOpenAI
from agentserver.llm.errors import LLMConfigurationError
from agentserver.llm.fake import FakeChatModel
from agentserver.llm.registry import ModelInfo

# Servers that need no key still want the Authorization header to be well-formed.
PLACEHOLDER_KEY = "not-needed"


def resolve_provider(settings: Settings) -> LLMProvider:
    """LLM_PROVIDER, with `auto` meaning: a configured URL or key wins, else the embedded model."""
    if settings.llm_provider is not LLMProvider.auto:
        return settings.llm_provider
    if settings.llm_base_url:
        return LLMProvider.openai_compatible
    if settings.openai_api_key:
        return LLMProvider.openai
    if settings.anthropic_api_key:
        return LLMProvider.anthropic
    return LLMProvider.local


@dataclass(frozen=True)
class ModelPlan:
    """The models one service uses, in order (default first, then fallbacks), with their providers."""

    provider: LLMProvider
    models: list[ModelInfo]

    @property
    def needs_local_server(self) -> bool:
        return any(info.provider is LLMProvider.local for info in self.models)


def plan_models(settings: Settings, *, discovered_default: str | None = None) -> ModelPlan:
    """Resolve DEFAULT_MODEL and FALLBACK_MODELS to registry entries and check their providers are usable.

    A name the registry knows keeps its own provider (so FALLBACK_MODELS may mix providers); any other
    name is served by the resolved provider (e.g. `llama3.1:8b` on Ollama) and is priced at 0.
    """
    provider = resolve_provider(settings)
    if provider is LLMProvider.google:
        raise LLMConfigurationError(
            "LLM_PROVIDER=google is not included (langchain-google-genai is not installed); use Gemini's "
            "OpenAI-compatible endpoint with LLM_PROVIDER=openai_compatible and LLM_BASE_URL instead"
        )
    default = settings.default_model or _default_model(provider, settings, discovered_default)
    names = [default, *(name for name in settings.fallback_models if name != default)]
    models = []
    for name in names:
        known = registry.lookup(name)
        if provider is LLMProvider.fake:
            info = registry.info_for(name, LLMProvider.fake)
            info = ModelInfo(info.name, LLMProvider.fake, info.context_window)  # every model is the fake
        elif known is not None:
            info = known
        else:
            context = settings.local_model_context if provider is LLMProvider.local else 8192
            info = registry.info_for(name, provider, context)
        _check_usable(info, settings)
        models.append(info)
    local_names = {info.name for info in models if info.provider is LLMProvider.local}
    if len(local_names) > 1:
        raise LLMConfigurationError(f"only one embedded model can run at a time, got {sorted(local_names)}")
    return ModelPlan(provider, models)


def _default_model(provider: LLMProvider, settings: Settings, discovered: str | None) -> str:
    if provider is LLMProvider.local:
        return settings.local_model
    if provider is LLMProvider.openai_compatible:
        if discovered is None:
            raise LLMConfigurationError("DEFAULT_MODEL is required with LLM_BASE_URL (the server lists none)")
        return discovered
    return registry.PROVIDER_DEFAULT_MODEL[provider]


def _check_usable(info: ModelInfo, settings: Settings) -> None:
    missing = {
        LLMProvider.openai: None if settings.openai_api_key else "OPENAI_API_KEY",
        LLMProvider.anthropic: None if settings.anthropic_api_key else "ANTHROPIC_API_KEY",
        LLMProvider.openai_compatible: None if settings.llm_base_url else "LLM_BASE_URL",
    }.get(info.provider)
    if missing:
        raise LLMConfigurationError(f"model {info.name!r} ({info.provider.value}) needs {missing}")
    if info.provider is LLMProvider.local and info.local_file is None:
        raise LLMConfigurationError(f"model {info.name!r} is not an embedded model (see llm/registry.py)")


def build_chat_model(
    info: ModelInfo,
    settings: Settings,
    *,
    local_base_url: str | None = None,
    local_api_key: str | None = None,
    fake: FakeChatModel | None = None,
) -> BaseChatModel:
    """A LangChain chat model for one registry entry; streaming and bind_tools work the same for all."""
    timeout = settings.llm_timeout_seconds
    match info.provider:
        case LLMProvider.openai:
            assert settings.openai_api_key is not None
            return ChatOpenAI(
                model=info.api_model,
                api_key=settings.openai_api_key,
                base_url=settings.llm_base_url,  # LLM_PROVIDER=openai + LLM_BASE_URL: a proxy or gateway
                timeout=timeout,
                max_retries=0,
                stream_usage=True,
                stream_chunk_timeout=timeout,
            )
        case LLMProvider.anthropic:
            assert settings.anthropic_api_key is not None
            return ChatAnthropic(
                model=info.api_model,
                api_key=settings.anthropic_api_key,
                timeout=timeout,
                max_retries=0,
                stop=None,
            )
        case LLMProvider.openai_compatible:
            assert settings.llm_base_url is not None
            return TolerantChatOpenAI(
                model=info.api_model,
                base_url=settings.llm_base_url,
                api_key=settings.llm_api_key or SecretStr(PLACEHOLDER_KEY),
                tool_calling="constrained" if settings.tool_calling == "constrained" else "native",
                timeout=timeout,
                max_retries=0,
                stream_usage=True,
                stream_chunk_timeout=timeout,
            )
        case LLMProvider.local:
            if local_base_url is None or local_api_key is None:
                raise LLMConfigurationError("the embedded model server is not running")
            local_timeout = max(timeout, settings.llm_deadline_seconds)
            return TolerantChatOpenAI(
                model=info.api_model,
                base_url=local_base_url,
                api_key=SecretStr(local_api_key),
                tool_calling="native" if settings.tool_calling == "native" else "constrained",
                max_tokens=settings.local_model_max_tokens,
                temperature=settings.local_model_temperature,
                # A slow local answer is not a network fault: retrying only queues the same work again.
                # The overall deadline (LLM_DEADLINE_SECONDS) still bounds it.
                timeout=local_timeout,
                max_retries=0,
                stream_usage=True,
                stream_chunk_timeout=local_timeout,
            )
        case LLMProvider.fake:
            return fake if fake is not None else FakeChatModel(model_name=info.name)
    raise LLMConfigurationError(f"provider {info.provider.value!r} cannot build chat models")
