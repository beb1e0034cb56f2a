"""The notification target of a subscription: its deliveries become notification orders (the notify stage).

Fan-out routes the (event, subscription) pairs of notification subscriptions to ``events-notify``
in the same small pointer batches as webhook deliveries. For each pair this worker reads the event
from the log and the subscription from the index, and creates an order through the order path
(``OrderService.create``) on behalf of the subscription's consumer:

- recipient: the event's subject (``person:<nin>`` or ``org:<number>``), looked up at send time;
- ``sendersReference``: the event id; ``resourceId``: the event's resource, so the order's
  ``herald.notification.*`` status events land in the publisher's own resource, but only when the
  subscriber may publish there (as for any order: naming a resource is publishing into it).
  Otherwise the order names no resource and its status events go to the subscriber's own status
  stream, where it reads them; the order is not refused, since subscribing was allowed;
- ``idempotencyId``: derived from (subscription, event), so a redelivered message, a re-sent
  fan-out batch or a replayed inbound message never notifies twice.

Event-triggered orders count against the subscriber's notification limits like any order of
its own: they are its notifications, and a subscription to a busy resource must not be a way
around the limits. Over a limit the delivery is deferred, not dropped: it is queued again for when
the limit allows (the Retry-After an API caller would get).

Each outcome is written to the subscription's delivery log (``GET …/deliveries``): ``ordered``
with the order id, ``deferred`` with the limit, or ``skipped`` with the reason (no person/org
subject, a rendered SMS too long, a sender not granted, …). A storage or bus error raises, so the
message is retried; the orders already created are found again by their idempotency id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.clock import Clock
from shared.events.log import EventLog
from shared.messaging import Bus
from shared.notifications.event_orders import NotNotifiable, order_for_event
from shared.notifications.limits import LimitExceeded
from shared.notifications.orders import OrderInvalid, OrderService
from shared.notifications.ports import OrderRefused
from shared.subscriptions.delivery import Delivery, delivery_id
from shared.subscriptions.messages import NOTIFY_QUEUE, delivery_message
from shared.subscriptions.model import Status, Subscription
from shared.subscriptions.ports import Attempt, DeliveryLog, SubscriptionStore

log = logging.getLogger(__name__)

ORDERED = "ordered"
SKIPPED = "skipped"
DEFERRED = "deferred"


@dataclass(frozen=True)
class NotifyOutcome:
    subscription_id: str
    event_id: str
    outcome: str  # ordered | skipped | deferred
    order_id: str | None = None
    created: bool = False
    reason: str | None = None
    retry_at: datetime | None = None  # deferred: when the orderer's limit allows it


class EventNotifier:
    def __init__(
        self,
        *,
        store: SubscriptionStore,
        event_log: EventLog,
        orders: OrderService,
        delivery_log: DeliveryLog,
        clock: Clock,
        bus: Bus,
        concurrency: int = 16,
    ) -> None:
        self._bus = bus
        self._store = store
        self._event_log = event_log
        self._orders = orders
        self._delivery_log = delivery_log
        self._clock = clock
        self._concurrency = concurrency

    async def handle(self, deliveries: Sequence[Delivery]) -> list[NotifyOutcome]:
        events = await self._events(deliveries)
        keys = {(d.subscription_key, d.subscription_id) for d in deliveries}
        found = await asyncio.gather(*(self._store.get_by_key(key, sid) for key, sid in keys))
        subscriptions = dict(zip(keys, found, strict=True))
        gate = asyncio.Semaphore(self._concurrency)

        async def one(delivery: Delivery) -> tuple[Delivery, NotifyOutcome, Attempt] | None:
            subscription = subscriptions.get((delivery.subscription_key, delivery.subscription_id))
            if subscription is None or subscription.notification is None or subscription.status is not Status.ACTIVE:
                return None  # deleted (or no longer a notification subscription) since it matched
            row = events.get((delivery.resource, delivery.seq))
            if row is None or delivery.index >= len(row):
                log.warning("event removed by retention before notifying", extra={"subscription": subscription.id})
                return None
            async with gate:
                return delivery, *await self._notify(delivery, subscription, json.loads(row[delivery.index]))

        results = [r for r in await asyncio.gather(*(one(d) for d in deliveries)) if r is not None]
        deferred: dict[datetime, list[Delivery]] = defaultdict(list)
        for delivery, outcome, attempt in results:
            if outcome.retry_at is not None:
                deferred[outcome.retry_at].append(
                    delivery.retried(delivery.attempt, delivery.first_attempt_at or attempt.at)
                )
        if deferred:
            # Each deferral is a send of its own (a day limit defers to the same midnight again).
            deferred_at = self._clock.now()
            await self._bus.send(
                NOTIFY_QUEUE,
                [
                    delivery_message(batch, deliver_at=at, occasion=deferred_at)
                    for at, batch in sorted(deferred.items())
                ],
            )
        if results:
            await self._delivery_log.record([attempt for _, _, attempt in results])
        return [outcome for _, outcome, _ in results]

    async def _notify(
        self, delivery: Delivery, subscription: Subscription, event: dict[str, Any]
    ) -> tuple[NotifyOutcome, Attempt]:
        assert subscription.notification is not None
        started = time.monotonic()
        at = self._clock.now()
        event_id = str(event.get("id", ""))
        try:
            request = order_for_event(subscription.id, subscription.notification, event)
            resource = request.resource_id
            if resource is not None and await self._orders.resource_refusal(subscription.consumer, resource):
                request = replace(request, resource_id=None)  # the subscriber's own status stream instead
            order, created = await self._orders.create(subscription.consumer, request)
            outcome = NotifyOutcome(subscription.id, event_id, ORDERED, order.id, created)
        except LimitExceeded as error:
            log.info("event notification deferred", extra={"subscription": subscription.id, "event_id": event_id})
            retry_at = at + error.retry_after
            outcome = NotifyOutcome(subscription.id, event_id, DEFERRED, reason=str(error), retry_at=retry_at)
        except (NotNotifiable, OrderInvalid, OrderRefused) as error:
            log.warning(
                "event not notified",
                extra={"subscription": subscription.id, "event_id": event_id, "reason": str(error)},
            )
            outcome = NotifyOutcome(subscription.id, event_id, SKIPPED, reason=str(error)[:500])
        attempt = Attempt(
            subscription_id=subscription.id,
            delivery_id=delivery_id(subscription.id, delivery.resource, delivery.seq, delivery.index),
            event_id=event_id,
            attempt=delivery.attempt,
            at=at,
            status_code=None,
            latency_ms=int((time.monotonic() - started) * 1000),
            outcome=outcome.outcome,
            error=outcome.reason,
            response_excerpt=f"order {outcome.order_id}" if outcome.order_id else None,
        )
        return outcome, attempt

    async def _events(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, int], Sequence[bytes]]:
        wanted: dict[str, set[int]] = defaultdict(set)
        for delivery in deliveries:
            wanted[delivery.resource].add(delivery.seq)
        found: dict[tuple[str, int], Sequence[bytes]] = {}
        for resource, seqs in wanted.items():
            for row in await self._event_log.rows_by_seq(resource, sorted(seqs)):
                found[(resource, row.seq)] = row.events
        return found
