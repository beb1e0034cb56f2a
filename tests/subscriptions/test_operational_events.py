"""Herald's operational events: ``herald.subscription.failing`` when a circuit opens,
``herald.subscription.recovered`` at the first success after it, and ``herald.delivery.exhausted``
when deliveries go to the dead letters; each published once per change, into the hub, where a
consumer subscribes to them like to any event (by webhook or by notification)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.delivery import Verdict
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.health import SubscriptionEvents, SubscriptionHealth
from shared.subscriptions.messages import NOTIFY_QUEUE, OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch, ValidationMessage
from shared.subscriptions.stats import DeliveryStats
from shared.urns import SUBSCRIPTIONS_URN
from tests.subscriptions.conftest import active_subscription, worker_with
from tests.subscriptions.notification_targets.conftest import notification, queued
from tests.subscriptions.test_push import first_outbound
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.identities import random_org
from tests.support.pipeline import drain, take
from tests.support.receiver import Behaviour

OPERATIONAL = ("herald.subscription.failing", "herald.subscription.recovered", "herald.delivery.exhausted")


async def _operational_events(client, issuer, consumer: str, event_type: str, subscription_id: str) -> list[dict]:
    """What the consumer reads of Herald's events about one of its subscriptions."""
    response = await client.get(
        "/api/v1/events",
        params={"resource": SUBSCRIPTIONS_URN, "subject": consumer, "type": event_type, "size": 1000},
        headers=issuer.headers("events.read", sub=consumer),
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["data"]["subscriptionId"] == subscription_id]


