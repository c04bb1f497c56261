"""The alert rules: valid for Prometheus, unit-tested with promtool, and built on metrics the app exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import PROMETHEUS_SERIES, exported_metric_names, metric_names_in

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (scripts/ensure-promtool.sh installs Debian's prometheus package; .ci/run does)",
)
REQUIRED_ALERTS = {
    "AgentserverHighErrorRate",
    "AgentserverSlowRequests",
    "AgentserverLLMFallbackSpike",
    "AgentserverLLMProviderDown",
    "AgentserverMemoryQueueBacklog",
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rules(deploy_dir: Path) -> list[dict[str, Any]]:
    return [rule for group in _load(deploy_dir / "prometheus" / "alerts.yml")["groups"] for rule in group["rules"]]


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    # Fixed arguments from this file, the binary found on PATH.
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603


class TestPromtool:
    @needs_promtool
    def test_rules_pass_promtool_check(self, deploy_dir: Path) -> None:
        result = _promtool("check", "rules", "alerts.yml", cwd=deploy_dir / "prometheus")

        assert result.returncode == 0, result.stdout + result.stderr

    @needs_promtool
    def test_rules_pass_their_unit_tests(self, deploy_dir: Path) -> None:
        result = _promtool("test", "rules", "alerts_test.yml", cwd=deploy_dir / "prometheus")

        assert result.returncode == 0, result.stdout + result.stderr

    @needs_promtool
    def test_the_prometheus_config_is_valid(self, deploy_dir: Path, tmp_path: Path) -> None:
        # The compose file mounts the rules at /etc/prometheus/alerts.yml; promtool resolves rule files
        # relative to the config, so check a copy laid out the same way.
        config = _load(deploy_dir / "prometheus" / "prometheus.yml")
        config["rule_files"] = ["alerts.yml"]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        shutil.copy(deploy_dir / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")

        result = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)

        assert result.returncode == 0, result.stdout + result.stderr


class TestRules:
    def test_the_issue_s_alerts_exist(self, deploy_dir: Path) -> None:
        assert REQUIRED_ALERTS <= {rule["alert"] for rule in _rules(deploy_dir)}

    def test_every_expression_reads_only_exported_metrics(self, deploy_dir: Path) -> None:
        allowed = exported_metric_names() | PROMETHEUS_SERIES
        unknown = {rule["alert"]: metric_names_in(rule["expr"]) - allowed for rule in _rules(deploy_dir)}

        assert {alert: names for alert, names in unknown.items() if names} == {}

    def test_every_alert_has_a_severity_a_duration_and_a_summary(self, deploy_dir: Path) -> None:
        for rule in _rules(deploy_dir):
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["for"], rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["annotations"]["description"], rule["alert"]

    def test_every_alert_is_tested_firing_and_not_firing(self, deploy_dir: Path) -> None:
        cases = [
            case
            for test in _load(deploy_dir / "prometheus" / "alerts_test.yml")["tests"]
            for case in test["alert_rule_test"]
        ]
        fires = {case["alertname"] for case in cases if case["exp_alerts"]}
        stays_quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
        alerts = {rule["alert"] for rule in _rules(deploy_dir)}

        assert alerts - fires == set()
        assert alerts - stays_quiet == set()
