"""Subscriptions: their filters and what they match, the stored subscription, and its secrets.

Field names follow Altinn Events (``endPoint``, ``resourceFilter``, ``subjectFilter`` …), so an
Altinn consumer can move with few changes. Filters are exact, except ``sourceFilter`` and
``typeFilter`` which match a prefix when they end with ``*``. ``subjectFilter`` and ``typeFilter``
may hold a list (any value matches). A filter no event could ever satisfy is refused instead of
stored (the anchor stores such filters and silently never delivers).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.events.model import MAX_ATTRIBUTE_LENGTH
from shared.notifications.event_orders import NotificationSpec
from shared.subscriptions.targets import Destination, EndpointAuthentication, target_identity

SECRET_PREFIX = "whsec_"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Values a list filter may hold; each subject is one index partition an event may reach it through.
MAX_FILTER_VALUES = 50
# The subject of events about an organisation (``includeSubunits`` looks its main unit up by number).
ORGANISATION_SUBJECT = re.compile(r"^org:(\d{9})$")


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DISABLED = "disabled"


class Ordering(StrEnum):
    """How a subscription's pushes are ordered: ``none`` (as they come, the fastest), or ``subject``: the
    events of one subject in log order, each after the previous one was delivered or dead-lettered."""

    NONE = "none"
    SUBJECT = "subject"


class FilterProblem(ValueError):
    """A filter that is malformed or could never match an event."""


def check_filter(name: str, value: str | None, *, prefix_allowed: bool, uri_like: bool = False) -> str | None:
    if value is None:
        return None
    if value == "":
        raise FilterProblem(f"{name} must not be empty; leave it out to match every event")
    if len(value) > MAX_ATTRIBUTE_LENGTH or _CONTROL.search(value):
        raise FilterProblem(f"{name} can never match: events hold no such value")
    if not prefix_allowed and "*" in value:
        raise FilterProblem(f"{name} is matched exactly and takes no '*'; leave it out to match every event")
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


def _any_pattern(patterns: str | tuple[str, ...] | None, value: str | None) -> bool:
    if patterns is None or isinstance(patterns, str):
        return matches_pattern(patterns, value)
    return any(matches_pattern(pattern, value) for pattern in patterns)


def _canonical_values(name: str, value: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    """One value stays a string (as stored before lists existed); a list is sorted without duplicates,
    and a list of one is that value, so equal filters are equal however they were written."""
    if value is None or isinstance(value, str):
        return value
    values = tuple(sorted(set(value)))
    if not values:
        raise FilterProblem(f"{name} must not be an empty list; leave it out to match every event")
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class Filters:
    resource: str
    source: str | None = None
    # One value, or a tuple of several (sorted, distinct): an event matches when it matches any of them.
    subject: str | tuple[str, ...] | None = None
    alternativesubject: str | None = None
    type: str | tuple[str, ...] | None = None
    # Events about a subunit of an organisation in ``subject`` match too (its main unit from the registry).
    include_subunits: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", _canonical_values("subjectFilter", self.subject))
        object.__setattr__(self, "type", _canonical_values("typeFilter", self.type))
        if self.include_subunits and not (
            self.subjects and all(ORGANISATION_SUBJECT.match(subject) for subject in self.subjects)
        ):
            raise FilterProblem(
                "includeSubunits needs a subjectFilter naming organisations (org:<9 digits>): "
                "only an organisation has subunits"
            )

    @property
    def subjects(self) -> tuple[str, ...]:
        return (self.subject,) if isinstance(self.subject, str) else self.subject or ()

    @property
    def types(self) -> tuple[str, ...]:
        return (self.type,) if isinstance(self.type, str) else self.type or ()

    def matches(self, attributes: Mapping[str, Any], parent: str | None = None) -> bool:
        """``parent``: the main unit of the organisation the event is about, when it is a subunit."""
        return (
            attributes.get("resource") == self.resource
            and matches_pattern(self.source, attributes.get("source"))
            and self._subject_matches(attributes.get("subject"), parent)
            and (self.alternativesubject is None or attributes.get("alternativesubject") == self.alternativesubject)
            and _any_pattern(self.type, attributes.get("type"))
        )

    def _subject_matches(self, subject: Any, parent: str | None) -> bool:
        if self.subject is None:
            return True
        if isinstance(self.subject, str):
            return subject == self.subject or (self.include_subunits and parent is not None and parent == self.subject)
        return subject in self.subject or (self.include_subunits and parent is not None and parent in self.subject)

    def index_key(self) -> str:
        """The matching index partition a new subscription's row is stored in: its (first) subject
        filter, else alternative-subject filter, else none.

        A hot resource's subscribers are told apart by subject, so an event looks up only the
        subscriptions for its own subject (plus those without one): cost grows with matches.
        """
        if self.subject is not None:
            return index_key(self.resource, "s", self.subjects[0])
        if self.alternativesubject is not None:
            return index_key(self.resource, "a", self.alternativesubject)
        return index_key(self.resource, "*", "")

    def match_keys(self) -> tuple[str, ...]:
        """Every index partition an event these filters match is looked up in: one per subject."""
        if self.subject is not None:
            return tuple(index_key(self.resource, "s", subject) for subject in self.subjects)
        return (self.index_key(),)


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


def parent_index_key(resource: str, parent: str) -> str:
    """The partition of the main unit's subscriptions, read for an event about one of its subunits."""
    return index_key(resource, "s", parent)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def identity_hash(consumer: str, endpoint: str, filters: Filters) -> str:
    """Two requests with the same consumer, endpoint and filters are the same subscription.

    Hashes are stored (``h:`` rows), so a filter of one value hashes as it always did; a list hashes
    as its sorted values, and ``includeSubunits`` counts only when set."""
    fields: list[Any] = [
        consumer,
        endpoint,
        filters.resource,
        filters.source,
        filters.subject,  # a tuple is dumped as a list
        filters.alternativesubject,
        filters.type,
    ]
    if filters.include_subunits:
        fields.append({"includeSubunits": True})
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:40]


