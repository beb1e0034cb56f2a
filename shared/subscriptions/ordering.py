"""Ordered push per subject: a subscription with ``ordering: subject`` receives the events of one
subject in log order, the next pushed only once the previous one was delivered or dead-lettered.

A lane is (subscription, subject). Fan-out appends the lane's deliveries as entries keyed by log
position and then kicks the lane: if nothing is out, the smallest entry is claimed (a conditional
write of the lane's head) and sent to the outbound queue like any delivery, carrying its lane. When
the outbound worker settles it for good (delivered, dead-lettered, refused, expired, 410, dropped,
unauthorized) the lane advances: the entry goes and the next one is claimed, in one conditional
transaction. Retries and deferrals keep the head claimed, so the lane waits, while other lanes go on.

Two writers never both claim: every append touches the head in the same transaction, and every claim
is conditional on the head's ETag as read before the entries were read. So a claim that missed an
append fails and looks again, and an append after an advance left the lane idle kicks it itself.

Fan-outs of one resource run concurrently, so a row can reach its lanes after a later row did. A lane
therefore claims an entry only when every earlier row of the resource is accounted for: its inbound
message's fan-out completed (its last fan-out marker carries the message's last row), it holds no
event for the lane, or it is older than ``FANOUT_HORIZON`` (a fan-out that failed that long is
assumed lost; its events, if they come, are pushed late). The rows below a per-resource floor are
known to be accounted for, so a check reads only the markers (and, rarely, rows) since then.

A claim whose push was lost (a crash between claim and send, a message dead-lettered) is sent again
by the sweep once its head is ``STALE_AFTER`` past due; a duplicate has the same ``webhook-id`` and
its stale settle changes nothing, as a settle for a position that is not the head's is ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from shared.clock import Clock
from shared.events.log import EventLog, LogRow
from shared.messaging import Bus
from shared.subscriptions.delivery import Delivery
from shared.subscriptions.messages import MAX_DELIVERIES_PER_MESSAGE, OUTBOUND_QUEUE, delivery_message
from shared.subscriptions.model import SUBSCRIPTION_CACHE_SECONDS, Ordering, Subscription
from shared.subscriptions.ports import FanoutProgress, Lane, LaneHead, LaneStore, SubscriptionStore
from shared.ttl_cache import TtlCache

log = logging.getLogger(__name__)

# A row whose fan-out has not completed this long after its commit is taken as lost (the inbound
# message retries within minutes: redelivery, the outbox sweep after its grace).
FANOUT_HORIZON = timedelta(minutes=10)
# A claimed head not attempted this long after it was due is sent again (its push was lost).
STALE_AFTER = timedelta(minutes=10)
_CONCURRENCY = 16  # lanes read and written at once by one call
_CONFLICT_RETRIES = 20  # another writer won the head: read it again
_ROWS_PAGE = 500
_FLOOR_SAVE_SECONDS = 30.0

T = TypeVar("T")


def lane_of(subject: object) -> str:
    """The lane of an event's subject (all events without one share a lane)."""
    text = f"s:{subject}" if isinstance(subject, str) else "none"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def lane_key(delivery: Delivery) -> Lane:
    assert delivery.lane is not None
    return Lane(delivery.subscription_id, delivery.lane)


def _position(delivery: Delivery) -> tuple[int, int]:
    return (delivery.seq, delivery.index)


@dataclass(frozen=True)
class LaneSweep:
    resent: int  # claimed heads whose push was lost, sent again
    claimed: int  # idle lanes with entries that could go on


