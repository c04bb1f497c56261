from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from agentserver.config import DEFAULT_JWT_SECRET, Environment, Settings

STRONG_SECRET = "s" * 48


def production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": Environment.production,
        "jwt_secret_key": STRONG_SECRET,
        "database_url": "postgresql://app@db/app",
        "cors_origins": "https://chat.example.com",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


class TestProductionGuards:
    def test_a_complete_production_config_starts(self) -> None:
        settings = production()

        assert settings.is_production
        assert settings.effective_log_format == "json"

    @pytest.mark.parametrize(
        ("overrides", "named"),
        [
            ({"jwt_secret_key": DEFAULT_JWT_SECRET}, "JWT_SECRET_KEY"),
            ({"jwt_secret_key": "short-secret"}, "JWT_SECRET_KEY"),
            ({"debug": True}, "DEBUG"),
            ({"database_url": None}, "DATABASE_URL"),
            ({"cors_origins": "*"}, "CORS_ORIGINS"),
        ],
    )
    def test_refuses_unsafe_settings(self, overrides: dict[str, object], named: str) -> None:
        with pytest.raises(ValidationError, match=named):
            production(**overrides)

    def test_development_accepts_the_defaults(self) -> None:
        settings = Settings(_env_file=None)

        assert settings.database_url is None
        assert settings.effective_log_format == "console"


class TestListSettings:
    def test_comma_separated(self) -> None:
        settings = Settings(_env_file=None, fallback_models=" gpt-4o-mini, claude-haiku-4-5 ,")

        assert settings.fallback_models == ["gpt-4o-mini", "claude-haiku-4-5"]

    def test_json_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORS_ORIGINS", '["https://a.example", "https://b.example"]')

        assert Settings(_env_file=None).cors_origins == ["https://a.example", "https://b.example"]


class TestStartupRefusal:
    def test_serve_in_production_with_the_default_secret_exits_naming_the_setting(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "DATABASE_URL", "DEBUG"))}
        env.update(ENVIRONMENT="production", DATABASE_URL="postgresql://app@127.0.0.1:1/app")

        result = subprocess.run(
            [sys.executable, "-m", "agentserver", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 2
        assert "JWT_SECRET_KEY" in result.stderr
        assert "Traceback" not in result.stderr
