"""Sending a batch of notifications through their channel's gateway.

Safe to run twice for one message: a batch only claims notifications whose attempt counter matches
the message's, and a claim is a lease another run takes over only once it is over.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

from shared.messaging import Bus
from shared.notifications.messages import QUEUE_OF, SendBatch
from shared.notifications.model import Channel, Notification, Order, SendingTimePolicy, Status
from shared.notifications.ports import EmailMessage, EmailSender, SendPause, SendResult, SmsMessage, SmsSender
from shared.notifications.records import OrderRecords, OrderUseCase
from shared.notifications.status import moved, recorded
from shared.notifications.templates import render_email, render_sms
from shared.notifications.timing import in_daytime, next_daytime

log = logging.getLogger(__name__)

SEND_CONCURRENCY = 8
# How long a claimed notification belongs to the run that claimed it (provider timeouts are far shorter).
SEND_LEASE = timedelta(minutes=2)


class BatchSender(OrderUseCase):
    def __init__(
        self, records: OrderRecords, *, email: EmailSender, sms: SmsSender, pause: SendPause, bus: Bus
    ) -> None:
        super().__init__(records)
        self.email = email
        self.sms = sms
        self.pause = pause
        self.bus = bus

    async def send(self, channel: Channel, batch: SendBatch) -> None:
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

        claimed = await self.outbox.announced(
            await self.notifications.change(order.id, batch.ids, recorded(claim), announce=self.outbox.announce(order))
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

            await self.outbox.announced(
                await self.notifications.change(
                    order.id, list(final), recorded(settle), known=claimed, announce=self.outbox.announce(order)
                )
            )
        if failed:
            # Counted apart from claims, so 429 pauses never use up a notification's retries.
            def count(n: Notification) -> Notification | None:
                return replace(n, failures=failed[n.id]) if n.failures < failed[n.id] else None

            await self.notifications.change(order.id, list(failed), recorded(count), known=claimed)
        if retries:
            attempt = claimed[0].attempt
            await self.bus.send(
                queue,
                [
                    SendBatch(creator=order.creator, order_id=order.id, ids=ids, attempt=attempt).message(channel, at)
                    for at, ids in retries.items()
                ],
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
