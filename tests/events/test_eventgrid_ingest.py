"""ingest_event_grid: CloudEvents the custom topic routes to events-eventgrid, on the real Azurite queues;
authorized as the topic's configured publisher identity, like POST /api/v1/events."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.api.events_publish import STRUCTURED
from shared.clock import SystemClock
from shared.events.ingest import EVENTGRID_QUEUE, EventGridIngest
from shared.identity.authorization import ResourcePolicy
from shared.messaging import OutgoingMessage
from tests.support.events import event
from tests.support.metrics import metric_points, metric_reader
from tests.support.pipeline import drain

GRID = "system:eventgrid-topic"  # the identity the topic publishes as (HERALD_EVENTGRID_PUBLISHER)


def topic_publishes_as(services, identity: str | None) -> None:
    """HERALD_EVENTGRID_PUBLISHER, as the composition root hands it to the ingest use case."""
    services.settings = replace(services.settings, eventgrid_publisher=identity)
    services.eventgrid_ingest = EventGridIngest(services.publisher, services.access.authorizer, identity, SystemClock())


@pytest.fixture(autouse=True)
def topic_identity(services):
    topic_publishes_as(services, GRID)


async def route(stores, *bodies: bytes) -> int:
    """Event Grid's delivery to the queue: one message a CloudEvent, the body as the publisher sent it."""
    messages = [
        OutgoingMessage(body=body, message_id=f"grid-{n}", content_type=STRUCTURED) for n, body in enumerate(bodies)
    ]
    await stores.bus.send(EVENTGRID_QUEUE, messages)
    return await drain(stores, (EVENTGRID_QUEUE,))


@pytest.mark.parametrize("time", ["2026-11-26T10:00:00+01:00", "2026-11-26T04:00:00.123-05:00"])
async def test_an_event_with_any_utc_offset_is_stored_as_sent(client, issuer, services, resource, time, stores):
    sent = event(resource, "offset-1", time=time, data={"n": 1})
    assert await route(stores, json.dumps(sent).encode()) == 1
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == [sent]


async def test_invalid_events_are_dropped_with_their_problems_logged(
    client, issuer, services, resource, caplog, stores
):
    invalid = event(resource, "bad-1", time="26.11.2026 10:00")
    without_resource = {key: value for key, value in event(resource, "bad-2").items() if key != "resource"}
    with caplog.at_level(logging.WARNING, logger="shared.events.ingest"):
        handled = await route(stores, json.dumps(invalid).encode(), json.dumps(without_resource).encode(), b"{NaN")
    assert handled == 3  # consumed, not retried: a redelivery would fail the same way
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == []
    reasons = [record.reason for record in caplog.records if record.getMessage() == "event from Event Grid refused"]
    assert sorted(reasons) == sorted(
        [
            "time: must be an RFC 3339 timestamp",
            "resource: is required",
            "the body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ]
    )


def refusal_reasons(caplog) -> list[str]:
    return [record.reason for record in caplog.records if record.getMessage() == "event from Event Grid refused"]


@pytest.fixture
def meter() -> InMemoryMetricReader:
    """The in-memory metric reader behind shared/telemetry.py's OpenTelemetry API calls."""
    reader = metric_reader()
    if reader is None:
        pytest.skip("another test installed a MeterProvider first; cannot attach an in-memory reader")
    return reader


def refused_count(reader: InMemoryMetricReader, reason: str) -> int:
    points = metric_points(reader).get("herald.ingest.refused", [])
    return sum(int(p.value) for p in points if p.attributes.get("reason") == reason)


async def test_an_event_for_a_resource_whose_policy_does_not_list_the_topic_is_refused(
    client, issuer, services, caplog, meter, stores
):
    """Anyone with EventGrid Data Sender on the topic must not write into a resource that did not
    name the topic's identity as a publisher."""
    resource = f"urn:test:ingest:{uuid.uuid4().hex[:10]}"
    owner = "org:974761076"
    await services.access.policies.put(resource, ResourcePolicy(publishers=["org:991825827"], owners=[owner]))
    await services.access.authorizer.changed()
    with caplog.at_level(logging.WARNING, logger="shared.events.ingest"):
        handled = await route(stores, json.dumps(event(resource, "forged-1", subject=owner)).encode())
    assert handled == 1  # completed, never retried
    read = await client.get(
        "/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read", sub=owner)
    )
    assert read.json() == []
    assert refusal_reasons(caplog) == [f"{GRID} may not publish events for {resource}"]
    assert refused_count(meter, "forbidden") == 1


