"""Service Bus queue triggers over Azurite storage queues, with Service Bus peek-lock semantics.

A receive hides the message for the queue's lock duration (the "lock"); the lock is renewed while
a slow handler runs, up to host.json's ``maxAutoLockRenewalDuration``, after which it expires and
the message is delivered again while the first handler may still run; success completes (deletes)
it; failure abandons it (visible again after a short back-off, delivery count + 1); settling after
the lock expired fails as a lost lock; the last allowed failure, or a message that comes back with
too many deliveries, moves it to ``<queue>-deadletter`` with the Service Bus dead-letter properties.
On a queue with duplicate detection, a message whose id was already sent within the history window
is dropped unseen, as Service Bus drops it at send.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devhost.bindings import ReceivedMessage, service_bus_input
from devhost.functions_index import FunctionSpec
from devhost.invocation import Invoker, short_error
from devhost.queue_properties import QueueProperties
from shared.adapters.storage_queue_bus import (
    MAX_DELAY_SECONDS,
    Envelope,
    dead_letter_queue_name,
    decode_envelope,
    encode_envelope,
    watch_sends,
)
from shared.messaging import OutgoingMessage

log = logging.getLogger("devhost")

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
INVALID_ENVELOPE = "InvalidEnvelope"
# Storage queues return at most 32 messages per receive.
MAX_BATCH = 32
_sequence = itertools.count(1)


# The Service Bus processor renews a lock this long before it expires at the latest (half the
# remaining time when that is shorter), and at once when less than 0.4 s remain.
MAX_RENEW_BUFFER = timedelta(seconds=10)
RENEW_AT_ONCE = timedelta(milliseconds=400)


@dataclass(frozen=True)
class ListenerOptions:
    """One queue's delivery settings: its properties (the infra's) and the host's (host.json)."""

    queue: QueueProperties = field(default_factory=QueueProperties)
    # None renews for as long as the handler runs (.NET's InfiniteTimeSpan).
    max_auto_lock_renewal: timedelta | None = timedelta(minutes=5)
    concurrency: int = 16
    abandon_backoff_seconds: int = 1
    max_idle_wait: float = 0.5

    @property
    def lock_seconds(self) -> int:
        return self.queue.lock_seconds


class DuplicateHistory:
    """Message ids a queue with duplicate detection has seen, for its history window.

    Service Bus drops a duplicate at send; devhost sees messages only when it receives them, so it
    compares send (enqueue) times there: a message is a duplicate when another storage message with
    its id was sent within the window of it. Redeliveries of one storage message are not duplicates.
    The history is in memory; an id is forgotten one window after devhost last recorded it.
    """

    def __init__(self, window: timedelta) -> None:
        self.window = window
        # message id -> (storage message id, enqueue time, forget after); insertion order is expiry order.
        self._seen: OrderedDict[str, tuple[str, datetime, datetime]] = OrderedDict()

    def first_sent(self, message_id: str, storage_id: str, enqueued_at: datetime, now: datetime) -> datetime | None:
        """When the earlier message with this id was sent, if this one duplicates it; else record this one."""
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest[2] > now:
                break
            self._seen.popitem(last=False)
        seen = self._seen.get(message_id)
        if seen is not None:
            seen_storage_id, seen_enqueued_at, _ = seen
            if seen_storage_id == storage_id:
                return None
            if abs(enqueued_at - seen_enqueued_at) <= self.window:
                return seen_enqueued_at
        self._seen.pop(message_id, None)
        self._seen[message_id] = (storage_id, enqueued_at, now + self.window)
        return None


