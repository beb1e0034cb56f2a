"""Event-triggered orders count against the subscriber's notification limits; over them a delivery
is deferred to when the limit allows, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.notifications.limits import Limits
from shared.notifications.messages import QUEUES
from shared.subscriptions.messages import NOTIFY_QUEUE, DeliveryBatch
from shared.subscriptions.notification_target import DEFERRED, ORDERED
from tests.subscriptions.notification_targets.conftest import (
    KARI,
    OLA,
    drain,
    event_notifier,
    fan_out,
    notification,
    publish,
    queued,
    status_event,
    subscribe,
)


@pytest.fixture
def limits() -> Limits:
    return Limits(per_minute=1, per_day=100)


async def test_over_the_limit_an_event_notification_is_deferred(
    client, issuer, harness, services, stores, consumer, resource, residents, herald
):
    payload = {"resourceFilter": resource, "typeFilter": "signal.status.changed", "notification": notification()}
    subscription = (await subscribe(client, issuer, consumer, payload)).json()
    events = [status_event(resource, f"person:{KARI}", "LIM-1"), status_event(resource, f"person:{OLA}", "LIM-2")]
    await publish(client, issuer, events, "org:991825827")
    await fan_out(herald)
    deliveries = await queued(herald, NOTIFY_QUEUE, subscription["id"])
    stage = event_notifier(services, stores, harness.bus)  # on the recording bus: to see what is queued again
    before = datetime.now(UTC)
    outcomes = await stage.handle(deliveries)
    assert sorted(o.outcome for o in outcomes) == [DEFERRED, ORDERED]
    deferred = next(o for o in outcomes if o.outcome == DEFERRED)
    assert "a minute" in (deferred.reason or "")
    log = await client.get(
        f"/api/v1/subscriptions/{subscription['id']}/deliveries",
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    assert sorted(d["outcome"] for d in log.json()["deliveries"]) == [DEFERRED, ORDERED]
    # Queued again on events-notify for when one notification has refilled (60 s at 1 a minute).
    requeued = [m for q, m in harness.bus.sent if q == NOTIFY_QUEUE]
    assert len(requeued) == 1 and requeued[0].deliver_at is not None
    assert timedelta(seconds=55) <= requeued[0].deliver_at - before <= timedelta(seconds=65)
    assert DeliveryBatch.model_validate_json(requeued[0].body).deliveries()[0].subscription_id == subscription["id"]

    # Leave nothing behind for other tests' drains: send the admitted order, drop the subscription.
    await drain(herald, QUEUES)
    deleted = await client.delete(
        f"/api/v1/subscriptions/{subscription['id']}", headers=issuer.headers("events.subscribe", sub=consumer)
    )
    assert deleted.status_code == 204