def identity_of(subscription: Subscription) -> str:
    """The identity hash of a stored subscription: its consumer, target and filters, as create hashes them."""
    notification = subscription.notification
    target = (
        f"notification:{notification.canonical()}"
        if notification is not None
        else target_identity(subscription.endpoint, subscription.destination, subscription.authentication)
    )
    return identity_hash(subscription.consumer, target, subscription.filters)


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
    # When an outbound worker's circuit breaker opened for the endpoint, while no push has succeeded
    # since: set and cleared once each (``herald.subscription.failing`` / ``recovered``).
    circuit_opened_at: datetime | None = None
    disabled_reason: str | None = None
    # Requests per minute the endpoint granted in the abuse-protection handshake (None: no limit given).
    allowed_rate: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # A notification subscription (no webhook: ``endpoint`` is empty); see shared/notifications/event_orders.py.
    notification: NotificationSpec | None = None
    ordering: Ordering = Ordering.NONE
    # The index partition its row lives in, once a change of filters left it there (the row never
    # moves, so deliveries queued with the key still find it); None: where the filters put it.
    home_key: str | None = None
    # A broker of the consumer's instead of a webhook (``endpoint`` then holds its address), and what the
    # webhook's gateway asks for besides the signature; see shared/subscriptions/targets.py.
    destination: Destination | None = None
    authentication: EndpointAuthentication | None = None
    # A destination's pending validation: the hash of the one-time code its validation event carried
    # (``validation_code_hash``), which the consumer sends back to show they read the destination.
    validation_code_hash: str | None = None
    # Pending because a PATCH changed the target of a subscription that was receiving events: it is
    # still matched, and its deliveries wait for the new target's validation instead of being lost.
    # Cleared when it becomes active or is disabled.
    revalidating: bool = False
    # The target that last accepted its validation (a 2xx, or the code sent back): a disabled
    # subscription is test-pushed only if it is still that one, never one that refused validation.
    validated_endpoint: str | None = None

    @property
    def index_key(self) -> str:
        return self.home_key or self.filters.index_key()

    @property
    def matched(self) -> bool:
        """Whether events are matched to it: active, or pending while a changed target is validated (a
        new subscription, or one enabled again, receives only what is published once it is active)."""
        return self.status is Status.ACTIVE or (self.status is Status.PENDING and self.revalidating)

    def with_status(self, status: Status, *, reason: str | None = None) -> Subscription:
        return replace(
            self,
            status=status,
            disabled_reason=reason if status is Status.DISABLED else None,
            revalidating=self.revalidating and status is Status.PENDING,
        )
