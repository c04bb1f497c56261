from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from agentserver.config import Settings
from agentserver.kit.db import create_engine
from agentserver.observability.db_pool import DatabasePoolCollector, PoolSample, sqlalchemy_pool_sampler


def _requests(method: str, route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "agentserver_http_requests_total", {"method": method, "route": route, "status": status}
    )
    return value or 0.0


def _latency_count(method: str, route: str) -> float:
    value = REGISTRY.get_sample_value(
        "agentserver_http_request_duration_seconds_count", {"method": method, "route": route}
    )
    return value or 0.0


async def _scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


class TestHttpMetrics:
    async def test_health_is_counted_under_its_route(self, client: httpx.AsyncClient) -> None:
        before = _requests("GET", "/health", "200"), _latency_count("GET", "/health")

        await client.get("/health")

        assert (_requests("GET", "/health", "200"), _latency_count("GET", "/health")) == (before[0] + 1, before[1] + 1)

    async def test_ready_is_counted_under_its_route(self, client: httpx.AsyncClient) -> None:
        before = _requests("GET", "/ready", "200")

        await client.get("/ready")

        assert _requests("GET", "/ready", "200") == before + 1

    async def test_path_parameters_collapse_into_the_route_template(self, client: httpx.AsyncClient) -> None:
        route = "/api/v1/sessions/{session_id}"
        before = _requests("DELETE", route, "401")

        await client.delete(f"/api/v1/sessions/{uuid.uuid4()}")
        await client.delete(f"/api/v1/sessions/{uuid.uuid4()}")

        assert _requests("DELETE", route, "401") == before + 2

    async def test_unmatched_paths_collapse_into_one_label(self, client: httpx.AsyncClient) -> None:
        path = f"/scanner/{uuid.uuid4().hex}"
        before = _requests("GET", "<unmatched>", "404")

        response = await client.get(path)
        scraped = await client.get("/metrics")

        assert response.status_code == 404
        assert _requests("GET", "<unmatched>", "404") == before + 1
        assert path not in scraped.text
        assert 'route="<unmatched>"' in scraped.text

    async def test_exposition_shows_route_templates_never_raw_paths(self, client: httpx.AsyncClient) -> None:
        session_id = uuid.uuid4()
        await client.get(f"/api/v1/sessions/{session_id}")

        samples = await _scrape(client)

        key = (
            "agentserver_http_requests_total",
            (("method", "GET"), ("route", "/api/v1/sessions/{session_id}"), ("status", "401")),
        )
        assert samples[key] >= 1
        assert str(session_id) not in str(samples)

    async def test_the_scrape_does_not_count_itself(self, client: httpx.AsyncClient) -> None:
        await client.get("/metrics")

        assert _requests("GET", "/metrics", "200") == 0

    async def test_metrics_speak_the_prometheus_text_format(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")

        assert response.headers["content-type"] == CONTENT_TYPE_LATEST
        assert CONTENT_TYPE_LATEST.startswith("text/plain; version=")
        assert "# TYPE agentserver_http_request_duration_seconds histogram" in response.text


class TestDatabasePoolMetrics:
    async def test_the_app_pool_is_exported_at_scrape_time(self, client: httpx.AsyncClient, settings: Settings) -> None:
        samples = await _scrape(client)

        states = {
            dict(labels)["state"]
            for (name, labels) in samples
            if name == "agentserver_db_pool_connections" and dict(labels)["pool"] == "app"
        }
        assert states == {"checked_out", "idle", "overflow"}
        assert samples[("agentserver_db_pool_max_connections", (("pool", "app"),))] == (
            settings.database_pool_size + settings.database_max_overflow
        )


@pytest.fixture
async def small_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2, max_overflow=2)
    yield engine
    await engine.dispose()


def _value(registry: CollectorRegistry, state: str, pool: str = "test") -> float | None:
    return registry.get_sample_value("agentserver_db_pool_connections", {"pool": pool, "state": state})


class TestDatabasePoolCollector:
    async def test_counts_a_checked_out_connection(self, small_engine: AsyncEngine) -> None:
        registry = CollectorRegistry()
        collector = DatabasePoolCollector(registry)

        with collector.track("test", sqlalchemy_pool_sampler(small_engine)):
            async with small_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                during = _value(registry, "checked_out"), _value(registry, "idle")
            after = _value(registry, "checked_out"), _value(registry, "idle")
            limit = registry.get_sample_value("agentserver_db_pool_max_connections", {"pool": "test"})

        assert during == (1.0, 0.0)
        assert after == (0.0, 1.0)
        assert limit == 4.0

    async def test_counts_overflow_beyond_the_pool_size(self, small_engine: AsyncEngine) -> None:
        registry = CollectorRegistry()
        collector = DatabasePoolCollector(registry)

        with collector.track("test", sqlalchemy_pool_sampler(small_engine)):
            async with small_engine.connect(), small_engine.connect(), small_engine.connect() as third:
                await third.execute(text("SELECT 1"))
                overflow, checked_out = _value(registry, "overflow"), _value(registry, "checked_out")

        assert (overflow, checked_out) == (1.0, 3.0)

    def test_is_registered_only_while_a_pool_is_tracked(self) -> None:
        registry = CollectorRegistry()
        collector = DatabasePoolCollector(registry)
        sample = PoolSample(checked_out=1, idle=2, overflow=0, max_connections=5)

        with collector.track("test", lambda: sample):
            while_tracked = _value(registry, "idle")
        assert while_tracked == 2.0
        assert _value(registry, "idle") is None

    def test_pools_under_one_name_are_summed(self) -> None:
        registry = CollectorRegistry()
        collector = DatabasePoolCollector(registry)
        one = PoolSample(checked_out=1, idle=2, overflow=0, max_connections=5)
        two = PoolSample(checked_out=3, idle=0, overflow=1, max_connections=5)

        with collector.track("test", lambda: one), collector.track("test", lambda: two):
            values = [_value(registry, state) for state in ("checked_out", "idle", "overflow")]
            limit = registry.get_sample_value("agentserver_db_pool_max_connections", {"pool": "test"})

        assert values == [4.0, 2.0, 1.0]
        assert limit == 10.0

    async def test_a_pool_without_connections_to_count_exports_nothing(self, database_url: str) -> None:
        engine = create_engine(database_url)
        engine.sync_engine.pool = NullPool(engine.sync_engine.pool._creator)
        registry = CollectorRegistry()
        collector = DatabasePoolCollector(registry)
        try:
            with collector.track("test", sqlalchemy_pool_sampler(engine)):
                assert _value(registry, "idle") is None
        finally:
            await engine.dispose()
