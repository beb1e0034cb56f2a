"""The validation handshake that makes a subscription active.

A webhook is validated by the CloudEvents abuse-protection handshake (an optional ``OPTIONS`` that may
grant a request rate) and a ``platform.events.validatesubscription`` event it must accept. A broker
destination takes any message Herald's identity may send, so its validation event carries a one-time
code that the consumer sends back (``confirm``), as Event Grid's manual validation does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from dataclasses import replace
from datetime import timedelta

from shared.clock import Clock
from shared.events.model import format_time
from shared.messaging import Bus
from shared.subscriptions.delivery import Verdict
from shared.subscriptions.health import SubscriptionHealth
from shared.subscriptions.messages import VALIDATION_QUEUE, ValidationMessage, validation_message
from shared.subscriptions.model import Status, Subscription
from shared.subscriptions.ports import SubscriptionStore
from shared.subscriptions.push import Pusher
from shared.subscriptions.service import SubscriptionNotFound

log = logging.getLogger(__name__)

VALIDATION_EVENT_TYPE = "platform.events.validatesubscription"


class NotADestination(Exception):
    """A webhook or notification subscription: a webhook shows it wants the pushes by accepting the
    validation event, and a notification subscription has nothing to validate; no code is sent back."""


class NotAwaitingCode(Exception):
    """The destination subscription is not pending with a published validation code."""


class WrongValidationCode(Exception):
    """The code is not the one the latest validation event carried to the destination."""


class SubscriptionValidation:
    def __init__(
        self,
        *,
        store: SubscriptionStore,
        bus: Bus,
        pusher: Pusher,
        health: SubscriptionHealth,
        clock: Clock,
        origin: str,
        public_base_url: str,
        code_patience: timedelta,
    ) -> None:
        """``code_patience``: how long a destination's validation code may take to come back before the
        subscription is disabled (the retry horizon: as long as a delivery may wait for it)."""
        self._code_patience = code_patience
        self._store = store
        self._bus = bus
        self._pusher = pusher
        self._health = health
        self._clock = clock
        self._origin = origin
        self._base_url = public_base_url.rstrip("/")

    async def validate(self, message: ValidationMessage) -> Status | None:
        """One validation attempt: the abuse-protection handshake, then the validation event.

        A webhook that accepts the validation event is active: its 2xx shows that whoever runs the endpoint
        wants the pushes. A broker takes any message Herald's identity may send, so a destination's event
        carries a one-time ``validationCode`` instead (as Event Grid's manual validation does), and the
        subscription stays pending until its consumer sends the code back (``confirm``): only who reads
        the destination has it."""
        subscription = await self._store.get_by_key(message.key, message.id)
        if subscription is None or subscription.status is not Status.PENDING:
            return None
        if message.awaiting is not None:
            return await self._code_deadline(subscription, message.awaiting)
        now = self._clock.now()
        allowed_rate = await self._handshake(subscription)
        event_id = str(uuid.uuid4())
        validation: dict[str, object] = {
            "specversion": "1.0",
            "id": event_id,
            "source": f"{self._base_url}/api/v1/subscriptions/{subscription.id}",
            "type": VALIDATION_EVENT_TYPE,
            "time": format_time(now),
        }
        awaiting: str | None = None  # a destination's code, hashed as stored
        if subscription.destination is not None:
            code = await self._issue_code(subscription)
            if code is None:
                return None  # changed meanwhile (a PATCH, a delete): its own validation follows
            awaiting = _code_hash(subscription, code)
            validation["datacontenttype"] = "application/json"
            validation["data"] = {
                "validationCode": code,
                "validationUrl": f"{self._base_url}/api/v1/subscriptions/{subscription.id}/validate",
            }
        body = json.dumps(validation, separators=(",", ":")).encode()
        pushed = await self._pusher.push(
            subscription,
            f"msg_{event_id.replace('-', '')}",
            body,
            attempt=message.attempt,
            first_attempt_at=message.first,
            at=now,  # the attempt began before the handshake
        )
        first, decision = pushed.first_attempt_at, pushed.decision
        if decision.verdict is Verdict.DELIVERED and awaiting is not None:
            log.info("validation code published to the destination", extra={"subscription": subscription.id})
            # Active once the consumer sends the code back; disabled if it never does, so deliveries
            # (and a backfill) waiting for the validation do not wait forever.
            await self._bus.send(
                VALIDATION_QUEUE,
                [
                    validation_message(
                        message.key,
                        message.id,
                        first=first,
                        deliver_at=first + self._code_patience,
                        awaiting=awaiting,
                    )
                ],
            )
            return Status.PENDING
        if decision.verdict is Verdict.DELIVERED:

            def activate(current: Subscription) -> Subscription | None:
                # A PATCH may have changed the endpoint since it was read: only the one validated is activated.
                if current.status is not Status.PENDING or current.endpoint != subscription.endpoint:
                    return None
                return replace(
                    current,
                    status=Status.ACTIVE,
                    allowed_rate=allowed_rate,
                    failing_since=None,
                    revalidating=False,
                    validated_endpoint=current.endpoint,
                )

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

    async def _code_deadline(self, subscription: Subscription, awaiting: str) -> Status | None:
        """The code published to the destination was not sent back within the patience: disabled. A code
        replaced since (another validation event, a change of destination) has a deadline of its own."""
        if subscription.validation_code_hash != awaiting:
            return None
        hours = self._code_patience.total_seconds() / 3600
        await self._health.disable(
            subscription, f"the validation code published to the destination was not sent back within {hours:g} h"
        )
        return Status.DISABLED

    async def _issue_code(self, subscription: Subscription) -> str | None:
        """A new one-time code for the destination's validation event, its hash stored (the code itself
        never is, nor shown) before the event is published, so it is valid once it can be read. Each
        validation event's code replaces the previous one. None: the subscription is no longer pending
        for this destination."""
        code = secrets.token_urlsafe(24)
        digest = _code_hash(subscription, code)

        def issue(current: Subscription) -> Subscription | None:
            if current.status is not Status.PENDING or current.endpoint != subscription.endpoint:
                return None
            return replace(current, validation_code_hash=digest)

        issued = await self._store.update(subscription.index_key, subscription.id, issue)
        return code if issued is not None else None

    async def confirm(self, consumer: str, subscription_id: str, code: str) -> Subscription:
        """``POST …/{id}/validate``: the code the destination's latest validation event carried makes the
        subscription active, once. Raises SubscriptionNotFound (not the consumer's), NotADestination,
        NotAwaitingCode (not pending, or no validation event published yet) or WrongValidationCode;
        nothing is changed then."""
        subscription = await self._store.get(consumer, subscription_id)
        if subscription is None:
            raise SubscriptionNotFound(subscription_id)
        if subscription.destination is None:
            raise NotADestination(
                f"subscription {subscription_id} "
                + (
                    "notifies people: it has nothing to validate"
                    if subscription.notification is not None
                    else "pushes to a webhook, which is validated by accepting the validation event: no code is sent back"
                )
            )

        def activate(current: Subscription) -> Subscription | None:
            if current.status is not Status.PENDING or current.validation_code_hash is None:
                raise NotAwaitingCode(
                    f"subscription {subscription_id} is {current.status.value}"
                    + (
                        ": no validation event has been published to its destination yet"
                        if current.status is Status.PENDING
                        else ", not waiting for a validation code"
                    )
                )
            if not hmac.compare_digest(_code_hash(current, code), current.validation_code_hash):
                raise WrongValidationCode(
                    "validationCode is not the code of the latest validation event published to the destination; "
                    "nothing changed"
                )
            return replace(
                current.with_status(Status.ACTIVE),
                failing_since=None,
                validation_code_hash=None,
                validated_endpoint=current.endpoint,
            )

        updated = await self._store.update(subscription.index_key, subscription.id, activate)
        if updated is None:
            raise SubscriptionNotFound(subscription_id)
        log.info("subscription validated with its code", extra={"subscription": subscription.id})
        return updated

    async def _handshake(self, subscription: Subscription) -> int | None:
        """CloudEvents webhook abuse protection: an endpoint may grant a request rate (per minute)."""
        response = await self._pusher.options(
            subscription, {"webhook-request-origin": self._origin, "webhook-request-rate": "120"}
        )
        if response is None or response.status is None or not 200 <= response.status < 300:
            return None  # OPTIONS not supported: no rate granted, no limit asked
        headers = {k.lower(): v for k, v in response.headers.items()}
        origin = headers.get("webhook-allowed-origin")
        rate = headers.get("webhook-allowed-rate", "").strip()
        if origin not in (self._origin, "*") or not rate.isdigit():
            return None
        return max(1, int(rate))


def _code_hash(subscription: Subscription, code: str) -> str:
    """A validation code as stored: bound to the subscription and its destination's address, so a code
    read from one destination never validates another (after a PATCH)."""
    return hashlib.sha256(f"{subscription.id}\x00{subscription.endpoint}\x00{code}".encode()).hexdigest()
