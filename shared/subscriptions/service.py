"""Managing subscriptions: create, change, delete, enable, rotate, replay, and what a consumer reads
about one (its deliveries, dead letters and health) or checks (a test push). The validation handshake
that makes one active is ``validation.py``."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.endpoint_policy import EndpointPolicy
from shared.events.model import format_time
from shared.identity.authorization import AccessRequest, Action, Authorizer
from shared.identity.rate_limit import LeasedTokenBuckets
from shared.messaging import Bus
from shared.notifications.event_orders import NotificationSpec, spec_problems
from shared.subscriptions.changes import ChangeRefused, SubscriptionChange
from shared.subscriptions.delivery import Delivery, RetryPolicy, Verdict
from shared.subscriptions.health import SubscriptionHealth
from shared.subscriptions.messages import (
    MAX_DELIVERIES_PER_MESSAGE,
    OUTBOUND_QUEUE,
    VALIDATION_QUEUE,
    delivery_message,
    validation_message,
)
from shared.subscriptions.model import (
    SUBSCRIPTION_CACHE_SECONDS,
    Filters,
    Ordering,
    Secrets,
    Status,
    Subscription,
    identity_of,
    new_secret,
)
from shared.subscriptions.ports import (
    Attempt,
    BackfillRecords,
    DeadLetter,
    DeadLetterStore,
    DeliveryLog,
    DeliveryStatsStore,
    SubscriptionStore,
)
from shared.subscriptions.push import Pusher
from shared.subscriptions.stats import DEAD_LETTERS_COUNTED, HealthReport, health_report, history_start
from shared.subscriptions.targets import (
    Destination,
    DestinationKind,
    EndpointAuthentication,
    HeraldOwn,
    TargetProblem,
    check_topic_endpoint,
)

log = logging.getLogger(__name__)

SECRET_OVERLAP = timedelta(hours=24)
# A worker may sign with a subscription it read before a rotation, for a few seconds: with the secret
# that rotation shows, never with the one a second rotation would. So rotations are this far apart.
ROTATION_SPACING = timedelta(seconds=6 * SUBSCRIPTION_CACHE_SECONDS)
# A changed endpoint is validated this long after the change (see ``update``).
ENDPOINT_SETTLE = timedelta(seconds=SUBSCRIPTION_CACHE_SECONDS + 0.5)


class SubscriptionNotFound(Exception):
    pass


class RotatedRecently(Exception):
    """The secret was rotated less than ``ROTATION_SPACING`` ago."""

    def __init__(self, wait: timedelta) -> None:
        self.retry_after_seconds = math.ceil(wait.total_seconds())
        super().__init__(f"the secret was rotated moments ago; rotate again in {self.retry_after_seconds} s")


class SubscriptionForbidden(Exception):
    """The resource's policy does not let the consumer subscribe with these filters."""


class NotAWebhook(Exception):
    """A notification subscription: it has no webhook to push a test event to or to report on."""


class NotValidated(Exception):
    """The subscription's endpoint has not accepted the validation event (it is pending, or was disabled
    without ever accepting it), so it has not shown that it wants Herald's pushes, test pushes included."""


class TooManyTestPushes(Exception):
    def __init__(self, wait_seconds: float) -> None:
        self.retry_after_seconds = max(1, math.ceil(wait_seconds))
        super().__init__(f"test pushes are limited; push again in {self.retry_after_seconds} s")


TEST_EVENT_TYPE = "herald.subscription.test"
# A test push checks a receiver; it is not a way to send Herald's requests at will: 10 at once, then
# one every 6 s, per subscription, across instances.
TEST_PUSH_BURST = 10
TEST_PUSHES_PER_SECOND = 1 / 6


@dataclass(frozen=True)
class PushReport:
    """What one test push came to."""

    event_id: str
    webhook_id: str
    at: datetime
    delivered: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


