"""Herald's telemetry: OpenTelemetry metrics and trace context, exported to Azure Monitor in Azure.

The domain only calls the small functions below. They use the OpenTelemetry *API*, which is a
no-op until an SDK is configured, so nothing is recorded or exported locally unless
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set and
``shared.adapters.azure_monitor.configure_telemetry`` installed the Azure Monitor distro.

Trace context travels inside queue messages as W3C ``traceparent``/``tracestate`` application
properties, so one publish and every push it fans out to form a single distributed trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

from opentelemetry import metrics, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "METER_NAME",
    "consume_span",
    "inject_trace_context",
    "pipeline_stage",
    "record_dead_letter",
    "record_delivery",
    "record_events_published",
    "record_ingest_refused",
    "record_notification_status",
]

METER_NAME = "herald"
_propagator = TraceContextTextMapPropagator()

_meter = metrics.get_meter(METER_NAME)
_events_published = _meter.create_counter(
    "herald.events.published", unit="{event}", description="Events accepted from publishers."
)
_deliveries = _meter.create_counter(
    "herald.deliveries", unit="{delivery}", description="Webhook deliveries by outcome."
)
_delivery_latency = _meter.create_histogram(
    "herald.delivery.duration", unit="s", description="Time from event acceptance to the delivery attempt's end."
)
_dead_letters = _meter.create_counter(
    "herald.dead_letters", unit="{message}", description="Messages Herald moved to a dead-letter queue, by stage."
)
_notifications = _meter.create_counter(
    "herald.notifications", unit="{notification}", description="Email/SMS notifications by channel and status."
)
_ingest_refused = _meter.create_counter(
    "herald.ingest.refused", unit="{event}", description="Events from Event Grid Herald refused, by reason."
)
# One histogram for the event pipeline's hops, told apart by the ``hop`` attribute (queued, matched, pushed).
_hop_duration = _meter.create_histogram(
    "herald.pipeline.hop.duration",
    unit="s",
    description=(
        "Time a pipeline message spent in one hop: queued (inbound enqueue to inbound start), matched "
        "(inbound matching and fan-out), pushed (outbound enqueue to its pushes done)."
    ),
)
_reports_refused = _meter.create_counter(
    "herald.reports.refused",
    unit="{event}",
    description="Delivery-report events Herald could not read (wrong schema, data not an object), by reason.",
)


def record_events_published(count: int, resource: str) -> None:
    """Publisher events accepted (``resource``: the publisher's resource/topic, low cardinality)."""
    if count > 0:
        _events_published.add(count, {"resource": resource})


def record_delivery(outcome: str, latency_seconds: float) -> None:
    """One webhook delivery attempt ended (``outcome``: e.g. delivered, retry, failed, expired)."""
    attributes = {"outcome": outcome}
    _deliveries.add(1, attributes)
    _delivery_latency.record(max(latency_seconds, 0.0), attributes)


def record_dead_letter(stage: str) -> None:
    """A message was dead-lettered (``stage``: the queue or pipeline stage)."""
    _dead_letters.add(1, {"stage": stage})


def record_notification_status(channel: str, status: str) -> None:
    """A notification changed status (``channel``: email/sms; ``status``: e.g. sent, Delivered, Bounced)."""
    _notifications.add(1, {"channel": channel, "status": status})


def record_ingest_refused(reason: str) -> None:
    """An event from Event Grid was refused (``reason``: invalid, unconfigured, forbidden or conflict)."""
    _ingest_refused.add(1, {"reason": reason})


def record_report_refused(channel: str, reason: str) -> None:
    """A delivery-report event was refused and parked (``reason``: e.g. CLOUDEVENTS_SCHEMA, DATA_NOT_AN_OBJECT)."""
    _reports_refused.add(1, {"channel": channel, "reason": reason})


def inject_trace_context() -> dict[str, str]:
    """W3C trace context of the current span, for ``OutgoingMessage.application_properties``.

    Empty when there is no recording span (telemetry off), so messages stay unchanged locally.
    """
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


@contextmanager
def consume_span(name: str, properties: Mapping[str, object]) -> Iterator[trace.Span]:
    """Start a CONSUMER span whose parent is the trace context carried in a message's properties."""
    carrier = {key: value for key, value in properties.items() if isinstance(value, str)}
    parent = _propagator.extract(carrier)
    # Keep a link to the span that was current (e.g. the Functions host's invocation span).
    current = trace.get_current_span().get_span_context()
    links = [trace.Link(current)] if current.is_valid else None
    tracer = trace.get_tracer(METER_NAME)
    with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.CONSUMER, links=links) as span:
        yield span


# The hops a stage's message records: (hop for its time in the queue, hop for its processing);
# None records nothing for that part. Pushed runs from the outbound enqueue to the pushes' end.
_STAGE_HOPS: dict[str, tuple[str | None, str | None]] = {"inbound": ("queued", "matched"), "outbound": (None, "pushed")}


@contextmanager
def pipeline_stage(
    name: str, properties: Mapping[str, object], enqueued_at: datetime | None, *, stage: str
) -> Iterator[trace.Span]:
    """``consume_span`` for a stage of the event pipeline (``stage``: inbound or outbound), recording
    the message's hops as span attributes (``herald.hop.<hop>_ms``) and ``herald.pipeline.hop.duration``.

    ``enqueued_at`` is the message's enqueued time (Service Bus's ``EnqueuedTimeUtc``). A hop is
    recorded when the stage succeeds; a failed attempt is counted once its redelivery succeeds."""
    waiting_hop, working_hop = _STAGE_HOPS[stage]
    started = time.time()
    waited: float | None = None
    if enqueued_at is not None:
        enqueued = enqueued_at if enqueued_at.tzinfo is not None else enqueued_at.replace(tzinfo=UTC)
        waited = max(0.0, started - enqueued.timestamp())
    with consume_span(name, properties) as span:
        if waited is not None:
            span.set_attribute("herald.hop.queue_wait_ms", round(waited * 1000, 1))
        yield span
        took = time.time() - started
        if waiting_hop is not None and waited is not None:
            _record_hop(span, waiting_hop, waited)
        if working_hop is not None:
            # A hop that starts at the enqueue includes the queue wait; one that starts at the trigger does not.
            _record_hop(span, working_hop, took + (waited or 0.0) if waiting_hop is None else took)


def _record_hop(span: trace.Span, hop: str, seconds: float) -> None:
    span.set_attribute(f"herald.hop.{hop}_ms", round(seconds * 1000, 1))
    _hop_duration.record(seconds, {"hop": hop})
