"""Push: matched events reach webhooks signed, once per redelivered inbound message, with retries,
dead letters, replay, 410 and Retry-After handled as the CloudEvents webhook spec says."""

from __future__ import annotations

import json
from datetime import timedelta

from standardwebhooks import Webhook

from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch
from tests.subscriptions.conftest import active_subscription, events_received, worker_with
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.pipeline import drain
from tests.support.receiver import Behaviour

PIPELINE = (INBOUND_QUEUE, OUTBOUND_QUEUE)


async def test_matching_events_are_pushed_signed_and_intact(client, issuer, receiver, resource, services, stores):
    from tests.conftest import open_resource

    await open_resource(services, resource + "-elsewhere")
    sub = await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url("hook"), "resourceFilter": resource, "typeFilter": "no.case.*"},
    )
    headers = issuer.headers("events.publish", "events.read")
    await publish(
        client,
        headers,
        [
            event(resource, "1", type="no.case.opened", data={"n": 1}),
            event(resource, "2", type="no.other"),
            event(resource, "3", type="no.case.closed"),
            event(resource + "-elsewhere", "4", type="no.case.opened"),
        ],
    )
    await drain(stores, PIPELINE)

    posts = [p for p in receiver.posts("hook") if json.loads(p.body)["type"] != "platform.events.validatesubscription"]
    assert [json.loads(p.body)["id"] for p in posts] == ["1", "3"] or sorted(
        json.loads(p.body)["id"] for p in posts
    ) == ["1", "3"]
    stored = (await client.get("/api/v1/events", params={"resource": resource}, headers=headers)).json()
    by_id = {e["id"]: e for e in stored}
    for post in posts:
        assert post.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
        Webhook(sub["secret"]).verify(post.body.decode(), post.headers)  # raises if the signature is wrong
        assert json.loads(post.body) == by_id[json.loads(post.body)["id"]]
        assert post.headers["webhook-id"].startswith("msg_")


async def test_filters_select_events(client, issuer, receiver, resource, services, stores):
    specs = {
        "subject": {"subjectFilter": "person:1"},
        "alt": {"alternativeSubjectFilter": "urn:alt:7"},
        "source": {"sourceFilter": "urn:src:a*"},
        "all": {},
    }
    for path, filters in specs.items():
        await active_subscription(
            client, issuer, stores, {"endPoint": receiver.url(path), "resourceFilter": resource, **filters}
        )
    await publish(
        client,
        issuer.headers("events.publish"),
        [
            event(resource, "s1", subject="person:1"),
            event(resource, "s2", subject="person:2"),
            event(resource, "a1", alternativesubject="urn:alt:7", subject="person:3"),
            event(resource, "src", source="urn:src:abc"),
        ],
    )
    await drain(stores, PIPELINE)
    got = {path: sorted(e["id"] for e in events_received(receiver, path)) for path in specs}
    assert got == {"subject": ["s1"], "alt": ["a1"], "source": ["src"], "all": ["a1", "s1", "s2", "src"]}


async def test_redelivered_inbound_message_does_not_push_twice(client, issuer, receiver, resource, services, stores):
    await active_subscription(client, issuer, stores, {"endPoint": receiver.url("once"), "resourceFilter": resource})
    await active_subscription(client, issuer, stores, {"endPoint": receiver.url("once-b"), "resourceFilter": resource})
    await publish(client, issuer.headers("events.publish"), [event(resource, f"r{i}") for i in range(5)])
    await drain(stores, (INBOUND_QUEUE,))
    # The inbound message arrives again (a lost lock, a sweeper re-dispatch): same rows, same pointer.
    seqs = [row.seq for row in await stores.event_log.rows_from(resource, 0, 10)]
    await stores.dispatcher.dispatch(resource, seqs)
    await drain(stores, PIPELINE)
    assert sorted(e["id"] for e in events_received(receiver, "once")) == [f"r{i}" for i in range(5)]
    assert sorted(e["id"] for e in events_received(receiver, "once-b")) == [f"r{i}" for i in range(5)]


async def test_subscription_takes_effect_immediately(client, issuer, receiver, resource, services, stores):
    await publish(client, issuer.headers("events.publish"), [event(resource, "before")])
    await drain(stores, PIPELINE)
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("fresh"), "resourceFilter": resource}
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, "after")])
    await drain(stores, PIPELINE)
    assert [e["id"] for e in events_received(receiver, "fresh")] == ["after"]

    await client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=issuer.headers("events.subscribe"))
    await publish(client, issuer.headers("events.publish"), [event(resource, "deleted")])
    await drain(stores, PIPELINE)
    assert [e["id"] for e in events_received(receiver, "fresh")] == ["after"]