async def ensure_queues(service: QueueServiceClient, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(ResourceExistsError):
            await service.create_queue(name)


class _Lock:
    """A received message's lock: its current pop receipt and expiry; renewing replaces both."""

    def __init__(self, message: QueueMessage, locked_until: datetime) -> None:
        self.message_id: str = message.id
        self.pop_receipt: str = message.pop_receipt or ""
        self.locked_until = locked_until
        self.token = str(uuid.uuid4())
        self.lost = False

    def held(self) -> bool:
        return not self.lost and datetime.now(UTC) < self.locked_until


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
        properties = options.queue
        self._duplicates = (
            DuplicateHistory(properties.duplicate_detection_window) if properties.requires_duplicate_detection else None
        )
        self._stopping = asyncio.Event()
        # Set by a send to this queue from this process (or a stop): the idle poller receives at once.
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Wake-ups for delayed messages, by due time in tenths of a second (one timer per tenth).
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._unwatch: Callable[[], None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unwatch = watch_sends(self.queue_name, self._sent)
        self._poller = asyncio.create_task(self._poll(), name=f"devhost-sb-{self.queue_name}")

    def _sent(self, visible_in: float) -> None:
        """A message was sent to this queue in this process; it is visible in ``visible_in`` seconds.

        Called in the sender's thread: an app's sync function runs in a worker thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake_in(visible_in)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake_in, visible_in)

    def _wake_in(self, seconds: float) -> None:
        """Wake the poller now, or when a delayed message becomes visible."""
        if seconds <= 0:
            self._wake.set()
            return
        assert self._loop is not None
        due = math.ceil((self._loop.time() + seconds) * 10)
        if due not in self._timers:
            self._timers[due] = self._loop.call_at(due / 10, self._timer_fired, due)

    def _timer_fired(self, due: int) -> None:
        self._timers.pop(due, None)
        self._wake.set()

    async def stop(self, grace_seconds: float) -> None:
        """Stop receiving, then give in-flight handlers ``grace_seconds`` before cancelling them."""
        self._stopping.set()
        self._wake.set()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
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
            # Cleared before the receive: a send while it runs sets it again, and the poller does not sleep.
            self._wake.clear()
            # Taken before the receive, so devhost never thinks a lock lasts longer than Azurite does.
            locked_until = datetime.now(UTC) + timedelta(seconds=self._options.lock_seconds)
            try:
                messages = await self._receive(wanted)
            except AzureError as exc:
                log.warning("devhost: receiving from %s failed (%s); retrying", self.queue_name, short_error(exc))
                messages = []
                idle_wait = self._options.max_idle_wait
            if messages:
                idle_wait = 0.0
                if self.spec.cardinality_many:
                    self._spawn(self._handle_batch(messages, locked_until))
                else:
                    for message in messages:
                        self._spawn(self._handle_batch([message], locked_until))
                if len(messages) >= wanted:
                    continue  # a busy queue is received from again at once
                # Fewer than asked for: the queue was empty behind them, so the next receive waits for
                # a send (or the first back-off step) instead of coming back empty at once.
            # Empty queue: back off from 50 ms up to max_idle_wait, which bounds the wait for messages
            # sent by other processes; a send from this process wakes the poller at once (``_sent``).
            idle_wait = min(self._options.max_idle_wait, idle_wait * 2 if idle_wait else 0.05)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=idle_wait)
                # Woken: back off from the start again, in case the message is not visible yet.
                idle_wait = 0.0

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

    async def _handle_batch(self, received: list[QueueMessage], locked_until: datetime) -> None:
        """Screen each message, invoke once (a batch for cardinality many), then settle every lock."""
        ready: list[tuple[QueueMessage, Envelope, _Lock]] = []
        for message in received:
            envelope = await self._screen(message)
            if envelope is not None:
                ready.append((message, envelope, _Lock(message, locked_until)))
        if not ready:
            return
        locked = [self._received(m, e, lock) for m, e, lock in ready]
        trigger = service_bus_input(self.spec.name, locked, many=self.spec.cardinality_many)
        fields: dict[str, object] = {"queue": self.queue_name}
        if self.spec.cardinality_many:
            fields["messages"] = len(locked)
        fields["delivery_count"] = max(m.dequeue_count or 1 for m, _, _ in ready)
        locks = [lock for _, _, lock in ready]
        renewal_done = asyncio.Event()
        renewer = asyncio.create_task(self._renew_locks(locks, renewal_done))
        try:
            result = await self._invoker.invoke(self.spec, trigger, log_fields=fields)
        finally:
            # Let a renewal in progress finish, so the pop receipt used to settle is the current one.
            renewal_done.set()
            await renewer
        for message, envelope, lock in ready:
            await self._settle(message, envelope, lock, result.error)

    async def _screen(self, message: QueueMessage) -> Envelope | None:
        """Drop what must not reach the function: undecodable, early, duplicate or over-delivered messages."""
        try:
            envelope = decode_envelope(str(message.content))
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter_raw(message, short_error(exc))
            return None
        now = datetime.now(UTC)
        if envelope.scheduled_for is not None and envelope.scheduled_for > now + timedelta(seconds=1):
            await self._reschedule(message, envelope, now)
            return None
        # After the schedule check: a message devhost re-sent to wait longer is recorded only once due.
        if self._duplicates is not None:
            first_sent = self._duplicates.first_sent(envelope.message_id, message.id, envelope.enqueued_at, now)
            if first_sent is not None:
                await self._drop_duplicate(message, envelope, first_sent)
                return None
        max_deliveries = self._options.queue.max_delivery_count
        if (message.dequeue_count or 1) > max_deliveries:
            description = (
                f"delivery count {message.dequeue_count} exceeds {max_deliveries}: "
                "the lock expired without the message being completed"
            )
            await self._move_to_dead_letter(message, envelope, _Lock(message, now), description)
            return None
        return envelope

    async def _drop_duplicate(self, message: QueueMessage, envelope: Envelope, first_sent: datetime) -> None:
        try:
            await self._queue.delete_message(message.id, message.pop_receipt)
        except AzureError as exc:
            log.warning("devhost: could not drop duplicate message %s: %s", envelope.message_id, short_error(exc))
            return
        assert self._duplicates is not None
        log.info(
            "devhost: dropped message %s on %s unseen: the same message id was sent %.1fs apart, within the "
            "duplicate detection window of %ds",
            envelope.message_id,
            self.queue_name,
            abs((envelope.enqueued_at - first_sent).total_seconds()),
            int(self._duplicates.window.total_seconds()),
        )

    def _received(self, message: QueueMessage, envelope: Envelope, lock: _Lock) -> ReceivedMessage:
        """What the Service Bus extension would know of this locked message."""
        return ReceivedMessage(
            body=envelope.body,
            message_id=envelope.message_id,
            delivery_count=message.dequeue_count or 1,
            sequence_number=next(_sequence),
            enqueued_time=envelope.enqueued_at,
            locked_until=lock.locked_until,
            lock_token=lock.token,
            to=self.queue_name,
            application_properties=dict(envelope.application_properties),
            content_type=envelope.content_type,
            correlation_id=envelope.correlation_id,
            subject=envelope.subject,
            expires_at=message.expires_on,
            scheduled_enqueue_time=envelope.scheduled_for,
        )

    async def _renew_locks(self, locks: list[_Lock], done: asyncio.Event) -> None:
        """Renew the locks shortly before they expire, as the Service Bus processor does, until
        ``maxAutoLockRenewalDuration`` has passed; then leave them to expire under the running handler."""
        limit = self._options.max_auto_lock_renewal
        stop_at = None if limit is None else datetime.now(UTC) + limit
        while True:
            held = [lock for lock in locks if not lock.lost]
            if not held:
                return
            now = datetime.now(UTC)
            expiry = min(lock.locked_until for lock in held)
            remaining = expiry - now
            delay = timedelta(0) if remaining < RENEW_AT_ONCE else remaining - min(remaining / 2, MAX_RENEW_BUFFER)
            if stop_at is not None and now + delay >= stop_at:
                await self._let_locks_expire(held, expiry, done)
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=delay.total_seconds())
                return
            for lock in held:
                renewed_at = datetime.now(UTC)
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
                lock.locked_until = renewed_at + timedelta(seconds=self._options.lock_seconds)
                log.debug("devhost: renewed lock of %s on %s", lock.message_id, self.queue_name)

    async def _let_locks_expire(self, locks: list[_Lock], expiry: datetime, done: asyncio.Event) -> None:
        """Say so when the handler outlives the last lock renewal: its message will be delivered again."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=max(0.0, (expiry - datetime.now(UTC)).total_seconds()))
            return
        log.warning(
            "devhost: the handler of %s on %s outlived maxAutoLockRenewalDuration (%s); the lock expired "
            "and the message will be delivered again while it runs",
            ", ".join(lock.message_id for lock in locks),
            self.queue_name,
            self._options.max_auto_lock_renewal,
        )

    async def _settle(
        self, message: QueueMessage, envelope: Envelope, lock: _Lock, error: BaseException | None
    ) -> None:
        delivery_count = message.dequeue_count or 1
        if not lock.held():
            # Service Bus refuses to settle with an expired lock (MessageLockLostException); the
            # message is delivered again, even when this delivery succeeded.
            action = "complete" if error is None else "abandon or dead-letter"
            log.warning(
                "devhost: could not %s message %s on %s: MessageLockLost, the lock expired at %s; "
                "it will be delivered again",
                action,
                envelope.message_id,
                self.queue_name,
                lock.locked_until.isoformat(timespec="milliseconds"),
            )
            return
        try:
            if error is None:
                await self._queue.delete_message(lock.message_id, lock.pop_receipt)
            elif delivery_count >= self._options.queue.max_delivery_count:
                await self._move_to_dead_letter(message, envelope, lock, short_error(error, 1000))
            else:
                # Abandon: visible again after a short back-off, delivered with dequeue_count + 1.
                await self._queue.update_message(
                    lock.message_id, lock.pop_receipt, visibility_timeout=self._options.abandon_backoff_seconds
                )
                self._wake_in(self._options.abandon_backoff_seconds)
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
            self._wake_in(delay)
        except AzureError as exc:
            log.warning("devhost: could not reschedule message %s: %s", envelope.message_id, short_error(exc))
