"""Starting orders: a due order becomes its notifications and their send batches.

Safe to run twice for one message: the start is claimed with the order's concurrency token and the
notifications are created with deterministic ids, so a replay finds what the first run stored.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from shared.messaging import Bus
from shared.notifications.messages import ORDERS_QUEUE, QUEUE_OF, SendBatch, StartOrder, start_message
from shared.notifications.model import Channel, Notification, Order, OrderStatus, SendingTimePolicy, Status
from shared.notifications.ports import ConditionChecker, Conflict, ContactRegistry, RecipientAuthorizer
from shared.notifications.recipients import resolve
from shared.notifications.records import OrderRecords, OrderUseCase
from shared.notifications.status import with_history
from shared.notifications.templates import MAX_SMS_SEGMENTS, render_sms, sms_length
from shared.notifications.timing import expiry, in_daytime, next_daytime

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d7a52-9f3e-4c55-9d55-6b0c1c7e2a10")


def notification_id(order_id: str, channel: Channel, key: str) -> str:
    """The same id for the same order, channel and address, so a replayed start creates nothing twice."""
    return str(uuid.uuid5(_NAMESPACE, f"{order_id}|{channel.value}|{key}"))


class OrderStarter(OrderUseCase):
    def __init__(
        self,
        records: OrderRecords,
        *,
        registry: ContactRegistry,
        authorizer: RecipientAuthorizer,
        conditions: ConditionChecker,
        bus: Bus,
    ) -> None:
        super().__init__(records)
        self.registry = registry
        self.authorizer = authorizer
        self.conditions = conditions
        self.bus = bus

    async def start(self, message: StartOrder) -> None:
        order = await self.orders.get(message.creator, message.order_id)
        if order is None:
            log.warning("start message for an unknown order", extra={"order_id": message.order_id})
            return
        now = self.clock.now()
        if order.status in (OrderStatus.CANCELLED, OrderStatus.SEND_CONDITION_NOT_MET, OrderStatus.PROCESSED):
            await self.orders.unschedule(order)
            return
        started = order.processing_started
        if order.status is OrderStatus.PROCESSING and started and now - started < self.config.processing_timeout:
            return  # another worker has it
        if order.requested_send_time > now + timedelta(seconds=1):
            # Early (a delay longer than the queue allows, or the timer raced): wait again.
            await self.bus.send(ORDERS_QUEUE, [start_message(order.creator, order.id, order.requested_send_time)])
            return
        if order.status is OrderStatus.REGISTERED and order.condition_endpoint:
            answer = await self.conditions.check(order.condition_endpoint)
            if answer is None and message.attempt == 0:
                at = now + self.config.condition_retry_delay
                await self.bus.send(ORDERS_QUEUE, [start_message(order.creator, order.id, at, 1, "condition")])
                return
            if answer is False:
                order.status, order.status_time = OrderStatus.SEND_CONDITION_NOT_MET, now
                try:
                    await self.orders.update(order)
                except Conflict:
                    return
                await self.orders.unschedule(order)
                return
            # True, or a second failure: fail open and send (Altinn's rule).
        order.status, order.status_time, order.processing_started = OrderStatus.PROCESSING, now, now
        try:
            order = await self.orders.update(order)
        except Conflict:
            return
        await self._generate(order, now)

    async def _generate(self, order: Order, now: datetime) -> None:
        targets, _ = await resolve(
            order.channel,
            order.recipients,
            ignore_reservation=order.ignore_reservation,
            resource_id=order.resource_id,
            registry=self.registry,
            authorizer=self.authorizer,
        )
        created: list[Notification] = []
        for target in targets:
            daytime = target.channel is Channel.SMS and order.policy_for(Channel.SMS) is SendingTimePolicy.DAYTIME
            if target.channel is Channel.EMAIL:
                daytime = order.policy_for(Channel.EMAIL) is SendingTimePolicy.DAYTIME
            status, description = target.status, target.description
            if target.channel is Channel.SMS and target.address and order.sms_template is not None:
                length = sms_length(render_sms(order.sms_template, target.name, target.organization_number))
                if length.segments > MAX_SMS_SEGMENTS:
                    status, description = Status.FAILED, f"the text needs {length.segments} segments"
            created.append(
                Notification(
                    id=notification_id(order.id, target.channel, target.address or target.recipient.label),
                    order_id=order.id,
                    channel=target.channel,
                    status=status,
                    status_time=now,
                    address=target.address,
                    recipient=target.recipient,
                    name=target.name,
                    organization_number=target.organization_number,
                    description=description,
                    expiry=expiry(max(now, order.requested_send_time), daytime, self.config),
                )
            )
        # A notification's history starts with the status it is created in.
        await self.notifications.insert([with_history(None, n) for n in created])
        stored = {n.id: n for n in await self.notifications.of_order(order.id)}
        failed_now = [stored[n.id] for n in created if n.id in stored and stored[n.id].status is not Status.NEW]
        # Created failed (reserved, no contact point): a crash before they are published leaves the order
        # Processing and scheduled, so the due timer starts it again and this publishes them again.
        await self.outbox.publish(order, failed_now)

        pending = [stored[n.id] for n in created if n.id in stored and stored[n.id].status is Status.NEW]
        for channel in Channel:
            ids = [n.id for n in pending if n.channel is channel]
            if not ids:
                continue
            at: datetime | None = None
            if order.policy_for(channel) is SendingTimePolicy.DAYTIME and not in_daytime(now, self.config):
                at = next_daytime(now, self.config)
            size = self.config.batch_size
            messages = [
                SendBatch(creator=order.creator, order_id=order.id, ids=ids[i : i + size]).message(channel, at)
                for i in range(0, len(ids), size)
            ]
            await self.bus.send(QUEUE_OF[channel], messages)
        if pending:
            first = min(n.expiry for n in pending if n.expiry is not None)
            await self.orders.watch_expiry(order.creator, order.id, first)
        order.status, order.status_time = OrderStatus.PROCESSED, self.clock.now()
        try:
            order = await self.orders.update(order)
        except Conflict:
            log.warning("order changed while processing", extra={"order_id": order.id})
        await self.orders.unschedule(order)

    async def enqueue_due(self, limit: int = 500) -> int:
        """Starts the orders whose send time has passed without a start (a lost or too-early message)."""
        now = self.clock.now()
        due = await self.orders.due(now - self.config.due_grace, limit)
        tag = f"due{int(now.timestamp()) // 60}"
        if due:
            await self.bus.send(ORDERS_QUEUE, [start_message(creator, oid, None, 0, tag) for creator, oid in due])
        return len(due)
