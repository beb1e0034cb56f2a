"""Notification orders: POST /api/v1/notifications/orders, list, read, status, cancel (scope notifications.order).

Orders are visible only to their creator (the token's subject); anyone else gets 404.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.api.auth import require_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import LOCATION, NEXT_LINK, problems
from shared.api.paging import next_link
from shared.api.problems import Problem, missing_as_404
from shared.api.responses import OrderAccepted, OrderStatusReport, OrderSummaryPage, OrderView
from shared.api.subscription_schemas import EmailTemplateIn, SmsTemplateIn
from shared.events.model import format_time
from shared.identity.tokens import Principal
from shared.notifications.limits import LimitExceeded, TooLargeForLimit
from shared.notifications.listing import CursorInvalid
from shared.notifications.model import (
    EmailTemplate,
    Notification,
    NotificationChannel,
    Order,
    RecipientSpec,
    SendingTimePolicy,
    SmsTemplate,
)
from shared.notifications.orders import (
    CancelProhibited,
    OrderInvalid,
    OrderNotFound,
    OrderRequest,
    OrderStatusView,
    ResourceForbidden,
    SenderForbidden,
)
from shared.notifications.ports import OrderRefused, OrderSummary
from shared.notifications.service import Notifications
from shared.notifications.status import history_of

router = APIRouter(tags=["notifications"])
SCOPE = "notifications.order"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecipientIn(_Strict):
    emailAddress: str | None = Field(default=None, max_length=254)
    mobileNumber: str | None = Field(default=None, max_length=20)
    nationalIdentityNumber: str | None = Field(default=None, max_length=11)
    organizationNumber: str | None = Field(default=None, max_length=9)


class OrderIn(_Strict):
    idempotencyId: str = Field(min_length=1, max_length=200)
    sendersReference: str | None = Field(default=None, max_length=200)
    requestedSendTime: datetime | None = None
    notificationChannel: NotificationChannel
    emailTemplate: EmailTemplateIn | None = None
    smsTemplate: SmsTemplateIn | None = None
    recipients: list[RecipientIn] = Field(min_length=1)
    ignoreReservation: bool = False
    resourceId: str | None = Field(default=None, max_length=255)
    conditionEndpoint: str | None = Field(default=None, max_length=2000)
    sendingTimePolicy: SendingTimePolicy | None = None

    def to_request(self) -> OrderRequest:
        email = self.emailTemplate
        sms = self.smsTemplate
        return OrderRequest(
            idempotency_id=self.idempotencyId,
            senders_reference=self.sendersReference,
            requested_send_time=self.requestedSendTime,
            channel=self.notificationChannel,
            email_template=EmailTemplate(email.subject, email.body, email.contentType, email.fromAddress)
            if email
            else None,
            sms_template=SmsTemplate(sms.body, sms.senderNumber) if sms else None,
            recipients=[
                RecipientSpec(r.emailAddress, r.mobileNumber, r.nationalIdentityNumber, r.organizationNumber)
                for r in self.recipients
            ],
            ignore_reservation=self.ignoreReservation,
            resource_id=self.resourceId,
            condition_endpoint=self.conditionEndpoint,
            sending_time_policy=self.sendingTimePolicy,
        )


async def notifications_of(request: Request) -> Notifications:
    services = await use_cases(request)
    feature: Notifications = services.notifications
    return feature


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value else None


def order_json(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": order.id,
        "creator": order.creator,
        "idempotencyId": order.idempotency_id,
        "sendersReference": order.senders_reference,
        "requestedSendTime": _time(order.requested_send_time),
        "created": _time(order.created),
        "notificationChannel": order.channel.value,
        "ignoreReservation": order.ignore_reservation,
        "resourceId": order.resource_id,
        "conditionEndpoint": order.condition_endpoint,
        "sendingTimePolicy": order.sending_time_policy.value if order.sending_time_policy else None,
        "recipients": [r.to_json() for r in order.recipients],
        "processingStatus": {"status": order.status.value, "lastUpdate": _time(order.status_time)},
    }
    if order.email_template:
        body["emailTemplate"] = order.email_template.to_json()
    if order.sms_template:
        body["smsTemplate"] = order.sms_template.to_json()
    return body


def summary_json(order: OrderSummary) -> dict[str, Any]:
    return {
        "id": order.id,
        "created": format_time(order.created),
        "notificationChannel": order.channel,
        "processingStatus": {"status": order.status, "lastUpdate": _time(order.status_time)},
        "sendersReference": order.senders_reference,
        "requestedSendTime": _time(order.requested_send_time),
        "resourceId": order.resource_id,
        "recipientCount": order.recipients,
    }


def notification_json(n: Notification) -> dict[str, Any]:
    recipient: dict[str, Any] = dict(n.recipient.to_json())
    if n.address:
        recipient["address"] = n.address
    return {
        "id": n.id,
        "channel": n.channel.value,
        "recipient": recipient,
        "sendStatus": {"status": n.status.value, "description": n.description, "lastUpdate": _time(n.status_time)},
        "history": [
            {"status": t.status.value, "at": format_time(t.at), "description": t.description} for t in history_of(n)
        ],
    }


def status_json(view: OrderStatusView) -> dict[str, Any]:
    return {
        "orderId": view.order.id,
        "sendersReference": view.order.senders_reference,
        "processingStatus": {"status": view.status.value, "lastUpdate": _time(view.order.status_time)},
        "counts": view.counts,
        "notifications": [notification_json(n) for n in view.notifications],
    }


def _invalid(error: OrderInvalid) -> Problem:
    return Problem(
        400,
        "Bad Request",
        "the order is not valid: " + "; ".join(f"{p.location}: {p.detail}" for p in error.problems[:5]),
        kind="invalid-order",
        extensions={"errors": [{"location": p.location, "detail": p.detail} for p in error.problems]},
    )


def refused_problem(error: OrderRefused) -> Problem:
    """The problem answering an order its orderer may not make (or not now); nothing was stored."""
    if isinstance(error, ResourceForbidden):
        return Problem(
            403, "Forbidden", f"{error}; nothing was stored", kind="resource-forbidden",
            extensions={"resource": error.resource},
        )  # fmt: skip
    if isinstance(error, SenderForbidden):
        return Problem(
            403, "Forbidden", f"{error}; nothing was stored", kind="sender-not-granted",
            extensions={"senders": [{"location": r.location, "value": r.value} for r in error.refusals]},
        )  # fmt: skip
    if isinstance(error, LimitExceeded):
        seconds = error.retry_after_seconds
        return Problem(
            429, "Too Many Requests", f"{error}; nothing was stored, retry in {seconds} s", kind="notification-limit",
            extensions={"window": error.window, "limit": error.limit}, headers={"Retry-After": str(seconds)},
        )  # fmt: skip
    if isinstance(error, TooLargeForLimit):
        return Problem(
            413, "Content Too Large", f"{error}: split it over several days; nothing was stored",
            kind="order-too-large", extensions={"notifications": error.count, "limit": error.limit},
        )  # fmt: skip
    raise error


def _own(order_id: str) -> AbstractContextManager[None]:
    """Only the caller's own orders are found: any other is a 404, as an order that does not exist."""
    return missing_as_404(OrderNotFound, f"there is no order {order_id}", "order-not-found")