async def _health(client, issuer, consumer: str, subscription_id: str) -> dict:
    response = await client.get(
        f"/api/v1/subscriptions/{subscription_id}/health", headers=issuer.headers("events.subscribe", sub=consumer)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_consumers_may_subscribe_to_the_operational_events_about_themselves_only(client, issuer, receiver):
    consumer, stranger = random_org(), random_org()
    for event_type in OPERATIONAL:
        payload = {
            "endPoint": receiver.url("ops"),
            "resourceFilter": SUBSCRIPTIONS_URN,
            "subjectFilter": consumer,
            "typeFilter": event_type,
        }
        own = await client.post(
            "/api/v1/subscriptions", json=payload, headers=issuer.headers("events.subscribe", sub=consumer)
        )
        assert own.status_code == 201, own.text
        theirs = await client.post(
            "/api/v1/subscriptions", json=payload, headers=issuer.headers("events.subscribe", sub=stranger)
        )
        assert theirs.status_code == 403
        assert theirs.headers["content-type"] == "application/problem+json"
        await client.delete(
            f"/api/v1/subscriptions/{own.json()['id']}", headers=issuer.headers("events.subscribe", sub=consumer)
        )


async def test_failing_and_recovered_are_published_once_each_and_reach_the_consumers_subscriptions(
    client, issuer, receiver, resource, stores, herald
):
    consumer = random_org()
    ops = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": receiver.url("on-call"),
            "resourceFilter": SUBSCRIPTIONS_URN,
            "subjectFilter": consumer,
            "typeFilter": "herald.subscription.*",
        },
        sub=consumer,
    )
    emailed = await client.post(
        "/api/v1/subscriptions",
        json={
            "resourceFilter": SUBSCRIPTIONS_URN,
            "subjectFilter": consumer,
            "typeFilter": "herald.subscription.failing",
            "notification": notification(
                emailTemplate={"subject": "Endpoint failing", "body": "$data.endPoint$ fails", "contentType": "Plain"}
            ),
        },
        headers=issuer.headers("events.subscribe", "notifications.order", sub=consumer),
    )
    assert emailed.status_code == 201, emailed.text
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("flaky"), "resourceFilter": resource}, sub=consumer
    )
    receiver.behaviours["/flaky"] = Behaviour(status=500)
    await publish(client, issuer.headers("events.publish"), [event(resource, f"f{n}") for n in range(4)])
    deliveries = sorted((await first_outbound(stores, resource)).deliveries(), key=lambda d: (d.seq, d.index))

    # Two outbound processes, each with a breaker that opens after two failures. The second read the
    # subscription before the first marked it: its breaker opens too, and finds nothing left to change.
    clock = FakeClock()
    first = worker_with(herald, clock, RecordingBus(), guard=EndpointGuard(failure_threshold=2))
    second = worker_with(herald, clock, RecordingBus(), guard=EndpointGuard(failure_threshold=2))
    await second.handle([deliveries[0]])
    await first.handle([deliveries[0]])
    await first.handle([deliveries[1]])  # the first breaker opens
    assert (await _health(client, issuer, consumer, sub["id"]))["circuit"]["state"] == "open"
    await second.handle([deliveries[1]])  # the second breaker opens

    [failing] = await _operational_events(client, issuer, consumer, "herald.subscription.failing", sub["id"])
    assert failing["source"] == SUBSCRIPTIONS_URN and failing["subject"] == consumer
    assert failing["data"]["endPoint"] == receiver.url("flaky") and failing["data"]["circuitOpenedAt"]
    health = await _health(client, issuer, consumer, sub["id"])
    assert health["circuit"]["state"] == "open" and health["circuit"]["openedAt"] is not None

    # The endpoint answers again: the first success recovers it, once, even when two workers see it.
    receiver.behaviours["/flaky"] = Behaviour(status=200)
    third = worker_with(herald, clock, RecordingBus())
    fourth = worker_with(herald, clock, RecordingBus())
    await third.handle([deliveries[2]])
    await fourth.handle([deliveries[3]])

    [recovered] = await _operational_events(client, issuer, consumer, "herald.subscription.recovered", sub["id"])
    assert recovered["data"]["circuitOpenedAt"] == failing["data"]["circuitOpenedAt"]
    assert (await _health(client, issuer, consumer, sub["id"]))["circuit"] == {"state": "closed", "openedAt": None}

    # Both reach the consumer's webhook, signed; the failing one also becomes an email order.
    await drain(stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
    pushed = [json.loads(p.body) for p in receiver.posts("on-call")]
    mine = [e for e in pushed if e["type"].startswith("herald.") and e["data"]["subscriptionId"] == sub["id"]]
    assert sorted(e["id"] for e in mine) == sorted([failing["id"], recovered["id"]])
    for post in receiver.posts("on-call"):
        Webhook(ops["secret"]).verify(post.body.decode(), post.headers)
    notified = await queued(herald, NOTIFY_QUEUE, emailed.json()["id"])
    outcomes = await herald.services.notifier.handle(notified)
    assert [(o.event_id, o.outcome) for o in outcomes] == [(failing["id"], "ordered")]

    for subscription_id in (ops["id"], emailed.json()["id"], sub["id"]):
        await client.delete(
            f"/api/v1/subscriptions/{subscription_id}", headers=issuer.headers("events.subscribe", sub=consumer)
        )


async def test_failing_and_recovered_are_published_once_by_concurrent_observers(
    client, issuer, receiver, resource, stores, herald
):
    """Workers act on the copy of the subscription they read: two that both saw it unmarked, then
    both saw it marked, change it once each way, and only the change publishes."""
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("shared"), "resourceFilter": resource}, sub=consumer
    )
    unmarked = await stores.subscription_store.get(consumer, sub["id"])
    clock = FakeClock()

    def observer() -> SubscriptionHealth:
        events = SubscriptionEvents(herald.services.publisher, clock)
        return SubscriptionHealth(stores.subscription_store, events, clock, disable_after=timedelta(days=5))

    a, b = observer(), observer()
    await a.circuits_opened([unmarked, unmarked])
    await b.circuits_opened([unmarked])
    marked = await stores.subscription_store.get(consumer, sub["id"])
    assert marked.circuit_opened_at == clock.now()
    await a.observe([(marked, Verdict.DELIVERED)])
    await b.observe([(marked, Verdict.DELIVERED)])

    assert len(await _operational_events(client, issuer, consumer, "herald.subscription.failing", sub["id"])) == 1
    assert len(await _operational_events(client, issuer, consumer, "herald.subscription.recovered", sub["id"])) == 1
    # Published again (a retried settle), an event is a duplicate: same id, same content.
    await SubscriptionEvents(herald.services.publisher, clock).failing(marked)
    assert len(await _operational_events(client, issuer, consumer, "herald.subscription.failing", sub["id"])) == 1


