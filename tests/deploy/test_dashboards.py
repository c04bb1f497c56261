"""The Grafana provisioning: a valid dashboard whose every panel queries metrics the app exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import exported_metric_names, metric_names_in

# What the issue asks the dashboard to show, by the metric that shows it.
REQUIRED_METRICS = {
    "agentserver_http_requests_total",  # requests, errors
    "agentserver_http_request_duration_seconds_bucket",  # latency percentiles
    "agentserver_llm_calls_total",
    "agentserver_llm_tokens_total",
    "agentserver_llm_cost_usd_total",
    "agentserver_llm_fallbacks_total",
    "agentserver_tool_calls_total",  # tool errors
    "agentserver_active_streams",
    "agentserver_db_pool_connections",
    "agentserver_jobs_queued",
}


@pytest.fixture(scope="module")
def dashboard(deploy_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((deploy_dir / "grafana" / "dashboards" / "agentserver.json").read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(dashboard) for target in panel["targets"]]


class TestDashboard:
    def test_every_panel_has_a_query(self, dashboard: dict[str, Any]) -> None:
        empty = [panel["title"] for panel in _panels(dashboard) if not [t for t in panel["targets"] if t["expr"]]]

        assert empty == []

    def test_every_query_reads_only_exported_metrics(self, dashboard: dict[str, Any]) -> None:
        exported = exported_metric_names()

        unknown = {expr: metric_names_in(expr) - exported for expr in _queries(dashboard)}

        assert {expr: names for expr, names in unknown.items() if names} == {}

    def test_every_query_reads_a_metric(self, dashboard: dict[str, Any]) -> None:
        assert [expr for expr in _queries(dashboard) if not metric_names_in(expr)] == []

    def test_it_shows_what_operators_need(self, dashboard: dict[str, Any]) -> None:
        shown = set().union(*(metric_names_in(expr) for expr in _queries(dashboard)))

        assert REQUIRED_METRICS - shown == set()

    def test_latency_is_shown_as_percentiles(self, dashboard: dict[str, Any]) -> None:
        quantiles = {
            expr.split("(", 2)[1].split(",")[0]
            for expr in _queries(dashboard)
            if expr.startswith("histogram_quantile(") and "agentserver_http_request_duration_seconds_bucket" in expr
        }

        assert {"0.5", "0.95", "0.99"} <= quantiles

    def test_panels_have_unique_ids_and_a_place(self, dashboard: dict[str, Any]) -> None:
        ids = [panel["id"] for panel in dashboard["panels"]]

        assert len(ids) == len(set(ids))
        assert all({"x", "y", "w", "h"} <= panel["gridPos"].keys() for panel in dashboard["panels"])

    def test_panels_use_the_provisioned_datasource(self, dashboard: dict[str, Any], deploy_dir: Path) -> None:
        provisioned = yaml.safe_load(
            (deploy_dir / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
        )
        [datasource] = provisioned["datasources"]

        used = {panel["datasource"]["uid"] for panel in _panels(dashboard)} | {
            target["datasource"]["uid"] for panel in _panels(dashboard) for target in panel["targets"]
        }
        assert used == {datasource["uid"]}
        assert datasource["url"] == "http://prometheus:9090"

    def test_the_dashboard_provider_loads_the_mounted_folder(self, deploy_dir: Path) -> None:
        compose = yaml.safe_load((deploy_dir / "docker-compose.yml").read_text())
        provider = yaml.safe_load(
            (deploy_dir / "grafana" / "provisioning" / "dashboards" / "agentserver.yml").read_text()
        )

        [entry] = provider["providers"]
        assert f"./grafana/dashboards:{entry['options']['path']}:ro" in compose["services"]["grafana"]["volumes"]


class TestPromqlParser:
    """The checks above are only as good as the name extraction: it must catch a typo."""

    def test_finds_a_misspelt_metric(self) -> None:
        names = metric_names_in('sum by (route) (rate(agentserver_http_request_total{route!~"/x"}[5m]))')

        assert names == {"agentserver_http_request_total"}
        assert names - exported_metric_names() == names

    def test_ignores_functions_labels_keywords_and_variables(self) -> None:
        expr = (
            "histogram_quantile(0.95, sum by (le, model) (rate(agentserver_llm_call_duration_seconds_bucket"
            '{model=~"$model"}[$__rate_interval]))) > 30 and on() sum(up{job="agentserver"}) > 0'
        )

        assert metric_names_in(expr) == {"agentserver_llm_call_duration_seconds_bucket", "up"}
