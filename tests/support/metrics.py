"""The process's in-memory metric reader behind shared/telemetry.py's meters.

OpenTelemetry's meter provider can be set once per process, so every test that reads Herald's
metrics shares this one reader, whichever test installs it first. It reports deltas, and each test
takes it through ``metric_reader()``, which drops what earlier tests recorded.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from shared import telemetry

_reader = InMemoryMetricReader(
    preferred_temporality={Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
)
_installed = False


def metric_reader() -> InMemoryMetricReader | None:
    """The shared reader with nothing recorded yet, installing the SDK meter provider on first use;
    None when another provider was installed first (the reader cannot be attached to it)."""
    global _installed
    if not _installed:
        if isinstance(metrics.get_meter_provider(), MeterProvider):
            return None
        metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))
        _installed = True
    _reader.get_metrics_data()  # drop what was recorded before
    return _reader


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Herald's data points recorded since the last call, by metric name."""
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            if scope.scope.name != telemetry.METER_NAME:
                continue
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found
