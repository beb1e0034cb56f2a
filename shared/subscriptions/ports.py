"""Ports of the subscriptions and delivery stage: storage, the delivery log and webhooks (the clock is
``shared.clock``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.subscriptions.model import Subscription


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

    async def matching(self, index_keys: Sequence[str]) -> Mapping[str, list[Subscription]]:
        """Active subscriptions in each index partition."""
        ...


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


class DeadLetterStore(Protocol):
    async def add(self, letters: Sequence[DeadLetter]) -> None: ...

    async def page(
        self, subscription_id: str, after: str | None, limit: int
    ) -> tuple[list[DeadLetter], str | None]: ...

    async def take(self, subscription_id: str, since: datetime | None, limit: int) -> list[DeadLetter]:
        """Dead letters to replay (oldest first); ``remove`` them once re-queued."""
        ...

    async def remove(self, letters: Sequence[DeadLetter]) -> None: ...


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
