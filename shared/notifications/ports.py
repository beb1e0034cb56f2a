"""Ports of the notification domain: what it needs from storage, gateways, registries and time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, Self

from shared.notifications.model import Channel, ContentType, Notification, Order, Status

# ---------------------------------------------------------------------------------- recipients


# The contact values' JSON (``to_json``/``from_json``) is the admin API's and the table registry's shape.


@dataclass(frozen=True)
class RoleHolder:
    national_identity_number: str
    name: str | None = None
    email_address: str | None = None
    mobile_number: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "nationalIdentityNumber": self.national_identity_number,
            "name": self.name,
            "emailAddress": self.email_address,
            "mobileNumber": self.mobile_number,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            national_identity_number=data["nationalIdentityNumber"],
            name=data.get("name"),
            email_address=data.get("emailAddress"),
            mobile_number=data.get("mobileNumber"),
        )


@dataclass(frozen=True)
class Person(RoleHolder):
    """A person's contact points, and whether the person reserved themselves against contact."""

    reserved: bool = False

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {"reserved": self.reserved}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return replace(super().from_json(data), reserved=bool(data.get("reserved", False)))


@dataclass(frozen=True)
class Role:
    name: str
    resources: tuple[str, ...] = ()
    holders: tuple[RoleHolder, ...] = ()


@dataclass(frozen=True)
class Organization:
    organization_number: str
    name: str | None = None
    email_addresses: tuple[str, ...] = ()
    mobile_numbers: tuple[str, ...] = ()
    roles: tuple[Role, ...] = ()
    # A subunit's main unit (Enhetsregisteret's "overordnet enhet"); None for a main unit or when unknown.
    parent_organization_number: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "organizationNumber": self.organization_number,
            "name": self.name,
            "emailAddresses": list(self.email_addresses),
            "mobileNumbers": list(self.mobile_numbers),
            "roles": [
                {"name": role.name, "resources": list(role.resources), "holders": [h.to_json() for h in role.holders]}
                for role in self.roles
            ],
            "parentOrganizationNumber": self.parent_organization_number,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Organization:
        return cls(
            organization_number=data["organizationNumber"],
            name=data.get("name"),
            email_addresses=tuple(data.get("emailAddresses") or ()),
            mobile_numbers=tuple(data.get("mobileNumbers") or ()),
            roles=tuple(
                Role(
                    name=role["name"],
                    resources=tuple(role.get("resources") or ()),
                    holders=tuple(RoleHolder.from_json(h) for h in role.get("holders") or ()),
                )
                for role in data.get("roles") or ()
            ),
            parent_organization_number=data.get("parentOrganizationNumber"),
        )


class ContactRegistry(Protocol):
    """Contact points of persons and organisations (KRR and the business notification addresses)."""

    async def persons(self, nins: Sequence[str]) -> dict[str, Person]: ...

    async def organizations(self, numbers: Sequence[str]) -> dict[str, Organization]: ...


class ContactStore(ContactRegistry, Protocol):
    """A contact registry Herald keeps itself, loaded through the admin API."""

    async def put_persons(self, persons: Sequence[Person]) -> int: ...

    async def put_organizations(self, organizations: Sequence[Organization]) -> int: ...


class RecipientAuthorizer(Protocol):
    """Which of an organisation's role holders may see ``resource`` (an authorization service may replace it)."""

    async def authorized(self, organization: Organization, resource: str) -> list[RoleHolder]: ...


class RegistryRoleAuthorizer:
    """Interim rule: a role holder is authorized when the registry lists the resource for their role."""

    async def authorized(self, organization: Organization, resource: str) -> list[RoleHolder]:
        seen: dict[str, RoleHolder] = {}
        for role in organization.roles:
            if resource in role.resources:
                for holder in role.holders:
                    seen.setdefault(holder.national_identity_number, holder)
        return list(seen.values())


# ------------------------------------------------------------------------------------- storage


class OrderExists(Exception):
    """The sender already has an order with this idempotency id."""

    def __init__(self, existing: Order) -> None:
        super().__init__(existing.id)
        self.existing = existing


class Conflict(Exception):
    """The stored record changed since it was read."""


class OrderRefused(Exception):
    """The orderer may not make this order, or not now; nothing was stored."""


@dataclass(frozen=True)
class OrderSummary:
    """An order as a listing shows it: never its recipients or templates."""

    id: str
    created: datetime
    channel: str
    status: str
    status_time: datetime | None
    senders_reference: str | None
    requested_send_time: datetime
    resource_id: str | None
    recipients: int


