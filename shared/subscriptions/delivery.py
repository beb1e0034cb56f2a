"""Deliveries and their state machine: what one attempt's answer means, and when the next attempt is due.

A delivery is one (event, subscription) pair with its attempt count. States of a delivery: pending → (attempt) → delivered | retrying → … → dead-lettered, or
dropped when the endpoint answers 410 (the subscription is disabled). The retry schedule is
data (Azure Event Grid's by default); retries are delayed queue messages, never a sleeping worker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from functools import lru_cache
from math import floor

from standardwebhooks import Webhook

from shared.config import DEFAULT_RETRY_SCHEDULE

# Event Grid retries for up to 24 h (its schedule: ``DEFAULT_RETRY_SCHEDULE``).
DEFAULT_HORIZON = timedelta(hours=24)
# A Retry-After longer than this is treated as this: a misbehaving endpoint cannot park deliveries for a year.
MAX_RETRY_AFTER = timedelta(hours=12)
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Delivery:
    subscription_key: str
    subscription_id: str
    resource: str
    seq: int
    index: int
    attempt: int = 1
    first_attempt_at: datetime | None = None
    # Set by fan-out for notification subscriptions: routed to their own queue. Not carried in messages.
    notify: bool = False
    # The backfill that queued it (shared/subscriptions/backfill.py); its retries keep it.
    backfill: str | None = None
    # The ordered lane (subject hash) it is the head of, for ``ordering: subject`` subscriptions
    # (shared/subscriptions/ordering.py); carried in messages, so its settle advances the lane.
    lane: str | None = None
    # Sent again by the ordered lanes' sweep (its push was taken as lost), not taken from the retry queue:
    # the health figures do not count it as a retry taken. Carried per message; never by ``retried``.
    resent: bool = False

    @property
    def member(self) -> str:
        """Identifies the delivery among the outputs of one inbound message (fan-out markers)."""
        return f"{self.seq}.{self.index}.{self.subscription_id}"

    def retried(self, attempt: int, first_attempt_at: datetime) -> Delivery:
        return Delivery(
            self.subscription_key,
            self.subscription_id,
            self.resource,
            self.seq,
            self.index,
            attempt,
            first_attempt_at,
            backfill=self.backfill,
            lane=self.lane,
        )


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"  # 410: the endpoint asks to stop; the subscription is disabled
    DEAD = "dead"  # the schedule is exhausted: the delivery goes to the dead-letter store


@dataclass(frozen=True)
class RetryPolicy:
    schedule: Sequence[int] = DEFAULT_RETRY_SCHEDULE
    horizon: timedelta = DEFAULT_HORIZON

    def delay(self, attempt: int) -> timedelta:
        """Delay after failed attempt number ``attempt`` (1-based); the last step repeats."""
        step = self.schedule[min(attempt, len(self.schedule)) - 1]
        return timedelta(seconds=step)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment - now, timedelta(0))


# Delivery-log outcomes that say more than the verdict: both are dead at once.
REFUSED = "refused"  # the connection guard refused the endpoint's address: no retry can reach it
EXPIRED = "expired"  # deferred (open circuit, probation, a slow endpoint) past the horizon: never tried again


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None
    outcome: str = ""  # the delivery log's outcome when it is not the verdict's own name

    @property
    def logged_as(self) -> str:
        return self.outcome or self.verdict.value


def judge_attempt(
    *,
    status: int | None,
    headers: Mapping[str, str],
    attempt: int,
    first_attempt_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    refused: bool = False,
) -> Decision:
    """The outcome rules of the CloudEvents webhook spec and Event Grid. ``refused``: the connection
    guard would not connect to the address the endpoint resolved to; retrying cannot change that."""
    if refused:
        return Decision(Verdict.DEAD, outcome=REFUSED)
    if status is not None and 200 <= status < 300:
        return Decision(Verdict.DELIVERED)
    if status == 410:
        return Decision(Verdict.GONE)
    delay = policy.delay(attempt)
    if status in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(_header(headers, "retry-after"), now)
        if asked is not None:
            delay = max(delay, min(asked, MAX_RETRY_AFTER))
    due = now + delay
    if due - first_attempt_at > policy.horizon:
        return Decision(Verdict.DEAD)
    return Decision(Verdict.RETRY, due)


def defer(*, due: datetime, first_attempt_at: datetime, policy: RetryPolicy) -> Decision:
    """A delivery that cannot be attempted now (its endpoint's circuit is open, it is on probation,
    busy, slow, or at its granted rate) goes again at ``due`` without counting an attempt, unless
    that is past its horizon: then it is dead now, without another attempt."""
    if due - first_attempt_at > policy.horizon:
        return Decision(Verdict.DEAD, outcome=EXPIRED)
    return Decision(Verdict.RETRY, due)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def delivery_id(subscription_id: str, resource: str, seq: int, index: int) -> str:
    """Stable across retries and replays of the same event to the same subscription (``webhook-id``)."""
    digest = hashlib.sha256(f"{subscription_id}\x00{resource}\x00{seq}\x00{index}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


CLOUDEVENTS_JSON = "application/cloudevents+json; charset=utf-8"


def push_headers(message_id: str, body: bytes, secrets: Sequence[str], origin: str, now: datetime) -> dict[str, str]:
    """Everything a push carries besides its body: structured-mode content type, the origin Herald
    names in the abuse-protection handshake, and the Standard Webhooks signature headers."""
    return {
        "content-type": CLOUDEVENTS_JSON,
        "webhook-request-origin": origin,
        **signature_headers(message_id, body, secrets, now),
    }


def signature_headers(message_id: str, body: bytes, secrets: Sequence[str], now: datetime) -> dict[str, str]:
    """Standard Webhooks: ``v1,`` HMAC-SHA256 over ``id.timestamp.body``; one signature per valid secret.
    What ``standardwebhooks.Webhook.sign`` computes, over the body's own bytes: no decoding and
    encoding of the body and no parsing of the secret per push (tests verify with the library)."""
    signed = b"%s.%d.%s" % (message_id.encode(), floor(now.replace(tzinfo=UTC).timestamp()), body)
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.digest(_signing_key(secret), signed, "sha256")).decode() for secret in secrets
    )
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


@lru_cache(maxsize=4096)
def _signing_key(secret: str) -> bytes:
    """A ``whsec_`` secret's key bytes, as ``standardwebhooks.Webhook`` decodes them (checked there)."""
    return Webhook(secret)._whsecret