@router.post(
    "/api/v1/notifications/orders",
    status_code=202,
    summary="Order email and/or SMS notifications",
    description=(
        "Creates an order (202) or, for an `idempotencyId` the caller used before, returns that order (200). "
        "The answer names the order and the recipient lookup: who is reserved and who has no contact point."
    ),
    response_model=OrderAccepted,
    response_description="The order was created",
    responses={
        202: {"headers": LOCATION},
        200: {
            "model": OrderAccepted,
            "description": "The order created earlier with this idempotencyId",
            "headers": LOCATION,
        },
        **problems(503),
        403: {"description": "A resourceId or sender the orderer may not use"},
        413: {"description": "The order alone makes more notifications than a day allows"},
        429: {"description": "Over the orderer's notifications a minute or a day: see Retry-After"},
    },
)
async def create_order(
    body: OrderIn, request: Request, principal: Principal = Depends(require_scope(SCOPE))
) -> JSONResponse:
    feature = await notifications_of(request)
    try:
        order, created = await feature.orders.create(principal.subject, body.to_request())
    except OrderInvalid as error:
        raise _invalid(error) from error
    except OrderRefused as error:
        raise refused_problem(error) from error
    payload = {"orderId": order.id, "recipientLookup": order.lookup.to_json() if order.lookup else None}
    return JSONResponse(
        payload, status_code=202 if created else 200, headers={"Location": f"/api/v1/notifications/orders/{order.id}"}
    )


@router.get(
    "/api/v1/notifications/orders",
    summary="List your orders, newest first",
    description=(
        "A summary of each order the caller created (never its recipients or templates), newest first. "
        '`size` orders a page; the `Link` header\'s `rel="next"` URL (an opaque `after` cursor) reads on. '
        "The status is the order's processing status as stored: `Completed` shows on the order's status only."
    ),
    response_model=OrderSummaryPage,
    responses={200: {"headers": NEXT_LINK}},
)
async def list_orders(
    request: Request,
    after: Annotated[str | None, Query(max_length=200, description="The cursor from the previous page's Link")] = None,
    size: Annotated[int, Query(ge=1, le=100)] = 50,
    principal: Principal = Depends(require_scope(SCOPE)),
) -> JSONResponse:
    feature = await notifications_of(request)
    try:
        found, token = await feature.orders.page(principal.subject, after, size)
    except CursorInvalid as error:
        raise Problem(400, "Bad Request", str(error), kind="cursor-invalid") from error
    body = {"count": len(found), "orders": [summary_json(o) for o in found]}
    return JSONResponse(body, headers=await next_link(request, token))


@router.get(
    "/api/v1/notifications/orders/{order_id}",
    summary="An order as stored",
    responses={200: {"model": OrderView}, **problems(404)},
)
async def get_order(order_id: str, request: Request, principal: Principal = Depends(require_scope(SCOPE))) -> Any:
    feature = await notifications_of(request)
    with _own(order_id):
        order = await feature.orders.get(principal.subject, order_id)
    return order_json(order)


@router.get(
    "/api/v1/notifications/orders/{order_id}/status",
    summary="Order status, each notification's status and counts per channel",
    responses={200: {"model": OrderStatusReport}, **problems(404)},
)
async def get_order_status(
    order_id: str, request: Request, principal: Principal = Depends(require_scope(SCOPE))
) -> Any:
    feature = await notifications_of(request)
    with _own(order_id):
        view = await feature.orders.status(principal.subject, order_id)
    return status_json(view)


@router.post(
    "/api/v1/notifications/orders/{order_id}/cancel",
    summary="Cancel an order that has not started processing",
    responses={200: {"model": OrderView}, **problems(404), 409: {"description": "Processing has started"}},
)
async def cancel_order(order_id: str, request: Request, principal: Principal = Depends(require_scope(SCOPE))) -> Any:
    feature = await notifications_of(request)
    try:
        with _own(order_id):
            order = await feature.orders.cancel(principal.subject, order_id)
    except CancelProhibited as error:
        raise Problem(409, "Conflict", str(error), kind="cancellation-prohibited") from error
    return order_json(order)
