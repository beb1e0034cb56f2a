"""Deliveries that no retry can help go to the dead-letter store at once, without another attempt:
one whose address the connection guard refuses, and one still behind an open circuit when its
retry horizon ends."""

from __future__ import annotations

import json
from datetime import timedelta

from shared.adapters.webhook_http import AiohttpWebhookClient
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.messages import RETRY_QUEUE
from tests.subscriptions.conftest import active_subscription, worker_with
from tests.subscriptions.test_push import first_outbound
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.receiver import Behaviour


async def _pushed_by_a_process_that_forbids_loopback(herald, clock, bus, batch) -> None:
    """The subscription was created where loopback is allowed (local mode); this process's policy
    forbids it, as Azure's does, so the guarded connector refuses the address."""
    guarded = AiohttpWebhookClient(allow_loopback=False)
    try:
        await worker_with(herald, clock, bus, client=guarded).handle(batch.deliveries())
    finally:
        await guarded.close()


async def _deadletters(client, issuer, subscription_id: str) -> list[dict]:
    response = await client.get(
        f"/api/v1/subscriptions/{subscription_id}/deadletters", headers=issuer.headers("events.subscribe")
    )
    return list(response.json()["deadLetters"])


async def _deliveries(client, issuer, subscription_id: str) -> list[dict]:
    response = await client.get(
        f"/api/v1/subscriptions/{subscription_id}/deliveries", headers=issuer.headers("events.subscribe")
    )
    return list(response.json()["deliveries"])


def _events_posted(receiver, path: str) -> list[str]:
    return [
        json.loads(p.body)["id"]
        for p in receiver.posts(path)
        if json.loads(p.body)["type"] != "platform.events.validatesubscription"
    ]


async def test_a_delivery_the_address_guard_refuses_is_dead_lettered_at_once_with_the_reason(
    client, issuer, receiver, resource, services, stores, herald
):
    url = f"http://localhost:{receiver.port}/refused"  # a name: the guarded resolver sees 127.0.0.1
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    await publish(client, issuer.headers("events.publish"), [event(resource, "to-loopback")])
    batch = await first_outbound(stores, resource)
    clock, bus = FakeClock(), RecordingBus()

    await _pushed_by_a_process_that_forbids_loopback(herald, clock, bus, batch)

    assert bus.take(RETRY_QUEUE) == []  # not retried for a day
    assert _events_posted(receiver, "refused") == []
    [letter] = await _deadletters(client, issuer, sub["id"])
    assert letter["eventId"] == "to-loopback" and letter["attempts"] == 1
    assert "loopback" in letter["lastError"]
    [attempt] = await _deliveries(client, issuer, sub["id"])
    assert attempt["outcome"] == "refused" and attempt["statusCode"] is None
    assert "Herald does not connect there" in attempt["error"]


async def test_a_literal_address_the_policy_forbids_is_refused_at_connection(
    client, issuer, receiver, resource, services, stores, herald
):
    """No resolver sees a host that is an address; the guard checks it as the request starts."""
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("literal"), "resourceFilter": resource}
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, "to-127")])
    batch = await first_outbound(stores, resource)

    await _pushed_by_a_process_that_forbids_loopback(herald, FakeClock(), RecordingBus(), batch)

    assert _events_posted(receiver, "literal") == []
    [letter] = await _deadletters(client, issuer, sub["id"])
    assert "127.0.0.1 is a loopback address" in letter["lastError"]


async def test_behind_an_open_circuit_past_the_horizon_a_delivery_is_dead_lettered_without_an_attempt(
    client, issuer, receiver, resource, services, stores, herald
):
    url = receiver.behave("broken", Behaviour(status=200))
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    receiver.behaviours["/broken"] = Behaviour(status=500)
    await publish(client, issuer.headers("events.publish"), [event(resource, "fresh"), event(resource, "old")])
    fresh, old = (await first_outbound(stores, resource)).deliveries()
    clock, bus = FakeClock(), RecordingBus()
    guard = EndpointGuard(failure_threshold=1, clock=lambda: clock.now().timestamp())
    worker = worker_with(herald, clock, bus, guard=guard)

    await worker.handle([fresh])  # fails: the circuit opens
    bus.take(RETRY_QUEUE)
    posted = len(_events_posted(receiver, "broken"))
    clock.advance(timedelta(seconds=1))
    # Its fourth attempt is due, a day after its first; the circuit is still open.
    await worker.handle([old.retried(4, clock.now() - timedelta(hours=24))])

    assert len(_events_posted(receiver, "broken")) == posted  # no request
    assert bus.take(RETRY_QUEUE) == []  # not deferred past the horizon
    [letter] = await _deadletters(client, issuer, sub["id"])
    assert letter["eventId"] == "old" and letter["attempts"] == 3  # the attempts made, none added
    assert letter["lastStatus"] is None
    expired = [a for a in await _deliveries(client, issuer, sub["id"]) if a["eventId"] == "old"]
    assert [(a["outcome"], a["statusCode"], a["latencyMs"]) for a in expired] == [("expired", None, 0)]
