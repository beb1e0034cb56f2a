"""Backfill: a webhook subscription's stored events of a log range, pushed as live pushes are.

A backfill is a job record (``BackfillStore``) advanced by turns: each turn is a message on
``BACKFILL_QUEUE`` that scans one page of the log from the saved cursor, matches the events
against the subscription's filters, skips those the consumer may not receive, and queues the
others as ordinary ``Delivery``s (so the ``webhook-id`` is the live push's) on
``BACKFILL_PUSH_QUEUE``, which its own trigger hands to an outbound worker that shares the live
one's endpoint guard and keeps its retries on that queue. The live queues' capacity is never used.

Order and pace: a turn queues one message, whose pushes go one after another in log order, and the
next turn scans only once every delivery of the backfill has ended (pushed, failed or dropped); until
then it waits, longer while nothing ends, and the settle that ends the last one wakes it. A push that
fails is retried with the rest of its message behind it (the worker's ``in_order``). So pushes arrive in
log order, one at a time, as fast as the endpoint answers, within its guard. Outcomes come from the
worker's settles (``BackfillProgress``), added to running totals once per delivery and message.

Matching is fan-out's (``event_matches``): a subscription that includes subunits gets their events too.

Crash safety: a turn sends its deliveries, then saves the cursor and counts under the record's ETag,
then sends the next turn (deterministic message ids throughout). A turn that dies before the save is
redelivered and scans the same page again (the same deliveries, the same ids: nothing skipped, at
worst pushed twice with one ``webhook-id``); one that dies after it is redelivered, finds the record
a turn ahead and sends the next turn again, which duplicate detection drops if it was sent. A turn
that finds the record ahead on its first delivery is a stale copy (a wait overtaken by a wake) and
ends there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from shared.clock import Clock
from shared.events.cursor import CursorExpired, CursorInvalid, decode_cursor
from shared.events.log import EventLog, Position
from shared.events.reading import EventReader
from shared.identity.authorization import Action, Authorizer, event_request
from shared.messaging import Bus, OutgoingMessage
from shared.subscriptions.delivery import Delivery, delivery_id
from shared.subscriptions.messages import MAX_DELIVERIES_PER_MESSAGE, delivery_message
from shared.subscriptions.model import SUBSCRIPTION_CACHE_SECONDS, Status, Subscription
from shared.subscriptions.outbound import OutboundWorker
from shared.subscriptions.ports import Final, SubscriptionStore
from shared.subscriptions.service import SubscriptionNotFound
from shared.subscriptions.subunits import MainUnits, event_matches, main_units_of
from shared.ttl_cache import TtlCache

log = logging.getLogger(__name__)

BACKFILL_QUEUE = "subscription-backfill"  # the turns of running backfills
BACKFILL_PUSH_QUEUE = "events-backfill"  # their deliveries, and the retries of those

WINDOW = 1  # outstanding deliveries from which a turn waits instead of scanning: 1 keeps the log order
TURN_DELIVERIES = MAX_DELIVERIES_PER_MESSAGE  # a turn stops scanning once it matched this many (one message)
TURN_EVENTS = 2000  # ... or scanned this many events
TURN_BYTES = 8 * 1024 * 1024  # ... or this many bytes of them
FIRST_PAUSE_SECONDS = 0.5  # a waiting turn looks again after this, doubling while it keeps waiting
MAX_PAUSE_SECONDS = 30.0


class BackfillState(StrEnum):
    RUNNING = "running"  # scanning, or its deliveries are still being pushed
    COMPLETED = "completed"  # scanned to the end, and every matched delivery was pushed, failed or dropped
    CANCELLED = "cancelled"
    FAILED = "failed"  # the subscription was deleted or disabled (while pending, a backfill waits)


@dataclass(frozen=True)
class Outcomes:
    """What became of the deliveries a backfill queued (reported by the outbound worker's settles)."""

    pushed: int = 0
    failed: int = 0
    dropped: int = 0

    @property
    def total(self) -> int:
        return self.pushed + self.failed + self.dropped

    def __add__(self, other: Outcomes) -> Outcomes:
        return Outcomes(self.pushed + other.pushed, self.failed + other.failed, self.dropped + other.dropped)


@dataclass(frozen=True)
class Backfill:
    """One backfill. Positions are read-cursor positions: ``start`` and ``cursor`` are what has been
    passed (exclusive), ``end`` is the last position in range (inclusive)."""

    id: str
    subscription_id: str
    consumer: str
    resource: str
    start: Position
    end: Position
    cursor: Position
    state: BackfillState
    created: datetime
    updated: datetime
    scan_done: bool = False
    scanned: int = 0
    matched: int = 0  # queued for pushing: matched the filters and the consumer may receive them
    unauthorized: int = 0  # matched the filters, but the consumer may not receive them: not queued
    turn: int = 0
    waits: int = 0  # turns in a row that waited for outstanding deliveries
    reason: str | None = None
    outcomes: Outcomes = Outcomes()  # filled in when read for showing

    @property
    def outstanding(self) -> int:
        return max(0, self.matched - self.outcomes.total)

    @property
    def shown_state(self) -> BackfillState:
        if self.state is BackfillState.RUNNING and self.scan_done and self.outstanding == 0:
            return BackfillState.COMPLETED
        return self.state


class BackfillStore(Protocol):
    async def create(self, backfill: Backfill) -> str | None:
        """Store a new backfill as its subscription's scanning one, in one step. Returns None, or the id of
        the backfill still scanning for that subscription (then nothing is stored)."""
        ...

    async def get(self, subscription_id: str, backfill_id: str) -> tuple[Backfill, str] | None:
        """The backfill and its ETag (``outcomes`` not filled in)."""
        ...

    async def save(self, backfill: Backfill, etag: str, *, release: bool = False) -> bool:
        """Replace it if unchanged since it was read; with ``release`` it stops being its subscription's
        scanning one in the same step. False when another writer came first (nothing changed)."""
        ...

    async def outcomes(self, subscription_id: str, backfill_id: str) -> Outcomes: ...

    async def record_outcomes(
        self, subscription_id: str, backfill_id: str, message_key: str, finals: Mapping[str, Final]
    ) -> None:
        """Add to the backfill's totals, each delivery id once per ``message_key``: a message settled again
        adds only the new ones. Nothing when the backfill is gone (deleted with its subscription, or expired)."""
        ...


class BackfillNotFound(Exception):
    pass


class BackfillUnsupported(Exception):
    """A notification subscription: it pushes to no webhook."""


class SubscriptionNotActive(Exception):
    pass


class BackfillRunning(Exception):
    def __init__(self, backfill_id: str) -> None:
        self.backfill_id = backfill_id
        super().__init__(
            f"backfill {backfill_id} of this subscription is still scanning; wait for it or cancel it first"
        )


class RangeInvalid(ValueError):
    pass


class BackfillTurn(BaseModel):
    """A turn of a backfill: ``t`` counts its turns, so each has its own message id."""

    model_config = ConfigDict(extra="forbid")

    s: str = Field(min_length=1, max_length=64)
    b: str = Field(min_length=1, max_length=64)
    t: int = Field(ge=0)


def turn_message(backfill: Backfill, deliver_at: datetime | None = None) -> OutgoingMessage:
    """The backfill's current turn. A delayed one (a wait) has an id of its own, so the wake a settle
    sends for the same turn is not dropped as its duplicate; whichever comes second is stale."""
    body = BackfillTurn(s=backfill.subscription_id, b=backfill.id, t=backfill.turn).model_dump_json().encode()
    suffix = "-w" if deliver_at is not None else ""
    return OutgoingMessage(body=body, message_id=f"{backfill.id}-{backfill.turn}{suffix}", deliver_at=deliver_at)


# A range bound: a time (events stored at or after it) or a read cursor (events after it).
Bound = datetime | str


@dataclass(frozen=True)
class _Page:
    cursor: Position
    deliveries: list[Delivery]
    scanned: int
    unauthorized: int
    done: bool


class Backfills:
    def __init__(
        self,
        *,
        store: BackfillStore,
        subscriptions: SubscriptionStore,
        reader: EventReader,
        event_log: EventLog,
        authorizer: Authorizer,
        bus: Bus,
        clock: Clock,
        main_units: MainUnits | None = None,
        turn_events: int = TURN_EVENTS,
        turn_deliveries: int = TURN_DELIVERIES,
        window: int = WINDOW,
    ) -> None:
        """``main_units``: where a subunit's main unit is found (``includeSubunits``), as fan-out finds it;
        ``turn_events``, ``turn_deliveries``: how much a turn scans at most; ``window``: how many
        deliveries may be outstanding before turns wait."""
        self._main_units = main_units
        self._turn_events = turn_events
        self._turn_deliveries = turn_deliveries
        self._window = window
        self._store = store
        self._subscriptions = subscriptions
        self._reader = reader
        self._log = event_log
        self._authorizer = authorizer
        self._bus = bus
        self._clock = clock

    # ------------------------------------------------------------------------------------ API

    async def start(self, consumer: str, subscription_id: str, start: Bound, end: Bound | None) -> Backfill:
        """A new backfill of the consumer's subscription from ``start`` to ``end`` (the events stored now
        when None); its first turn is queued. Raises before anything is stored when it cannot run."""
        subscription = await self._subscriptions.get(consumer, subscription_id)
        if subscription is None:
            raise SubscriptionNotFound(subscription_id)
        if subscription.notification is not None:
            raise BackfillUnsupported("a notification subscription pushes to no webhook, so it cannot be backfilled")
        if subscription.status is not Status.ACTIVE:
            raise SubscriptionNotActive(
                f"the subscription is {subscription.status.value}; only an active subscription can be backfilled"
            )
        resource = subscription.filters.resource
        now = self._clock.now()
        if isinstance(start, datetime) and start > now:
            raise RangeInvalid("'from' is in the future: no event is stored there yet")
        first = await self._position(resource, start, "from")
        last = await self._position(resource, end, "to") if end is not None else await self._reader.head(resource)
        if last < first:
            raise RangeInvalid("'to' is before 'from'")
        backfill = Backfill(
            id=f"bf_{uuid.uuid4().hex}",
            subscription_id=subscription.id,
            consumer=consumer,
            resource=resource,
            start=first,
            end=last,
            cursor=first,
            state=BackfillState.RUNNING,
            created=now,
            updated=now,
        )
        running = await self._store.create(backfill)
        if running is not None:
            raise BackfillRunning(running)
        await self._bus.send(BACKFILL_QUEUE, [turn_message(backfill)])
        log.info("backfill started", extra={"subscription": subscription.id, "backfill": backfill.id})
        return backfill

    async def _position(self, resource: str, bound: Bound, name: str) -> Position:
        if isinstance(bound, datetime):
            return await self._reader.position_at(resource, bound)
        try:
            position = decode_cursor(bound, resource)
            await self._reader.check_cursor(resource, position)
        except CursorInvalid as error:  # the reader's words name its parameter, 'after'
            raise CursorInvalid(str(error).replace("'after'", f"'{name}'")) from error
        except CursorExpired as error:
            raise CursorExpired(
                f"'{name}' points at events removed by retention; give a time to start from the oldest stored event"
            ) from error
        return position

    async def get(self, consumer: str, subscription_id: str, backfill_id: str) -> Backfill:
        """The consumer's backfill with its outcomes so far; another consumer's is not found."""
        backfill, _ = await self._own(consumer, subscription_id, backfill_id)
        return backfill

    async def cancel(self, consumer: str, subscription_id: str, backfill_id: str) -> Backfill:
        """Stops scanning; deliveries still queued are dropped when they come up. A finished backfill
        stays as it is."""
        while True:
            backfill, etag = await self._own(consumer, subscription_id, backfill_id)
            if backfill.shown_state is not BackfillState.RUNNING:
                return backfill
            cancelled = replace(
                backfill, state=BackfillState.CANCELLED, updated=self._clock.now(), reason="cancelled by the consumer"
            )
            if await self._store.save(cancelled, etag, release=not backfill.scan_done):
                log.info("backfill cancelled", extra={"subscription": subscription_id, "backfill": backfill_id})
                return cancelled

    async def _own(self, consumer: str, subscription_id: str, backfill_id: str) -> tuple[Backfill, str]:
        if await self._subscriptions.get(consumer, subscription_id) is None:
            raise SubscriptionNotFound(subscription_id)
        found = await self._store.get(subscription_id, backfill_id)
        if found is None or found[0].consumer != consumer:
            raise BackfillNotFound(backfill_id)
        backfill, etag = found
        return replace(backfill, outcomes=await self._store.outcomes(subscription_id, backfill_id)), etag

    # ---------------------------------------------------------------------------------- turns

    async def advance(self, turn: BackfillTurn, *, redelivered: bool = False) -> None:
        """One turn: scan a page and queue its deliveries, or wait while deliveries are outstanding."""
        found = await self._store.get(turn.s, turn.b)
        if found is None:
            return
        backfill, etag = found
        if backfill.state is not BackfillState.RUNNING or backfill.scan_done or turn.t > backfill.turn:
            return
        if turn.t < backfill.turn:
            if redelivered:
                # This turn was saved and its process may have died before sending the next one: send it
                # again. Duplicate detection drops it if it was sent.
                await self._bus.send(BACKFILL_QUEUE, [turn_message(backfill)])
            return
        # By its consumer, not its index key: a change of its filters may have moved it in the index.
        subscription = await self._subscriptions.get(backfill.consumer, backfill.subscription_id)
        now = self._clock.now()
        if subscription is not None and subscription.status is Status.PENDING:
            # A new endpoint is being validated (a PATCH): the backfill waits for it, as its queued pushes do.
            waiting = replace(backfill, turn=backfill.turn + 1, waits=backfill.waits + 1, updated=now)
            if await self._store.save(waiting, etag):
                await self._bus.send(BACKFILL_QUEUE, [turn_message(waiting, now + _pause(waiting.waits))])
            return
        if subscription is None or subscription.status is not Status.ACTIVE:
            reason = (
                "the subscription was deleted"
                if subscription is None
                else f"the subscription is {subscription.status.value}"
            )
            failed = replace(backfill, state=BackfillState.FAILED, reason=reason, updated=self._clock.now())
            await self._store.save(failed, etag, release=True)
            log.info("backfill stopped", extra={"backfill": backfill.id, "reason": reason})
            return
        outcomes = await self._store.outcomes(backfill.subscription_id, backfill.id)
        if backfill.matched - outcomes.total >= self._window:
            # Until they end; the settle that ends the last one sends this turn at once (BackfillProgress).
            waiting = replace(backfill, turn=backfill.turn + 1, waits=backfill.waits + 1, updated=now)
            if await self._store.save(waiting, etag):
                await self._bus.send(BACKFILL_QUEUE, [turn_message(waiting, now + _pause(waiting.waits))])
            return
        page = await self._scan(backfill, subscription)
        # Deliveries first, the cursor after: a crash between scans this page again, it never skips it.
        for start in range(0, len(page.deliveries), MAX_DELIVERIES_PER_MESSAGE):
            chunk = page.deliveries[start : start + MAX_DELIVERIES_PER_MESSAGE]
            await self._bus.send(BACKFILL_PUSH_QUEUE, [delivery_message(chunk)])
        advanced = replace(
            backfill,
            cursor=page.cursor,
            scan_done=page.done,
            scanned=backfill.scanned + page.scanned,
            matched=backfill.matched + len(page.deliveries),
            unauthorized=backfill.unauthorized + page.unauthorized,
            turn=backfill.turn + 1,
            updated=now,
        )
        # With its own deliveries outstanding, the next turn would only wait: it is sent as a wait.
        advanced = replace(advanced, waits=int(advanced.matched - outcomes.total >= self._window))
        if not await self._store.save(advanced, etag, release=page.done):
            return  # a copy of this turn's message got there first, and goes on from here
        if not page.done:
            deliver_at = now + _pause(advanced.waits) if advanced.waits else None
            await self._bus.send(BACKFILL_QUEUE, [turn_message(advanced, deliver_at)])

    async def _scan(self, backfill: Backfill, subscription: Subscription) -> _Page:
        """From the cursor to the end, up to a turn's worth: the events matching the filters (subunits
        included, as fan-out matches them), of which those the consumer may receive become deliveries (the
        same check as every push), in log order."""
        cursor, end = backfill.cursor, backfill.end
        events: list[tuple[Position, dict[str, Any]]] = []
        scanned_bytes = 0
        full = False  # a turn's worth is scanned
        rows = self._log.scan(backfill.resource, cursor.seq, want_events=self._turn_events)
        try:
            async for row in rows:
                for index, body in enumerate(row.events):
                    position = Position(row.seq, index)
                    if position <= cursor:
                        continue
                    if position > end:
                        break
                    scanned_bytes += len(body)
                    events.append((position, json.loads(body)))
                    full = len(events) >= self._turn_events or scanned_bytes >= TURN_BYTES
                    if full:
                        break
                if full or row.seq >= end.seq:
                    break
        finally:
            closing = getattr(rows, "aclose", None)
            if closing is not None:
                await closing()  # the log's query stops here
        # The registry is asked once per turn, and only for a subscription that includes subunits.
        parents = (
            await main_units_of(self._main_units, (attributes for _, attributes in events))
            if subscription.filters.include_subunits
            else {}
        )
        matching: list[tuple[Position, dict[str, Any]]] = []
        scanned = 0
        for position, attributes in events:
            scanned += 1
            cursor = position
            if event_matches(subscription.filters, attributes, parents):
                matching.append((position, attributes))
                if len(matching) >= self._turn_deliveries:
                    full = True  # the rest of what was read is scanned again next turn
                    break
        # Every row up to the end was committed when the backfill began, so a scan that ran out of rows
        # (or passed the end) has seen the whole range.
        done = not full or cursor >= end
        if done:
            cursor = max(cursor, end)
        allowed = await self._authorizer.allowed(
            [event_request(backfill.consumer, attributes, Action.SUBSCRIBE) for _, attributes in matching]
        )
        deliveries = [
            Delivery(
                subscription.index_key,
                subscription.id,
                backfill.resource,
                position.seq,
                position.index,
                backfill=backfill.id,
            )
            for (position, _), permitted in zip(matching, allowed, strict=True)
            if permitted
        ]
        return _Page(cursor, deliveries, scanned, len(matching) - len(deliveries), done)


def _pause(waits: int) -> timedelta:
    """How long the ``waits``-th wait in a row lasts, unless a settle wakes it first."""
    return timedelta(seconds=min(MAX_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2 ** max(0, waits - 1)))


class BackfillProgress:
    """The backfill push worker's settle listener: counts what became of each backfill's deliveries, and
    wakes a waiting backfill once none is outstanding."""

    def __init__(self, store: BackfillStore, bus: Bus, *, window: int = WINDOW) -> None:
        self._store = store
        self._bus = bus
        self._window = window

    async def settled(self, message_id: str | None, outcomes: Sequence[tuple[Delivery, Final]]) -> None:
        by_backfill: dict[tuple[str, str], dict[str, Final]] = defaultdict(dict)
        for delivery, final in outcomes:
            if delivery.backfill is not None:
                key = (delivery.subscription_id, delivery.backfill)
                by_backfill[key][
                    delivery_id(delivery.subscription_id, delivery.resource, delivery.seq, delivery.index)
                ] = final
        for (subscription_id, backfill_id), finals in by_backfill.items():
            message_key = message_id or hashlib.sha256(",".join(sorted(finals)).encode()).hexdigest()[:40]
            await self._store.record_outcomes(subscription_id, backfill_id, message_key, finals)
            await self._wake(subscription_id, backfill_id)

    async def _wake(self, subscription_id: str, backfill_id: str) -> None:
        found = await self._store.get(subscription_id, backfill_id)
        if found is None:
            return
        backfill = found[0]
        if backfill.state is not BackfillState.RUNNING or backfill.scan_done or not backfill.waits:
            return
        if backfill.matched - (await self._store.outcomes(subscription_id, backfill_id)).total < self._window:
            await self._bus.send(BACKFILL_QUEUE, [turn_message(backfill)])


class BackfillPushes:
    """The backfill push queue's handler: the outbound worker's push, unless the backfill was cancelled
    (or failed), whose deliveries still queued are dropped and counted so."""

    def __init__(self, worker: OutboundWorker, store: BackfillStore, progress: BackfillProgress) -> None:
        self._worker = worker
        self._store = store
        self._progress = progress
        self._running: TtlCache[tuple[str, str], bool] = TtlCache(SUBSCRIPTION_CACHE_SECONDS)

    async def handle(
        self, deliveries: Sequence[Delivery], *, message_id: str | None = None, redelivered: bool = False
    ) -> None:
        backfill = deliveries[0].backfill if deliveries else None
        if backfill is not None and not await self._is_running(deliveries[0].subscription_id, backfill):
            await self._progress.settled(message_id, [(d, Final.DROPPED) for d in deliveries])
            return
        await self._worker.handle(deliveries, message_id=message_id, redelivered=redelivered)

    async def _is_running(self, subscription_id: str, backfill_id: str) -> bool:
        """Looked up at most every few seconds per backfill: a cancel stops pushes within that."""

        async def running(key: tuple[str, str]) -> bool:
            found = await self._store.get(*key)
            return found is not None and found[0].state is BackfillState.RUNNING

        return await self._running.get((subscription_id, backfill_id), running)