async def test_exhausted_deliveries_are_announced_once_and_herald_s_own_never_are(
    client, issuer, receiver, resource, stores, herald
):
    consumer = random_org()
    ops = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": receiver.url("ops-down"),
            "resourceFilter": SUBSCRIPTIONS_URN,
            "subjectFilter": consumer,
            "typeFilter": "herald.delivery.exhausted",
        },
        sub=consumer,
    )
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("down"), "resourceFilter": resource}, sub=consumer
    )
    receiver.behaviours["/down"] = Behaviour(status=500)
    receiver.behaviours["/ops-down"] = Behaviour(status=500)
    await publish(client, issuer.headers("events.publish"), [event(resource, "lost-1"), event(resource, "lost-2")])
    batch = (await first_outbound(stores, resource)).deliveries()

    async def until_dead(deliveries) -> None:
        """Each attempted and failed; a day later, retried together: past the horizon, they die in one
        settle (the first attempted, the rest, deferred after its failure, expired unsent)."""
        clock, bus = FakeClock(datetime.now(UTC) - timedelta(hours=25)), RecordingBus()
        worker = worker_with(herald, clock, bus, stats=DeliveryStats(stores.delivery_stats, clock, flush_seconds=0))
        for delivery in deliveries:
            await worker.handle([delivery])
        retries = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
        assert len(retries) == len(deliveries)
        clock.advance(timedelta(hours=24))
        await worker.handle(retries)
        assert bus.take(RETRY_QUEUE) == []

    await until_dead(batch)

    [exhausted] = await _operational_events(client, issuer, consumer, "herald.delivery.exhausted", sub["id"])
    assert exhausted["data"]["count"] == 2 and exhausted["data"]["truncated"] is False
    assert sorted(d["eventId"] for d in exhausted["data"]["deliveries"]) == ["lost-1", "lost-2"]
    letters = (
        await client.get(
            f"/api/v1/subscriptions/{sub['id']}/deadletters", headers=issuer.headers("events.subscribe", sub=consumer)
        )
    ).json()
    assert sorted(d["deliveryId"] for d in exhausted["data"]["deliveries"]) == sorted(
        letter["deliveryId"] for letter in letters["deadLetters"]
    )

    # The exhausted event goes to the consumer's operational subscription, whose endpoint is down too:
    # its delivery dies as well, and that announces nothing (it would feed on itself).
    await drain(stores, (INBOUND_QUEUE,))

    def for_ops(body: bytes) -> bool:
        return any(d.subscription_id == ops["id"] for d in DeliveryBatch.model_validate_json(body).deliveries())

    ops_deliveries = [
        d for body in await take(stores, OUTBOUND_QUEUE, for_ops, visibility_timeout=2)
        for d in DeliveryBatch.model_validate_json(body).deliveries()
    ]  # fmt: skip
    assert len(ops_deliveries) == 1
    await until_dead(ops_deliveries)

    ops_letters = (
        await client.get(
            f"/api/v1/subscriptions/{ops['id']}/deadletters", headers=issuer.headers("events.subscribe", sub=consumer)
        )
    ).json()
    assert ops_letters["count"] == 1
    assert await _operational_events(client, issuer, consumer, "herald.delivery.exhausted", ops["id"]) == []
    health = await _health(client, issuer, consumer, sub["id"])
    assert health["deadLetters"] == 2 and health["last14Days"]["failed"] == 3  # the expired one was not attempted

    for subscription_id in (ops["id"], sub["id"]):
        await client.delete(
            f"/api/v1/subscriptions/{subscription_id}", headers=issuer.headers("events.subscribe", sub=consumer)
        )