async def test_410_disables_the_subscription_and_herald_says_so(client, issuer, receiver, resource, services, stores):
    url = receiver.behave("gone", Behaviour(status=lambda n: 200 if n == 1 else 410))
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    await publish(client, issuer.headers("events.publish"), [event(resource, "x")])
    await drain(stores, PIPELINE)
    fetched = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=issuer.headers("events.subscribe"))
    ).json()
    assert fetched["status"] == "disabled"
    assert "410" in fetched["disabledReason"]
    notices = (
        await client.get(
            "/api/v1/events",
            params={
                "resource": "urn:herald:subscriptions",
                "subject": "org:991825827",
                "type": "herald.subscription.disabled",
                "size": 1000,
            },
            headers=issuer.headers("events.read"),
        )
    ).json()
    assert any(n["data"]["subscriptionId"] == sub["id"] for n in notices)


async def first_outbound(stores, resource) -> DeliveryBatch:
    """Fan the resource's rows out and return the outbound message(s) as one batch, unsent."""
    bus = RecordingBus()
    from shared.adapters.table_fanout_marks import TableFanoutMarks
    from shared.subscriptions.fanout import Fanout

    rows = await stores.event_log.rows_from(resource, 0, 100)
    fanout = Fanout(stores.subscription_store, TableFanoutMarks(stores.tables), bus, rows=stores.inbound)
    await fanout.fan_out(resource, rows)
    [message] = bus.take(OUTBOUND_QUEUE)
    return DeliveryBatch.model_validate_json(message.body)


async def test_retries_follow_the_schedule_then_dead_letter_then_replay(
    client, issuer, receiver, resource, services, stores, herald
):
    behaviour = Behaviour(status=500)
    url = receiver.behave("flaky", behaviour)
    receiver.behaviours["/flaky"] = Behaviour(status=200)  # validation passes
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    receiver.behaviours["/flaky"] = behaviour
    await publish(client, issuer.headers("events.publish"), [event(resource, "retry-me")])
    batch = await first_outbound(stores, resource)

    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus)
    started = clock.now()
    due_times = []
    deliveries = batch.deliveries()
    for _ in range(20):
        await worker.handle(deliveries)
        retries = bus.take(RETRY_QUEUE)
        if not retries:
            break
        [retry] = retries
        due_times.append(retry.deliver_at - started)
        clock.set(retry.deliver_at)
        deliveries = DeliveryBatch.model_validate_json(retry.body).deliveries()
    offsets = [int(d.total_seconds()) for d in due_times]
    assert offsets[:9] == [10, 40, 100, 400, 1000, 2800, 6400, 17200, 38800]  # cumulative Event Grid schedule
    assert offsets[9] == 38800 + 43200  # then every 12 h, within the 24 h horizon
    assert len(offsets) == 10

    webhook_ids = {p.headers["webhook-id"] for p in receiver.posts("flaky") if json.loads(p.body)["id"] == "retry-me"}
    assert len(webhook_ids) == 1  # stable across retries
    attempts = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries", headers=issuer.headers("events.subscribe"))
    ).json()
    assert attempts["count"] >= 11

    letters = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}/deadletters", headers=issuer.headers("events.subscribe"))
    ).json()
    assert letters["count"] == 1
    assert letters["deadLetters"][0]["eventId"] == "retry-me"
    assert letters["deadLetters"][0]["attempts"] == 11

    receiver.behaviours["/flaky"] = Behaviour(status=200)
    replay = await client.post(f"/api/v1/subscriptions/{sub['id']}/replay", headers=issuer.headers("events.subscribe"))
    assert replay.status_code == 202 and replay.json() == {"replayed": 1}
    await drain(stores, (OUTBOUND_QUEUE,))
    assert receiver.posts("flaky")[-1].body and json.loads(receiver.posts("flaky")[-1].body)["id"] == "retry-me"
    letters = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}/deadletters", headers=issuer.headers("events.subscribe"))
    ).json()
    assert letters["count"] == 0