async def test_the_topic_publishes_where_the_policy_lists_it(client, issuer, services, stores):
    resource = f"urn:test:ingest:{uuid.uuid4().hex[:10]}"
    owner = "org:974761076"
    await services.access.policies.put(resource, ResourcePolicy(publishers=[GRID], owners=[owner]))
    await services.access.authorizer.changed()
    sent = event(resource, "granted-1", subject=owner, time="2026-03-04T12:00:00+01:00")
    assert await route(stores, json.dumps(sent).encode()) == 1
    read = await client.get(
        "/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read", sub=owner)
    )
    assert read.json() == [sent]


@pytest.mark.parametrize("herald_resource", ["urn:herald:subscriptions", "urn:herald:notifications", "URN:Herald:x"])
async def test_herald_resources_are_never_written_from_event_grid(
    client, issuer, services, caplog, herald_resource, stores
):
    """Even a policy that lets every identity publish (an administrator's slip, or an external PDP's
    answer) does not open Herald's own namespace: a forged herald.subscription.disabled stays out."""
    victim = "org:974761076"
    if herald_resource != "urn:herald:subscriptions":  # the built-in policy there cannot be replaced
        await services.access.policies.put(herald_resource, ResourcePolicy(publishers=["*"], owners=["*"]))
        await services.access.authorizer.changed()
    forged = event(
        herald_resource,
        f"forged-{uuid.uuid4().hex[:8]}",
        subject=victim,
        type="herald.subscription.disabled",
        source="urn:herald:subscriptions",
        data={"subscriptionId": "00000000-0000-0000-0000-000000000000", "reason": "forged"},
    )
    try:
        with caplog.at_level(logging.WARNING, logger="shared.events.ingest"):
            assert await route(stores, json.dumps(forged).encode()) == 1
        read = await client.get(
            "/api/v1/events", params={"resource": herald_resource}, headers=issuer.headers("events.read", sub=victim)
        )
    finally:
        # Back to granting nothing, as no policy does, for the other tests on this Azurite.
        await services.access.policies.put(herald_resource, ResourcePolicy())
        await services.access.authorizer.changed()
    assert forged["id"] not in [e["id"] for e in read.json()]
    assert refusal_reasons(caplog) == [f"{GRID} may not publish events for {herald_resource}"]


async def test_without_a_configured_publisher_ingestion_refuses_everything(
    client, issuer, services, resource, caplog, meter, stores
):
    topic_publishes_as(services, None)
    before = refused_count(meter, "unconfigured")
    with caplog.at_level(logging.WARNING, logger="shared.events.ingest"):
        assert await route(stores, json.dumps(event(resource, "unconfigured-1")).encode()) == 1
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "shared.events.ingest"]
    assert errors and "HERALD_EVENTGRID_PUBLISHER is not set" in errors[0].getMessage()
    assert refused_count(meter, "unconfigured") == before + 1


@pytest.mark.parametrize("configured", ["person:01019010046", "not an identity", "system:"])
async def test_a_publisher_setting_that_is_no_org_or_system_identity_refuses_everything(
    client, issuer, services, resource, caplog, meter, stores, configured
):
    """Whatever the setting holds that is not an org: or system: identity is an error at start and
    refuses every event, rather than publishing as something guessed from it."""
    with caplog.at_level(logging.ERROR, logger="shared.events.ingest"):
        topic_publishes_as(services, configured)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("HERALD_EVENTGRID_PUBLISHER"), errors
    before = refused_count(meter, "unconfigured")
    assert await route(stores, json.dumps(event(resource, "misconfigured-1")).encode()) == 1
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == []
    assert refused_count(meter, "unconfigured") == before + 1
