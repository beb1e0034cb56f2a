"""Managing subscriptions, and the validation handshake that makes them active."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from shared.clock import Clock
from shared.endpoint_policy import EndpointPolicy
from shared.events.model import format_time
from shared.identity.authorization import AccessRequest, Action, Authorizer
from shared.messaging import Bus
from shared.notifications.event_orders import NotificationSpec
from shared.subscriptions.delivery import Delivery, RetryPolicy, Verdict
from shared.subscriptions.health import SubscriptionHealth
from shared.subscriptions.messages import (
    MAX_DELIVERIES_PER_MESSAGE,
    OUTBOUND_QUEUE,
    VALIDATION_QUEUE,
    ValidationMessage,
    delivery_message,
    validation_message,
)
from shared.subscriptions.model import (
    SUBSCRIPTION_CACHE_SECONDS,
    Filters,
    Secrets,
    Status,
    Subscription,
    identity_hash,
    new_secret,
)
from shared.subscriptions.ports import (
    Attempt,
    DeadLetter,
    DeadLetterStore,
    DeliveryLog,
    SubscriptionStore,
    WebhookClient,
)
from shared.subscriptions.push import Pusher

log = logging.getLogger(__name__)

VALIDATION_EVENT_TYPE = "platform.events.validatesubscription"
SECRET_OVERLAP = timedelta(hours=24)
# A worker may sign with a subscription it read before a rotation, for a few seconds: with the secret
# that rotation shows, never with the one a second rotation would. So rotations are this far apart.
ROTATION_SPACING = timedelta(seconds=6 * SUBSCRIPTION_CACHE_SECONDS)


class SubscriptionNotFound(Exception):
    pass


class RotatedRecently(Exception):
    """The secret was rotated less than ``ROTATION_SPACING`` ago."""

    def __init__(self, wait: timedelta) -> None:
        self.retry_after_seconds = math.ceil(wait.total_seconds())
        super().__init__(f"the secret was rotated moments ago; rotate again in {self.retry_after_seconds} s")


class SubscriptionForbidden(Exception):
    """The resource's policy does not let the consumer subscribe with these filters."""


