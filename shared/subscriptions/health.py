"""Subscription endpoint health: failure tracking, auto-disable, and the events Herald publishes about it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.events.model import format_time, validate_event
from shared.events.publishing import EventPublisher
from shared.subscriptions.delivery import Verdict
from shared.subscriptions.model import Status, Subscription
from shared.subscriptions.ports import SubscriptionStore
from shared.urns import SUBSCRIPTIONS_URN

log = logging.getLogger(__name__)

DISABLED_EVENT_TYPE = "herald.subscription.disabled"


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
            if current.status is Status.DISABLED:
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
                if subscription.failing_since is not None:
                    await self._store.update(subscription.index_key, subscription.id, _recovered)
            elif subscription.failing_since is None:
                await self._store.update(subscription.index_key, subscription.id, lambda s: _failing(s, now))
            elif now - subscription.failing_since >= self._disable_after:
                days = self._disable_after.total_seconds() / 86400
                await self.disable(subscription, f"every delivery failed for {days:g} days")


def _recovered(subscription: Subscription) -> Subscription | None:
    return replace(subscription, failing_since=None) if subscription.failing_since is not None else None


def _failing(subscription: Subscription, now: datetime) -> Subscription | None:
    return replace(subscription, failing_since=now) if subscription.failing_since is None else None