async def test_retry_after_is_honoured_and_capped(client, issuer, receiver, resource, services, stores, herald):
    url = receiver.behave("busy", Behaviour(status=200))
    await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    await publish(client, issuer.headers("events.publish"), [event(resource, "busy")])
    batch = await first_outbound(stores, resource)
    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus)

    receiver.behaviours["/busy"] = Behaviour(status=429, headers={"Retry-After": "120"})
    await worker.handle(batch.deliveries())
    [retry] = bus.take(RETRY_QUEUE)
    assert retry.deliver_at - clock.now() == timedelta(seconds=120)

    receiver.behaviours["/busy"] = Behaviour(status=503, headers={"Retry-After": str(10 * 86400)})
    await worker.handle(batch.deliveries())
    [retry] = bus.take(RETRY_QUEUE)
    assert retry.deliver_at - clock.now() == timedelta(hours=12)

    receiver.behaviours["/busy"] = Behaviour(status=500, headers={"Retry-After": "120"})
    await worker.handle(batch.deliveries())
    [retry] = bus.take(RETRY_QUEUE)
    assert retry.deliver_at - clock.now() == timedelta(seconds=10)  # Retry-After counts only on 429 and 503


async def test_a_delivery_deferred_again_in_the_same_second_is_queued_as_a_new_message(
    client, issuer, receiver, resource, services, stores, herald
):
    """Service Bus drops a message whose id was sent to the queue in the last ten minutes, so a
    delivery deferred twice to the same due second must not reuse the id of the message it came in."""
    url = receiver.behave("down", Behaviour(status=200))
    await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    receiver.behaviours["/down"] = Behaviour(status=500)
    await publish(client, issuer.headers("events.publish"), [event(resource, "deferred")])
    batch = await first_outbound(stores, resource)
    clock, bus = FakeClock(), RecordingBus()
    guard = EndpointGuard(failure_threshold=1, open_seconds=30, clock=lambda: clock.now().timestamp())
    worker = worker_with(herald, clock, bus, guard=guard)
    await worker.handle(batch.deliveries())  # fails: the circuit opens and a retry is scheduled
    [retry] = bus.take(RETRY_QUEUE)
    deliveries = DeliveryBatch.model_validate_json(retry.body).deliveries()
    sent = []
    for _ in range(2):
        clock.advance(timedelta(milliseconds=300))
        await worker.handle(deliveries)  # the circuit is still open: deferred to when it closes
        [deferred] = bus.take(RETRY_QUEUE)
        sent.append(deferred)
        deliveries = DeliveryBatch.model_validate_json(deferred.body).deliveries()
    assert sent[0].deliver_at == sent[1].deliver_at and sent[0].body == sent[1].body
    assert sent[0].message_id != sent[1].message_id


async def test_rotated_secret_signs_with_both_for_a_day(client, issuer, receiver, resource, services, stores):
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("rotating"), "resourceFilter": resource}
    )
    rotated = (
        await client.post(
            f"/api/v1/subscriptions/{sub['id']}/rotate-secret", headers=issuer.headers("events.subscribe")
        )
    ).json()
    await publish(client, issuer.headers("events.publish"), [event(resource, "signed-twice")])
    await drain(stores, PIPELINE)
    [post] = [p for p in receiver.posts("rotating") if json.loads(p.body)["id"] == "signed-twice"]
    # The new secret, the old one for a day, and the next one, made ahead and not shown yet.
    assert len(post.headers["webhook-signature"].split(" ")) == 3
    Webhook(sub["secret"]).verify(post.body.decode(), post.headers)
    Webhook(rotated["secret"]).verify(post.body.decode(), post.headers)


async def test_five_days_of_failures_disable_the_subscription(
    client, issuer, receiver, resource, services, stores, herald
):
    url = receiver.behave("dying", Behaviour(status=200))
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    receiver.behaviours["/dying"] = Behaviour(status=500)
    await publish(client, issuer.headers("events.publish"), [event(resource, "d1")])
    batch = await first_outbound(stores, resource)
    clock, bus = FakeClock(), RecordingBus()

    await worker_with(herald, clock, bus).handle(batch.deliveries())
    fetched = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=issuer.headers("events.subscribe"))
    ).json()
    assert fetched["status"] == "active"

    clock.advance(timedelta(days=5, seconds=1))
    await worker_with(herald, clock, bus).handle(batch.deliveries())
    fetched = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=issuer.headers("events.subscribe"))
    ).json()
    assert fetched["status"] == "disabled"
    assert "5 days" in fetched["disabledReason"]

    enabled = await client.post(f"/api/v1/subscriptions/{sub['id']}/enable", headers=issuer.headers("events.subscribe"))
    assert enabled.json()["status"] == "pending"
    receiver.behaviours["/dying"] = Behaviour(status=200)
    from shared.subscriptions.messages import VALIDATION_QUEUE

    await drain(stores, (VALIDATION_QUEUE,))
    fetched = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=issuer.headers("events.subscribe"))
    ).json()
    assert fetched["status"] == "active"