class OrderedLanes:
    def __init__(
        self,
        *,
        lanes: LaneStore,
        progress: FanoutProgress,
        event_log: EventLog,
        subscriptions: SubscriptionStore,
        bus: Bus,
        clock: Clock,
        horizon: timedelta = FANOUT_HORIZON,
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self._lanes = lanes
        self._progress = progress
        self._log = event_log
        self._subscriptions = subscriptions
        self._bus = bus
        self._clock = clock
        self._horizon = horizon
        self._stale_after = stale_after
        self._floors: dict[str, int] = {}  # per resource: every row up to it is accounted for
        self._floors_saved: dict[str, tuple[float, int]] = {}
        self._cached: TtlCache[tuple[str, str], Subscription | None] = TtlCache(SUBSCRIPTION_CACHE_SECONDS)

    # ------------------------------------------------------------------------------ fan-out

    async def append(self, deliveries: Sequence[Delivery]) -> set[Lane]:
        """Add ordered deliveries to their lanes (idempotent); returns the lanes to kick."""
        by_lane: dict[Lane, list[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            by_lane[lane_key(delivery)].append(delivery)
        now = self._clock.now()

        async def one(lane: Lane) -> None:
            await self._lanes.append(lane, sorted(by_lane[lane], key=_position), now)

        await _each(list(by_lane), one)
        return set(by_lane)

    async def kick(self, lanes: Iterable[Lane], trace: dict[str, str] | None = None) -> int:
        """Claim and send the next entry of each lane that has nothing out; returns how many were sent."""
        claimed = await _each(list(lanes), self._kick)
        await self._send([c for c in claimed if c is not None], trace)
        return sum(1 for c in claimed if c is not None)

    # ------------------------------------------------------------------------------ settling

    async def settled(
        self,
        finished: Sequence[Delivery],
        retrying: Sequence[tuple[Delivery, datetime]],
        trace: dict[str, str] | None = None,
    ) -> int:
        """The outbound worker's settle of ordered deliveries: ``finished`` ones (delivered or given up)
        advance their lanes; ``retrying`` ones (with the retried delivery and its due time) keep them.
        Returns how many next entries were sent."""
        claimed = await _each(list(finished), self._advance)
        await _each(list(retrying), lambda item: self._touch(*item))
        sent = [c for c in claimed if c is not None]
        await self._send(sent, trace)
        return len(sent)

    async def sweep(self) -> LaneSweep:
        """Send again each claimed head whose push was lost; let each idle lane with entries go on."""
        now = self._clock.now()
        stale: list[tuple[Lane, LaneHead]] = []
        idle: list[Lane] = []
        # Listings of dropped lanes go once older than the horizon (a fan-out is not assumed to take longer).
        async for lane, head in self._lanes.heads(forget_before=now - self._horizon):
            if head.claimed is None:
                # Entries may wait (a crash between append and kick, a row whose fan-out was lost), or
                # the lane is empty and quiet: its head can go.
                if head.waiting or head.changed is None or now - head.changed > self._horizon:
                    idle.append(lane)
            elif head.due is None or now - head.due > self._stale_after:
                stale.append((lane, head))

        async def resend(item: tuple[Lane, LaneHead]) -> Delivery | None:
            lane, head = item
            assert head.claimed is not None
            if await self._lanes.touch(lane, head.etag, head.claimed, now):
                log.warning(
                    "ordered lane's push was lost: sending it again",
                    extra={"subscription": lane.subscription_id, "seq": head.claimed.seq},
                )
                return head.claimed
            return None

        again = [d for d in await _each(stale, resend) if d is not None]
        await self._send(again, None, resent=True)
        claimed = await self.kick(idle)
        await self._save_floors(force=True)
        return LaneSweep(len(again), claimed)

    # ------------------------------------------------------------------------------ one lane

    async def _kick(self, lane: Lane) -> Delivery | None:
        for _ in range(_CONFLICT_RETRIES):
            head = await self._lanes.head(lane)
            if head is not None and head.claimed is not None:
                return None  # its settle moves it on
            entries = await self._lanes.first(lane, 1)
            if not entries:
                if head is not None and self._quiet(head):
                    await self._lanes.move(lane, head.etag, self._clock.now(), drop=True)
                return None
            entry = entries[0]
            if not await self._ready(lane, head, entry):
                return None  # the fan-out of an earlier row will kick it
            now = self._clock.now()
            if await self._lanes.move(lane, head.etag if head else None, now, claim=entry, due=now):
                return entry
        log.warning("ordered lane contended: left to the sweep", extra={"subscription": lane.subscription_id})
        return None

    async def _advance(self, done: Delivery) -> Delivery | None:
        lane = lane_key(done)
        for _ in range(_CONFLICT_RETRIES):
            head = await self._lanes.head(lane)
            if head is None or head.claimed is None or _position(head.claimed) != _position(done):
                return None  # a settle of a push sent again, or of one the lane already moved past
            entries = [e for e in await self._lanes.first(lane, 2) if _position(e) != _position(done)]
            if not entries:
                if await self._lanes.move(lane, head.etag, self._clock.now(), release=done):
                    return None  # idle; the head stays, remembering what left the lane, until quiet
                continue
            entry = entries[0]
            if await self._ready(lane, head, entry):
                now = self._clock.now()
                if await self._lanes.move(lane, head.etag, now, release=done, claim=entry, due=now):
                    return entry
            elif await self._lanes.move(lane, head.etag, self._clock.now(), release=done, blocked=True):
                return None  # idle until the fan-out of an earlier row kicks it
        log.warning("ordered lane contended: left to the sweep", extra={"subscription": lane.subscription_id})
        return None

    def _quiet(self, head: LaneHead) -> bool:
        """An idle, empty lane whose head can go: every row it could still hear of is past the horizon,
        so forgetting what left it (``last``) cannot make an old row look pending."""
        return head.changed is None or self._clock.now() - head.changed > self._horizon

    async def _touch(self, retried: Delivery, due: datetime) -> None:
        lane = lane_key(retried)
        head = await self._lanes.head(lane)
        if head is not None and head.claimed is not None and _position(head.claimed) == _position(retried):
            await self._lanes.touch(lane, head.etag, retried, due)

    # ------------------------------------------------------------------------------ log order

    async def _ready(self, lane: Lane, head: LaneHead | None, entry: Delivery) -> bool:
        """Whether every row of the resource before the entry's is accounted for: fanned out, holding
        nothing for this lane that has not left it, or past the horizon."""
        resource, before = entry.resource, entry.seq
        last = head.last if head is not None else None
        floor = await self._floor(resource, before)
        start = max(floor + 1, last[0] if last is not None else 0)
        if start >= before:
            return True
        ends: dict[int, int] = {}
        for first, end in await self._progress.fanned_out(resource, floor + 1, before):
            ends[first] = max(ends.get(first, end), end)
        firsts = sorted(ends)
        cutoff = self._clock.now() - self._horizon
        subscription: Subscription | None = None
        looked_up = False
        accounted = floor  # the resource-wide prefix this check proves
        prefix = True
        position = floor + 1
        while position < before:
            if position in ends:
                position = ends[position] + 1
                if prefix:
                    accounted = position - 1
                continue
            gap_end = min([f for f in firsts if f > position] + [before])
            if gap_end <= start:  # before what this lane has already passed: only the floor cares
                prefix = False
                position = gap_end
                continue
            low = max(position, start)
            rows = await self._rows(resource, low, gap_end)
            for seq in range(low, gap_end):
                row = rows.get(seq)
                if row is None or row.stored_at < cutoff:
                    if prefix and seq == accounted + 1:
                        accounted = seq
                    continue
                prefix = False
                if not looked_up:
                    subscription, looked_up = await self._subscription(entry), True
                if subscription is not None and self._holds(row, subscription, lane, last):
                    self._raise_floor(resource, accounted)
                    return False
            if low > position:
                prefix = False
            position = gap_end
        self._raise_floor(resource, accounted)
        return True

    def _holds(self, row: LogRow, subscription: Subscription, lane: Lane, last: tuple[int, int] | None) -> bool:
        """Whether the row has an event for the lane that has not left it (claimed before, or earlier)."""
        if subscription.ordering is not Ordering.SUBJECT:
            return False  # no longer ordered: nothing more will be appended
        filters = subscription.filters
        # Any subject might be a subunit of one it names (the registry is not asked here): held, to be safe.
        parent = filters.subjects[0] if filters.include_subunits and filters.subjects else None
        for index, body in enumerate(row.events):
            if last is not None and (row.seq, index) <= last:
                continue
            attributes = json.loads(body)
            if lane_of(attributes.get("subject")) == lane.subject and filters.matches(attributes, parent):
                return True
        return False

    async def _rows(self, resource: str, first: int, end: int) -> dict[int, LogRow]:
        rows: dict[int, LogRow] = {}
        seq = first
        while seq < end:
            page = await self._log.rows_from(resource, seq, min(_ROWS_PAGE, end - seq))
            for row in page:
                if row.seq < end:
                    rows[row.seq] = row
            if len(page) < min(_ROWS_PAGE, end - seq):
                break
            seq = page[-1].seq + 1
        return rows

    async def _floor(self, resource: str, before: int) -> int:
        known = self._floors.get(resource)
        if known is not None:
            return known
        saved = await self._lanes.floor(resource)
        if saved is None:
            saved = await self._aged_through(resource, before)
            await self._lanes.save_floor(resource, saved)
            self._floors_saved[resource] = (time.monotonic(), saved)
        self._floors[resource] = max(saved, self._floors.get(resource, -1))
        return self._floors[resource]

    async def _aged_through(self, resource: str, before: int) -> int:
        """The first floor of a resource: the last row before ``before`` committed past the horizon
        (rows increase in commit time with their sequence), found by bisection."""
        first = await self._log.first_seq(resource)
        if first is None or first >= before:
            return before - 1
        cutoff = self._clock.now() - self._horizon
        low, high = first - 1, before - 1  # low: known aged (or before the log); high: the candidate
        while low < high:
            middle = (low + high + 1) // 2
            rows = await self._log.rows_by_seq(resource, [middle])
            if not rows or rows[0].stored_at < cutoff:
                low = middle
            else:
                high = middle - 1
        return low

    def _raise_floor(self, resource: str, seq: int) -> None:
        if seq > self._floors.get(resource, -1):
            self._floors[resource] = seq

    async def _save_floors(self, *, force: bool = False) -> None:
        now = time.monotonic()
        for resource, floor in list(self._floors.items()):
            at, saved = self._floors_saved.get(resource, (0.0, -1))
            if floor > saved and (force or now - at > _FLOOR_SAVE_SECONDS):
                await self._lanes.save_floor(resource, floor)
                self._floors_saved[resource] = (now, floor)

    async def _subscription(self, delivery: Delivery) -> Subscription | None:
        key = (delivery.subscription_key, delivery.subscription_id)
        return await self._cached.get(key, lambda key: self._subscriptions.get_by_key(*key))

    async def _send(self, claimed: Sequence[Delivery], trace: dict[str, str] | None, *, resent: bool = False) -> None:
        if not claimed:
            return
        await self._save_floors()
        # Each claim is a send of its own (a lane may claim the same position again after a crash).
        occasion = self._clock.now()
        for start in range(0, len(claimed), MAX_DELIVERIES_PER_MESSAGE):
            chunk = claimed[start : start + MAX_DELIVERIES_PER_MESSAGE]
            await self._bus.send(
                OUTBOUND_QUEUE, [delivery_message(chunk, trace=trace, occasion=occasion, resent=resent)]
            )


async def _each(items: Sequence[T], work: Callable[[T], Awaitable[Delivery | None]]) -> list[Delivery | None]:
    slots = asyncio.Semaphore(_CONCURRENCY)

    async def one(item: T) -> Delivery | None:
        async with slots:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
