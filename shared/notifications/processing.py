"""Processing: start due orders, send notification batches, apply delivery reports, expire.

Every handler is safe to run twice for one message: order starts are claimed with a
concurrency token, notifications are created with deterministic ids, a send batch only claims
notifications whose attempt counter matches the message's, and status only moves forward. A status
change stores the status events it owes in the same transaction (an outbox entry), so an event is
never lost between the store write and the publish: the outbox sweep publishes what a crash left.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.messaging import Bus, OutgoingMessage
from shared.notifications.config import NotificationConfig
from shared.notifications.model import Channel, Notification, Order, OrderStatus, SendingTimePolicy, Status
from shared.notifications.orders import EMAIL_QUEUE, ORDERS_QUEUE, SMS_QUEUE, StartOrder, start_message
from shared.notifications.ports import (
    Announce,
    Changed,
    Clock,
    ConditionChecker,
    Conflict,
    ContactRegistry,
    DeadReportStore,
    EmailMessage,
    EmailSender,
    NotificationStore,
    OrderStore,
    OwedEvents,
    RecipientAuthorizer,
    SendPause,
    SendResult,
    SmsMessage,
    SmsSender,
    StatusChange,
    StatusEvents,
)
from shared.notifications.recipients import resolve
from shared.notifications.status import can_move, is_final
from shared.notifications.templates import MAX_SMS_SEGMENTS, render_email, render_sms, sms_length
from shared.notifications.timing import expiry, in_daytime, next_daytime
from shared.telemetry import record_notification_status

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d7a52-9f3e-4c55-9d55-6b0c1c7e2a10")
SEND_CONCURRENCY = 8
QUEUE_OF = {Channel.EMAIL: EMAIL_QUEUE, Channel.SMS: SMS_QUEUE}


@dataclass(frozen=True)
class SendBatch:
    """Body of a notifications-email / notifications-sms message: up to ``batch_size`` notifications."""

    creator: str
    order_id: str
    ids: list[str]
    attempt: int = 0

    def encode(self) -> bytes:
        document = {"creator": self.creator, "orderId": self.order_id, "ids": self.ids, "attempt": self.attempt}
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes) -> SendBatch:
        data = json.loads(body)
        return cls(data["creator"], data["orderId"], list(data["ids"]), int(data.get("attempt", 0)))

    def message(self, channel: Channel, at: datetime | None, tag: str = "") -> OutgoingMessage:
        digest = hashlib.sha256("|".join(self.ids).encode()).hexdigest()[:16]
        return OutgoingMessage(
            body=self.encode(),
            message_id=f"{self.order_id}:{channel.value}:{digest}:{self.attempt}{tag}",
            correlation_id=self.order_id,
            deliver_at=at,
        )


class ReportNotMatched(Exception):
    """A delivery report names a reference Herald has not stored yet: retry it (bounded)."""


# How long a claimed notification belongs to the run that claimed it (provider timeouts are far shorter).
SEND_LEASE = timedelta(minutes=2)


def notification_id(order_id: str, channel: Channel, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{order_id}|{channel.value}|{key}"))


def moved(notification: Notification, status: Status, now: datetime, **fields: object) -> Notification | None:
    """The notification with its new status, or None if the state machine refuses the step."""
    if not can_move(notification.channel, notification.status, status):
        return None
    return replace(notification, status=status, status_time=now, **fields)  # type: ignore[arg-type]


class Processor:
    def __init__(
        self,
        *,
        orders: OrderStore,
        notifications: NotificationStore,
        registry: ContactRegistry,
        authorizer: RecipientAuthorizer,
        bus: Bus,
        clock: Clock,
        config: NotificationConfig,
        email: EmailSender,
        sms: SmsSender,
        conditions: ConditionChecker,
        pause: SendPause,
        dead_reports: DeadReportStore,
        events: StatusEvents,
    ) -> None:
        self.orders = orders
        self.notifications = notifications
        self.registry = registry
        self.authorizer = authorizer
        self.bus = bus
        self.clock = clock
        self.config = config
        self.email = email
        self.sms = sms
        self.conditions = conditions
        self.pause = pause
        self.dead_reports = dead_reports
        self.events = events
        # Orders named by recent delivery reports (see _order_for_report).
        self._report_orders: OrderedDict[tuple[str, str], Order] = OrderedDict()

    # ------------------------------------------------------------------------------ order start

    async def start_order(self, body: bytes) -> None:
        message = StartOrder.decode(body)
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
        await self.notifications.insert(created)
        stored = {n.id: n for n in await self.notifications.of_order(order.id)}
        failed_now = [stored[n.id] for n in created if n.id in stored and stored[n.id].status is not Status.NEW]
        # Created failed (reserved, no contact point): a crash before they are published leaves the order
        # Processing and scheduled, so the due timer starts it again and this publishes them again.
        for n in failed_now:
            record_notification_status(n.channel.value, n.status.value)
        await self.events.publish([self.events.event(StatusChange(order, n)) for n in failed_now])

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
                SendBatch(order.creator, order.id, ids[i : i + size]).message(channel, at)
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

    # ------------------------------------------------------------------------------------ sending

    async def send_batch(self, channel: Channel, body: bytes) -> None:
        batch = SendBatch.decode(body)
        order = await self.orders.get(batch.creator, batch.order_id, recipients=False)
        if order is None:
            log.warning("send batch for an unknown order", extra={"order_id": batch.order_id})
            return
        now = self.clock.now()
        queue = QUEUE_OF[channel]
        if order.policy_for(channel) is SendingTimePolicy.DAYTIME and not in_daytime(now, self.config):
            await self.bus.send(queue, [batch.message(channel, next_daytime(now, self.config), ":daytime")])
            return
        paused = await self.pause.paused_until(channel)
        if paused is not None and paused > now:
            await self.bus.send(queue, [batch.message(channel, paused, f":pause{int(paused.timestamp())}")])
            return

        leased: list[Notification] = []

        def claim(n: Notification) -> Notification | None:
            """A claim is a lease: a run that claimed a notification and died before settling it
            leaves it Sending with no reference; once the lease is over, the redelivered message
            takes it over (at least once; ACS deduplicates a repeated operation id)."""
            if n.status is Status.NEW and n.attempt == batch.attempt:
                return replace(n, status=Status.SENDING, status_time=now, attempt=n.attempt + 1)
            if n.status is not Status.SENDING:
                return None
            if n.attempt == batch.attempt:  # a retry of a transient failure
                return replace(n, status_time=now, attempt=n.attempt + 1)
            if n.attempt == batch.attempt + 1 and n.reference is None:
                if now - n.status_time >= SEND_LEASE:
                    return replace(n, status_time=now)
                leased.append(n)
            return None

        claimed = await self._announced(
            await self.notifications.change(order.id, batch.ids, claim, announce=self._announce(order))
        )
        if leased:
            # Claimed by a run that may still be sending: look again when its lease is over.
            due = max(n.status_time for n in leased) + SEND_LEASE
            await self.bus.send(queue, [batch.message(channel, due, f":lease{int(due.timestamp())}")])
        if not claimed:
            return

        throttled: list[datetime] = []
        slots = asyncio.Semaphore(SEND_CONCURRENCY)

        async def send_one(n: Notification) -> SendResult | None:
            async with slots:
                if throttled:
                    return None  # not sent: waits for the pause
                try:
                    result = await self._send(channel, order, n)
                except Exception as error:  # an adapter bug or an unexpected transport error
                    log.exception("send failed unexpectedly", extra={"notification_id": n.id})
                    result = SendResult.transient(f"{type(error).__name__}: {error}")
                if result.outcome == "throttled":
                    throttled.append(self.clock.now() + (result.retry_after or self.config.default_retry_after))
                elif result.outcome == "accepted" and result.reference:
                    # Indexed at once, not after the whole batch: the provider's report can follow within
                    # seconds, and one that finds the notification not yet settled is retried, not parked.
                    await self.notifications.index_reference(channel, result.reference, order.creator, order.id, n.id)
                return result

        results = await asyncio.gather(*(send_one(n) for n in claimed))
        pause_until = max(throttled) if throttled else None
        if pause_until is not None:
            await self.pause.pause(channel, pause_until)

        now = self.clock.now()
        final: dict[str, tuple[Status, dict[str, object]]] = {}
        retries: dict[datetime, list[str]] = defaultdict(list)
        failed: dict[str, int] = {}
        for n, result in zip(claimed, results, strict=True):
            if result is None or result.outcome == "throttled":
                if n.attempt >= self.config.max_throttled_attempts:
                    final[n.id] = (Status.FAILED, {"description": "throttled too often"})
                else:
                    retries[pause_until or now + self.config.default_retry_after].append(n.id)
            elif result.outcome == "accepted":
                status = Status.SUCCEEDED if channel is Channel.EMAIL else Status.ACCEPTED
                final[n.id] = (status, {"reference": result.reference, "description": None})
            elif result.outcome == "failed":
                final[n.id] = (result.status or Status.FAILED, {"description": result.description})
            else:  # transient
                delays = self.config.retry_delays
                failures = n.failures + 1
                if failures > len(delays):
                    final[n.id] = (
                        Status.FAILED,
                        {"description": f"gave up after {failures} failed sends: {result.description}"},
                    )
                else:
                    delay = max(delays[failures - 1], result.retry_after or timedelta(0))
                    retries[now + delay].append(n.id)
                    failed[n.id] = failures

        if final:

            def settle(n: Notification) -> Notification | None:
                status, fields = final[n.id]
                return moved(n, status, now, **fields)

            await self._announced(
                await self.notifications.change(
                    order.id, list(final), settle, known=claimed, announce=self._announce(order)
                )
            )
        if failed:
            # Counted apart from claims, so 429 pauses never use up a notification's retries.
            def count(n: Notification) -> Notification | None:
                return replace(n, failures=failed[n.id]) if n.failures < failed[n.id] else None

            await self.notifications.change(order.id, list(failed), count, known=claimed)
        if retries:
            attempt = claimed[0].attempt
            await self.bus.send(
                queue,
                [SendBatch(order.creator, order.id, ids, attempt).message(channel, at) for at, ids in retries.items()],
            )

    async def _send(self, channel: Channel, order: Order, n: Notification) -> SendResult:
        assert n.address is not None
        if channel is Channel.EMAIL:
            assert order.email_template is not None
            email = render_email(order.email_template, n.name, n.organization_number)
            return await self.email.send(
                EmailMessage(
                    notification_id=n.id,
                    sender=order.email_template.from_address or self.config.email_sender,
                    to=n.address,
                    subject=email.subject,
                    body=email.body,
                    content_type=email.content_type,
                    orderer=order.creator,
                )
            )
        assert order.sms_template is not None
        return await self.sms.send(
            SmsMessage(
                notification_id=n.id,
                sender=order.sms_template.sender_number or self.config.sms_sender,
                to=n.address,
                body=render_sms(order.sms_template, n.name, n.organization_number),
                orderer=order.creator,
            )
        )

    # ---------------------------------------------------------------------------- delivery reports

    async def apply_report(
        self, channel: Channel, reference: str, status: Status, payload: str, description: str | None = None
    ) -> str:
        """Applies one delivery report: ``applied``, ``unchanged`` or ``parked``; raises ReportNotMatched."""
        found = await self.notifications.find_reference(channel, reference)
        now = self.clock.now()
        if found is None:
            attempt = await self.dead_reports.record_attempt(
                channel,
                reference,
                payload,
                now,
                max_attempts=self.config.report_max_attempts,
                window=self.config.report_window,
            )
            if attempt.parked:
                log.warning("delivery report parked", extra={"reference": reference, "attempts": attempt.attempts})
                return "parked"
            raise ReportNotMatched(f"no {channel.value} notification with reference {reference} (yet)")
        creator, order_id, nid = found
        order = await self._order_for_report(creator, order_id)
        sending: list[Notification] = []

        def apply(n: Notification) -> Notification | None:
            if n.status is Status.SENDING:
                sending.append(n)  # sent, but its batch has not recorded the send result yet
                return None
            return moved(n, status, now, description=description)

        changed = await self._announced(
            await self.notifications.change(order_id, [nid], apply, announce=self._announce(order))
        )
        if sending:
            raise ReportNotMatched(
                f"{channel.value} notification {nid} is still being sent; report {reference} is early"
            )
        return "applied" if changed else "unchanged"

    # --------------------------------------------------------------------------------- status events

    def _announce(self, order: Order | None) -> Announce | None:
        """Asks the store to keep, with each change, the status events it owes (an outbox entry)."""
        if order is None:
            return None
        return Announce(lambda n: self.events.event(StatusChange(order, n)), self.clock.now())

    async def _announced(self, changed: Changed) -> list[Notification]:
        """Publishes the status events a change owes, then clears their outbox entries. They are durable
        already: if publishing fails, or the process dies first, the outbox sweep publishes them."""
        for n in changed.moved:
            record_notification_status(n.channel.value, n.status.value)
        try:
            await self._publish_owed(changed.owed)
        except Exception:
            log.exception("status events not published; left to the outbox sweep")
        return changed.notifications

    async def _publish_owed(self, owed: Sequence[OwedEvents]) -> None:
        if owed:
            await self.events.publish([event for entry in owed for event in entry.events])
            await self.notifications.clear_owed(owed)

    async def publish_owed(self, grace: timedelta, limit: int = 500) -> int:
        """The outbox sweep's notification step: publishes the status events of changes stored more than
        ``grace`` ago and never cleared (their process died, or the hub failed). A re-published event is a
        duplicate in the hub, so one published just before the crash is not stored twice."""
        owed = await self.notifications.owed(self.clock.now() - grace, limit)
        await self._publish_owed(owed)
        return len(owed)

    async def _order_for_report(self, creator: str, order_id: str) -> Order | None:
        """The order a report's status event names. An order's reports arrive together and the fields the
        event takes from it (id, creator, sendersReference, resourceId) never change, so recent orders are
        kept: reading (and decoding every recipient of) a 10,000-recipient order once per report made
        applying an order's reports quadratic in its size."""
        key = (creator, order_id)
        order = self._report_orders.get(key)
        if order is not None:
            self._report_orders.move_to_end(key)
            return order
        order = await self.orders.get(creator, order_id, recipients=False)
        if order is not None:
            self._report_orders[key] = order
            while len(self._report_orders) > 32:
                self._report_orders.popitem(last=False)
        return order

    # ------------------------------------------------------------------------------------- timers

    async def enqueue_due(self, limit: int = 500) -> int:
        now = self.clock.now()
        due = await self.orders.due(now - self.config.due_grace, limit)
        tag = f"due{int(now.timestamp()) // 60}"
        if due:
            await self.bus.send(ORDERS_QUEUE, [start_message(creator, oid, None, 0, tag) for creator, oid in due])
        return len(due)

    async def expire(self, limit: int = 100) -> int:
        """Failed_TTL for notifications still not final after their expiry time."""
        now = self.clock.now()
        expired = 0
        for creator, order_id, at in await self.orders.expiring(now, limit):
            order = await self.orders.get(creator, order_id, recipients=False)
            notifications = await self.notifications.of_order(order_id)
            due = [n.id for n in notifications if not n.final and n.expiry is not None and n.expiry <= now]
            if due:
                changed = await self.notifications.change(
                    order_id,
                    due,
                    lambda n: moved(n, Status.FAILED_TTL, now, description="no final status in time"),
                    announce=self._announce(order),
                )
                expired += len(await self._announced(changed))
            later = [n.expiry for n in notifications if not n.final and n.expiry is not None and n.expiry > now]
            if later:
                await self.orders.watch_expiry(creator, order_id, min(later))
            await self.orders.unwatch_expiry(creator, order_id, at)
        return expired


def final_statuses(notifications: Sequence[Notification]) -> bool:
    return all(is_final(n.channel, n.status) for n in notifications)
