"""deploy/ecs: the Fargate task definitions, the service and its ALB target group (the guide's 11.3).

The JSON files are the request bodies of `aws ecs register-task-definition`, `aws ecs create-service` and
`aws elbv2 create-target-group` (`--cli-input-json file://...`). They are validated against those operations'
input shapes from botocore's service models (offline; botocore is installed by
scripts/ensure-deploy-validators.sh, the test skips without it), and checked as data here.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentserver.config import Settings
from tests.deploy.validators import VALIDATORS_BIN

ROOT = Path(__file__).resolve().parents[2]
# The validators' own venv (it has botocore); never a python from PATH, which would not.
VALIDATOR_PYTHON = str(VALIDATORS_BIN / "python") if (VALIDATORS_BIN / "python").is_file() else None
# Secret-looking settings: they may only arrive through `secrets` (Secrets Manager), never `environment`.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN|DATABASE_URL|REDIS_URL", re.IGNORECASE)
# Fargate's valid (cpu, memory) pairs for the sizes used here.
FARGATE_SIZES = {("256", "512"), ("256", "1024"), ("512", "1024"), ("1024", "2048"), ("2048", "4096")}
REQUESTS = [
    ("task-definition.json", "ecs", "RegisterTaskDefinition"),
    ("migration-task-definition.json", "ecs", "RegisterTaskDefinition"),
    ("service.json", "ecs", "CreateService"),
    ("target-group.json", "elbv2", "CreateTargetGroup"),
]


def _load(deploy_dir: Path, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((deploy_dir / "ecs" / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def task(deploy_dir: Path) -> dict[str, Any]:
    return _load(deploy_dir, "task-definition.json")


@pytest.fixture(scope="module")
def migration(deploy_dir: Path) -> dict[str, Any]:
    return _load(deploy_dir, "migration-task-definition.json")


def _container(task: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = task["containerDefinitions"]
    [container] = containers
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {pair["name"]: pair["value"] for pair in container["environment"]}


@pytest.mark.skipif(VALIDATOR_PYTHON is None, reason="no validators venv with botocore (ensure-deploy-validators.sh)")
@pytest.mark.parametrize(("name", "service", "operation"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_matches_the_aws_api_input_shape(deploy_dir: Path, name: str, service: str, operation: str) -> None:
    assert VALIDATOR_PYTHON is not None
    result = subprocess.run(  # noqa: S603 - our own script and files
        [
            VALIDATOR_PYTHON,
            str(ROOT / "scripts" / "validate-aws-input.py"),
            service,
            operation,
            str(deploy_dir / "ecs" / name),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"valid {service} {operation} input" in result.stdout


@pytest.mark.skipif(VALIDATOR_PYTHON is None, reason="no validators venv with botocore (ensure-deploy-validators.sh)")
def test_the_shape_check_rejects_a_wrong_request(tmp_path: Path) -> None:
    assert VALIDATOR_PYTHON is not None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"family": "x", "containerDefinitions": [{"name": "x", "imag": "typo"}]}))

    result = subprocess.run(  # noqa: S603 - our own script
        [VALIDATOR_PYTHON, str(ROOT / "scripts" / "validate-aws-input.py"), "ecs", "RegisterTaskDefinition", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert 'Unknown parameter in containerDefinitions[0]: "imag"' in result.stdout


class TestTaskDefinitions:
    @pytest.mark.parametrize("name", ["task-definition.json", "migration-task-definition.json"])
    def test_run_on_fargate(self, deploy_dir: Path, name: str) -> None:
        task = _load(deploy_dir, name)

        assert task["requiresCompatibilities"] == ["FARGATE"]
        assert task["networkMode"] == "awsvpc"
        assert (task["cpu"], task["memory"]) in FARGATE_SIZES
        assert task["executionRoleArn"].startswith("arn:aws:iam::")

    @pytest.mark.parametrize("name", ["task-definition.json", "migration-task-definition.json"])
    def test_secrets_come_from_secrets_manager_only(self, deploy_dir: Path, name: str) -> None:
        container = _container(_load(deploy_dir, name))

        assert [key for key in _env(container) if SECRET_NAME.search(key)] == []
        assert {"DATABASE_URL", "JWT_SECRET_KEY"} <= {secret["name"] for secret in container["secrets"]}
        assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in container["secrets"])

    @pytest.mark.parametrize("name", ["task-definition.json", "migration-task-definition.json"])
    def test_logs_go_to_cloudwatch(self, deploy_dir: Path, name: str) -> None:
        logs = _container(_load(deploy_dir, name))["logConfiguration"]

        assert logs["logDriver"] == "awslogs"
        assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(logs["options"])

    @pytest.mark.parametrize("name", ["task-definition.json", "migration-task-definition.json"])
    def test_runs_as_the_image_s_non_root_user_on_a_read_only_root(self, deploy_dir: Path, name: str) -> None:
        container = _container(_load(deploy_dir, name))

        assert container["user"] == "10001:10001"
        assert container["readonlyRootFilesystem"] is True
        assert {m["containerPath"] for m in container["mountPoints"]} == {"/data", "/tmp"}

    def test_the_app_serves_port_8000_with_a_health_check_on_health(self, task: dict[str, Any]) -> None:
        container = _container(task)

        assert container["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
        assert [p["containerPort"] for p in container["portMappings"]] == [8000]
        assert container["healthCheck"]["command"][:3] == ["CMD", "python", "-c"]
        assert "http://127.0.0.1:8000/health" in container["healthCheck"]["command"][3]
        compile(container["healthCheck"]["command"][3], "<healthCheck>", "exec")

    def test_the_app_drains_within_its_stop_timeout(self, task: dict[str, Any]) -> None:
        # uvicorn drains for up to 30 s (cli.py timeout_graceful_shutdown) before ECS sends SIGKILL.
        assert _container(task)["stopTimeout"] > 30

    def test_the_migration_runs_db_upgrade_from_the_same_image(
        self, task: dict[str, Any], migration: dict[str, Any]
    ) -> None:
        assert _container(migration)["command"] == ["db", "upgrade"]
        assert _container(migration)["image"] == _container(task)["image"]
        assert "portMappings" not in _container(migration)

    @pytest.mark.parametrize("name", ["task-definition.json", "migration-task-definition.json"])
    def test_the_settings_pass_the_production_guards(self, deploy_dir: Path, name: str) -> None:
        container = _container(_load(deploy_dir, name))
        env = {key.lower(): value for key, value in _env(container).items()}
        secrets = {secret["name"].lower(): "x" * 48 for secret in container["secrets"]}
        secrets["database_url"] = "postgresql://agentserver@db.internal:5432/agentserver"
        if "redis_url" in secrets:
            secrets["redis_url"] = "redis://cache.internal:6379/0"

        settings = Settings(_env_file=None, **env, **secrets)  # type: ignore[arg-type]

        assert settings.is_production
        assert set(env) | set(secrets) <= set(Settings.model_fields)


class TestService:
    def test_runs_two_tasks_behind_the_alb_on_the_app_container(self, deploy_dir: Path, task: dict[str, Any]) -> None:
        service = _load(deploy_dir, "service.json")

        assert service["launchType"] == "FARGATE"
        assert service["taskDefinition"] == task["family"]
        assert service["desiredCount"] == 2
        assert service["loadBalancers"] == [
            {
                "targetGroupArn": service["loadBalancers"][0]["targetGroupArn"],
                "containerName": _container(task)["name"],
                "containerPort": 8000,
            }
        ]
        assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"

    def test_a_failed_deployment_rolls_back(self, deploy_dir: Path) -> None:
        breaker = _load(deploy_dir, "service.json")["deploymentConfiguration"]["deploymentCircuitBreaker"]

        assert breaker == {"enable": True, "rollback": True}

    def test_the_target_group_checks_ready(self, deploy_dir: Path) -> None:
        group = _load(deploy_dir, "target-group.json")

        assert group["TargetType"] == "ip"  # awsvpc tasks register by IP
        assert group["Port"] == 8000
        assert group["HealthCheckPath"] == "/ready"
        assert group["Matcher"] == {"HttpCode": "200"}
