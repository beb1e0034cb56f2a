"""Order intake: validation, idempotency, the order-time recipient lookup, reads and cancellation."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.endpoint_policy import EndpointPolicy, EndpointRefused
from shared.identity.authorization import Authorizer, is_herald_resource
from shared.messaging import Bus
from shared.notifications.config import NotificationConfig
from shared.notifications.limits import OrderLimiter
from shared.notifications.listing import decode_cursor, encode_cursor
from shared.notifications.messages import ORDERS_QUEUE, start_message
from shared.notifications.model import (
    Channel,
    EmailTemplate,
    Notification,
    NotificationChannel,
    Order,
    OrderStatus,
    RecipientSpec,
    SendingTimePolicy,
    SmsTemplate,
    Status,
)
from shared.notifications.ports import (
    Conflict,
    ContactRegistry,
    OrderExists,
    OrderRefused,
    OrderSummary,
    RecipientAuthorizer,
)
from shared.notifications.recipients import e164, resolve, valid_email
from shared.notifications.records import OrderRecords, OrderUseCase
from shared.notifications.senders import SenderPolicy, SenderRefusal
from shared.notifications.status import is_final
from shared.notifications.status_events import resource_of
from shared.notifications.templates import MAX_SMS_SEGMENTS, render_sms, sms_length
from shared.urns import URN_PATTERN

PAST_TOLERANCE = timedelta(minutes=5)
_NIN = re.compile(r"^\d{11}$")
_ORGNO = re.compile(r"^\d{9}$")


@dataclass(frozen=True)
class OrderRequest:
    idempotency_id: str
    senders_reference: str | None
    requested_send_time: datetime | None
    channel: NotificationChannel
    email_template: EmailTemplate | None
    sms_template: SmsTemplate | None
    recipients: list[RecipientSpec]
    ignore_reservation: bool = False
    resource_id: str | None = None
    condition_endpoint: str | None = None
    sending_time_policy: SendingTimePolicy | None = None


@dataclass(frozen=True)
class FieldProblem:
    location: str
    detail: str


class OrderInvalid(Exception):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.location}: {p.detail}" for p in problems))
        self.problems = problems


class OrderNotFound(Exception):
    pass


class ResourceForbidden(OrderRefused):
    """The order names a resource its orderer may not publish status events into."""

    def __init__(self, orderer: str, resource: str, reason: str) -> None:
        super().__init__(f"{orderer} may not name {resource} as the order's resourceId: {reason}")
        self.resource = resource


class SenderForbidden(OrderRefused):
    """The templates claim a sender no administrator granted the orderer."""

    def __init__(self, orderer: str, refusals: list[SenderRefusal]) -> None:
        claimed = ", ".join(f"{r.location} {r.value!r}" for r in refusals)
        super().__init__(
            f"{orderer} was not granted the sender {claimed}; omit it to send as Herald's default sender, "
            "or ask an administrator to grant it"
        )
        self.refusals = refusals


class CancelProhibited(Exception):
    def __init__(self, status: OrderStatus) -> None:
        super().__init__(f"the order is {status}; only a Registered order can be cancelled")
        self.status = status


def validate(request: OrderRequest, now: datetime, config: NotificationConfig) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    add = problems.append
    if not request.idempotency_id.strip():
        add(FieldProblem("idempotencyId", "must not be empty"))
    when = request.requested_send_time
    if when is not None:
        if when.tzinfo is None or when.utcoffset() is None:
            add(FieldProblem("requestedSendTime", "must carry a time zone (such as Z or +01:00)"))
        elif when < now - PAST_TOLERANCE:
            add(FieldProblem("requestedSendTime", "must not be in the past"))
    channel = request.channel
    if channel.needs_email and request.email_template is None:
        add(FieldProblem("emailTemplate", f"is required for notificationChannel {channel}"))
    if channel.needs_sms and request.sms_template is None:
        add(FieldProblem("smsTemplate", f"is required for notificationChannel {channel}"))
    if request.email_template is not None:
        template = request.email_template
        if not template.subject.strip():
            add(FieldProblem("emailTemplate.subject", "must not be empty"))
        if not template.body.strip():
            add(FieldProblem("emailTemplate.body", "must not be empty"))
        if template.from_address is not None and not valid_email(template.from_address):
            add(FieldProblem("emailTemplate.fromAddress", "is not a valid email address"))
    if request.sms_template is not None:
        if not request.sms_template.body.strip():
            add(FieldProblem("smsTemplate.body", "must not be empty"))
        else:
            length = sms_length(render_sms(request.sms_template, None, None))
            if length.segments > MAX_SMS_SEGMENTS:
                add(_too_long("smsTemplate.body", length.segments, length.encoding))
    if not request.recipients:
        add(FieldProblem("recipients", "must name at least one recipient"))
    if len(request.recipients) > config.max_recipients:
        add(FieldProblem("recipients", f"at most {config.max_recipients} recipients per order"))
    for index, spec in enumerate(request.recipients):
        where = f"recipients.{index}"
        given = spec.to_json()
        if len(given) != 1:
            add(
                FieldProblem(
                    where, "give exactly one of emailAddress, mobileNumber, nationalIdentityNumber, organizationNumber"
                )
            )
            continue
        if spec.email_address is not None and not valid_email(spec.email_address):
            add(FieldProblem(f"{where}.emailAddress", "is not a valid email address"))
        if spec.mobile_number is not None and e164(spec.mobile_number, strict=True) != spec.mobile_number:
            add(FieldProblem(f"{where}.mobileNumber", "must be a valid number in E.164 form, such as +4799999999"))
        if spec.national_identity_number is not None and not _NIN.match(spec.national_identity_number):
            add(FieldProblem(f"{where}.nationalIdentityNumber", "must be 11 digits"))
        if spec.organization_number is not None and not _ORGNO.match(spec.organization_number):
            add(FieldProblem(f"{where}.organizationNumber", "must be 9 digits"))
    if request.resource_id is not None and not URN_PATTERN.match(request.resource_id):
        add(FieldProblem("resourceId", "must be a URN such as urn:altinn:resource:skattemelding"))
    if request.condition_endpoint is not None and not re.match(r"^https?://[^\s/]+", request.condition_endpoint):
        add(FieldProblem("conditionEndpoint", "must be an absolute http(s) URL"))
    return problems


def _too_long(location: str, segments: int, encoding: str) -> FieldProblem:
    return FieldProblem(
        location, f"needs {segments} SMS segments ({encoding}); the limit is {MAX_SMS_SEGMENTS} and texts are never cut"
    )


@dataclass
class OrderStatusView:
    order: Order
    status: OrderStatus
    notifications: list[Notification]
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)


class OrderService(OrderUseCase):
    def __init__(
        self,
        records: OrderRecords,
        *,
        registry: ContactRegistry,
        authorizer: RecipientAuthorizer,
        bus: Bus,
        endpoints: EndpointPolicy,
        publishing: Authorizer,
        senders: SenderPolicy,
        limiter: OrderLimiter,
    ) -> None:
        super().__init__(records)
        self._registry = registry
        self._authorizer = authorizer
        self._bus = bus
        self._endpoints = endpoints
        self._publishing = publishing
        self._senders = senders
        self.limiter = limiter

    async def resource_refusal(self, orderer: str, resource: str) -> str | None:
        """Why ``orderer`` may not name ``resource`` as an order's resourceId (None: it may).

        The order's status events are published into that resource, so naming it is publishing
        there: the resource's policy decides, as for ``POST /api/v1/events``. Herald's own
        resources are never named, but for the orderer's own status stream."""
        if resource == resource_of(None, orderer, self.config.default_resource):
            return None
        if is_herald_resource(resource):
            return "Herald's own resources are written by Herald only"
        if await self._publishing.refused_publishing(orderer, [resource]):
            return "the resource's policy does not let it publish there"
        return None

    async def check_senders(self, orderer: str, email: EmailTemplate | None, sms: SmsTemplate | None) -> None:
        """Raises SenderForbidden when the templates claim a sender ``orderer`` was not granted."""
        not_granted = await self._senders.refused(orderer, email, sms)
        if not_granted:
            raise SenderForbidden(orderer, not_granted)

    async def create(self, creator: str, request: OrderRequest) -> tuple[Order, bool]:
        """Returns the order and whether it is new (False: the idempotency id was used before).

        Raises OrderInvalid (bad input), or an OrderRefused: ResourceForbidden, SenderForbidden,
        LimitExceeded (over a limit now) or TooLargeForLimit; none of them stores anything."""
        now = self.clock.now()
        problems = validate(request, now, self.config)
        if request.condition_endpoint is not None and not any(p.location == "conditionEndpoint" for p in problems):
            try:
                # Herald will GET this URL: the webhook endpoint policy applies (https, no internal address).
                await self._endpoints.check(request.condition_endpoint, field="conditionEndpoint")
            except EndpointRefused as refused:
                problems.append(FieldProblem("conditionEndpoint", refused.reason))
        if problems:
            raise OrderInvalid(problems)
        existing = await self.orders.by_idempotency_id(creator, request.idempotency_id)
        if existing is not None:
            return await self._scheduled(existing, now), False
        if request.resource_id is not None:
            reason = await self.resource_refusal(creator, request.resource_id)
            if reason is not None:
                raise ResourceForbidden(creator, request.resource_id, reason)
        email = request.email_template if request.channel.needs_email else None
        sms = request.sms_template if request.channel.needs_sms else None
        await self.check_senders(creator, email, sms)
        targets, lookup = await resolve(
            request.channel,
            request.recipients,
            ignore_reservation=request.ignore_reservation,
            resource_id=request.resource_id,
            registry=self._registry,
            authorizer=self._authorizer,
        )
        if request.sms_template is not None:
            longest = max(
                (
                    sms_length(render_sms(request.sms_template, t.name, t.organization_number))
                    for t in targets
                    if t.channel is Channel.SMS and t.address
                ),
                key=lambda length: length.segments,
                default=None,
            )
            if longest is not None and longest.segments > MAX_SMS_SEGMENTS:
                raise OrderInvalid([_too_long("smsTemplate.body", longest.segments, longest.encoding)])
        # Counted in notifications (every target becomes one), last, so a refused order counts nothing.
        await self.limiter.take(creator, len(targets), now)
        order = Order(
            id=str(uuid.uuid4()),
            creator=creator,
            idempotency_id=request.idempotency_id,
            senders_reference=request.senders_reference,
            requested_send_time=request.requested_send_time or now,
            channel=request.channel,
            email_template=email,
            sms_template=sms,
            recipients=list(request.recipients),
            ignore_reservation=request.ignore_reservation,
            resource_id=request.resource_id,
            condition_endpoint=request.condition_endpoint,
            sending_time_policy=request.sending_time_policy,
            created=now,
            status=OrderStatus.REGISTERED,
            status_time=now,
            lookup=lookup,
        )
        try:
            order = await self.orders.create(order)
        except OrderExists as exists:
            # A concurrent request with the same idempotency id got there first: its order counts, not this one.
            await self.limiter.give_back(creator, len(targets), now)
            return await self._scheduled(exists.existing, now), False
        except BaseException:
            # Not stored (storage failed, or the request was cancelled): nothing was ordered, so nothing counts.
            await self.limiter.give_back(creator, len(targets), now)
            raise
        return await self._scheduled(order, now), True

    async def _scheduled(self, order: Order, now: datetime) -> Order:
        if order.status is OrderStatus.REGISTERED:
            # Also on a replay: a crash after storing the order is repaired by the client's retry.
            await self.orders.schedule(order)
            at = order.requested_send_time if order.requested_send_time > now else None
            await self._bus.send(ORDERS_QUEUE, [start_message(order.creator, order.id, at)])
        return order

    async def get(self, creator: str, order_id: str, *, recipients: bool = True) -> Order:
        order = await self.orders.get(creator, order_id, recipients=recipients)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    async def page(self, creator: str, after: str | None, size: int) -> tuple[list[OrderSummary], str | None]:
        """The creator's orders, newest first, and the opaque cursor of the next page (None: the last).
        Raises listing.CursorInvalid for an ``after`` Herald did not issue."""
        found, last = await self.orders.page(creator, decode_cursor(after) if after is not None else None, size)
        return found, encode_cursor(last) if last is not None else None

    async def status(self, creator: str, order_id: str) -> OrderStatusView:
        order = await self.get(creator, order_id, recipients=False)
        notifications = await self.notifications.of_order(order.id)
        status = order.status
        if status is OrderStatus.PROCESSED and all(is_final(n.channel, n.status) for n in notifications):
            status = OrderStatus.COMPLETED
        counts: dict[str, dict[str, Any]] = {}
        for channel in Channel:
            mine = [n for n in notifications if n.channel is channel]
            if not mine:
                continue
            by_status = Counter(n.status.value for n in mine)
            counts[channel.value] = {
                "generated": len(mine),
                "succeeded": sum(1 for n in mine if n.status in (Status.SUCCEEDED, Status.ACCEPTED, Status.DELIVERED)),
                "delivered": by_status.get(Status.DELIVERED.value, 0),
                "failed": sum(1 for n in mine if n.status.value.startswith("Failed")),
                "byStatus": dict(sorted(by_status.items())),
            }
        return OrderStatusView(order, status, notifications, counts)

    async def cancel(self, creator: str, order_id: str) -> Order:
        for _ in range(5):
            order = await self.get(creator, order_id)
            if order.status is OrderStatus.CANCELLED:
                return order
            if order.status is not OrderStatus.REGISTERED:
                raise CancelProhibited(order.status)
            order.status = OrderStatus.CANCELLED
            order.status_time = self.clock.now()
            try:
                updated = await self.orders.update(order)
            except Conflict:
                continue
            await self.orders.unschedule(updated)
            return updated
        raise CancelProhibited(OrderStatus.PROCESSING)
