"""Ports of the subscriptions and delivery stage: storage, the delivery log and webhooks (the clock is
``shared.clock``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from shared.subscriptions.delivery import Delivery
from shared.subscriptions.model import Subscription
from shared.subscriptions.targets import Destination


class SubscriptionStore(Protocol):
    async def create(self, subscription: Subscription, identity: str) -> tuple[Subscription, bool]:
        """Store a new subscription, or return the identical one already stored (``False``)."""
        ...

    async def get(self, consumer: str, subscription_id: str) -> Subscription | None: ...

    async def get_by_key(self, index_key: str, subscription_id: str) -> Subscription | None: ...

    async def id_range(self, index_key: str, first_id: str, last_id: str) -> list[Subscription]:
        """Subscriptions of one index partition with ids from ``first_id`` to ``last_id`` (one query)."""
        ...

    async def page(self, consumer: str, after: str | None, limit: int) -> tuple[list[Subscription], str | None]: ...

    async def delete(self, subscription: Subscription) -> None: ...

    async def update(
        self, index_key: str, subscription_id: str, mutate: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        """Read-modify-write under optimistic concurrency; ``mutate`` returns None to change nothing.

        Returns the stored result, or None when nothing changed or the subscription is gone."""
        ...

    async def revise(
        self, index_key: str, subscription_id: str, mutate: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        """Like ``update``, for a change that may alter the filters and the identity (a PATCH): the index
        partitions the new filters are matched in and the consumer's identity row follow. Returns the
        stored result (the subscription as it is when ``mutate`` changes nothing), None when it is gone;
        raises ``IdenticalExists`` when the result would be another subscription of the consumer."""
        ...

    async def matching(self, index_keys: Sequence[str]) -> Matched:
        """Active subscriptions reached through each index partition (stored there, or referred to from it),
        and which of the no-subject partitions read belong to resources with ``includeSubunits`` or
        ``ordering: subject`` subscriptions."""
        ...


class Matched(dict[str, list[Subscription]]):
    """Subscriptions per index partition; ``subunits`` and ``ordered``: the no-subject partitions read
    (``<resource>|*:``) whose resource has subscriptions with ``includeSubunits``, or with ``ordering:
    subject``. Fan-out asks the contact registry, and writes completion markers, only for those."""

    def __init__(
        self,
        partitions: Mapping[str, list[Subscription]] | None = None,
        *,
        subunits: frozenset[str] = frozenset(),
        ordered: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(partitions or {})
        self.subunits = subunits
        self.ordered = ordered


class IdenticalExists(Exception):
    """The consumer has another subscription with the same target and filters."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as the delivery log keeps it."""

    subscription_id: str
    delivery_id: str
    event_id: str
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    outcome: str
    error: str | None = None
    response_excerpt: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    subscription_id: str
    delivery_id: str
    resource: str
    seq: int
    index: int
    event_id: str
    attempts: int
    first_attempt_at: datetime
    dead_at: datetime
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class Settled:
    """The deliveries of one queue message that a settle has handed on (attempted, refused, queued
    again or dropped), by delivery id: a redelivered message skips them instead of pushing again."""

    message_id: str
    at: datetime
    delivery_ids: Sequence[str]


class DeliveryLog(Protocol):
    async def record(self, attempts: Sequence[Attempt], settled: Settled | None = None) -> None:
        """The attempts, and what the message has settled, recorded with the last of them."""
        ...

    async def settled(self, message_id: str, now: datetime) -> set[str]:
        """The delivery ids settled so far for this message (looked up only when it is redelivered)."""
        ...

    async def attempts(
        self, subscription_id: str, limit: int, before: str | None
    ) -> tuple[list[Attempt], str | None]: ...

    async def expire(self, now: datetime) -> int: ...


class BackfillRecords(Protocol):
    """The backfills' records (shared/subscriptions/backfill.py), as the subscription's lifecycle ends them."""

    async def forget(self, subscription_id: str) -> None:
        """Deletes every backfill of a deleted subscription, with what it counted."""
        ...

    async def expire(self, now: datetime) -> int:
        """Deletes the backfills that ended longer than their retention ago; returns how many."""
        ...


class DeadLetterStore(Protocol):
    async def add(self, letters: Sequence[DeadLetter]) -> None: ...

    async def page(
        self, subscription_id: str, after: str | None, limit: int
    ) -> tuple[list[DeadLetter], str | None]: ...

    async def take(self, subscription_id: str, since: datetime | None, limit: int) -> list[DeadLetter]:
        """Dead letters to replay (oldest first); ``remove`` them once re-queued."""
        ...

    async def remove(self, letters: Sequence[DeadLetter]) -> None: ...

    async def count(self, subscription_id: str, limit: int) -> int:
        """How many dead letters the subscription has, counting no further than ``limit``."""
        ...


@dataclass(frozen=True)
class WebhookResponse:
    status: int | None
    headers: Mapping[str, str]
    latency_ms: int
    excerpt: str
    error: str | None = None
    # Why the connection guard would not connect to the address the endpoint resolved to (no request left).
    refused: str | None = None


