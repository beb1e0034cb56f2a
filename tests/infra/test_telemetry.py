"""shared/telemetry.py: off without a connection string, metrics through the API, trace context through queues."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry

_exporter = InMemorySpanExporter()
_reader = InMemoryMetricReader()


@pytest.fixture(scope="module")
def sdk() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader | None]]:
    """Install SDK providers once per process (the OTel globals can be set only once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_exporter))
    reader: InMemoryMetricReader | None = None
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))
        reader = _reader
    yield _exporter, reader


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            if scope.scope.name != telemetry.METER_NAME:
                continue
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_configure_does_nothing_without_a_connection_string() -> None:
    assert telemetry.configure_telemetry({}) is False
    assert telemetry.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}) is False


def test_configure_uses_the_managed_identity_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("azure.monitor.opentelemetry")
    fake.configure_azure_monitor = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", fake)
    monkeypatch.setattr(telemetry, "_configured", False)
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x/",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-1111-1111-1111-111111111111;Authorization=AAD",
    }
    assert telemetry.configure_telemetry(env) is True
    assert telemetry.configure_telemetry(env) is True
    assert len(calls) == 1
    assert calls[0]["connection_string"].startswith("InstrumentationKey=")
    credential = calls[0]["credential"]
    assert type(credential).__name__ == "ManagedIdentityCredential"
    monkeypatch.setattr(telemetry, "_configured", False)


def test_configure_without_aad_passes_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("azure.monitor.opentelemetry")
    fake.configure_azure_monitor = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", fake)
    monkeypatch.setattr(telemetry, "_configured", False)
    assert telemetry.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) is True
    assert "credential" not in calls[0]
    monkeypatch.setattr(telemetry, "_configured", False)


def test_inject_is_empty_without_a_span() -> None:
    assert telemetry.inject_trace_context() == {}


def test_consume_span_continues_the_publishers_trace(sdk: tuple[InMemorySpanExporter, Any]) -> None:
    exporter, _ = sdk
    exporter.clear()
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("publish", kind=trace.SpanKind.PRODUCER) as publish:
        properties: dict[str, object] = {"resource": "orders", **telemetry.inject_trace_context()}
    assert "traceparent" in properties
    # The consumer runs later, elsewhere, inside the Functions host's own invocation span.
    with (
        tracer.start_as_current_span("host invocation") as invocation,
        telemetry.consume_span("events.inbound", properties) as consumed,
    ):
        assert consumed.get_span_context().trace_id == publish.get_span_context().trace_id
    spans = {span.name: span for span in exporter.get_finished_spans()}
    consumer = spans["events.inbound"]
    assert consumer.kind is trace.SpanKind.CONSUMER
    assert consumer.parent is not None
    assert consumer.parent.span_id == publish.get_span_context().span_id
    assert consumer.context.trace_id == publish.get_span_context().trace_id
    assert [link.context.span_id for link in consumer.links] == [invocation.get_span_context().span_id]


def test_consume_span_without_context_starts_a_new_trace(sdk: tuple[InMemorySpanExporter, Any]) -> None:
    exporter, _ = sdk
    exporter.clear()
    with telemetry.consume_span("events.inbound", {"unrelated": 3}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_metrics_are_recorded(sdk: tuple[InMemorySpanExporter, InMemoryMetricReader | None]) -> None:
    _, reader = sdk
    if reader is None:
        pytest.skip("another test installed a MeterProvider first; cannot attach an in-memory reader")
    telemetry.record_events_published(3, "orders")
    telemetry.record_events_published(0, "orders")
    telemetry.record_delivery("delivered", 0.25)
    telemetry.record_delivery("failed", -1.0)
    telemetry.record_dead_letter("events-inbound")
    telemetry.record_notification_status("email", "Delivered")
    points = _points(reader)
    assert sum(p.value for p in points["herald.events.published"]) == 3
    assert {p.attributes["outcome"]: p.value for p in points["herald.deliveries"]} == {"delivered": 1, "failed": 1}
    latency = {p.attributes["outcome"]: p for p in points["herald.delivery.duration"]}
    assert latency["delivered"].sum == pytest.approx(0.25)
    assert latency["failed"].sum == 0
    assert points["herald.dead_letters"][0].attributes == {"stage": "events-inbound"}
    assert points["herald.notifications"][0].attributes == {"channel": "email", "status": "Delivered"}
