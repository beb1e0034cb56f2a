"""Subscriptions: their filters and what they match, the stored subscription, and its secrets.

Field names follow Altinn Events (``endPoint``, ``resourceFilter``, ``subjectFilter`` …), so an
Altinn consumer can move with few changes. Filters are exact, except ``sourceFilter`` and
``typeFilter`` which match a prefix when they end with ``*``. A filter no event could ever satisfy
is refused instead of stored (the anchor stores such filters and silently never delivers).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.events.model import MAX_ATTRIBUTE_LENGTH
from shared.notifications.event_orders import NotificationSpec

SECRET_PREFIX = "whsec_"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DISABLED = "disabled"


class FilterProblem(ValueError):
    """A filter that is malformed or could never match an event."""


def check_filter(name: str, value: str | None, *, prefix_allowed: bool, uri_like: bool = False) -> str | None:
    if value is None:
        return None
    if value == "":
        raise FilterProblem(f"{name} must not be empty; leave it out to match every event")
    if len(value) > MAX_ATTRIBUTE_LENGTH or _CONTROL.search(value):
        raise FilterProblem(f"{name} can never match: events hold no such value")
    body = value[:-1] if prefix_allowed and value.endswith("*") else value
    if "*" in body:
        raise FilterProblem(f"{name} allows '*' only at the end, as a prefix match")
    if uri_like and any(ch.isspace() for ch in body):
        raise FilterProblem(f"{name} can never match: an event source is a URI-reference without spaces")
    if prefix_allowed and value == "*":
        return None  # matches everything: the same as no filter
    return value


def matches_pattern(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


@dataclass(frozen=True)
class Filters:
    resource: str
    source: str | None = None
    subject: str | None = None
    alternativesubject: str | None = None
    type: str | None = None

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        return (
            attributes.get("resource") == self.resource
            and matches_pattern(self.source, attributes.get("source"))
            and (self.subject is None or attributes.get("subject") == self.subject)
            and (self.alternativesubject is None or attributes.get("alternativesubject") == self.alternativesubject)
            and matches_pattern(self.type, attributes.get("type"))
        )

    def index_key(self) -> str:
        """The matching index partition: subject filter, else alternative-subject filter, else none.

        A hot resource's subscribers are told apart by subject, so an event looks up only the
        subscriptions for its own subject (plus those without one): cost grows with matches.
        """
        if self.subject is not None:
            return index_key(self.resource, "s", self.subject)
        if self.alternativesubject is not None:
            return index_key(self.resource, "a", self.alternativesubject)
        return index_key(self.resource, "*", "")


def index_key(resource: str, kind: str, value: str) -> str:
    return f"{resource}|{kind}:{value}"


def index_keys_for_event(attributes: Mapping[str, Any]) -> list[str]:
    resource = attributes["resource"]
    keys = [index_key(resource, "*", "")]
    if isinstance(subject := attributes.get("subject"), str):
        keys.append(index_key(resource, "s", subject))
    if isinstance(alternative := attributes.get("alternativesubject"), str):
        keys.append(index_key(resource, "a", alternative))
    return keys


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def identity_hash(consumer: str, endpoint: str, filters: Filters) -> str:
    """Two requests with the same consumer, endpoint and filters are the same subscription."""
    canonical = json.dumps(
        [
            consumer,
            endpoint,
            filters.resource,
            filters.source,
            filters.subject,
            filters.alternativesubject,
            filters.type,
        ]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:40]


# How long the outbound worker signs with a subscription it read, before reading it again.
SUBSCRIPTION_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Secrets:
    """The signing secret; during a rotation the previous one until it expires; and the upcoming one.

    The upcoming secret is made a rotation ahead and signs every push, though nobody has seen it: a
    rotation makes it current and shows it. So a worker still holding the subscription as it was
    read before the rotation (the outbound cache) already signs with the secret the receiver just
    got. Subscriptions stored before secrets were made ahead have none until their first rotation.
    """

    current: str
    previous: str | None = None
    previous_expires: datetime | None = None
    upcoming: str | None = None

    @classmethod
    def new(cls) -> Secrets:
        return cls(new_secret(), upcoming=new_secret())

    def signing(self, now: datetime) -> list[str]:
        keys = [self.current]
        if self.previous and self.previous_expires and now < self.previous_expires:
            keys.append(self.previous)
        if self.upcoming:
            keys.append(self.upcoming)
        return keys

    def rotated(self, now: datetime, overlap: timedelta) -> Secrets:
        """The upcoming secret becomes current, the current one signs on for ``overlap``, and a new one
        is made ahead."""
        return Secrets(self.upcoming or new_secret(), self.current, now + overlap, new_secret())


@dataclass(frozen=True)
class Subscription:
    id: str
    consumer: str
    endpoint: str
    filters: Filters
    status: Status
    created: datetime
    secrets: Secrets
    failing_since: datetime | None = None
    disabled_reason: str | None = None
    # Requests per minute the endpoint granted in the abuse-protection handshake (None: no limit given).
    allowed_rate: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # A notification subscription (no webhook: ``endpoint`` is empty); see shared/notifications/event_orders.py.
    notification: NotificationSpec | None = None

    @property
    def index_key(self) -> str:
        return self.filters.index_key()

    def with_status(self, status: Status, *, reason: str | None = None) -> Subscription:
        return replace(self, status=status, disabled_reason=reason if status is Status.DISABLED else None)