class WebhookClient(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> WebhookResponse: ...

    async def options(self, url: str, headers: Mapping[str, str], timeout: float) -> WebhookResponse: ...

    async def close(self) -> None: ...


class DestinationClient(Protocol):
    """Publishes one push into a consumer's broker (an Event Grid topic, a Service Bus queue or topic) and
    answers as a webhook would: a 2xx status when the broker took it, 429/503 when it is throttled or
    busy, 401/403/404 when Herald may not publish there or the entity is gone, None when nothing answered.
    ``headers`` are the push's (content type, Standard Webhooks id, timestamp and signatures)."""

    async def publish(
        self, destination: Destination, message_id: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> WebhookResponse: ...

    async def close(self) -> None: ...


class TokenSource(Protocol):
    """Bearer tokens as Herald's own identity (its managed identity in Azure, devhost's issuer locally)."""

    async def token(self, scope: str) -> str:
        """A token for the OAuth 2.0 ``scope`` (``<audience>/.default``); raises when none can be had."""
        ...

    async def close(self) -> None: ...


class Final(StrEnum):
    """How a delivery ended, as a settle listener hears it."""

    PUSHED = "pushed"  # the endpoint took it
    FAILED = "failed"  # dead-lettered, refused, unauthorized, or the endpoint answered 410
    DROPPED = "dropped"  # not attempted: the subscription or the event is gone, or its backfill was cancelled


class SettleListener(Protocol):
    """Hears which deliveries of a message reached a final outcome, before the settle is recorded, so a
    message redelivered after a crash tells it again (a listener counts each message's deliveries once)."""

    async def settled(self, message_id: str | None, outcomes: Sequence[tuple[Delivery, Final]]) -> None: ...


@dataclass
class StatsSlot:
    """Ten minutes of one subscription's attempts as one process judged them."""

    delivered: int = 0
    failed: int = 0
    # log-scale bucket (shared/subscriptions/stats.py) -> attempts
    latency: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LastOutcome:
    at: datetime
    status_code: int | None
    latency_ms: int
    outcome: str
    error: str | None = None


@dataclass
class HourStats:
    """One process's running totals for one subscription and one clock hour: the row it replaces."""

    subscription_id: str
    hour: datetime  # the start of the clock hour (UTC)
    instance: str  # the process
    slots: dict[int, StatsSlot] = field(default_factory=dict)  # by ten-minute slot of the hour, 0 to 5
    # Deliveries sent to the retry queue and taken from it this hour, by the hour of their first attempt.
    retries: dict[datetime, list[int]] = field(default_factory=dict)  # first-attempt hour -> [queued, taken]
    last_success: LastOutcome | None = None
    last_failure: LastOutcome | None = None


class DeliveryStatsStore(Protocol):
    async def write(self, rows: Sequence[HourStats]) -> None:
        """Replace each row: a process's totals for its hour (processes never write the same row)."""
        ...

    async def read(self, subscription_id: str, since: datetime, until: datetime) -> list[HourStats]:
        """Every process's rows of the subscription for the hours from ``since`` to ``until``."""
        ...

    async def expire(self, now: datetime) -> int:
        """Drops what is older than the retention; returns how many day tables went."""
        ...


@dataclass(frozen=True)
class Lane:
    """One subscription's events of one subject (``ordering: subject``), pushed one at a time in log
    order; ``subject`` is the hash fan-out puts in ``Delivery.lane`` (shared/subscriptions/ordering.py)."""

    subscription_id: str
    subject: str


@dataclass(frozen=True)
class LaneHead:
    """A lane's head: the entry it has out (pushed, not yet delivered or dead), and what was checked."""

    etag: str
    claimed: Delivery | None  # with its attempt and first attempt, as last settled
    due: datetime | None  # when the claimed push is next expected to be attempted
    # The position (seq, index) of the entry claimed last: it and everything before it left the lane.
    last: tuple[int, int] | None
    waiting: bool = False  # idle, and entries may wait: appended since it moved, or the next was not ready
    changed: datetime | None = None  # its last append or move


class LaneStore(Protocol):
    """Lanes: entries keyed by log position, and one head, in one partition per lane, written under the
    head's ETag so that of two writers racing for a lane exactly one wins."""

    async def append(self, lane: Lane, deliveries: Sequence[Delivery], now: datetime) -> None:
        """Add entries (idempotent), touching the head in the same transaction, so a claim that read the
        head before the append fails."""
        ...

    async def head(self, lane: Lane) -> LaneHead | None: ...

    async def first(self, lane: Lane, limit: int) -> list[Delivery]:
        """The entries with the smallest positions."""
        ...

    async def move(
        self,
        lane: Lane,
        etag: str | None,
        now: datetime,
        *,
        release: Delivery | None = None,
        claim: Delivery | None = None,
        due: datetime | None = None,
        blocked: bool = False,
        drop: bool = False,
    ) -> bool:
        """One transaction, only if the head still has ``etag`` (None: there is no head): delete the
        ``release``d entry, then set the head to ``claim`` due at ``due`` (None: idle; ``blocked``: with
        entries that must wait), or ``drop`` it (the lane is empty and quiet). False when another writer
        changed the head first."""
        ...

    async def touch(self, lane: Lane, etag: str, claimed: Delivery, due: datetime) -> bool:
        """The claimed entry goes on (retried or deferred to ``due``); False when the head changed."""
        ...

    def heads(self, forget_before: datetime) -> AsyncIterator[tuple[Lane, LaneHead]]:
        """The heads of the lanes that may need the sweep: every lane with entries or a claim (and lanes
        idle a while, until their heads are dropped), read without scanning the lanes. A lane without a
        head whose listing is older than ``forget_before`` stops being listed."""
        ...

    async def floor(self, resource: str) -> int | None:
        """The resource's saved fan-out floor: every row up to it was fanned out (or is past the horizon)."""
        ...

    async def save_floor(self, resource: str, seq: int) -> None: ...


class FanoutProgress(Protocol):
    """Which inbound messages' fan-out completed (their last fan-out marker is written)."""

    async def fanned_out(self, resource: str, first: int, before: int) -> list[tuple[int, int]]:
        """(first, last) rows of each completed inbound message that starts at ``first`` or later and
        before ``before``, in order."""
        ...
