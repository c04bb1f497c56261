"""deploy/k8s: parsed and cross-checked (probes, resources, security, selectors, settings wiring).

`kubernetes-validate` (PyPI; bundles the Kubernetes JSON schemas, works offline) also validates the
manifests against the schemas. It is a tool, not a dependency: scripts/ensure-deploy-validators.sh installs
it into .tools/validators (.ci/run does), and the test skips without it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agentserver.config import Settings
from tests.deploy.validators import validator

SCHEMA_VALIDATOR = validator("kubernetes-validate")
SEPARATE_STEP = {"migration-job.yaml"}  # applied and awaited before the Deployment rolls


@pytest.fixture(scope="module")
def k8s_dir(deploy_dir: Path) -> Path:
    return deploy_dir / "k8s"


@pytest.fixture(scope="module")
def manifests(k8s_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest, for every Kubernetes object in deploy/k8s."""
    found = {}
    for path in sorted(k8s_dir.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def _get(manifests: dict[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [doc for (k, _), doc in manifests.items() if k == kind]
    return doc


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    [container] = containers
    return container


def _pod_labels(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    labels: dict[str, str] = _get(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


class TestKustomization:
    def test_lists_every_manifest_but_the_migration_job(self, k8s_dir: Path) -> None:
        kustomization = yaml.safe_load((k8s_dir / "kustomization.yaml").read_text())
        files = {path.name for path in k8s_dir.glob("*.yaml")} - {"kustomization.yaml"}

        assert set(kustomization["resources"]) == files - SEPARATE_STEP

    def test_the_migration_job_runs_the_image_the_deployment_runs(
        self, k8s_dir: Path, manifests: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        kustomization = yaml.safe_load((k8s_dir / "kustomization.yaml").read_text())
        [image] = kustomization["images"]

        assert _container(_get(manifests, "Deployment"))["image"] == image["name"]
        assert _container(_get(manifests, "Job"))["image"] == f"{image['newName']}:{image['newTag']}"


class TestDeployment:
    def test_readiness_is_ready_and_liveness_is_health(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        container = _container(_get(manifests, "Deployment"))

        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]

    def test_serves_on_all_interfaces(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        assert _container(_get(manifests, "Deployment"))["args"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]

    @pytest.mark.parametrize("kind", ["Deployment", "Job"])
    def test_requests_and_limits_are_set(self, manifests: dict[tuple[str, str], dict[str, Any]], kind: str) -> None:
        resources = _container(_get(manifests, kind))["resources"]

        assert set(resources["requests"]) == {"cpu", "memory"}
        assert set(resources["limits"]) == {"cpu", "memory"}

    @pytest.mark.parametrize("kind", ["Deployment", "Job"])
    def test_runs_non_root_read_only_without_privileges(
        self, manifests: dict[tuple[str, str], dict[str, Any]], kind: str, deploy_dir: Path
    ) -> None:
        workload = _get(manifests, kind)
        pod = workload["spec"]["template"]["spec"]["securityContext"]
        container = _container(workload)["securityContext"]

        assert pod["runAsNonRoot"] is True
        # The image's user (deploy/Dockerfile `useradd --uid 10001`).
        assert pod["runAsUser"] == 10001
        assert "--uid 10001" in (deploy_dir / "Dockerfile").read_text()
        assert container == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }

    @pytest.mark.parametrize("kind", ["Deployment", "Job"])
    def test_writable_paths_are_volumes(self, manifests: dict[tuple[str, str], dict[str, Any]], kind: str) -> None:
        workload = _get(manifests, kind)
        volumes = {volume["name"] for volume in workload["spec"]["template"]["spec"]["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in _container(workload)["volumeMounts"]}

        assert "/tmp" in mounts
        assert set(mounts.values()) <= volumes

    def test_the_data_dir_is_a_mounted_volume(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        data_dir = _get(manifests, "ConfigMap")["data"]["AGENTSERVER_DATA_DIR"]
        mounts = [mount["mountPath"] for mount in _container(_get(manifests, "Deployment"))["volumeMounts"]]

        assert data_dir in mounts

    def test_rollouts_keep_full_capacity(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        deployment = _get(manifests, "Deployment")

        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert _selects(deployment["spec"]["selector"]["matchLabels"], _pod_labels(manifests))

    def test_scraped_by_prometheus_on_the_app_port(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        annotations = _get(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]

        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "8000",
            "prometheus.io/path": "/metrics",
        }


class TestScaling:
    def test_the_hpa_scales_the_deployment(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        hpa = _get(manifests, "HorizontalPodAutoscaler")
        deployment = _get(manifests, "Deployment")

        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": deployment["apiVersion"],
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]

    def test_the_pdb_covers_the_pods(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        pdb = _get(manifests, "PodDisruptionBudget")

        assert _selects(pdb["spec"]["selector"]["matchLabels"], _pod_labels(manifests))
        assert pdb["spec"]["maxUnavailable"] == 1

    def test_the_service_routes_to_the_pods_http_port(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        service = _get(manifests, "Service")
        [port] = service["spec"]["ports"]

        assert service["spec"]["selector"] == {
            "app.kubernetes.io/name": "agentserver",
            "app.kubernetes.io/component": "api",
        }
        assert _selects(service["spec"]["selector"], _pod_labels(manifests))
        assert port["targetPort"] == "http"

    def test_the_ingress_points_at_the_service(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        ingress = _get(manifests, "Ingress")
        service = _get(manifests, "Service")
        backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]

        assert backends == [
            {"name": service["metadata"]["name"], "port": {"name": service["spec"]["ports"][0]["name"]}}
        ]
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


class TestMigrationJob:
    def test_runs_agentserver_db_upgrade_once(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        job = _get(manifests, "Job")

        # The image's ENTRYPOINT is `agentserver`.
        assert _container(job)["args"] == ["db", "upgrade"]
        assert "command" not in _container(job)
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["backoffLimit"] == 3


class TestSettingsWiring:
    def _refs(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
        """(kind, object name, key, optional) for every ConfigMap/Secret key a workload reads."""
        refs = []
        for kind in ("Deployment", "Job"):
            container = _container(_get(manifests, kind))
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                for ref_kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    if field in source:
                        ref = source[field]
                        refs.append((ref_kind, ref["name"], ref["key"], ref.get("optional", False)))
        return refs

    def test_every_referenced_key_exists(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        missing = []
        for kind, name, key, _optional in self._refs(manifests):
            doc = manifests.get((kind, name))
            data = (doc or {}).get("stringData" if kind == "Secret" else "data", {})
            if key not in data:
                missing.append((kind, name, key))

        assert missing == []

    @pytest.mark.parametrize("kind", ["Deployment", "Job"])
    def test_env_from_names_an_existing_configmap(
        self, manifests: dict[tuple[str, str], dict[str, Any]], kind: str
    ) -> None:
        [source] = _container(_get(manifests, kind))["envFrom"]

        assert ("ConfigMap", source["configMapRef"]["name"]) in manifests

    def test_the_secrets_that_matter_are_required(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        required = {key for kind, _, key, optional in self._refs(manifests) if kind == "Secret" and not optional}

        assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY"} <= required

    def test_every_key_is_a_setting(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        keys = set(_get(manifests, "ConfigMap")["data"]) | set(_get(manifests, "Secret")["stringData"])

        assert {key for key in keys if key.lower() not in Settings.model_fields} == set()

    def test_no_secret_sits_in_the_configmap(self, manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
        secretish = ("KEY", "SECRET", "PASSWORD", "TOKEN", "DATABASE_URL", "REDIS_URL")

        assert [key for key in _get(manifests, "ConfigMap")["data"] if key.endswith(secretish)] == []

    def test_the_settings_are_valid_once_real_secrets_are_filled_in(
        self, manifests: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        env = {**_get(manifests, "ConfigMap")["data"], **_get(manifests, "Secret")["stringData"]}
        env["JWT_SECRET_KEY"] = "x" * 48

        settings = Settings(_env_file=None, **{key.lower(): value for key, value in env.items() if value != ""})

        assert settings.is_production
        assert str(settings.data_dir) == "/data"

    def test_the_placeholder_secret_is_refused_in_production(
        self, manifests: dict[tuple[str, str], dict[str, Any]]
    ) -> None:
        env = {**_get(manifests, "ConfigMap")["data"], **_get(manifests, "Secret")["stringData"]}

        with pytest.raises(ValidationError, match="JWT_SECRET_KEY"):
            Settings(_env_file=None, **{key.lower(): value for key, value in env.items() if value != ""})


@pytest.mark.skipif(
    SCHEMA_VALIDATOR is None, reason="kubernetes-validate is not installed (scripts/ensure-deploy-validators.sh)"
)
def test_manifests_match_the_kubernetes_schemas(k8s_dir: Path) -> None:
    assert SCHEMA_VALIDATOR is not None
    files = sorted(str(path) for path in k8s_dir.glob("*.yaml") if path.name != "kustomization.yaml")

    result = subprocess.run(  # noqa: S603 - our own manifests
        [SCHEMA_VALIDATOR, "--strict", "--quiet", *files], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