async def test_a_new_endpoint_starts_with_a_closed_circuit_and_no_stale_worker_marks_it(
    client, issuer, receiver, resource, stores, herald
):
    """The circuit and ``failingSince`` were the old endpoint's: a PATCH of the endpoint clears them, and a
    worker still acting on its copy of the old endpoint changes nothing of the new one's health."""
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("c-old"), "resourceFilter": resource}, sub=consumer
    )
    clock = FakeClock()
    health = SubscriptionHealth(
        stores.subscription_store,
        SubscriptionEvents(herald.services.publisher, clock),
        clock,
        disable_after=timedelta(days=5),
    )
    unmarked = await stores.subscription_store.get(consumer, sub["id"])
    await health.circuits_opened([unmarked])
    await health.observe([(unmarked, Verdict.RETRY)])
    old = await stores.subscription_store.get(consumer, sub["id"])
    assert old.circuit_opened_at is not None and old.failing_since is not None
    assert (await _health(client, issuer, consumer, sub["id"]))["circuit"]["state"] == "open"

    patched = await client.patch(
        f"/api/v1/subscriptions/{sub['id']}",
        json={"endPoint": receiver.url("c-new")},
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    assert patched.status_code == 200, patched.text
    assert (await _health(client, issuer, consumer, sub["id"]))["circuit"] == {"state": "closed", "openedAt": None}
    await health.observe([(unmarked, Verdict.RETRY)])  # a failure of the old endpoint, settled late
    await health.circuits_opened([unmarked])
    moved = await stores.subscription_store.get(consumer, sub["id"])
    assert (moved.failing_since, moved.circuit_opened_at) == (None, None)

    # The new endpoint is validated and its own circuit opens; the old one's success says nothing of it.
    assert await herald.services.validation.validate(ValidationMessage(key=moved.index_key, id=sub["id"]))
    clock.advance(timedelta(seconds=1))
    await health.circuits_opened([await stores.subscription_store.get(consumer, sub["id"])])
    await health.observe([(old, Verdict.DELIVERED)])
    assert (await _health(client, issuer, consumer, sub["id"]))["circuit"]["state"] == "open"
    assert await _operational_events(client, issuer, consumer, "herald.subscription.recovered", sub["id"]) == []
    failing = await _operational_events(client, issuer, consumer, "herald.subscription.failing", sub["id"])
    assert sorted(e["data"]["endPoint"] for e in failing) == [receiver.url("c-new"), receiver.url("c-old")]


class DiesAfterRecording:
    """The delivery log of a process that dies right after its first settle was written (the write is
    kept, the rest of the settle never runs); a storage-level fault, the log itself is Herald's."""

    def __init__(self, log) -> None:
        self._log = log
        self.died = False

    async def record(self, attempts, settled) -> None:
        await self._log.record(attempts, settled)
        if not self.died:
            self.died = True
            raise ConnectionError("the process died after the settle was recorded")

    def __getattr__(self, name: str):
        return getattr(self._log, name)


async def test_exhausted_is_published_even_when_the_process_dies_once_the_settle_is_recorded(
    client, issuer, receiver, resource, stores, herald
):
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("x-down"), "resourceFilter": resource}, sub=consumer
    )
    receiver.behaviours["/x-down"] = Behaviour(status=500)
    await publish(client, issuer.headers("events.publish"), [event(resource, "x-lost")])
    batch = (await first_outbound(stores, resource)).deliveries()
    clock, bus = FakeClock(datetime.now(UTC) - timedelta(hours=25)), RecordingBus()
    await worker_with(herald, clock, bus).handle(batch)
    retries = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
    clock.advance(timedelta(hours=24))

    log = DiesAfterRecording(stores.delivery_log)
    worker = worker_with(herald, clock, bus, delivery_log=log)
    with pytest.raises(ConnectionError):
        await worker.handle(retries, message_id="exhausted-crash")  # dies once the dead one is recorded
    await worker.handle(retries, message_id="exhausted-crash", redelivered=True)  # finds it settled

    [exhausted] = await _operational_events(client, issuer, consumer, "herald.delivery.exhausted", sub["id"])
    assert [d["eventId"] for d in exhausted["data"]["deliveries"]] == ["x-lost"]
    assert (await _health(client, issuer, consumer, sub["id"]))["deadLetters"] == 1
