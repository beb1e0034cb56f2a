"""Destinations beyond webhooks: an Event Grid custom topic (a local fake of its publish API, with the
token devhost's issuer signs for Herald) and a Service Bus queue (the SDK's sender interface), with the
filters, retries, dead letters and delivery log of a webhook."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest

from shared.composition.push_targets import build_push_targets
from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.delivery import delivery_id
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch
from shared.subscriptions.service import VALIDATION_EVENT_TYPE
from shared.subscriptions.targets import DestinationKind, TargetProblem, check_topic_endpoint
from tests.subscriptions.conftest import active_subscription, worker_with
from tests.subscriptions.test_push import first_outbound
from tests.support.eventgrid_topic import EventGridTopicFake
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.identities import random_org
from tests.support.installed_herald import installed_herald
from tests.support.pipeline import drain
from tests.support.service_bus_namespace import Namespace
from tests.support.tokens import ISSUER

PIPELINE = (INBOUND_QUEUE, OUTBOUND_QUEUE)
NAMESPACE = "contoso-events.servicebus.windows.net"


@pytest.fixture
def namespace() -> Namespace:
    return Namespace()


@pytest.fixture
async def herald(settings, namespace) -> AsyncIterator[object]:
    """Herald as the composition root builds it locally, with Service Bus reached through the stand-in."""
    from shared.adapters.servicebus_destination import ServiceBusDestinations

    targets = build_push_targets(settings)  # locally: no Service Bus publisher of its own
    bus = ServiceBusDestinations(namespace.client)
    targets.destinations = {
        **targets.destinations,
        DestinationKind.SERVICE_BUS_QUEUE: bus,
        DestinationKind.SERVICE_BUS_TOPIC: bus,
    }
    async with installed_herald(settings, push_targets=targets) as built:
        yield built


@pytest.fixture
async def topic(issuer) -> AsyncIterator[EventGridTopicFake]:
    fake = EventGridTopicFake(key=issuer.key.public_key(), issuer=ISSUER)
    await fake.start()
    yield fake
    await fake.stop()


def topic_destination(topic: EventGridTopicFake) -> dict[str, str]:
    return {"type": "eventGridTopic", "topicEndpoint": topic.endpoint}


async def test_matching_events_reach_an_event_grid_topic_as_herald_stored_them(
    client, issuer, topic, resource, stores, caplog
):
    created = await active_subscription(
        client,
        issuer,
        stores,
        {"destination": topic_destination(topic), "resourceFilter": resource, "typeFilter": "no.case.*"},
    )
    assert created["endPoint"] is None and created["destination"] == topic_destination(topic)
    # No OPTIONS handshake: publishing the validation event is what made it active.
    [validation] = topic.events()
    assert validation["type"] == VALIDATION_EVENT_TYPE

    headers = issuer.headers("events.publish", "events.read")
    await publish(
        client,
        headers,
        [
            event(resource, "eg-1", type="no.case.opened", subject="person:1", data={"n": 1.5, "tags": ["a"]}),
            event(resource, "eg-2", type="no.other"),
            event(resource, "eg-3", type="no.case.closed", datacontenttype="text/plain", data="closed"),
        ],
    )
    await drain(stores, PIPELINE)

    stored = {
        e["id"]: e for e in (await client.get("/api/v1/events", params={"resource": resource}, headers=headers)).json()
    }
    pushed = [e for e in topic.events() if e["type"] != VALIDATION_EVENT_TYPE]
    assert sorted(e["id"] for e in pushed) == ["eg-1", "eg-3"]
    for cloud_event in pushed:
        assert cloud_event == stored[cloud_event["id"]]  # every attribute, the microsecond time and the data
    for published in topic.published:
        assert published.query["api-version"] and published.claims["sub"] == "system:herald"
    log = (
        await client.get(
            f"/api/v1/subscriptions/{created['id']}/deliveries", headers=issuer.headers("events.subscribe")
        )
    ).json()
    assert {(d["eventId"], d["outcome"], d["statusCode"]) for d in log["deliveries"]} == {
        ("eg-1", "delivered", 200),
        ("eg-3", "delivered", 200),
    }
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("azure") and r.levelno >= logging.WARNING]


async def test_a_failing_topic_is_retried_on_schedule_then_dead_lettered_saying_why(
    client, issuer, topic, resource, stores, herald
):
    sub = await active_subscription(
        client, issuer, stores, {"destination": topic_destination(topic), "resourceFilter": resource}
    )
    topic.status = lambda n: 200 if n == 1 else (500 if n % 2 == 0 else 401)  # 1: the validation event
    await publish(client, issuer.headers("events.publish"), [event(resource, "eg-dead")])
    batch = await first_outbound(stores, resource)

    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus)
    deliveries = batch.deliveries()
    for _ in range(20):
        await worker.handle(deliveries)
        retries = bus.take(RETRY_QUEUE)
        if not retries:
            break
        assert retries[0].deliver_at is not None
        clock.set(retries[0].deliver_at)
        deliveries = DeliveryBatch.model_validate_json(retries[0].body).deliveries()

    subscriber = issuer.headers("events.subscribe")
    attempts = (await client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries", headers=subscriber)).json()
    tried = [d for d in attempts["deliveries"] if d["eventId"] == "eg-dead"]
    assert len(tried) == 11 and {d["statusCode"] for d in tried} == {500, 401}
    errors = {d["statusCode"]: d["error"] for d in tried}
    assert errors[500] == "Event Grid answered 500" and "did not accept Herald's token (401)" in errors[401]
    letters = (await client.get(f"/api/v1/subscriptions/{sub['id']}/deadletters", headers=subscriber)).json()
    assert [(d["eventId"], d["attempts"]) for d in letters["deadLetters"]] == [("eg-dead", 11)]
    assert not [e for e in topic.events() if e["id"] == "eg-dead"]


async def test_events_reach_a_service_bus_queue_once_per_webhook_id(client, issuer, namespace, resource, stores):
    destination = {"type": "serviceBusQueue", "namespace": NAMESPACE, "name": "case-events"}
    created = await active_subscription(
        client, issuer, stores, {"destination": destination, "resourceFilter": resource}
    )
    assert created["endPoint"] is None and created["destination"] == destination
    [validation] = namespace.messages("queue:case-events")
    assert json.loads(b"".join(validation.body))["type"] == VALIDATION_EVENT_TYPE

    await publish(client, issuer.headers("events.publish"), [event(resource, "sb-1", data={"caseId": "42"})])
    await drain(stores, PIPELINE)

    [message] = namespace.messages("queue:case-events")[1:]
    [row] = await stores.event_log.rows_from(resource, 0, 10)
    assert message.message_id == delivery_id(created["id"], resource, row.seq, 0)  # the webhook-id
    assert (message.application_properties or {}).get("webhook-id") == message.message_id
    stored = (
        await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    ).json()
    assert json.loads(b"".join(message.body)) == stored[0]
    log = (
        await client.get(
            f"/api/v1/subscriptions/{created['id']}/deliveries", headers=issuer.headers("events.subscribe")
        )
    ).json()
    assert [(d["deliveryId"], d["outcome"]) for d in log["deliveries"]] == [(message.message_id, "delivered")]


async def test_patch_moves_a_destination_to_another_topic_and_refuses_webhook_only_fields(
    client, issuer, topic, resource, stores
):
    created = await active_subscription(
        client, issuer, stores, {"destination": topic_destination(topic), "resourceFilter": resource}
    )
    path, headers = f"/api/v1/subscriptions/{created['id']}", issuer.headers("events.subscribe")
    for change in (
        {"authentication": {"type": "entraToken", "audience": "api://contoso"}},
        {"endPoint": "https://example.org/hook"},
        {"destination": {"type": "eventGridTopic", "topicEndpoint": "https://evil.example.org/api/events"}},
        {"destination": None},
    ):
        refused = await client.patch(path, json=change, headers=headers)
        assert refused.status_code == 400, (change, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await client.get(path, headers=headers)).json()["destination"] == topic_destination(topic)

    elsewhere = {"type": "eventGridTopic", "topicEndpoint": f"http://localhost:{topic.port}/api/events"}
    moved = await client.patch(path, json={"destination": elsewhere}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["destination"] == elsewhere and moved.json()["status"] == "pending"  # validated again


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (
            {"destination": {"type": "eventGridTopic", "topicEndpoint": "https://evil.example.org/api/events"}},
            "Event Grid host",
        ),
        (
            {
                "destination": {
                    "type": "eventGridTopic",
                    "topicEndpoint": "https://t.westeurope-1.eventgrid.azure.net/api/x",
                }
            },
            "/api/events",
        ),
        (
            {
                "destination": {
                    "type": "eventGridTopic",
                    "topicEndpoint": "http://t.westeurope-1.eventgrid.azure.net/api/events",
                }
            },
            "https",
        ),
        (
            {
                "destination": {
                    "type": "eventGridTopic",
                    "topicEndpoint": "https://t.westeurope-1.eventgrid.azure.net/api/events?api-version=1",
                }
            },
            "query",
        ),
        (
            {"destination": {"type": "serviceBusQueue", "namespace": "evil.example.org", "name": "q"}},
            "servicebus.windows.net",
        ),
        (
            {"destination": {"type": "serviceBusQueue", "namespace": NAMESPACE, "name": "$deadletterqueue"}},
            "queue or topic name",
        ),
        ({"destination": {"type": "serviceBusTopic", "namespace": NAMESPACE}}, "name"),
        ({"destination": {"type": "kafkaTopic", "name": "x"}}, "type"),
        (
            {
                "destination": {"type": "serviceBusQueue", "namespace": NAMESPACE, "name": "q"},
                "endPoint": "https://example.org/",
            },
            "exactly one",
        ),
        (
            {
                "destination": {"type": "serviceBusQueue", "namespace": NAMESPACE, "name": "q"},
                "authentication": {"type": "entraToken", "audience": "api://contoso"},
            },
            "authentication applies to an endPoint",
        ),
    ],
)
async def test_bad_destinations_are_400_problems_that_store_nothing(client, issuer, payload, fragment):
    consumer = random_org()
    headers = issuer.headers("events.subscribe", sub=consumer)
    response = await client.post(
        "/api/v1/subscriptions", json={"resourceFilter": "urn:test:y", **payload}, headers=headers
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.text
    assert (await client.get("/api/v1/subscriptions", headers=headers)).json()["count"] == 0


def test_outside_local_mode_a_topic_endpoint_is_an_event_grid_host_over_https():
    assert check_topic_endpoint("https://cases.norwayeast-1.eventgrid.azure.net/api/events", loopback_allowed=False)
    for url in (
        "http://127.0.0.1:8080/api/events",
        "https://localhost/api/events",
        "https://eventgrid.azure.net.evil.org/api/events",
    ):
        with pytest.raises(TargetProblem):
            check_topic_endpoint(url, loopback_allowed=False)
