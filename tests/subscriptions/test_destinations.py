"""Destinations beyond webhooks: an Event Grid custom topic (a local fake of its publish API, with the
token devhost's issuer signs for Herald) and a Service Bus queue (the SDK's sender interface), with the
filters, retries, dead letters and delivery log of a webhook; validated by the code their validation
event carries, and never Herald's own namespace or topic."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from standardwebhooks import Webhook

from shared.composition.push_targets import build_push_targets
from shared.config import read_connection
from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.delivery import delivery_id
from shared.subscriptions.messages import (
    OUTBOUND_QUEUE,
    RETRY_QUEUE,
    VALIDATION_QUEUE,
    DeliveryBatch,
    ValidationMessage,
)
from shared.subscriptions.model import Status
from shared.subscriptions.signed_event import SIGNATURE_EXTENSIONS, canonical_json
from shared.subscriptions.targets import DestinationKind, TargetProblem, check_topic_endpoint
from shared.subscriptions.validation import VALIDATION_EVENT_TYPE
from tests.subscriptions.conftest import worker_with
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
# Herald's own, as its settings name them: no subscription may point there.
HERALD_NAMESPACE = "sb-herald-prod.servicebus.windows.net"
HERALD_TOPIC = "https://evgt-herald-prod.norwayeast-1.eventgrid.azure.net/api/events"


@pytest.fixture
def namespace() -> Namespace:
    return Namespace()


@pytest.fixture
async def herald(settings, namespace) -> AsyncIterator[object]:
    """Herald as the composition root builds it locally, with Service Bus reached through the stand-in."""
    from shared.adapters.servicebus_destination import ServiceBusDestinations

    settings = replace(
        settings,
        service_bus=read_connection(
            "ServiceBusConnection", {"ServiceBusConnection__fullyQualifiedNamespace": HERALD_NAMESPACE}
        ),
        eventgrid_topic_endpoint=HERALD_TOPIC,
    )
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


def validation_events(topic: EventGridTopicFake) -> list[dict[str, Any]]:
    return [e for e in topic.events() if e["type"] == VALIDATION_EVENT_TYPE]


def queue_events(namespace: Namespace, queue: str) -> list[dict[str, Any]]:
    return [json.loads(b"".join(message.body)) for message in namespace.messages(f"queue:{queue}")]


async def active_subscription(
    client,
    issuer,
    stores,
    payload: dict[str, Any],
    validations: Callable[[], list[dict[str, Any]]],
    sub: str = "org:991825827",
) -> dict[str, Any]:
    """Creates a destination subscription and validates it as its consumer does: the validation event
    published to the destination leaves it pending, and the code that event carries makes it active."""
    headers = issuer.headers("events.subscribe", sub=sub)
    response = await client.post("/api/v1/subscriptions", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    await drain(stores, (VALIDATION_QUEUE,))
    created = response.json()
    path = f"/api/v1/subscriptions/{created['id']}"
    assert (await client.get(path, headers=headers)).json()["status"] == "pending"
    validation = validations()[-1]
    assert validation["type"] == VALIDATION_EVENT_TYPE
    assert validation["data"]["validationUrl"].endswith(f"{path}/validate")
    validated = await client.post(
        f"{path}/validate", json={"validationCode": validation["data"]["validationCode"]}, headers=headers
    )
    assert validated.status_code == 200, validated.text
    assert validated.json()["status"] == "active"
    assert (await client.get(path, headers=headers)).json()["status"] == "active"
    return dict(created)


async def test_matching_events_reach_an_event_grid_topic_as_herald_stored_them(
    client, issuer, topic, resource, stores, caplog
):
    created = await active_subscription(
        client,
        issuer,
        stores,
        {"destination": topic_destination(topic), "resourceFilter": resource, "typeFilter": "no.case.*"},
        lambda: validation_events(topic),
    )
    assert created["endPoint"] is None and created["destination"] == topic_destination(topic)
    # No OPTIONS handshake: the validation event, and the code it carried sent back, made it active.
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
        # Every attribute, the microsecond time and the data; and the signature in three extensions, over
        # the event without them in its canonical form, as a receiver checks it.
        signature = {header: cloud_event.pop(extension) for header, extension in SIGNATURE_EXTENSIONS.items()}
        assert cloud_event == stored[cloud_event["id"]]
        Webhook(created["secret"]).verify(canonical_json(cloud_event), signature)
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
        client,
        issuer,
        stores,
        {"destination": topic_destination(topic), "resourceFilter": resource},
        lambda: validation_events(topic),
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
        client,
        issuer,
        stores,
        {"destination": destination, "resourceFilter": resource},
        lambda: queue_events(namespace, "case-events"),
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
        client,
        issuer,
        stores,
        {"destination": topic_destination(topic), "resourceFilter": resource},
        lambda: validation_events(topic),
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
        # Herald's own namespace (its identity owns every queue there, one of which ingests events) and
        # its ingest topic, however the name is written.
        (
            {"destination": {"type": "serviceBusQueue", "namespace": HERALD_NAMESPACE, "name": "events-eventgrid"}},
            "Herald's own Service Bus namespace",
        ),
        (
            {"destination": {"type": "serviceBusTopic", "namespace": HERALD_NAMESPACE.upper(), "name": "t"}},
            "Herald's own Service Bus namespace",
        ),
        (
            {"destination": {"type": "eventGridTopic", "topicEndpoint": HERALD_TOPIC.replace("evgt", "EVGT")}},
            "Event Grid topic of Herald's own",
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


async def test_a_destination_is_active_only_once_its_consumer_sends_back_the_code_it_published(
    client, issuer, topic, receiver, resource, stores
):
    headers = issuer.headers("events.subscribe")
    response = await client.post(
        "/api/v1/subscriptions",
        json={"destination": topic_destination(topic), "resourceFilter": resource},
        headers=headers,
    )
    path = f"/api/v1/subscriptions/{response.json()['id']}"
    # Pending with nothing published yet: there is no code to send.
    early = await client.post(f"{path}/validate", json={"validationCode": "guess"}, headers=headers)
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"

    await drain(stores, (VALIDATION_QUEUE,))
    [first] = validation_events(topic)
    code = first["data"]["validationCode"]
    assert len(code) >= 32
    view = await client.get(path, headers=headers)
    assert view.json()["status"] == "pending" and code not in view.text and "validationCode" not in view.text

    # A wrong code changes nothing; another consumer does not see the subscription at all.
    for wrong in (code[:-1], code + "x", first["id"]):
        refused = await client.post(f"{path}/validate", json={"validationCode": wrong}, headers=headers)
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
    stranger = issuer.headers("events.subscribe", sub=random_org())
    assert (await client.post(f"{path}/validate", json={"validationCode": code}, headers=stranger)).status_code == 404
    assert (await client.get(path, headers=headers)).json()["status"] == "pending"

    # Publishing the validation event again (enable) issues a new code: the earlier one is void.
    assert (await client.post(f"{path}/enable", headers=headers)).json()["status"] == "pending"
    await drain(stores, (VALIDATION_QUEUE,))
    [_, second] = validation_events(topic)
    assert second["data"]["validationCode"] != code
    stale = await client.post(f"{path}/validate", json={"validationCode": code}, headers=headers)
    assert stale.status_code == 400
    validated = await client.post(
        f"{path}/validate", json={"validationCode": second["data"]["validationCode"]}, headers=headers
    )
    assert validated.status_code == 200 and validated.json()["status"] == "active"
    # Once: the code is spent.
    again = await client.post(
        f"{path}/validate", json={"validationCode": second["data"]["validationCode"]}, headers=headers
    )
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"

    # A webhook proves control by accepting the validation event; it has no code to send.
    webhook = await client.post(
        "/api/v1/subscriptions", json={"endPoint": receiver.url("hook"), "resourceFilter": resource}, headers=headers
    )
    answer = await client.post(
        f"/api/v1/subscriptions/{webhook.json()['id']}/validate", json={"validationCode": code}, headers=headers
    )
    assert answer.status_code == 409 and "webhook" in answer.json()["detail"]


async def test_a_destination_whose_code_never_comes_back_is_disabled_at_the_retry_horizon(
    client, issuer, topic, resource, stores, herald
):
    """Deliveries and backfills wait for a pending subscription; one whose consumer never sends the
    code back must not keep them waiting for ever. The deadline names the code it waits for, so a code
    sent back in time, or replaced by a newer one, makes it do nothing."""
    headers = issuer.headers("events.subscribe")
    queue = stores.bus.service.get_queue_client(VALIDATION_QUEUE)  # type: ignore[attr-defined]
    waiting = (await queue.get_queue_properties()).approximate_message_count
    created = await client.post(
        "/api/v1/subscriptions",
        json={"destination": topic_destination(topic), "resourceFilter": resource},
        headers=headers,
    )
    path = f"/api/v1/subscriptions/{created.json()['id']}"
    await drain(stores, (VALIDATION_QUEUE,))
    # The deadline waits in the queue, invisible until the retry horizon.
    assert (await queue.get_queue_properties()).approximate_message_count == waiting + 1
    stored = await stores.subscription_store.get("org:991825827", created.json()["id"])
    assert stored is not None and stored.validation_code_hash is not None
    deadline = ValidationMessage(key=stored.index_key, id=stored.id, awaiting=stored.validation_code_hash)

    # A newer code (enable publishes one): the old deadline is not this one's.
    assert (await client.post(f"{path}/enable", headers=headers)).status_code == 200
    await drain(stores, (VALIDATION_QUEUE,))
    assert await herald.services.validation.validate(deadline) is None
    assert (await client.get(path, headers=headers)).json()["status"] == "pending"

    current = await stores.subscription_store.get("org:991825827", stored.id)
    assert current is not None and current.validation_code_hash is not None
    latest = ValidationMessage(key=current.index_key, id=current.id, awaiting=current.validation_code_hash)
    assert await herald.services.validation.validate(latest) is Status.DISABLED
    view = (await client.get(path, headers=headers)).json()
    assert view["status"] == "disabled" and "not sent back" in view["disabledReason"]


async def test_a_code_sent_back_in_time_outlives_its_deadline(client, issuer, topic, resource, stores, herald):
    payload = {"destination": topic_destination(topic), "resourceFilter": resource}
    pending = await client.post("/api/v1/subscriptions", json=payload, headers=issuer.headers("events.subscribe"))
    await drain(stores, (VALIDATION_QUEUE,))
    stored = await stores.subscription_store.get("org:991825827", pending.json()["id"])
    assert stored is not None and stored.validation_code_hash is not None
    code = validation_events(topic)[-1]["data"]["validationCode"]
    path = f"/api/v1/subscriptions/{stored.id}"
    headers = issuer.headers("events.subscribe")
    assert (await client.post(f"{path}/validate", json={"validationCode": code}, headers=headers)).status_code == 200
    deadline = ValidationMessage(key=stored.index_key, id=stored.id, awaiting=stored.validation_code_hash)
    assert await herald.services.validation.validate(deadline) is None
    assert (await client.get(path, headers=headers)).json()["status"] == "active"
