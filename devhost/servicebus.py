"""Service Bus queue triggers over Azurite storage queues, with Service Bus peek-lock semantics.

A receive hides the message for the lock duration (the "lock"); the lock is renewed while a slow
handler runs; success completes (deletes) it; failure abandons it (visible again after a short
back-off, delivery count + 1); the last allowed failure, or a message that comes back with too
many deliveries, moves it to ``<queue>-deadletter`` with the Service Bus dead-letter properties.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devhost.functions_index import FunctionSpec
from devhost.invocation import Invoker, short_error
from shared.adapters.storage_queue_bus import (
    MAX_DELAY_SECONDS,
    Envelope,
    dead_letter_queue_name,
    decode_envelope,
    encode_envelope,
)
from shared.messaging import OutgoingMessage

log = logging.getLogger("devhost")

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
INVALID_ENVELOPE = "InvalidEnvelope"
# Storage queues return at most 32 messages per receive.
MAX_BATCH = 32
_sequence = itertools.count(1)


@dataclass(frozen=True)
class ListenerOptions:
    """Per-queue delivery settings (Service Bus defaults: 60 s lock, 10 deliveries)."""

    lock_seconds: int = 60
    max_delivery_count: int = 10
    concurrency: int = 16
    abandon_backoff_seconds: int = 1
    max_idle_wait: float = 0.5


async def ensure_queues(service: QueueServiceClient, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(ResourceExistsError):
            await service.create_queue(name)


class _Lock:
    """The current pop receipt of a received message; renewing replaces it."""

    def __init__(self, message: QueueMessage, lock_seconds: int) -> None:
        self.message_id: str = message.id
        self.pop_receipt: str = message.pop_receipt or ""
        self.locked_until = datetime.now(UTC) + timedelta(seconds=lock_seconds)
        self.token = str(uuid.uuid4())
        self.lost = False


class ServiceBusListener:
    """Polls one queue and runs its function with up to ``concurrency`` handlers in flight."""

    def __init__(
        self,
        spec: FunctionSpec,
        service: QueueServiceClient,
        invoker: Invoker,
        options: ListenerOptions,
    ) -> None:
        if spec.queue_name is None:
            raise ValueError(f"{spec.name} has no queue")
        self.spec = spec
        self.queue_name: str = spec.queue_name
        self._options = options
        self._invoker = invoker
        self._queue: QueueClient = service.get_queue_client(self.queue_name)
        self._dead_letter: QueueClient = service.get_queue_client(dead_letter_queue_name(self.queue_name))
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._poller = asyncio.create_task(self._poll(), name=f"devhost-sb-{self.queue_name}")

    async def stop(self, grace_seconds: float) -> None:
        """Stop receiving, then give in-flight handlers ``grace_seconds`` before cancelling them."""
        self._stopping.set()
        if self._poller is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "devhost: %d handler(s) on %s still running at shutdown; their locks will expire",
                    len(pending),
                    self.queue_name,
                )
                await asyncio.wait(pending, timeout=1)
        await self._queue.close()
        await self._dead_letter.close()

    async def _poll(self) -> None:
        idle_wait = 0.0
        while not self._stopping.is_set():
            while len(self._in_flight) >= self._options.concurrency and not self._stopping.is_set():
                await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
            if self._stopping.is_set():
                return
            wanted = (
                MAX_BATCH
                if self.spec.cardinality_many
                else min(MAX_BATCH, self._options.concurrency - len(self._in_flight))
            )
            try:
                messages = await self._receive(wanted)
            except AzureError as exc:
                log.warning("devhost: receiving from %s failed (%s); retrying", self.queue_name, short_error(exc))
                messages = []
                idle_wait = self._options.max_idle_wait
            if messages:
                idle_wait = 0.0
                if self.spec.cardinality_many:
                    self._spawn(self._handle_batch(messages))
                else:
                    for message in messages:
                        self._spawn(self._handle_batch([message]))
                continue
            # Empty queue: back off from 50 ms up to max_idle_wait, so latency stays low when busy.
            idle_wait = min(self._options.max_idle_wait, idle_wait * 2 if idle_wait else 0.05)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=idle_wait)

    async def _receive(self, count: int) -> list[QueueMessage]:
        pages = self._queue.receive_messages(
            messages_per_page=count, visibility_timeout=self._options.lock_seconds
        ).by_page()
        async for page in pages:
            return [message async for message in page]
        return []

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(self._guarded(coroutine))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _guarded(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """A devhost failure around one delivery is logged; the message lock then simply expires."""
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("devhost: delivery on %s failed inside devhost", self.queue_name)

    async def _handle_batch(self, received: list[QueueMessage]) -> None:
        """Screen each message, invoke once (a batch for cardinality many), then settle every lock."""
        ready: list[tuple[QueueMessage, Envelope, _Lock]] = []
        for message in received:
            envelope = await self._screen(message)
            if envelope is not None:
                ready.append((message, envelope, _Lock(message, self._options.lock_seconds)))
        if not ready:
            return
        sb_messages = [self._to_trigger_message(m, e, lock) for m, e, lock in ready]
        value: Any = sb_messages if self.spec.cardinality_many else sb_messages[0]
        fields: dict[str, object] = {"queue": self.queue_name}
        if self.spec.cardinality_many:
            fields["messages"] = len(sb_messages)
        fields["delivery_count"] = max(m.dequeue_count or 1 for m, _, _ in ready)
        locks = [lock for _, _, lock in ready]
        renewal_done = asyncio.Event()
        renewer = asyncio.create_task(self._renew_locks(locks, renewal_done))
        try:
            result = await self._invoker.invoke(self.spec, value, log_fields=fields)
        finally:
            # Let a renewal in progress finish, so the pop receipt used to settle is the current one.
            renewal_done.set()
            await renewer
        for message, envelope, lock in ready:
            await self._settle(message, envelope, lock, result.error)

    async def _screen(self, message: QueueMessage) -> Envelope | None:
        """Drop what must not reach the function: undecodable, early, or already over-delivered messages."""
        try:
            envelope = decode_envelope(str(message.content))
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter_raw(message, short_error(exc))
            return None
        now = datetime.now(UTC)
        if envelope.scheduled_for is not None and envelope.scheduled_for > now + timedelta(seconds=1):
            await self._reschedule(message, envelope, now)
            return None
        if (message.dequeue_count or 1) > self._options.max_delivery_count:
            description = (
                f"delivery count {message.dequeue_count} exceeds {self._options.max_delivery_count}: "
                "the lock expired without the message being completed"
            )
            await self._move_to_dead_letter(message, envelope, _Lock(message, 0), description)
            return None
        return envelope

    def _to_trigger_message(self, message: QueueMessage, envelope: Envelope, lock: _Lock) -> func.ServiceBusMessage:
        properties: dict[str, object] = dict(envelope.application_properties)
        return func.servicebus.ServiceBusMessage(
            body=envelope.body,
            trigger_metadata={},
            application_properties=properties,
            user_properties=properties,
            content_type=envelope.content_type,
            correlation_id=envelope.correlation_id,
            delivery_count=message.dequeue_count or 1,
            enqueued_time_utc=envelope.enqueued_at,
            scheduled_enqueue_time_utc=envelope.scheduled_for,
            expires_at_utc=message.expires_on,
            label=envelope.subject,
            subject=envelope.subject,
            lock_token=lock.token,
            locked_until=lock.locked_until,
            message_id=envelope.message_id,
            sequence_number=next(_sequence),
            to=self.queue_name,
        )

    async def _renew_locks(self, locks: list[_Lock], done: asyncio.Event) -> None:
        """Extend each lock every half lock duration, like the Service Bus extension's auto-renew."""
        interval = max(0.5, self._options.lock_seconds / 2)
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=interval)
                return
            for lock in locks:
                if lock.lost:
                    continue
                try:
                    updated = await self._queue.update_message(
                        lock.message_id, lock.pop_receipt, visibility_timeout=self._options.lock_seconds
                    )
                except AzureError as exc:
                    lock.lost = True
                    log.warning(
                        "devhost: lock renewal for %s on %s failed: %s",
                        lock.message_id,
                        self.queue_name,
                        short_error(exc),
                    )
                    continue
                lock.pop_receipt = updated.pop_receipt or lock.pop_receipt
                lock.locked_until = datetime.now(UTC) + timedelta(seconds=self._options.lock_seconds)
                log.debug("devhost: renewed lock of %s on %s", lock.message_id, self.queue_name)

    async def _settle(
        self, message: QueueMessage, envelope: Envelope, lock: _Lock, error: BaseException | None
    ) -> None:
        delivery_count = message.dequeue_count or 1
        try:
            if error is None:
                await self._queue.delete_message(lock.message_id, lock.pop_receipt)
            elif delivery_count >= self._options.max_delivery_count:
                await self._move_to_dead_letter(message, envelope, lock, short_error(error, 1000))
            else:
                # Abandon: visible again after a short back-off, delivered with dequeue_count + 1.
                await self._queue.update_message(
                    lock.message_id, lock.pop_receipt, visibility_timeout=self._options.abandon_backoff_seconds
                )
        except AzureError as exc:
            log.warning(
                "devhost: settling message %s on %s failed (lock lost?): %s",
                envelope.message_id,
                self.queue_name,
                short_error(exc),
            )

    async def _move_to_dead_letter(
        self, message: QueueMessage, envelope: Envelope, lock: _Lock, description: str
    ) -> None:
        properties = dict(envelope.application_properties)
        properties["DeadLetterReason"] = MAX_DELIVERY_COUNT_EXCEEDED
        properties["DeadLetterErrorDescription"] = description
        dead = OutgoingMessage(
            body=envelope.body,
            message_id=envelope.message_id,
            content_type=envelope.content_type or "application/octet-stream",
            correlation_id=envelope.correlation_id,
            subject=envelope.subject,
            application_properties=properties,
        )
        await self._dead_letter.send_message(encode_envelope(dead, envelope.enqueued_at), time_to_live=-1)
        await self._queue.delete_message(lock.message_id, lock.pop_receipt)
        log.warning(
            "devhost: dead-lettered message %s from %s after %s deliveries: %s",
            envelope.message_id,
            self.queue_name,
            message.dequeue_count,
            description,
        )

    async def _dead_letter_raw(self, message: QueueMessage, description: str) -> None:
        """A message that is not an envelope cannot be delivered at all; keep it for inspection."""
        dead = OutgoingMessage(
            body=str(message.content).encode("utf-8"),
            message_id=message.id,
            content_type="text/plain",
            application_properties={"DeadLetterReason": INVALID_ENVELOPE, "DeadLetterErrorDescription": description},
        )
        try:
            await self._dead_letter.send_message(encode_envelope(dead, datetime.now(UTC)), time_to_live=-1)
            await self._queue.delete_message(message.id, message.pop_receipt)
        except AzureError as exc:
            log.warning("devhost: could not dead-letter invalid message %s: %s", message.id, short_error(exc))
            return
        log.warning("devhost: dead-lettered invalid message %s from %s: %s", message.id, self.queue_name, description)

    async def _reschedule(self, message: QueueMessage, envelope: Envelope, now: datetime) -> None:
        """Visible before its time (a delay beyond the storage maximum): send it again, hidden for the rest."""
        delay = min(MAX_DELAY_SECONDS, int((envelope.scheduled_for - now).total_seconds() + 0.999))  # type: ignore[operator]
        try:
            await self._queue.send_message(str(message.content), visibility_timeout=delay, time_to_live=-1)
            await self._queue.delete_message(message.id, message.pop_receipt)
        except AzureError as exc:
            log.warning("devhost: could not reschedule message %s: %s", envelope.message_id, short_error(exc))
