"""PATCH /api/v1/subscriptions/{id}: each field changes what the next event does; a new endpoint is validated
before it receives anything; bad changes are problems that change nothing."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from shared.events.dispatch import INBOUND_QUEUE
from shared.identity.authorization import AccessRule, Action, ResourcePolicy
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, VALIDATION_QUEUE, DeliveryBatch
from shared.subscriptions.service import ENDPOINT_SETTLE
from shared.subscriptions.validation import VALIDATION_EVENT_TYPE
from tests.conftest import open_resource
from tests.subscriptions.conftest import active_subscription, events_received, worker_with
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.identities import random_org, random_person
from tests.support.pipeline import drain, take

PIPELINE = (INBOUND_QUEUE, OUTBOUND_QUEUE)
CONSUMER = "org:991825827"


def headers(issuer, sub: str = CONSUMER) -> dict[str, str]:
    return issuer.headers("events.subscribe", sub=sub)


async def patch(client, issuer, subscription_id: str, body: dict, sub: str = CONSUMER):
    return await client.patch(f"/api/v1/subscriptions/{subscription_id}", json=body, headers=headers(issuer, sub))


async def view(client, issuer, subscription_id: str, sub: str = CONSUMER) -> dict:
    response = await client.get(f"/api/v1/subscriptions/{subscription_id}", headers=headers(issuer, sub))
    assert response.status_code == 200, response.text
    return response.json()


async def test_each_filter_change_applies_to_the_next_event(client, issuer, receiver, resource, services, stores):
    kari, ola, per = random_person(), random_person(), random_person()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("f"), "resourceFilter": resource, "subjectFilter": kari}
    )
    sent = 0

    async def delivered_now(*events: dict) -> list[str]:
        nonlocal sent
        before = len(events_received(receiver, "f"))
        await publish(client, issuer.headers("events.publish"), list(events))
        await drain(stores, PIPELINE)
        sent += 1
        return sorted(e["id"] for e in events_received(receiver, "f")[before:])

    assert await delivered_now(event(resource, "k0", subject=kari), event(resource, "o0", subject=ola)) == ["k0"]

    changed = await patch(client, issuer, sub["id"], {"subjectFilter": [ola, per], "typeFilter": ["a", "b.*"]})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["subjectFilter"] == sorted([ola, per]) and body["typeFilter"] == ["a", "b.*"]
    assert body["status"] == "active" and body["endPoint"] == sub["endPoint"]
    assert await delivered_now(
        event(resource, "k1", subject=kari, type="a"),
        event(resource, "o1", subject=ola, type="a"),
        event(resource, "p1", subject=per, type="b.c"),
        event(resource, "p1x", subject=per, type="c"),
    ) == ["o1", "p1"]

    assert (await patch(client, issuer, sub["id"], {"subjectFilter": None, "typeFilter": None})).status_code == 200
    assert await delivered_now(event(resource, "k2", subject=kari, type="z"), event(resource, "n2")) == ["k2", "n2"]

    assert (
        await patch(client, issuer, sub["id"], {"alternativeSubjectFilter": "urn:alt:1", "sourceFilter": "urn:src:*"})
    ).status_code == 200
    assert await delivered_now(
        event(resource, "a3", alternativesubject="urn:alt:1", source="urn:src:x"),
        event(resource, "a3-other-source", alternativesubject="urn:alt:1"),
        event(resource, "b3", alternativesubject="urn:alt:2", source="urn:src:x"),
    ) == ["a3"]

    elsewhere = await open_resource(services, resource + "-elsewhere")
    assert (
        await patch(
            client,
            issuer,
            sub["id"],
            {"resourceFilter": elsewhere, "alternativeSubjectFilter": None, "sourceFilter": None, "subjectFilter": ola},
        )
    ).status_code == 200
    assert await delivered_now(event(resource, "old-resource", subject=ola), event(elsewhere, "e4", subject=ola)) == [
        "e4"
    ]
    # No validation was asked for: only a new endpoint is validated.
    validations = [p for p in receiver.posts("f") if json.loads(p.body)["type"] == VALIDATION_EVENT_TYPE]
    assert len(validations) == 1


async def test_a_new_endpoint_receives_nothing_before_it_is_validated_queued_deliveries_included(
    client, issuer, receiver, resource, herald, stores
):
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("old"), "resourceFilter": resource}
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, "queued")])
    await drain(stores, (INBOUND_QUEUE,))  # matched while the old endpoint was active: waiting in the queue

    patched_at = time.monotonic()
    response = await patch(client, issuer, sub["id"], {"endPoint": receiver.url("new")})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending" and response.json()["endPoint"] == receiver.url("new")

    def mine(body: bytes) -> bool:
        return any(d.subscription_id == sub["id"] for d in DeliveryBatch.model_validate_json(body).deliveries())

    [queued] = await take(stores, OUTBOUND_QUEUE, mine, visibility_timeout=30)
    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus)
    await worker.handle(DeliveryBatch.model_validate_json(queued).deliveries())
    [waiting] = bus.take(RETRY_QUEUE)  # not pushed, not dropped: it waits for the validation
    assert waiting.deliver_at is not None and waiting.deliver_at > clock.now()
    # Published while pending: still matched (it was receiving events), and it waits the same way.
    await publish(client, issuer.headers("events.publish"), [event(resource, "while-pending")])
    await drain(stores, (INBOUND_QUEUE,))
    [published] = await take(stores, OUTBOUND_QUEUE, mine, visibility_timeout=30)
    await worker.handle(DeliveryBatch.model_validate_json(published).deliveries())
    [waiting_too] = bus.take(RETRY_QUEUE)
    assert waiting_too.deliver_at is not None and waiting_too.deliver_at > clock.now()
    assert receiver.received["/new"] == [] and events_received(receiver, "old") == []

    # The validation is sent once every worker's copy of the old subscription has expired.
    deadline = time.monotonic() + ENDPOINT_SETTLE.total_seconds() + 10
    while not receiver.posts("new") and time.monotonic() < deadline:
        await drain(stores, (VALIDATION_QUEUE,))
        await asyncio.sleep(0.2)
    first = receiver.received["/new"][0]
    assert first.at - patched_at >= ENDPOINT_SETTLE.total_seconds() - 0.5
    [validation] = receiver.posts("new")
    assert json.loads(validation.body)["type"] == VALIDATION_EVENT_TYPE
    assert (await view(client, issuer, sub["id"]))["status"] == "active"

    await worker.handle(DeliveryBatch.model_validate_json(waiting.body).deliveries())
    await worker.handle(DeliveryBatch.model_validate_json(waiting_too.body).deliveries())
    await publish(client, issuer.headers("events.publish"), [event(resource, "after")])
    await drain(stores, PIPELINE)
    assert [e["id"] for e in events_received(receiver, "new")] == ["queued", "while-pending", "after"]
    assert events_received(receiver, "old") == []


async def test_a_new_subscription_matches_nothing_until_it_is_validated(client, issuer, receiver, resource, stores):
    created = await client.post(
        "/api/v1/subscriptions",
        json={"endPoint": receiver.url("fresh"), "resourceFilter": resource},
        headers=headers(issuer),
    )
    assert created.status_code == 201 and created.json()["status"] == "pending"
    await publish(client, issuer.headers("events.publish"), [event(resource, "before-validation")])
    await drain(stores, (INBOUND_QUEUE,))

    def mine(body: bytes) -> bool:
        batch = DeliveryBatch.model_validate_json(body).deliveries()
        return any(d.subscription_id == created.json()["id"] for d in batch)

    assert await take(stores, OUTBOUND_QUEUE, mine, visibility_timeout=1) == []
    assert await take(stores, RETRY_QUEUE, mine, visibility_timeout=1) == []
    assert events_received(receiver, "old") == []


async def test_a_change_that_makes_it_identical_to_another_is_a_conflict(client, issuer, receiver, resource, stores):
    payload = {"endPoint": receiver.url("dup"), "resourceFilter": resource}
    first = await active_subscription(client, issuer, stores, {**payload, "typeFilter": ["a", "b"]})
    second = await active_subscription(client, issuer, stores, {**payload, "typeFilter": "c"})
    before = await view(client, issuer, second["id"])

    conflict = await patch(client, issuer, second["id"], {"typeFilter": ["b", "a", "b"]})
    assert conflict.status_code == 409, conflict.text
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert conflict.json()["existingId"] == first["id"]
    assert await view(client, issuer, second["id"]) == before

    # A change frees the identity it had and takes the new one.
    assert (await patch(client, issuer, second["id"], {"typeFilter": "d"})).status_code == 200
    same = await client.post("/api/v1/subscriptions", json={**payload, "typeFilter": "d"}, headers=headers(issuer))
    assert same.status_code == 200 and same.json()["id"] == second["id"]
    freed = await client.post("/api/v1/subscriptions", json={**payload, "typeFilter": "c"}, headers=headers(issuer))
    assert freed.status_code == 201 and freed.json()["id"] != second["id"]


async def test_another_consumers_subscription_is_not_found(client, issuer, receiver, resource, stores):
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("mine"), "resourceFilter": resource}
    )
    before = await view(client, issuer, sub["id"])
    for subscription_id in (sub["id"], "sub_" + "0" * 32):
        response = await patch(client, issuer, subscription_id, {"typeFilter": "x"}, sub=random_org())
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await view(client, issuer, sub["id"]) == before


BAD = [
    ({}, "at least one field"),
    ({"typeFilter": "x", "colour": "blue"}, "colour"),
    ({"resourceFilter": None}, "resourceFilter cannot be null"),
    ({"endPoint": None}, "endPoint cannot be null"),
    ({"includeSubunits": None}, "includeSubunits cannot be null"),
    ({"ordering": "sideways"}, "ordering"),
    ({"typeFilter": []}, "at least 1 item"),
    ({"typeFilter": ["a", "*"]}, "matches every event"),
    ({"subjectFilter": "*"}, "takes no '*'"),
    ({"subjectFilter": ""}, "must not be empty"),
    ({"resourceFilter": "not a urn"}, "resource URN"),
    ({"endPoint": "ftp://example.com/x"}, "absolute https URL"),
    ({"endPoint": "http://example.com/x"}, "https"),
    ({"includeSubunits": True}, "includeSubunits needs a subjectFilter naming organisations"),
]


@pytest.mark.parametrize(("body", "detail"), BAD, ids=[json.dumps(b) for b, _ in BAD])
async def test_a_bad_change_is_a_problem_and_changes_nothing(client, issuer, receiver, resource, stores, body, detail):
    sub = await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url("bad"), "resourceFilter": resource, "subjectFilter": random_person()},
    )
    before = await view(client, issuer, sub["id"])
    response = await patch(client, issuer, sub["id"], body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert await view(client, issuer, sub["id"]) == before


async def test_new_filters_are_authorized_again_for_every_subject(client, issuer, receiver, services, stores):
    resource = "urn:test:herald:self-only"
    await services.access.put_policy(
        resource,
        ResourcePolicy(publishers=["*"], rules=[AccessRule(roles=["self"], actions=[Action.READ, Action.SUBSCRIBE])]),
    )
    consumer, other = random_org(), random_org()
    created = await client.post(
        "/api/v1/subscriptions",
        json={"endPoint": receiver.url("self"), "resourceFilter": resource, "subjectFilter": consumer},
        headers=headers(issuer, consumer),
    )
    assert created.status_code == 201, created.text
    before = await view(client, issuer, created.json()["id"], consumer)
    refused = await patch(client, issuer, before["id"], {"subjectFilter": [consumer, other]}, sub=consumer)
    assert refused.status_code == 403, refused.text
    assert other in refused.json()["detail"]
    assert await view(client, issuer, before["id"], consumer) == before


async def test_ordering_changes_and_stays_with_the_subscription(client, issuer, receiver, resource, stores):
    sub = await active_subscription(client, issuer, stores, {"endPoint": receiver.url("o"), "resourceFilter": resource})
    assert sub["ordering"] == "none"
    response = await patch(client, issuer, sub["id"], {"ordering": "subject"})
    assert response.status_code == 200 and response.json()["ordering"] == "subject"
    assert (await view(client, issuer, sub["id"]))["ordering"] == "subject"
    assert (await view(client, issuer, sub["id"]))["status"] == "active"


async def test_a_change_that_died_half_way_reads_and_is_finished_by_asking_again(
    client, issuer, receiver, resource, stores
):
    """The process dies after the row was written, before the refs and identity rows were tidied."""
    kari, ola = random_person(), random_person()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("crash"), "resourceFilter": resource, "subjectFilter": kari}
    )
    store = stores.subscription_store
    settle = store._settle

    async def dies(*args, **kwargs):
        raise ConnectionResetError("the host stopped")

    store._settle = dies
    try:
        failed = await patch(client, issuer, sub["id"], {"subjectFilter": ola})
        assert failed.status_code == 500
    except ConnectionResetError:
        pass  # the test client may pass the app's exception on instead of its 500
    finally:
        store._settle = settle

    assert (await view(client, issuer, sub["id"]))["subjectFilter"] == ola  # committed: it reads as changed
    await publish(
        client,
        issuer.headers("events.publish"),
        [event(resource, "k", subject=kari), event(resource, "o", subject=ola)],
    )
    await drain(stores, PIPELINE)
    assert [e["id"] for e in events_received(receiver, "crash")] == ["o"]  # once, and only the new subject's

    assert (await patch(client, issuer, sub["id"], {"subjectFilter": ola})).status_code == 200  # finishes it
    payload = {"endPoint": receiver.url("crash"), "resourceFilter": resource}
    again = await client.post("/api/v1/subscriptions", json={**payload, "subjectFilter": ola}, headers=headers(issuer))
    assert again.status_code == 200 and again.json()["id"] == sub["id"]
    old = await client.post("/api/v1/subscriptions", json={**payload, "subjectFilter": kari}, headers=headers(issuer))
    assert old.status_code == 201  # the old identity was released
