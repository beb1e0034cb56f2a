"""Status changes as CloudEvents in Herald's own hub, so senders can subscribe instead of polling."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from shared.events.model import EventInvalid, EventTooLarge, ValidatedEvent, format_time, validate_event
from shared.events.publishing import EventPublisher
from shared.notifications.ports import Clock, StatusChange
from shared.notifications.status import event_type

log = logging.getLogger(__name__)

SOURCE = "urn:herald:notifications"


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
        "source": SOURCE,
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