class SubscriptionService:
    def __init__(
        self,
        *,
        store: SubscriptionStore,
        dead_letters: DeadLetterStore,
        delivery_log: DeliveryLog,
        bus: Bus,
        pusher: Pusher,
        health: SubscriptionHealth,
        clock: Clock,
        policy: RetryPolicy,
        public_base_url: str,
        authorizer: Authorizer,
        endpoints: EndpointPolicy,
        delivery_stats: DeliveryStatsStore,
        test_pushes: LeasedTokenBuckets | None = None,
        own: HeraldOwn | None = None,
        backfills: BackfillRecords | None = None,
    ) -> None:
        """``test_pushes``: the shared rate of test pushes per subscription (None: unlimited). ``own``:
        Herald's own namespaces, topics and audiences, which no subscription may name. ``backfills``:
        the subscriptions' backfill records, deleted with them and expired with the delivery log."""
        self._backfills = backfills
        self._own = own or HeraldOwn()
        self._delivery_stats = delivery_stats
        self._test_pushes = test_pushes
        self._policy = policy
        self._authorizer = authorizer
        self._endpoints = endpoints
        self._store = store
        self._dead_letters = dead_letters
        self._delivery_log = delivery_log
        self._bus = bus
        self._pusher = pusher
        self._health = health
        self._clock = clock
        self._base_url = public_base_url.rstrip("/")

    # ------------------------------------------------------------------------------------ API

    async def create(
        self,
        consumer: str,
        filters: Filters,
        *,
        endpoint: str | None = None,
        notification: NotificationSpec | None = None,
        ordering: Ordering = Ordering.NONE,
        destination: Destination | None = None,
        authentication: EndpointAuthentication | None = None,
    ) -> tuple[Subscription, str | None, bool]:
        """A subscription with exactly one target: a webhook ``endpoint`` (with the ``authentication`` its
        gateway asks for), a broker ``destination`` or a ``notification``.

        Returns (subscription, secret shown once or None, created)."""
        # Checks that apply to every subscription (webhook or notification) belong above this branch.
        if endpoint is not None:
            await self._endpoints.check(endpoint)
        if destination is not None or authentication is not None:
            self.check_target(endpoint or "", destination, authentication)
            endpoint = destination.address if destination is not None else endpoint
        await self._authorize(consumer, filters)
        if notification is not None:
            return await self._create_notification(consumer, filters, notification, ordering)
        assert endpoint is not None  # the request schema requires endPoint or notification
        secrets = Secrets.new()
        candidate = Subscription(
            id=f"sub_{uuid.uuid4().hex}",
            consumer=consumer,
            endpoint=endpoint,
            filters=filters,
            status=Status.PENDING,
            created=self._clock.now(),
            secrets=secrets,
            ordering=ordering,
            destination=destination,
            authentication=authentication,
        )
        subscription, created = await self._store.create(candidate, identity_of(candidate))
        if created or subscription.status is Status.PENDING:
            # As the anchor does, an identical create of a pending subscription asks for validation again.
            await self._bus.send(VALIDATION_QUEUE, [validation_message(subscription.index_key, subscription.id)])
        shown = secrets.current if created and subscription.secrets.current == secrets.current else None
        return subscription, shown, created

    def check_target(
        self, endpoint: str, destination: Destination | None, authentication: EndpointAuthentication | None
    ) -> None:
        """What the request schema cannot know: local mode's loopback rule for a destination, that
        authentication belongs to a webhook, that a token's audience is the endpoint's host, and that
        neither names what is Herald's own. Raises ``TargetProblem``."""
        if destination is not None and authentication is not None:
            raise TargetProblem(
                "authentication", "applies to an endPoint; Herald publishes to a destination with its own identity"
            )
        if destination is not None and destination.kind is DestinationKind.EVENT_GRID_TOPIC:
            assert destination.topic_endpoint is not None
            check_topic_endpoint(destination.topic_endpoint, loopback_allowed=self._endpoints.allows_loopback)
        self._own.check(endpoint, destination, authentication)

    async def _create_notification(
        self, consumer: str, filters: Filters, spec: NotificationSpec, ordering: Ordering
    ) -> tuple[Subscription, str | None, bool]:
        """A notification subscription: no webhook, so no handshake and no secret; active at once.

        Its matching events become notification orders (shared/subscriptions/notification_target.py)."""
        candidate = Subscription(
            id=f"sub_{uuid.uuid4().hex}",
            consumer=consumer,
            endpoint="",
            filters=filters,
            status=Status.ACTIVE,
            created=self._clock.now(),
            secrets=Secrets(new_secret()),  # never used to sign: nothing is pushed
            notification=spec,
            ordering=ordering,
        )
        subscription, created = await self._store.create(candidate, identity_of(candidate))
        return subscription, None, created

    async def get(self, consumer: str, subscription_id: str) -> Subscription:
        subscription = await self._store.get(consumer, subscription_id)
        if subscription is None:
            raise SubscriptionNotFound(subscription_id)
        return subscription

    async def page(self, consumer: str, after: str | None, limit: int) -> tuple[list[Subscription], str | None]:
        return await self._store.page(consumer, after, limit)

    async def delete(self, consumer: str, subscription_id: str) -> None:
        subscription = await self.get(consumer, subscription_id)
        await self._store.delete(subscription)
        if self._backfills is not None:  # after: a turn of a running backfill then finds it gone and stops
            await self._backfills.forget(subscription.id)

    async def _authorize(self, consumer: str, filters: Filters) -> None:
        """The policy must let the consumer subscribe to every subject and type its filters name."""
        asked = [
            AccessRequest(consumer, filters.resource, subject, event_type, Action.SUBSCRIBE)
            for subject in filters.subjects or (None,)
            for event_type in filters.types or (None,)
        ]
        refused = [
            request
            for request, allowed in zip(asked, await self._authorizer.allowed(asked), strict=True)
            if not allowed
        ]
        if refused:
            first = refused[0]
            raise SubscriptionForbidden(
                f"{consumer} may not subscribe to {filters.resource}"
                + (
                    f" for {first.subject}"
                    if first.subject
                    else " without a subjectFilter (only the resource's owners may)"
                )
                + (f" with typeFilter {first.type}" if first.type else "")
            )

    async def update(self, consumer: str, subscription_id: str, change: SubscriptionChange) -> Subscription:
        """``PATCH``: the change applied, checked as a create with the result is (endpoint policy,
        authorization, the notification's rules), effective for the next event matched. A new endpoint
        makes the subscription pending until it accepts the validation event: nothing is pushed to it
        before (deliveries already queued wait for it, see the outbound worker). Raises
        SubscriptionNotFound, ChangeRefused, FilterProblem, EndpointRefused, TargetProblem,
        SubscriptionForbidden or IdenticalExists; nothing is changed then."""
        current = await self.get(consumer, subscription_id)
        candidate = change.applied_to(current)
        new_endpoint = candidate.endpoint != current.endpoint
        self.check_target(candidate.endpoint, candidate.destination, candidate.authentication)
        if new_endpoint and candidate.destination is None:  # a destination's address is no URL to check
            await self._endpoints.check(candidate.endpoint)
        if candidate.notification is not None:
            problems = spec_problems(candidate.notification, candidate.filters.resource)
            if problems:
                raise ChangeRefused("; ".join(f"{p.location}: {p.detail}" for p in problems))
        await self._authorize(consumer, candidate.filters)
        # Applied again to the row as stored when written (under its ETag), so a validation or health
        # update made meanwhile is kept.
        updated = await self._store.revise(current.index_key, current.id, change.applied_to)
        if updated is None:
            raise SubscriptionNotFound(subscription_id)
        if new_endpoint and updated.status is Status.PENDING:
            # Validated once every worker's copy read before this change has expired: a copy with the old
            # endpoint can then no longer push an event matched after the new one is active.
            now = self._clock.now()
            await self._bus.send(
                VALIDATION_QUEUE,
                [validation_message(updated.index_key, updated.id, first=now, deliver_at=now + ENDPOINT_SETTLE)],
            )
        return updated

    async def enable(self, consumer: str, subscription_id: str) -> Subscription:
        """A disabled (or pending) subscription is validated again; it is active once its endpoint answers."""
        subscription = await self.get(consumer, subscription_id)
        if subscription.status is Status.ACTIVE:
            return subscription

        def mutate(current: Subscription) -> Subscription | None:
            # A destination's earlier code is void: the validation event published now carries a new one.
            return replace(
                current, status=Status.PENDING, disabled_reason=None, failing_since=None, validation_code_hash=None
            )

        updated = await self._store.update(subscription.index_key, subscription.id, mutate) or subscription
        await self._bus.send(
            VALIDATION_QUEUE, [validation_message(updated.index_key, updated.id, first=self._clock.now())]
        )
        return updated

    async def rotate_secret(self, consumer: str, subscription_id: str) -> tuple[Subscription, str]:
        """The upcoming secret becomes current and is shown; every push already carries its signature,
        whatever copy of the subscription a worker holds (see ``Secrets``)."""
        subscription = await self.get(consumer, subscription_id)
        if subscription.secrets.upcoming is None:
            # Stored before secrets were made ahead: make one now, and rotate to it once every copy a
            # worker read before this write has expired. Once per such subscription, a slower answer.
            def ahead(current: Subscription) -> Subscription | None:
                if current.secrets.upcoming is not None:
                    return None
                return replace(current, secrets=replace(current.secrets, upcoming=new_secret()))

            await self._store.update(subscription.index_key, subscription.id, ahead)
            await asyncio.sleep(SUBSCRIPTION_CACHE_SECONDS + 0.5)
        now = self._clock.now()

        def mutate(current: Subscription) -> Subscription | None:
            expires = current.secrets.previous_expires
            if expires is not None and (wait := expires - SECRET_OVERLAP + ROTATION_SPACING - now) > timedelta(0):
                raise RotatedRecently(wait)
            return replace(current, secrets=current.secrets.rotated(now, SECRET_OVERLAP))

        updated = await self._store.update(subscription.index_key, subscription.id, mutate)
        if updated is None:
            raise SubscriptionNotFound(subscription_id)
        return updated, updated.secrets.current

    async def replay(self, consumer: str, subscription_id: str, since: datetime | None) -> int:
        """Queue the subscription's dead letters again as first attempts; returns how many."""
        subscription = await self.get(consumer, subscription_id)
        asked_at = self._clock.now()
        replayed = 0
        while True:
            letters = await self._dead_letters.take(subscription.id, since, MAX_DELIVERIES_PER_MESSAGE)
            if not letters:
                return replayed
            redeliveries = [_redelivery(subscription, letter) for letter in letters]
            await self._bus.send(OUTBOUND_QUEUE, [delivery_message(redeliveries, occasion=asked_at)])
            await self._dead_letters.remove(letters)
            replayed += len(letters)

    async def dead_letters(
        self, consumer: str, subscription_id: str, after: str | None, limit: int
    ) -> tuple[list[DeadLetter], str | None]:
        """A page of the consumer's subscription's dead letters, oldest first."""
        subscription = await self.get(consumer, subscription_id)
        return await self._dead_letters.page(subscription.id, after, limit)

    async def deliveries(
        self, consumer: str, subscription_id: str, limit: int, before: str | None
    ) -> tuple[list[Attempt], str | None]:
        """A page of the consumer's subscription's delivery attempts, newest first."""
        subscription = await self.get(consumer, subscription_id)
        return await self._delivery_log.attempts(subscription.id, limit, before)

    async def expire_delivery_log(self) -> int:
        """Drops the delivery log's entries, and the delivery statistics, older than their retention;
        returns how many day tables went."""
        now = self._clock.now()
        # Each runs whatever the others do: one failing must not keep the others' data past its retention.
        backfills, attempts, stats = await asyncio.gather(
            self._backfills.expire(now) if self._backfills is not None else asyncio.sleep(0, 0),
            self._delivery_log.expire(now),
            self._delivery_stats.expire(now),
            return_exceptions=True,
        )
        counts: list[int] = []
        for outcome in (backfills, attempts, stats):
            if isinstance(outcome, BaseException):
                raise outcome
            counts.append(outcome)
        if counts[0]:
            log.info("backfills expired", extra={"backfills": counts[0]})
        return counts[1] + counts[2]

    async def health(self, consumer: str, subscription_id: str) -> HealthReport:
        """Delivery figures of the last hour, day and 14 days, dead letters and the circuit state."""
        subscription = await self._webhook(consumer, subscription_id)
        now = self._clock.now()
        rows, dead = await asyncio.gather(
            self._delivery_stats.read(subscription.id, history_start(now), now),
            self._dead_letters.count(subscription.id, DEAD_LETTERS_COUNTED + 1),
        )
        return health_report(subscription, rows, now, dead_letters=dead, retry_horizon=self._policy.horizon)

    async def test_push(self, consumer: str, subscription_id: str) -> PushReport:
        """Push a signed ``herald.subscription.test`` event to the endpoint now, and report the attempt. Not
        retried, logged or counted: it checks the receiver only. Refused (``NotValidated``) while the
        subscription is pending: an endpoint gets nothing before it accepted the validation event."""
        subscription = await self._webhook(consumer, subscription_id)
        if subscription.status is Status.PENDING or (
            subscription.status is Status.DISABLED and subscription.validated_endpoint != subscription.endpoint
        ):
            state = "pending" if subscription.status is Status.PENDING else "disabled"
            raise NotValidated(
                f"subscription {subscription_id} is {state} and its endpoint has not accepted the validation "
                "event; it gets nothing before it has (enable the subscription to validate it); nothing was pushed"
            )
        if self._test_pushes is not None:
            wait = await self._test_pushes.take(f"test-push:{subscription.id}")
            if wait is not None:
                raise TooManyTestPushes(wait)
        now = self._clock.now()
        event_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": f"{self._base_url}/api/v1/subscriptions/{subscription.id}",
                "type": TEST_EVENT_TYPE,
                "subject": subscription.consumer,
                "time": format_time(now),
                "datacontenttype": "application/json",
                "data": {"subscriptionId": subscription.id, "test": True},
            },
            separators=(",", ":"),
        ).encode()
        webhook_id = f"msg_{event_id.replace('-', '')}"
        pushed = await self._pusher.push(
            subscription,
            webhook_id,
            body,
            attempt=1,
            first_attempt_at=None,
            at=now,
        )
        response = pushed.response
        delivered = pushed.decision.verdict is Verdict.DELIVERED
        return PushReport(
            event_id=event_id,
            webhook_id=webhook_id,
            at=pushed.at,
            delivered=delivered,
            status_code=response.status,
            latency_ms=response.latency_ms,
            error=None if delivered else response.error or f"the endpoint answered {response.status}",
            response_excerpt=response.excerpt or None,
        )

    async def _webhook(self, consumer: str, subscription_id: str) -> Subscription:
        """The consumer's subscription that pushes (to a webhook or a broker destination)."""
        subscription = await self.get(consumer, subscription_id)
        if subscription.notification is not None:
            raise NotAWebhook(
                f"subscription {subscription_id} notifies people instead of pushing to a webhook; "
                "its orders are in GET /api/v1/subscriptions/{id}/deliveries"
            )
        return subscription


def _redelivery(subscription: Subscription, letter: DeadLetter) -> Delivery:
    """A dead letter queued again as a first attempt, with a fresh retry schedule."""
    return Delivery(subscription.index_key, subscription.id, letter.resource, letter.seq, letter.index)
