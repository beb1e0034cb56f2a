"""Per-hop telemetry: each pipeline message records how long it was queued, matched and pushed, as span
attributes and ``herald.pipeline.hop.duration``, so Application Insights shows where a push's time went."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.messages import OUTBOUND_QUEUE
from tests.subscriptions.conftest import active_subscription, events_received
from tests.support.events import event, publish
from tests.support.metrics import metric_points
from tests.support.pipeline import clear, drain


def _attributes(spans: list[ReadableSpan], name: str) -> dict[str, Any]:
    [span] = [s for s in spans if s.name == name]
    return dict(span.attributes or {})


async def test_a_push_records_its_time_queued_matched_and_pushed(
    sdk: tuple[InMemorySpanExporter, InMemoryMetricReader | None], client, issuer, receiver, resource, services, stores
) -> None:
    exporter, reader = sdk
    await active_subscription(client, issuer, stores, {"endPoint": receiver.url("hops"), "resourceFilter": resource})
    await clear(stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
    exporter.clear()
    if reader is not None:
        metric_points(reader)  # drop what earlier steps recorded

    await publish(client, issuer.headers("events.publish"), [event(resource, "hop-1")])
    await asyncio.sleep(0.3)  # the inbound message waits in its queue
    await drain(stores, (INBOUND_QUEUE,))
    await asyncio.sleep(0.2)  # and the outbound message in its own
    await drain(stores, (OUTBOUND_QUEUE,))
    assert [e["id"] for e in events_received(receiver, "hops")] == ["hop-1"]

    spans = list(exporter.get_finished_spans())
    inbound = _attributes(spans, "events.inbound")
    outbound = _attributes(spans, "events.outbound")
    assert inbound["herald.hop.queued_ms"] >= 300
    assert 0 < inbound["herald.hop.matched_ms"] < 5_000
    assert inbound["herald.hop.queue_wait_ms"] == inbound["herald.hop.queued_ms"]
    # Pushed runs from the outbound enqueue (during matching) to the push's end: the wait, then the push.
    assert outbound["herald.hop.pushed_ms"] > outbound["herald.hop.queue_wait_ms"] >= 200
    assert "herald.hop.queued_ms" not in outbound

    if reader is None:
        pytest.skip("another test installed a MeterProvider first; cannot attach an in-memory reader")
    hops = {p.attributes["hop"]: p for p in metric_points(reader)["herald.pipeline.hop.duration"]}
    assert set(hops) == {"queued", "matched", "pushed"}
    assert all(point.count == 1 for point in hops.values())
    assert hops["queued"].sum == pytest.approx(inbound["herald.hop.queued_ms"] / 1000, abs=0.001)
    assert hops["pushed"].sum == pytest.approx(outbound["herald.hop.pushed_ms"] / 1000, abs=0.001)
