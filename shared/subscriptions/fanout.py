"""Fan-out: every event of an inbound message is matched against the subscription index, and the
(event, subscription) pairs leave in outbound messages of up to ``MAX_DELIVERIES_PER_MESSAGE`` deliveries each.

Idempotent: before sending, the deliveries already handed over for this inbound message are read
from its fan-out markers (kept beside the log rows), and each outbound message is marked once
sent. A redelivered inbound message therefore sends only what was not sent, even if a
subscription was created or deleted in between. Markers are written after the send, so a crash
can only cause a duplicate push, never a lost one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.events.dispatch import InboundMessage
from shared.events.log import LogRow
from shared.messaging import Bus
from shared.subscriptions.delivery import Delivery
from shared.subscriptions.messages import (
    MAX_DELIVERIES_PER_MESSAGE,
    NOTIFY_QUEUE,
    OUTBOUND_QUEUE,
    delivery_message,
)
from shared.subscriptions.model import index_keys_for_event
from shared.subscriptions.ports import SubscriptionStore

log = logging.getLogger(__name__)


class FanoutMarks(Protocol):
    async def fanout_marks(self, resource: str, seq: int) -> set[str]: ...

    async def add_fanout_mark(self, resource: str, seq: int, chunk: str, members: Sequence[str]) -> None: ...


class InboundRows(Protocol):
    """The committed log rows an inbound message points at (the event log's inbound stage)."""

    async def load(self, message: InboundMessage) -> list[LogRow]: ...


@dataclass(frozen=True)
class FannedOut:
    rows: int  # log rows the inbound message still found (retention may have removed some)
    deliveries: int  # deliveries sent now


class Fanout:
    def __init__(self, store: SubscriptionStore, marks: FanoutMarks, bus: Bus, *, rows: InboundRows) -> None:
        self._store = store
        self._marks = marks
        self._bus = bus
        self._rows = rows

    async def handle(self, message: InboundMessage, trace: dict[str, str] | None = None) -> FannedOut:
        """One inbound message: its rows loaded, matched and sent on."""
        rows = await self._rows.load(message)
        return FannedOut(len(rows), await self.fan_out(message.resource, rows, trace))

    async def match(self, resource: str, rows: Sequence[LogRow]) -> list[Delivery]:
        events: list[tuple[int, int, dict[str, Any]]] = [
            (row.seq, index, json.loads(body)) for row in rows for index, body in enumerate(row.events)
        ]
        keys = sorted({key for _, _, attributes in events for key in index_keys_for_event(attributes)})
        if not keys:
            return []
        partitions = await self._store.matching(keys)
        deliveries: list[Delivery] = []
        for seq, index, attributes in events:
            seen: set[str] = set()
            for key in index_keys_for_event(attributes):
                for subscription in partitions.get(key, ()):
                    if subscription.id not in seen and subscription.filters.matches(attributes):
                        seen.add(subscription.id)
                        notify = subscription.notification is not None
                        deliveries.append(
                            Delivery(subscription.index_key, subscription.id, resource, seq, index, notify=notify)
                        )
        return deliveries

    async def fan_out(self, resource: str, rows: Sequence[LogRow], trace: dict[str, str] | None = None) -> int:
        """Send the outbound messages for these rows; returns the number of deliveries sent now."""
        if not rows:
            return 0
        deliveries = await self.match(resource, rows)
        if not deliveries:
            return 0
        first_seq = min(row.seq for row in rows)
        already = await self._marks.fanout_marks(resource, first_seq)
        pending = [d for d in deliveries if d.member not in already]
        if len(pending) < len(deliveries):
            log.info(
                "inbound message seen before: skipping deliveries already sent",
                extra={"resource": resource, "skipped": len(deliveries) - len(pending)},
            )
        # Notification subscriptions' deliveries go to their own queue; the webhook worker never sees them.
        for queue, group in (
            (OUTBOUND_QUEUE, [d for d in pending if not d.notify]),
            (NOTIFY_QUEUE, [d for d in pending if d.notify]),
        ):
            for start in range(0, len(group), MAX_DELIVERIES_PER_MESSAGE):
                chunk = group[start : start + MAX_DELIVERIES_PER_MESSAGE]
                members = [d.member for d in chunk]
                await self._bus.send(queue, [delivery_message(chunk, trace=trace)])
                chunk_id = hashlib.sha256(",".join(members).encode()).hexdigest()[:16]
                await self._marks.add_fanout_mark(resource, first_seq, chunk_id, members)
        return len(pending)
