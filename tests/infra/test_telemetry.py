"""shared/telemetry.py and shared/adapters/azure_monitor.py: off without a connection string, metrics through
the API, trace context through queues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry
from shared.adapters import azure_monitor
from tests.conftest import REPO
from tests.support.events import event
from tests.support.metrics import metric_points

_points = metric_points


def test_configure_does_nothing_without_a_connection_string() -> None:
    assert azure_monitor.configure_telemetry({}) is False
    assert azure_monitor.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}) is False


@pytest.fixture
def monitor_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The calls to a fake ``configure_azure_monitor``, with the adapter not yet configured before and after."""
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("azure.monitor.opentelemetry")
    fake.configure_azure_monitor = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", fake)
    monkeypatch.setattr(azure_monitor, "_configured", False)
    yield calls
    monkeypatch.setattr(azure_monitor, "_configured", False)


def test_configure_uses_the_managed_identity_once(monitor_calls: list[dict[str, Any]]) -> None:
    calls = monitor_calls
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x/",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-1111-1111-1111-111111111111;Authorization=AAD",
    }
    assert azure_monitor.configure_telemetry(env) is True
    assert azure_monitor.configure_telemetry(env) is True
    assert len(calls) == 1
    assert calls[0]["connection_string"].startswith("InstrumentationKey=")
    credential = calls[0]["credential"]
    assert type(credential).__name__ == "ManagedIdentityCredential"


def test_configure_without_aad_passes_no_credential(monitor_calls: list[dict[str, Any]]) -> None:
    assert azure_monitor.configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) is True
    assert "credential" not in monitor_calls[0]


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


def test_a_publish_and_the_inbound_stage_it_queues_share_one_trace(settings, services, issuer, resource, tmp_path):
    """function_app as the worker loads it, with Azure Monitor configured: the distro's FastAPI
    instrumentation records the publish request (it patches the class, so it must run before the
    app is built) and the inbound stage continues that request's trace through the queue message."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TMPDIR": str(tmp_path),  # the exporter's offline storage
        # Exports go to a closed loopback port; statsbeat would call out to Azure.
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        # Record every trace (the distro's default keeps 5 a second, which would make this test flaky).
        "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        # Honoured by the distro's FastAPI instrumentation (docs/deploy.md: keep liveness probes out).
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "api/v1/health",
        "HERALD_MODE": "local",
        "HeraldStorage": settings.storage.connection_string,
        "HERALD_BUS": "storage-queue",
        "HERALD_AUTH_JWKS_PATH": str(issuer.jwks_path),
        "HERALD_SECRET_KEY_PATH": str(settings.secret_key_path),
        "PROBE_AUTHORIZATION": issuer.headers("events.publish")["Authorization"],
        "PROBE_EVENT": json.dumps(event(resource, "traced-1")),
    }
    env.pop("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", None)
    probe = subprocess.run(
        [sys.executable, "-m", "tests.infra.traced_publish"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    spans = [json.loads(line) for line in probe.stdout.splitlines() if line.startswith("{")]
    [request] = [span for span in spans if span["kind"] == "SERVER" and span["name"] == "POST /api/v1/events"]
    # The queue may also hold other tests' messages; this publish's message continues its trace.
    inbound = [span for span in spans if span["name"] == "events.inbound" and span["kind"] == "CONSUMER"]
    # The distro's instrumentation recorded the request (FastAPI's own telemetry would ignore the exclusion).
    assert request["scope"] == "opentelemetry.instrumentation.fastapi"
    assert not [span for span in spans if "/api/v1/health" in span["name"]]
    assert request["trace"] in {span["trace"] for span in inbound}