class SubscriptionService:
    def __init__(
        self,
        *,
        store: SubscriptionStore,
        dead_letters: DeadLetterStore,
        delivery_log: DeliveryLog,
        bus: Bus,
        client: WebhookClient,
        health: SubscriptionHealth,
        clock: Clock,
        policy: RetryPolicy,
        origin: str,
        public_base_url: str,
        timeout_seconds: float,
        authorizer: Authorizer,
        endpoints: EndpointPolicy,
    ) -> None:
        self._authorizer = authorizer
        self._endpoints = endpoints
        self._store = store
        self._dead_letters = dead_letters
        self._delivery_log = delivery_log
        self._bus = bus
        self._client = client
        self._health = health
        self._clock = clock
        self._origin = origin
        self._base_url = public_base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._pusher = Pusher(client=client, clock=clock, policy=policy, origin=origin, timeout_seconds=timeout_seconds)

    # ------------------------------------------------------------------------------------ API

    async def create(
        self,
        consumer: str,
        filters: Filters,
        *,
        endpoint: str | None = None,
        notification: NotificationSpec | None = None,
    ) -> tuple[Subscription, str | None, bool]:
        """A subscription with exactly one target: a webhook ``endpoint`` or a ``notification``.

        Returns (subscription, secret shown once or None, created)."""
        # Checks that apply to every subscription (webhook or notification) belong above this branch.
        if endpoint is not None:
            await self._endpoints.check(endpoint)
        asked = AccessRequest(consumer, filters.resource, filters.subject, filters.type, Action.SUBSCRIBE)
        if not await self._authorizer.allows(asked):
            raise SubscriptionForbidden(
                f"{consumer} may not subscribe to {filters.resource}"
                + (
                    f" for {filters.subject}"
                    if filters.subject
                    else " without a subjectFilter (only the resource's owners may)"
                )
                + (f" with typeFilter {filters.type}" if filters.type else "")
            )
        if notification is not None:
            return await self._create_notification(consumer, filters, notification)
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
        )
        subscription, created = await self._store.create(candidate, identity_hash(consumer, endpoint, filters))
        if created or subscription.status is Status.PENDING:
            # As the anchor does, an identical create of a pending subscription asks for validation again.
            await self._bus.send(VALIDATION_QUEUE, [validation_message(subscription.index_key, subscription.id)])
        shown = secrets.current if created and subscription.secrets.current == secrets.current else None
        return subscription, shown, created

    async def _create_notification(
        self, consumer: str, filters: Filters, spec: NotificationSpec
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
        )
        identity = identity_hash(consumer, f"notification:{spec.canonical()}", filters)
        subscription, created = await self._store.create(candidate, identity)
        return subscription, None, created

    async def get(self, consumer: str, subscription_id: str) -> Subscription:
        subscription = await self._store.get(consumer, subscription_id)
        if subscription is None:
            raise SubscriptionNotFound(subscription_id)
        return subscription

    async def page(self, consumer: str, after: str | None, limit: int) -> tuple[list[Subscription], str | None]:
        return await self._store.page(consumer, after, limit)

    async def delete(self, consumer: str, subscription_id: str) -> None:
        await self._store.delete(await self.get(consumer, subscription_id))

    async def enable(self, consumer: str, subscription_id: str) -> Subscription:
        """A disabled (or pending) subscription is validated again; it is active once its endpoint answers."""
        subscription = await self.get(consumer, subscription_id)
        if subscription.status is Status.ACTIVE:
            return subscription

        def mutate(current: Subscription) -> Subscription | None:
            return replace(current, status=Status.PENDING, disabled_reason=None, failing_since=None)

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
        """Drops the delivery log's entries older than its retention; returns how many day tables went."""
        return await self._delivery_log.expire(self._clock.now())

    # ----------------------------------------------------------------------------- validation

    async def validate(self, message: ValidationMessage) -> Status | None:
        """One validation attempt: the abuse-protection handshake, then the validation event."""
        subscription = await self._store.get_by_key(message.key, message.id)
        if subscription is None or subscription.status is not Status.PENDING:
            return None
        now = self._clock.now()
        allowed_rate = await self._handshake(subscription)
        event_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": f"{self._base_url}/api/v1/subscriptions/{subscription.id}",
                "type": VALIDATION_EVENT_TYPE,
                "time": format_time(now),
            },
            separators=(",", ":"),
        ).encode()
        pushed = await self._pusher.push(
            subscription.endpoint,
            f"msg_{event_id.replace('-', '')}",
            body,
            subscription.secrets,
            attempt=message.attempt,
            first_attempt_at=message.first,
            at=now,  # the attempt began before the handshake
        )
        first, decision = pushed.first_attempt_at, pushed.decision
        if decision.verdict is Verdict.DELIVERED:

            def activate(current: Subscription) -> Subscription | None:
                if current.status is not Status.PENDING:
                    return None
                return replace(current, status=Status.ACTIVE, allowed_rate=allowed_rate, failing_since=None)

            await self._store.update(subscription.index_key, subscription.id, activate)
            log.info("subscription validated", extra={"subscription": subscription.id})
            return Status.ACTIVE
        if decision.verdict is Verdict.RETRY and decision.next_attempt_at is not None:
            await self._bus.send(
                VALIDATION_QUEUE,
                [
                    validation_message(
                        message.key,
                        message.id,
                        attempt=message.attempt + 1,
                        first=first,
                        deliver_at=decision.next_attempt_at,
                    )
                ],
            )
            return Status.PENDING
        reason = (
            "the endpoint answered 410 Gone"
            if decision.verdict is Verdict.GONE
            else "the endpoint never accepted the validation event"
        )
        await self._health.disable(subscription, reason)
        return Status.DISABLED

    async def _handshake(self, subscription: Subscription) -> int | None:
        """CloudEvents webhook abuse protection: an endpoint may grant a request rate (per minute)."""
        response = await self._client.options(
            subscription.endpoint,
            {"webhook-request-origin": self._origin, "webhook-request-rate": "120"},
            self._timeout,
        )
        if response.status is None or not 200 <= response.status < 300:
            return None  # OPTIONS not supported: no rate granted, no limit asked
        headers = {k.lower(): v for k, v in response.headers.items()}
        origin = headers.get("webhook-allowed-origin")
        rate = headers.get("webhook-allowed-rate", "").strip()
        if origin not in (self._origin, "*") or not rate.isdigit():
            return None
        return max(1, int(rate))


def _redelivery(subscription: Subscription, letter: DeadLetter) -> Delivery:
    """A dead letter queued again as a first attempt, with a fresh retry schedule."""
    return Delivery(subscription.index_key, subscription.id, letter.resource, letter.seq, letter.index)
