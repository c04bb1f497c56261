"""What the app exports, and which metric names a PromQL expression reads: for dashboard and alert tests."""

from __future__ import annotations

import re
from functools import cache

from prometheus_client.metrics import MetricWrapperBase

from agentserver.observability import metrics

# Series Prometheus itself creates for every target.
PROMETHEUS_SERIES = frozenset({"up"})

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name the app can export: metrics.py's collectors and the pool collector's names."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        elif isinstance(value, str) and value.startswith("agentserver_"):
            names.add(value)  # collected at scrape time (DB pool gauges)
    return frozenset(names)


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and durations left out)."""
    stripped = _STRINGS.sub('""', expr)
    stripped = _MATCHERS.sub("", stripped)
    stripped = _RANGES.sub("", stripped)
    stripped = _GROUPING.sub("", stripped)
    # Grafana variables ($__rate_interval) and numbers are not identifiers for this regex.
    return {name for name in _IDENTIFIER.findall(stripped) if name not in _KEYWORDS and not name.isdigit()}
