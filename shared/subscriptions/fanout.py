"""Fan-out: every event of an inbound message is matched against the subscription index, and the
(event, subscription) pairs leave in outbound messages of up to ``MAX_DELIVERIES_PER_MESSAGE`` deliveries each.

Idempotent: before sending, the deliveries already handed over for this inbound message are read
from its fan-out markers (kept beside the log rows), and each outbound message is marked once
sent. A redelivered inbound message therefore sends only what was not sent, even if a
subscription was created or deleted in between. Markers are written after the send, so a crash
can only cause a duplicate push, never a lost one.

Deliveries of ``ordering: subject`` subscriptions are appended to their lanes instead of sent, and the
lanes are kicked once the message's last marker (which says its fan-out is complete) is written; see
shared/subscriptions/ordering.py.
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
from shared.subscriptions.model import Ordering, Subscription, index_key, index_keys_for_event, parent_index_key
from shared.subscriptions.ordering import OrderedLanes, lane_key, lane_of
from shared.subscriptions.ports import SubscriptionStore
from shared.subscriptions.subunits import MainUnits, event_matches, main_unit_of, main_units_of

log = logging.getLogger(__name__)

_COMPLETE = "t"  # the marker of a message that sent nothing here (after the chunks' hex ids)


class FanoutMarks(Protocol):
    async def fanout_marks(self, resource: str, seq: int) -> set[str]: ...

    async def add_fanout_mark(
        self, resource: str, seq: int, chunk: str, members: Sequence[str], *, through: int | None = None
    ) -> None:
        """``through``: on the message's last marker, its last row: the fan-out is complete (ordered lanes)."""
        ...


class InboundRows(Protocol):
    """The committed log rows an inbound message points at (the event log's inbound stage)."""

    async def load(self, message: InboundMessage) -> list[LogRow]: ...


@dataclass(frozen=True)
class FannedOut:
    rows: int  # log rows the inbound message still found (retention may have removed some)
    deliveries: int  # deliveries sent now


