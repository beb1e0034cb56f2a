from __future__ import annotations

import json
from datetime import timedelta

from shared.config import DEFAULT_RETRY_SCHEDULE
from shared.subscriptions.delivery import RetryPolicy
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.health import SubscriptionEvents, SubscriptionHealth
from shared.subscriptions.messages import VALIDATION_QUEUE
from shared.subscriptions.ordering import OrderedLanes
from shared.subscriptions.outbound import OutboundWorker
from shared.subscriptions.ports import DeliveryLog, WebhookClient
from shared.subscriptions.stats import DeliveryStats
from tests.support.pipeline import drain


async def active_subscription(client, issuer, stores, payload, sub="org:991825827") -> dict:
    """Create a subscription and run its validation, so it is active."""
    response = await client.post(
        "/api/v1/subscriptions", json=payload, headers=issuer.headers("events.subscribe", sub=sub)
    )
    assert response.status_code == 201, response.text
    await drain(stores, (VALIDATION_QUEUE,))
    created = response.json()
    fetched = await client.get(
        f"/api/v1/subscriptions/{created['id']}", headers=issuer.headers("events.subscribe", sub=sub)
    )
    assert fetched.json()["status"] == "active"
    return created


def events_received(receiver, path: str) -> list[dict]:
    return [
        json.loads(r.body)
        for r in receiver.posts(path)
        if json.loads(r.body)["type"] != "platform.events.validatesubscription"
    ]


def worker_with(
    herald,
    clock,
    bus,
    schedule: tuple[int, ...] = DEFAULT_RETRY_SCHEDULE,
    *,
    guard: EndpointGuard | None = None,
    timeout_seconds: float = 5,
    client: WebhookClient | None = None,
    stats: DeliveryStats | None = None,
    lanes: OrderedLanes | None = None,
    delivery_log: DeliveryLog | None = None,
) -> OutboundWorker:
    """The outbound worker on the test's Herald, with a controllable clock and a recording bus.
    The default guard never opens its circuit, so schedules play out attempt by attempt. Without
    ``stats`` it counts nothing for the health figures."""
    services, stores = herald.services, herald.stores
    health = SubscriptionHealth(
        stores.subscription_store,
        SubscriptionEvents(services.publisher, clock),
        clock,
        disable_after=timedelta(days=5),
    )
    return OutboundWorker(
        store=stores.subscription_store,
        event_log=stores.event_log,
        delivery_log=delivery_log or stores.delivery_log,
        dead_letters=stores.dead_letters,
        bus=bus,
        client=client or stores.webhooks,
        guard=guard or EndpointGuard(failure_threshold=10_000),
        health=health,
        clock=clock,
        policy=RetryPolicy(schedule, timedelta(hours=24)),
        timeout_seconds=timeout_seconds,
        origin="herald.test",
        authorizer=services.access.authorizer,
        stats=stats,
        destinations=stores.push_targets.destinations,
        tokens=stores.push_targets.tokens,
        lanes=lanes,
    )
