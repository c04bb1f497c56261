"""Database connection-pool gauges, read from the pools themselves at scrape time.

A custom collector instead of gauges updated on checkout/checkin: the pool already knows its numbers,
and reading them when Prometheus asks costs nothing on the request path. The lifespan tracks each pool
it opens (`with pool_collector.track("app", sqlalchemy_pool_sampler(engine))`); the collector is in the
registry only while at least one pool is tracked, so a stopped app exports nothing stale. Pools tracked
under the same name are summed: what one process holds, which is what one scrape target reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from agentserver.observability.metrics import DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS

STATES = ("checked_out", "idle", "overflow")


@dataclass(frozen=True, slots=True)
class PoolSample:
    checked_out: int
    idle: int
    # Connections open beyond the pool's steady size (SQLAlchemy's max_overflow headroom in use).
    overflow: int
    # Most connections the pool will ever open; None when unbounded.
    max_connections: int | None


# Returns None when the pool kind has nothing to report (NullPool, StaticPool).
PoolSampler = Callable[[], PoolSample | None]


def sqlalchemy_pool_sampler(engine: AsyncEngine) -> PoolSampler:
    pool = engine.sync_engine.pool

    def sample() -> PoolSample | None:
        if not isinstance(pool, QueuePool):
            return None
        # QueuePool exposes no public getter for max_overflow; -1 means unbounded.
        max_overflow: int = getattr(pool, "_max_overflow", -1)
        return PoolSample(
            checked_out=pool.checkedout(),
            idle=pool.checkedin(),
            overflow=max(pool.overflow(), 0),
            max_connections=pool.size() + max_overflow if max_overflow >= 0 else None,
        )

    return sample


def psycopg_pool_sampler(pool: Any) -> PoolSampler:
    """For psycopg_pool pools (LangGraph's checkpointer, mem0's pgvector store), should one be tracked."""

    def sample() -> PoolSample | None:
        stats: dict[str, int] = pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        return PoolSample(
            checked_out=max(size - available, 0),
            idle=available,
            overflow=max(size - int(pool.min_size), 0),
            max_connections=int(pool.max_size),
        )

    return sample


class DatabasePoolCollector(Collector):
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._registry = registry
        self._samplers: list[tuple[str, PoolSampler]] = []
        # Scrapes run on the event loop today, but prometheus-client may also serve from a thread.
        self._lock = threading.Lock()

    @contextmanager
    def track(self, name: str, sampler: PoolSampler) -> Iterator[None]:
        entry = (name, sampler)
        with self._lock:
            self._samplers.append(entry)
            if len(self._samplers) == 1:
                self._registry.register(self)
        try:
            yield
        finally:
            with self._lock:
                self._samplers.remove(entry)
                if not self._samplers:
                    self._registry.unregister(self)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        connections, max_connections = self._families()
        with self._lock:
            samplers = list(self._samplers)
        totals: dict[str, list[int]] = {}
        maxima: dict[str, int | None] = {}
        for name, sampler in samplers:
            sample = sampler()
            if sample is None:
                continue
            total = totals.setdefault(name, [0, 0, 0])
            total[0] += sample.checked_out
            total[1] += sample.idle
            total[2] += sample.overflow
            previous = maxima.get(name, 0)
            maxima[name] = (
                None if previous is None or sample.max_connections is None else previous + sample.max_connections
            )
        for name, values in totals.items():
            for state, value in zip(STATES, values, strict=True):
                connections.add_metric([name, state], value)
            limit = maxima[name]
            if limit is not None:
                max_connections.add_metric([name], limit)
        return [connections, max_connections]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                DB_POOL_CONNECTIONS, "Database pool connections by pool and state", labels=["pool", "state"]
            ),
            GaugeMetricFamily(DB_POOL_MAX_CONNECTIONS, "Most connections the pool may open", labels=["pool"]),
        )


# One per process, like the default registry it registers into; it holds no pool until the lifespan
# tracks one.
pool_collector = DatabasePoolCollector()