class OrderStore(Protocol):
    async def create(self, order: Order) -> Order:
        """Stores the order, its idempotency key and its listing row atomically; raises OrderExists
        for a reused key."""
        ...

    async def page(self, creator: str, after: str | None, limit: int) -> tuple[list[OrderSummary], str | None]:
        """The creator's orders, newest first: at most ``limit`` after the listing key ``after``, and
        the key to go on from (None: no more). Reads one page of listing rows, never the partition."""
        ...

    async def by_idempotency_id(self, creator: str, idempotency_id: str) -> Order | None:
        """The creator's order made with this idempotency id, if any."""
        ...

    async def get(self, creator: str, order_id: str, *, recipients: bool = True) -> Order | None:
        """The order; with ``recipients=False`` everything but its recipient list, for the send and
        report paths (a 10,000-recipient order is read once per batch). Such an order carries no
        version, so ``update`` refuses it and the recipients can never be written away."""
        ...

    async def update(self, order: Order) -> Order:
        """Replaces the order (and its listing row, in the same transaction) if ``order.version`` is
        current; raises Conflict otherwise."""
        ...

    async def schedule(self, order: Order) -> None:
        """Records that the order is due at its send time (idempotent)."""
        ...

    async def unschedule(self, order: Order) -> None: ...

    async def due(self, until: datetime, limit: int) -> list[tuple[str, str]]:
        """(creator, order id) of scheduled orders due at ``until`` or earlier."""
        ...

    async def watch_expiry(self, creator: str, order_id: str, at: datetime) -> None:
        """Records that the order's notifications must be checked for TTL at ``at``."""
        ...

    async def expiring(self, until: datetime, limit: int) -> list[tuple[str, str, datetime]]: ...

    async def unwatch_expiry(self, creator: str, order_id: str, at: datetime) -> None: ...


Decide = Callable[[Notification], Notification | None]


@dataclass(frozen=True)
class Announce:
    """Asks ``NotificationStore.change`` to record the status events a change owes: ``event`` is the
    CloudEvent of a notification whose status moved, ``at`` when the change is made."""

    event: Callable[[Notification], dict[str, Any]]
    at: datetime


@dataclass(frozen=True)
class OwedEvents:
    """An outbox entry: status events stored with their change, in its transaction, and owed to the hub
    until the entry is cleared."""

    order_id: str
    key: str
    stored_at: datetime
    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Changed:
    """What ``NotificationStore.change`` stored."""

    notifications: list[Notification]  # every notification changed, with its new version
    moved: list[Notification] = field(default_factory=list)  # those whose status moved
    owed: list[OwedEvents] = field(default_factory=list)  # the moved ones' events, when announced


class NotificationStore(Protocol):
    async def insert(self, notifications: Sequence[Notification]) -> None:
        """Inserts notifications of one order; ones that exist already are left as they are."""
        ...

    async def of_order(self, order_id: str) -> list[Notification]: ...

    async def change(
        self,
        order_id: str,
        ids: Sequence[str],
        decide: Decide,
        *,
        known: Sequence[Notification] = (),
        announce: Announce | None = None,
    ) -> Changed:
        """Applies ``decide`` to each notification (None = leave it) under optimistic concurrency.

        Returns the notifications as changed, with their new versions. ``known`` are versions the
        caller holds (from an earlier change): they are tried without reading, and read again only
        if another writer got there first. ``decide`` may run more than once for one notification
        when another writer got there first. With ``announce``, the events of the notifications whose
        status moved are stored in the same transactions as their changes (``Changed.owed``), so a
        crash before they are published leaves them to ``owed``. The store writes what ``decide``
        returns, ``history`` included: the use cases keep the history (``status.recorded``).
        """
        ...

    async def owed(self, stored_before: datetime, limit: int) -> list[OwedEvents]:
        """Outbox entries stored before ``stored_before``: their publisher died before clearing them."""
        ...

    async def clear_owed(self, owed: Sequence[OwedEvents]) -> None:
        """The entries' events are published: forget them."""
        ...

    async def index_reference(
        self, channel: Channel, reference: str, creator: str, order_id: str, notification_id: str
    ) -> None: ...

    async def find_reference(self, channel: Channel, reference: str) -> tuple[str, str, str] | None:
        """(creator, order id, notification id) of a gateway reference."""
        ...


@dataclass(frozen=True)
class ReportAttempt:
    attempts: int
    first_seen: datetime
    parked: bool


