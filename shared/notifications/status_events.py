"""Status changes as CloudEvents in Herald's own hub, so senders can subscribe instead of polling.

A status change stores the status events it owes in the same transaction (an outbox entry), so an
event is never lost between the store write and the publish: ``StatusOutbox`` publishes them after the
change, and its sweep publishes what a crash left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from shared.clock import Clock
from shared.events.model import EventInvalid, EventTooLarge, ValidatedEvent, format_time, validate_event
from shared.events.publishing import EventPublisher
from shared.notifications.model import Notification, Order
from shared.notifications.ports import Announce, Changed, NotificationStore, OwedEvents, StatusChange, StatusEvents
from shared.notifications.status import event_type
from shared.telemetry import record_notification_status
from shared.urns import NOTIFICATIONS_URN

log = logging.getLogger(__name__)


def resource_of(order_resource: str | None, creator: str, default_resource: str) -> str:
    """The order's resourceId, else the sender's own default resource ``<default>:<creator>``."""
    if order_resource:
        return order_resource
    return f"{default_resource}:{quote(creator, safe=':@()+,-.=;$_!*~&')}"


def status_event(change: StatusChange, default_resource: str) -> dict[str, Any]:
    order, n = change.order, change.notification
    recipient: dict[str, Any] = dict(n.recipient.to_json())
    if n.address:
        recipient["address"] = n.address
    data: dict[str, Any] = {
        "orderId": order.id,
        "notificationId": n.id,
        "sendersReference": order.senders_reference,
        "channel": n.channel.value,
        "status": n.status.value,
        "statusTime": format_time(n.status_time),
        "recipient": recipient,
    }
    if n.description:
        data["description"] = n.description
    return {
        "specversion": "1.0",
        # One event per (notification, status): a re-publish after a retry is a duplicate, not a new event.
        "id": f"{n.id}:{n.status.value}",
        "source": NOTIFICATIONS_URN,
        "type": event_type(n.channel, n.status),
        "subject": order.id,
        "time": format_time(n.status_time),
        "resource": resource_of(order.resource_id, order.creator, default_resource),
        "datacontenttype": "application/json",
        "data": data,
    }


class HubStatusEvents:
    def __init__(self, publisher: EventPublisher, clock: Clock, default_resource: str) -> None:
        self._publisher = publisher
        self._clock = clock
        self._default_resource = default_resource

    def event(self, change: StatusChange) -> dict[str, Any]:
        return status_event(change, self._default_resource)

    async def publish(self, events: Sequence[dict[str, Any]]) -> None:
        if not events:
            return
        received = self._clock.now()
        valid: list[ValidatedEvent] = []
        for event in events:
            try:
                valid.append(validate_event(event, received_at=received))
            except (EventInvalid, EventTooLarge):
                log.exception("status event is not valid", extra={"event_id": event.get("id")})
        if valid:
            await self._publisher.publish(valid)


class StatusOutbox:
    """Publishes the status events that notification changes owe, and sweeps up what a crash left."""

    def __init__(
        self, notifications: NotificationStore, events: StatusEvents, clock: Clock, *, grace: timedelta
    ) -> None:
        self.notifications = notifications
        self.events = events
        self.clock = clock
        self.grace = grace  # how long a change's own process has to publish its events before the sweep does

    def announce(self, order: Order | None) -> Announce | None:
        """Asks the store to keep, with each change, the status events it owes (an outbox entry)."""
        if order is None:
            return None
        return Announce(lambda n: self.events.event(StatusChange(order, n)), self.clock.now())

    async def announced(self, changed: Changed) -> list[Notification]:
        """Publishes the status events a change owes, then clears their outbox entries. They are durable
        already: if publishing fails, or the process dies first, the outbox sweep publishes them."""
        for n in changed.moved:
            record_notification_status(n.channel.value, n.status.value)
        try:
            await self._publish_owed(changed.owed)
        except Exception:
            log.exception("status events not published; left to the outbox sweep")
        return changed.notifications

    async def publish(self, order: Order, notifications: Sequence[Notification]) -> None:
        """Publishes the status of notifications created with it (no outbox entry: see ``OrderStarter``)."""
        for n in notifications:
            record_notification_status(n.channel.value, n.status.value)
        await self.events.publish([self.events.event(StatusChange(order, n)) for n in notifications])

    async def _publish_owed(self, owed: Sequence[OwedEvents]) -> None:
        if owed:
            await self.events.publish([event for entry in owed for event in entry.events])
            await self.notifications.clear_owed(owed)

    async def publish_owed(self, limit: int = 500) -> int:
        """The outbox sweep's notification step: publishes the status events of changes stored more than
        the grace period ago and never cleared (their process died, or the hub failed). A re-published event is a
        duplicate in the hub, so one published just before the crash is not stored twice."""
        owed = await self.notifications.owed(self.clock.now() - self.grace, limit)
        await self._publish_owed(owed)
        return len(owed)
