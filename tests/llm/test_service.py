"""Provider resolution, model planning, the cheap model, readiness, the CLI and the app wiring."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from agentserver.cli import app as cli_app
from agentserver.config import Environment, LLMProvider, Settings, get_settings
from agentserver.llm import model_files, providers
from agentserver.llm.errors import LLMConfigurationError, ModelFileError
from agentserver.llm.service import LLMService
from tests.llm.conftest import ServiceFactory
from tests.llm.stub_openai import StubOpenAI, text


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, environment=Environment.test, **values)


class TestResolveProvider:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ({}, LLMProvider.local),
            ({"openai_api_key": "sk-x"}, LLMProvider.openai),
            ({"anthropic_api_key": "sk-ant"}, LLMProvider.anthropic),
            ({"llm_base_url": "http://127.0.0.1:11434/v1", "openai_api_key": "sk-x"}, LLMProvider.openai_compatible),
            ({"llm_provider": "fake", "openai_api_key": "sk-x"}, LLMProvider.fake),
        ],
    )
    def test_auto(self, values: dict[str, Any], expected: LLMProvider) -> None:
        assert providers.resolve_provider(settings(**values)) is expected


class TestPlanModels:
    def test_defaults_per_provider(self) -> None:
        assert [m.name for m in providers.plan_models(settings(openai_api_key="k")).models] == ["gpt-4o-mini"]
        assert [m.name for m in providers.plan_models(settings(anthropic_api_key="k")).models] == ["claude-haiku-4-5"]
        assert [m.name for m in providers.plan_models(settings()).models] == ["qwen2.5-coder-1.5b"]

    def test_fallbacks_may_mix_providers(self) -> None:
        plan = providers.plan_models(
            settings(openai_api_key="k", anthropic_api_key="k", fallback_models=["claude-sonnet-4-5"])
        )

        assert [(m.name, m.provider) for m in plan.models] == [
            ("gpt-4o-mini", LLMProvider.openai),
            ("claude-sonnet-4-5", LLMProvider.anthropic),
        ]

    def test_fallback_without_its_key_is_refused(self) -> None:
        with pytest.raises(LLMConfigurationError, match="needs ANTHROPIC_API_KEY"):
            providers.plan_models(settings(openai_api_key="k", fallback_models=["claude-haiku-4-5"]))

    def test_google_is_not_included(self) -> None:
        with pytest.raises(LLMConfigurationError, match="not included"):
            providers.plan_models(settings(llm_provider="google"))

    def test_unknown_model_on_a_compatible_server_is_unpriced(self) -> None:
        plan = providers.plan_models(settings(llm_base_url="http://x/v1", default_model="llama3.1:8b"))

        [info] = plan.models
        assert (info.provider, info.input_price_per_mtok, info.output_price_per_mtok) == (
            LLMProvider.openai_compatible,
            Decimal(0),
            Decimal(0),
        )

    def test_hosted_default_with_local_fallback_needs_the_local_server(self) -> None:
        plan = providers.plan_models(settings(openai_api_key="k", fallback_models=["qwen2.5-coder-0.5b"]))

        assert plan.needs_local_server


class TestService:
    async def test_default_model_is_discovered_from_the_server(
        self, stub: StubOpenAI, make_service: ServiceFactory
    ) -> None:
        llm = await make_service(default_model=None, fallback_models=[])

        assert llm.default_model == "stub-default"

    async def test_cheap_model_is_the_cheapest_configured(self, stub: StubOpenAI, make_service: ServiceFactory) -> None:
        llm = await make_service(
            llm_provider="openai", openai_api_key="k", default_model="gpt-4o", fallback_models=["gpt-4o-mini"]
        )
        stub.script("gpt-4o-mini", text("short summary"))

        answer = await llm.cheap_model().ainvoke("summarise")

        assert isinstance(answer, AIMessage)
        assert llm.usage_of(answer).model == "gpt-4o-mini"
        assert [r.model for r in stub.requests] == ["gpt-4o-mini"]

    async def test_openai_endpoint_of_a_compatible_server(self, stub: StubOpenAI, make_service: ServiceFactory) -> None:
        llm = await make_service(llm_api_key="secret-key")

        endpoint = llm.openai_endpoint()

        assert endpoint is not None
        assert (endpoint.base_url, endpoint.api_key, endpoint.model) == (stub.url, "secret-key", "primary")
        assert "secret-key" not in repr(endpoint)

    async def test_readiness_check_reaches_the_compatible_server(self, make_service: ServiceFactory) -> None:
        llm = await make_service()

        await llm.check()

    async def test_readiness_check_fails_when_the_server_is_down(self) -> None:
        service = await LLMService.start(
            settings(llm_base_url="http://127.0.0.1:9/v1", default_model="m", llm_provider="openai_compatible")
        )
        try:
            with pytest.raises(httpx.HTTPError):
                await service.check()
        finally:
            await service.aclose()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AGENTSERVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


class TestCli:
    def test_status_lists_the_embedded_models(self, cli_env: Path) -> None:
        result = CliRunner().invoke(cli_app, ["model", "status"], env={"COLUMNS": "200"})

        assert result.exit_code == 0, result.output
        assert "qwen2.5-coder-1.5b (LOCAL_MODEL)" in result.output

    def test_pull_refuses_a_mismatch_with_a_clear_message(self, cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def bad_assemble(*args: Any, **kwargs: Any) -> Path:
            raise ModelFileError("the assembled model's sha256 is abc, expected def: refusing it (file deleted)")

        monkeypatch.setattr(model_files, "assemble", bad_assemble)

        result = CliRunner().invoke(cli_app, ["model", "pull"])

        assert result.exit_code == 1
        assert "refusing it" in result.output
        assert not (cli_env / "models" / "qwen2.5-coder-1.5b.gguf").exists()

    def test_unknown_model_is_refused(self, cli_env: Path) -> None:
        result = CliRunner().invoke(cli_app, ["model", "pull", "gpt-4o"])

        assert result.exit_code == 2
        assert "not an embedded model" in result.output


class TestApp:
    async def test_readiness_includes_the_llm(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/ready")

        assert response.json()["checks"]["llm"] == "ok"
