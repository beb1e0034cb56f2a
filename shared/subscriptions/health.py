"""Subscription endpoint health: failure tracking, auto-disable, and the events Herald publishes about it.

Herald's operational events go into its own hub (resource ``urn:herald:subscriptions``, subject the
consumer), where a consumer subscribes to them like to any event. Each is published once per change
of the stored subscription (the update that changes it publishes; a concurrent worker finds nothing
left to change), with an id derived from the change, so publishing it again is a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.clock import Clock
from shared.events.model import format_time, validate_event
from shared.events.publishing import EventPublisher
from shared.subscriptions.delivery import Verdict
from shared.subscriptions.model import Status, Subscription
from shared.subscriptions.ports import DeadLetter, SubscriptionStore
from shared.urns import SUBSCRIPTIONS_URN

log = logging.getLogger(__name__)

DISABLED_EVENT_TYPE = "herald.subscription.disabled"
FAILING_EVENT_TYPE = "herald.subscription.failing"
RECOVERED_EVENT_TYPE = "herald.subscription.recovered"
EXHAUSTED_EVENT_TYPE = "herald.delivery.exhausted"
_EXHAUSTED_LISTED = 100  # dead deliveries an exhausted event names; ``count`` says how many there were
_EXHAUSTED_BYTES = 32 * 1024  # and no more than this of them, well within an event's 64 KB


class SubscriptionEvents:
    """Publishes Herald's own events about subscriptions into the hub, where consumers can subscribe to them."""

    def __init__(self, publisher: EventPublisher, clock: Clock) -> None:
        self._publisher = publisher
        self._clock = clock

    async def disabled(self, subscription: Subscription, reason: str) -> None:
        now = self._clock.now()
        document = {
            "specversion": "1.0",
            "id": f"{subscription.id}-disabled-{int(now.timestamp())}",
            "source": SUBSCRIPTIONS_URN,
            "type": DISABLED_EVENT_TYPE,
            "resource": SUBSCRIPTIONS_URN,
            "subject": subscription.consumer,
            "time": format_time(now),
            "datacontenttype": "application/json",
            "data": {
                "subscriptionId": subscription.id,
                "endPoint": subscription.endpoint,
                "resourceFilter": subscription.filters.resource,
                "reason": reason,
                "failingSince": subscription.failing_since.isoformat() if subscription.failing_since else None,
            },
        }
        await self._publisher.publish([validate_event(document, received_at=now)])

    async def failing(self, subscription: Subscription) -> None:
        """The circuit breaker opened for the subscription's endpoint (``circuit_opened_at``)."""
        opened = subscription.circuit_opened_at
        assert opened is not None
        await self._publish(
            subscription,
            FAILING_EVENT_TYPE,
            f"{subscription.id}-failing-{_millis(opened)}",
            opened,
            {"circuitOpenedAt": format_time(opened), "failingSince": _time_or_none(subscription.failing_since)},
        )

    async def recovered(self, subscription: Subscription, opened: datetime) -> None:
        """The first push that succeeded after the circuit opened at ``opened``."""
        now = self._clock.now()
        await self._publish(
            subscription,
            RECOVERED_EVENT_TYPE,
            f"{subscription.id}-recovered-{_millis(opened)}",
            now,
            {"circuitOpenedAt": format_time(opened), "recoveredAt": format_time(now)},
        )

    async def exhausted(self, subscription: Subscription, letters: Sequence[DeadLetter]) -> None:
        """Deliveries of one settle that went to the dead-letter store."""
        listed: list[dict[str, Any]] = []
        size = 0
        for letter in sorted(letters, key=lambda letter: (letter.dead_at, letter.delivery_id))[:_EXHAUSTED_LISTED]:
            item = {
                "deliveryId": letter.delivery_id,
                "eventId": letter.event_id[:256],
                "attempts": letter.attempts,
                "lastStatus": letter.last_status,
                "lastError": (letter.last_error or "")[:200] or None,
            }
            size += len(json.dumps(item))
            if size > _EXHAUSTED_BYTES:
                break
            listed.append(item)
        # The same deliveries in the same life (a replay starts a new one) make the same id.
        lives = sorted(f"{letter.delivery_id}@{_millis(letter.first_attempt_at)}" for letter in letters)
        digest = hashlib.sha256("\n".join(lives).encode()).hexdigest()[:24]
        await self._publish(
            subscription,
            EXHAUSTED_EVENT_TYPE,
            f"{subscription.id}-exhausted-{digest}",
            max(letter.dead_at for letter in letters),
            {"count": len(letters), "deliveries": listed, "truncated": len(listed) < len(letters)},
        )

    async def _publish(
        self, subscription: Subscription, event_type: str, event_id: str, at: datetime, data: Mapping[str, Any]
    ) -> None:
        document = {
            "specversion": "1.0",
            "id": event_id,
            "source": SUBSCRIPTIONS_URN,
            "type": event_type,
            "resource": SUBSCRIPTIONS_URN,
            "subject": subscription.consumer,
            "time": format_time(at),
            "datacontenttype": "application/json",
            "data": {
                "subscriptionId": subscription.id,
                "endPoint": subscription.endpoint,
                "resourceFilter": subscription.filters.resource,
                **data,
            },
        }
        await self._publisher.publish([validate_event(document, received_at=self._clock.now())])


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time_or_none(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


class SubscriptionHealth:
    def __init__(
        self, store: SubscriptionStore, events: SubscriptionEvents, clock: Clock, *, disable_after: timedelta
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._disable_after = disable_after

    async def disable(self, subscription: Subscription, reason: str) -> None:
        def mutate(current: Subscription) -> Subscription | None:
            # An endpoint changed since (a PATCH) is not judged by what the previous one answered.
            if current.status is Status.DISABLED or current.endpoint != subscription.endpoint:
                return None
            return current.with_status(Status.DISABLED, reason=reason)

        updated = await self._store.update(subscription.index_key, subscription.id, mutate)
        if updated is not None:
            log.warning("subscription disabled", extra={"subscription": subscription.id, "reason": reason})
            await self._events.disabled(updated, reason)

    async def observe(self, outcomes: Sequence[tuple[Subscription, Verdict]]) -> None:
        by_subscription: dict[str, tuple[Subscription, set[Verdict]]] = {}
        for subscription, verdict in outcomes:
            by_subscription.setdefault(subscription.id, (subscription, set()))[1].add(verdict)
        now = self._clock.now()
        for subscription, verdicts in by_subscription.values():
            if Verdict.GONE in verdicts:
                await self.disable(subscription, "the endpoint answered 410 Gone")
            elif Verdict.DELIVERED in verdicts:
                if subscription.failing_since is not None or subscription.circuit_opened_at is not None:
                    await self._recover(subscription)
            elif subscription.failing_since is None:
                await self._store.update(subscription.index_key, subscription.id, _failing(subscription.endpoint, now))
            elif now - subscription.failing_since >= self._disable_after:
                days = self._disable_after.total_seconds() / 86400
                await self.disable(subscription, f"every delivery failed for {days:g} days")

    async def _recover(self, subscription: Subscription) -> None:
        opened: list[datetime | None] = [None]

        def recovered(current: Subscription) -> Subscription | None:
            opened[0] = current.circuit_opened_at  # as stored when the write that counts is made
            if current.failing_since is None and current.circuit_opened_at is None:
                return None
            if current.endpoint != subscription.endpoint:
                # Changed since the worker read it (a PATCH): a success of the old endpoint says nothing of the new.
                opened[0] = None
                return None
            return replace(current, failing_since=None, circuit_opened_at=None)

        updated = await self._store.update(subscription.index_key, subscription.id, recovered)
        if updated is not None and opened[0] is not None:
            log.info("subscription recovered", extra={"subscription": subscription.id})
            await self._events.recovered(updated, opened[0])

    async def circuits_opened(self, subscriptions: Sequence[Subscription]) -> None:
        """Subscriptions whose endpoint's circuit breaker a worker found open: each is marked once,
        and that write publishes ``herald.subscription.failing``."""
        now = self._clock.now()

        def opened(endpoint: str) -> Callable[[Subscription], Subscription | None]:
            def mutate(current: Subscription) -> Subscription | None:
                # Marked already, not active, or its endpoint changed since the worker read it.
                if current.circuit_opened_at is not None or current.status is not Status.ACTIVE:
                    return None
                return replace(current, circuit_opened_at=now) if current.endpoint == endpoint else None

            return mutate

        seen: set[str] = set()
        for subscription in subscriptions:
            if subscription.circuit_opened_at is not None or subscription.id in seen:
                continue  # marked already, as far as this worker's copy says
            seen.add(subscription.id)
            updated = await self._store.update(subscription.index_key, subscription.id, opened(subscription.endpoint))
            if updated is not None:
                log.warning("subscription failing: circuit open", extra={"subscription": subscription.id})
                await self._events.failing(updated)

    async def exhausted(self, letters: Sequence[tuple[Subscription, DeadLetter]]) -> None:
        """One ``herald.delivery.exhausted`` per subscription for the dead letters of a settle. Herald's
        own operational events that die announce nothing: that would feed on itself."""
        by_subscription: dict[str, tuple[Subscription, list[DeadLetter]]] = {}
        for subscription, letter in letters:
            if letter.resource != SUBSCRIPTIONS_URN:
                by_subscription.setdefault(subscription.id, (subscription, []))[1].append(letter)
        for subscription, dead in by_subscription.values():
            await self._events.exhausted(subscription, dead)


def _failing(endpoint: str, now: datetime) -> Callable[[Subscription], Subscription | None]:
    def mutate(current: Subscription) -> Subscription | None:
        # Marked already, or its endpoint changed since the worker read it: the failure was the old one's.
        if current.failing_since is not None or current.endpoint != endpoint:
            return None
        return replace(current, failing_since=now)

    return mutate