class Fanout:
    def __init__(
        self,
        store: SubscriptionStore,
        marks: FanoutMarks,
        bus: Bus,
        *,
        rows: InboundRows,
        main_units: MainUnits | None = None,
        lanes: OrderedLanes | None = None,
    ) -> None:
        """``main_units``: where an organisation's main unit is looked up (``includeSubunits``); None: nowhere.
        ``lanes``: where deliveries of ``ordering: subject`` subscriptions wait their turn; None: pushed at once."""
        self._lanes = lanes
        self._store = store
        self._marks = marks
        self._bus = bus
        self._rows = rows
        self._main_units = main_units

    async def handle(self, message: InboundMessage, trace: dict[str, str] | None = None) -> FannedOut:
        """One inbound message: its rows loaded, matched and sent on."""
        rows = await self._rows.load(message)
        return FannedOut(len(rows), await self.fan_out(message.resource, rows, trace))

    async def match(self, resource: str, rows: Sequence[LogRow]) -> list[Delivery]:
        return (await self._match(resource, rows))[0]

    async def _match(self, resource: str, rows: Sequence[LogRow]) -> tuple[list[Delivery], bool]:
        """The deliveries, and whether the resource has ordered subscriptions (its lanes need to hear that
        this message's fan-out completed, even when it matched nothing)."""
        events: list[tuple[int, int, dict[str, Any]]] = [
            (row.seq, index, json.loads(body)) for row in rows for index, body in enumerate(row.events)
        ]
        keys = sorted({key for _, _, attributes in events for key in index_keys_for_event(attributes)})
        if not keys:
            return [], False
        partitions: dict[str, list[Subscription]] = {}
        read = await self._store.matching(keys)
        partitions.update(read)
        # An event about a subunit also reads its main unit's partition (subscriptions with includeSubunits).
        # The registry is asked only for resources that have such subscriptions (the index marks them), so
        # its outage or slowness holds back no other resource's fan-out.
        with_subunits = [a for _, _, a in events if index_key(a["resource"], "*", "") in read.subunits]
        parents = await main_units_of(self._main_units, with_subunits) if with_subunits else {}
        parent_keys = {
            parent_index_key(attributes["resource"], parent)
            for attributes in with_subunits
            if (parent := parents.get(attributes.get("subject") or "")) is not None
        } - set(keys)
        if parent_keys:
            partitions.update(await self._store.matching(sorted(parent_keys)))
        ordered_seen = self._lanes is not None and any(
            s.ordering is Ordering.SUBJECT and s.notification is None for found in partitions.values() for s in found
        )
        # A resource with ordered subscriptions marks every message complete, so that its lanes' readiness
        # checks read markers, never the rows of messages that held nothing for them.
        ordered_resource = self._lanes is not None and (ordered_seen or index_key(resource, "*", "") in read.ordered)
        deliveries: list[Delivery] = []
        for seq, index, attributes in events:
            seen: set[str] = set()
            parent = main_unit_of(attributes, parents)
            event_keys = index_keys_for_event(attributes)
            if parent is not None:
                event_keys.append(parent_index_key(attributes["resource"], parent))
            for key in event_keys:
                for subscription in partitions.get(key, ()):
                    if subscription.id not in seen and event_matches(subscription.filters, attributes, parents):
                        seen.add(subscription.id)
                        notify = subscription.notification is not None
                        ordered = ordered_seen and not notify and subscription.ordering is Ordering.SUBJECT
                        deliveries.append(
                            Delivery(
                                subscription.index_key,
                                subscription.id,
                                resource,
                                seq,
                                index,
                                notify=notify,
                                lane=lane_of(attributes.get("subject")) if ordered else None,
                            )
                        )
        return deliveries, ordered_resource

    async def fan_out(self, resource: str, rows: Sequence[LogRow], trace: dict[str, str] | None = None) -> int:
        """Send the outbound messages for these rows; returns the number of deliveries sent now."""
        if not rows:
            return 0
        deliveries, ordered_resource = await self._match(resource, rows)
        first_seq = min(row.seq for row in rows)
        last_seq = max(row.seq for row in rows)
        if not deliveries:
            if ordered_resource:  # ordered lanes of the resource hear that these rows hold nothing for them
                await self._marks.add_fanout_mark(resource, first_seq, _COMPLETE, [], through=last_seq)
            return 0
        already = await self._marks.fanout_marks(resource, first_seq)
        pending = [d for d in deliveries if d.member not in already]
        if len(pending) < len(deliveries):
            log.info(
                "inbound message seen before: skipping deliveries already sent",
                extra={"resource": resource, "skipped": len(deliveries) - len(pending)},
            )
        # Notification subscriptions' deliveries go to their own queue; the webhook worker never sees them.
        # Ordered ones wait in their lanes (queue None). The last marker says the fan-out is complete.
        chunks = [
            (queue, group[start : start + MAX_DELIVERIES_PER_MESSAGE])
            for queue, group in (
                (None, [d for d in pending if d.lane is not None]),
                (OUTBOUND_QUEUE, [d for d in pending if not d.notify and d.lane is None]),
                (NOTIFY_QUEUE, [d for d in pending if d.notify]),
            )
            for start in range(0, len(group), MAX_DELIVERIES_PER_MESSAGE)
        ]
        for number, (queue, chunk) in enumerate(chunks, 1):
            members = [d.member for d in chunk]
            if queue is None:
                assert self._lanes is not None
                await self._lanes.append(chunk)
            else:
                await self._bus.send(queue, [delivery_message(chunk, trace=trace)])
            chunk_id = hashlib.sha256(",".join(members).encode()).hexdigest()[:16]
            complete = last_seq if number == len(chunks) else None
            await self._marks.add_fanout_mark(resource, first_seq, chunk_id, members, through=complete)
        ordered = {lane_key(d) for d in deliveries if d.lane is not None}
        if not chunks and (ordered or ordered_resource):  # seen before: its lanes may not have heard it completed
            await self._marks.add_fanout_mark(resource, first_seq, _COMPLETE, [], through=last_seq)
        if ordered:
            assert self._lanes is not None
            # After the last marker, so the lanes see these rows accounted for (a redelivered message
            # kicks again: it may follow a crash between marker and kick).
            await self._lanes.kick(ordered, trace)
        return len(pending)