class DeadReportStore(Protocol):
    async def record_attempt(
        self, channel: Channel, reference: str, payload: str, now: datetime, *, max_attempts: int, window: timedelta
    ) -> ReportAttempt:
        """Counts an unmatched report; parks it (reason RETRY_THRESHOLD_EXCEEDED) when over the bound."""
        ...

    async def park(self, channel: Channel, reference: str, payload: str, now: datetime, reason: str) -> None: ...

    async def resolved(self, channel: Channel, reference: str) -> None:
        """The report matched after earlier misses: forget its attempt counter."""
        ...

    async def parked(self, channel: Channel | None = None) -> list[dict[str, object]]: ...


class SendPause(Protocol):
    """A shared pause-until record per channel (Altinn's resourcelimitlog), set on HTTP 429."""

    async def paused_until(self, channel: Channel) -> datetime | None: ...

    async def pause(self, channel: Channel, until: datetime) -> None: ...


# ----------------------------------------------------------------------------- delivery reports


@dataclass(frozen=True)
class DeliveryReport:
    """A gateway's delivery report, read from its format at the edge. ``reference`` is the gateway's
    message id (None: the report names none, and is parked); ``payload`` is what a dead report keeps."""

    channel: Channel
    reference: str | None
    status: Status
    payload: str
    description: str | None = None


# Reads an Event Grid delivery-report event's data (an object) for a channel (ACS email and SMS).
EventReportReader = Callable[[Channel, Mapping[str, Any]], DeliveryReport]
# Reads an SMS gateway's report callback (body, content type); raises ValueError when unreadable.
GatewayReportReader = Callable[[bytes, str], list[DeliveryReport]]


# ------------------------------------------------------------------------------------ gateways


@dataclass(frozen=True)
class EmailMessage:
    notification_id: str
    sender: str
    to: str
    subject: str
    body: str
    content_type: ContentType
    orderer: str = ""  # who ordered it (the local sink shows each orderer only its own messages)


@dataclass(frozen=True)
class SmsMessage:
    notification_id: str
    sender: str
    to: str
    body: str
    orderer: str = ""


@dataclass(frozen=True)
class SendResult:
    """What a gateway said. ``accepted``: ``reference`` is set. ``failed``: ``status`` is final.
    ``transient``: try again later. ``throttled``: pause the channel for ``retry_after``."""

    outcome: str  # accepted | failed | transient | throttled
    reference: str | None = None
    status: Status | None = None
    description: str | None = None
    retry_after: timedelta | None = None

    @classmethod
    def accepted(cls, reference: str) -> SendResult:
        return cls("accepted", reference=reference)

    @classmethod
    def failed(cls, status: Status, description: str | None = None) -> SendResult:
        return cls("failed", status=status, description=description)

    @classmethod
    def transient(cls, description: str, retry_after: timedelta | None = None) -> SendResult:
        return cls("transient", description=description, retry_after=retry_after)

    @classmethod
    def throttled(cls, retry_after: timedelta, description: str | None = None) -> SendResult:
        return cls("throttled", retry_after=retry_after, description=description)


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> SendResult: ...

    async def close(self) -> None: ...


class SmsSender(Protocol):
    async def send(self, message: SmsMessage) -> SendResult: ...

    async def close(self) -> None: ...


class Closable(Protocol):
    async def close(self) -> None: ...


# A message the local sink captured instead of sending (the dev outbox lists them). No docstring: the
# OpenAPI document names this type, and a docstring would become its description there.
@dataclass(frozen=True)
class Captured:
    channel: str
    notification_id: str
    reference: str
    sender: str
    to: str
    subject: str | None
    body: str
    content_type: str | None
    at: str
    outcome: str
    orderer: str


class DevOutbox(Protocol):
    def captured(self, orderer: str | None = None) -> list[dict[str, Any]]:
        """The captured messages as JSON, newest first; with ``orderer``, only that orderer's."""
        ...


class ConditionChecker(Protocol):
    async def check(self, url: str) -> bool | None:
        """The endpoint's ``sendNotification``; None when it could not be asked or answered badly."""
        ...


@dataclass
class StatusChange:
    """A status change to publish into Herald's own hub."""

    order: Order
    notification: Notification
    extra: dict[str, object] = field(default_factory=dict)


class StatusEvents(Protocol):
    def event(self, change: StatusChange) -> dict[str, Any]:
        """The CloudEvent announcing the change; the same change always gives the same event."""
        ...

    async def publish(self, events: Sequence[dict[str, Any]]) -> None:
        """Publishes into the hub; an event published before is a duplicate there, not a second event."""
        ...
