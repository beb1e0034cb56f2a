"""/api/v1/subscriptions: webhook subscriptions of the calling consumer (scope ``events.subscribe``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.api.auth import require_scope
from shared.api.dependencies import use_cases
from shared.api.notification_orders import refused_problem
from shared.api.openapi import LOCATION, NEXT_LINK, problems
from shared.api.paging import next_link
from shared.api.problems import Problem, missing_as_404
from shared.api.responses import (
    DeadLetterPage,
    DeliveryPage,
    Replayed,
    SubscriptionHealthView,
    SubscriptionPage,
    SubscriptionTestResult,
    SubscriptionView,
)
from shared.api.subscription_schemas import SubscriptionPatch, SubscriptionRequest, subscription_view
from shared.api.target_schemas import ValidationCodeIn
from shared.endpoint_policy import EndpointRefused
from shared.events.model import format_time
from shared.identity.tokens import Principal
from shared.notifications.orders import SenderForbidden
from shared.subscriptions.changes import ChangeRefused
from shared.subscriptions.model import FilterProblem
from shared.subscriptions.ports import IdenticalExists
from shared.subscriptions.service import (
    NotAWebhook,
    NotValidated,
    RotatedRecently,
    SubscriptionForbidden,
    SubscriptionNotFound,
    SubscriptionService,
    TooManyTestPushes,
)
from shared.subscriptions.stats import HealthReport, WindowFigures
from shared.subscriptions.targets import TargetProblem
from shared.subscriptions.validation import NotADestination, NotAwaitingCode, WrongValidationCode

router = APIRouter(tags=["subscriptions"])
subscriber = require_scope("events.subscribe")
SubscriptionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^sub_[0-9a-f]{32}$")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
NOTIFICATION_SCOPE = "notifications.order"  # a notification subscription creates orders


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime | None = None


async def _service(request: Request) -> SubscriptionService:
    services = await use_cases(request)
    service: SubscriptionService = services.subscriptions
    return service


def _own(subscription_id: str) -> AbstractContextManager[None]:
    """Only the caller's own subscriptions are found: any other is a 404 (another consumer's
    subscription is not revealed)."""
    return missing_as_404(SubscriptionNotFound, f"you have no subscription {subscription_id}", "subscription-not-found")


@router.post(
    "/api/v1/subscriptions",
    status_code=201,
    summary="Create a webhook subscription",
    description=(
        "The new subscription is `pending` until its endpoint accepts a `platform.events.validatesubscription` event "
        "(a `destination`: until you send back the code that event carried, `POST …/validate`); "
        "the signing secret is returned only here. Creating an identical subscription again returns the existing one (200). "
        "With `notification` instead of `endPoint` (and the scope `notifications.order` too), each matching event "
        "becomes an email/SMS order to the event's subject; such a subscription is `active` at once and has no secret. "
        "With `destination` instead, events are published to your Azure Event Grid topic or Service Bus queue or "
        "topic, with Herald's managed identity; `authentication` gives an `endPoint`'s gateway a bearer token as "
        "Herald or custom headers (docs/push-targets.md)."
    ),
    response_model=SubscriptionView,
    response_description="The new subscription, with its secret",
    responses={
        201: {"headers": LOCATION},
        200: {"model": SubscriptionView, "description": "An identical subscription exists", "headers": LOCATION},
        **problems(503),
        400: {"description": "Invalid request, or an endpoint Herald may not call"},
        403: {"description": "The token lacks a scope, or the consumer may not subscribe with these filters"},
    },
)
async def create_subscription(
    request: Request, body: Annotated[SubscriptionRequest, Body()], principal: Principal = Depends(subscriber)
) -> JSONResponse:
    service = await _service(request)
    if body.notification is not None and NOTIFICATION_SCOPE not in principal.scopes:
        raise Problem(
            403,
            "Forbidden",
            f"a notification subscription orders notifications: the token also needs the scope '{NOTIFICATION_SCOPE}'",
            kind="insufficient-scope",
        )
    spec = body.notification_spec()
    if spec is not None:
        # Its orders will claim these senders: refused now, as an order claiming them would be.
        feature = (await use_cases(request)).notifications
        try:
            await feature.orders.check_senders(principal.subject, spec.email_template, spec.sms_template)
        except SenderForbidden as error:
            raise refused_problem(error) from error
    try:
        subscription, secret, created = await service.create(
            principal.subject,
            body.filters(),
            endpoint=body.end_point,
            notification=spec,
            ordering=body.ordering,
            destination=body.destination_value(),
            authentication=body.authentication_value(),
        )
    except (EndpointRefused, TargetProblem) as error:
        raise Problem(400, "Bad Request", str(error), kind="endpoint-refused") from error
    except SubscriptionForbidden as error:
        raise Problem(403, "Forbidden", str(error), kind="subscribe-forbidden") from error
    location = f"/api/v1/subscriptions/{subscription.id}"
    return JSONResponse(
        subscription_view(subscription, secret=secret),
        status_code=201 if created else 200,
        headers={"Location": location},
    )


@router.get(
    "/api/v1/subscriptions",
    summary="List your subscriptions",
    response_model=SubscriptionPage,
    responses={200: {"headers": NEXT_LINK}},
)
async def list_subscriptions(
    request: Request,
    after: Annotated[str | None, Query(max_length=200)] = None,
    size: PageSize = 100,
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    service = await _service(request)
    found, token = await service.page(principal.subject, after, size)
    body = {"count": len(found), "subscriptions": [subscription_view(s) for s in found]}
    return JSONResponse(body, headers=await next_link(request, token))


@router.get(
    "/api/v1/subscriptions/{subscription_id}",
    summary="Get a subscription",
    response_model=SubscriptionView,
    responses=problems(404),
)
async def get_subscription(
    request: Request, subscription_id: SubscriptionId, principal: Principal = Depends(subscriber)
) -> JSONResponse:
    with _own(subscription_id):
        subscription = await (await _service(request)).get(principal.subject, subscription_id)
    return JSONResponse(subscription_view(subscription))


@router.patch(
    "/api/v1/subscriptions/{subscription_id}",
    summary="Change a subscription",
    description=(
        "Changes filters (`null` clears an optional one), `endPoint`, `ordering` or a notification subscription's "
        "`notification`; the fields left out stay as they are. The result is checked as a create is, and applies "
        "to the next event matched. A new `endPoint` makes the subscription `pending`: it receives nothing until "
        "it has accepted a `platform.events.validatesubscription` event, sent a few seconds after the change; "
        "deliveries already queued and events published meanwhile wait for that and then go to the new endpoint. "
        "Changing `notification` needs the scope `notifications.order` too; `ordering: subject` applies to pushes "
        "only (a notification subscription refuses it)."
    ),
    response_model=SubscriptionView,
    responses={
        **problems(404, 503),
        400: {"description": "Invalid change, filters that could never match, or an endpoint Herald may not call"},
        403: {"description": "The token lacks a scope, or the consumer may not subscribe with the new filters"},
        409: {"description": "The change would make it identical to another of your subscriptions"},
    },
)
async def change_subscription(
    request: Request,
    subscription_id: SubscriptionId,
    body: Annotated[SubscriptionPatch, Body()],
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    service = await _service(request)
    change = body.change()
    with _own(subscription_id):
        await service.get(principal.subject, subscription_id)  # another consumer's is a 404 before anything else
        if change.notification is not None:
            if NOTIFICATION_SCOPE not in principal.scopes:
                raise Problem(
                    403,
                    "Forbidden",
                    f"a notification subscription orders notifications: the token also needs the scope "
                    f"'{NOTIFICATION_SCOPE}'",
                    kind="insufficient-scope",
                )
            spec = change.notification
            try:
                notifications = (await use_cases(request)).notifications
                await notifications.orders.check_senders(principal.subject, spec.email_template, spec.sms_template)
            except SenderForbidden as error:
                raise refused_problem(error) from error
        try:
            subscription = await service.update(principal.subject, subscription_id, change)
        except (ChangeRefused, FilterProblem) as error:
            raise Problem(400, "Bad Request", f"{error}; nothing changed", kind="change-refused") from error
        except (EndpointRefused, TargetProblem) as error:
            raise Problem(400, "Bad Request", str(error), kind="endpoint-refused") from error
        except SubscriptionForbidden as error:
            raise Problem(403, "Forbidden", str(error), kind="subscribe-forbidden") from error
        except IdenticalExists as error:
            raise Problem(
                409,
                "Conflict",
                f"the change would make it identical to your subscription {error.existing_id}; nothing changed",
                kind="subscription-exists",
                extensions={"existingId": error.existing_id},
            ) from error
    return JSONResponse(subscription_view(subscription))


@router.delete(
    "/api/v1/subscriptions/{subscription_id}",
    status_code=204,
    summary="Delete a subscription",
    responses=problems(404),
)
async def delete_subscription(
    request: Request, subscription_id: SubscriptionId, principal: Principal = Depends(subscriber)
) -> Response:
    with _own(subscription_id):
        await (await _service(request)).delete(principal.subject, subscription_id)
    return Response(status_code=204)


@router.post(
    "/api/v1/subscriptions/{subscription_id}/enable",
    summary="Validate and enable a disabled subscription",
    response_model=SubscriptionView,
    responses=problems(404),
)
async def enable_subscription(
    request: Request, subscription_id: SubscriptionId, principal: Principal = Depends(subscriber)
) -> JSONResponse:
    with _own(subscription_id):
        subscription = await (await _service(request)).enable(principal.subject, subscription_id)
    return JSONResponse(subscription_view(subscription))


@router.post(
    "/api/v1/subscriptions/{subscription_id}/validate",
    summary="Validate a destination with the code its validation event carried",
    response_model=SubscriptionView,
    responses={
        **problems(404),
        400: {"description": "Not the code of the latest validation event published to the destination"},
        409: {
            "description": "Not a destination subscription (a webhook is validated by accepting the validation "
            "event), or not pending with a published validation event"
        },
    },
    description=(
        "A subscription with a `destination` stays `pending` after its validation event was published there: "
        "send back the event's `data.validationCode` to show you read the destination, and it is `active`. Each "
        "validation event carries a new code (`enable` publishes one again); a code validates once."
    ),
)
async def validate_destination(
    request: Request,
    subscription_id: SubscriptionId,
    body: Annotated[ValidationCodeIn, Body()],
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    try:
        with _own(subscription_id):
            validation = (await use_cases(request)).validation
            subscription = await validation.confirm(principal.subject, subscription_id, body.validationCode)
    except WrongValidationCode as error:
        raise Problem(400, "Bad Request", str(error), kind="validation-code-refused") from error
    except NotADestination as error:
        raise Problem(409, "Conflict", str(error), kind="not-a-destination") from error
    except NotAwaitingCode as error:
        raise Problem(409, "Conflict", str(error), kind="not-awaiting-validation") from error
    return JSONResponse(subscription_view(subscription))


@router.post(
    "/api/v1/subscriptions/{subscription_id}/rotate-secret",
    summary="Rotate the signing secret",
    response_model=SubscriptionView,
    responses=problems(404, 429),
    description=(
        "Returns the new secret once; deliveries carry signatures with both secrets for 24 hours, from the "
        "first push after the answer. Rotations are at least 30 seconds apart."
    ),
)
async def rotate_secret(
    request: Request, subscription_id: SubscriptionId, principal: Principal = Depends(subscriber)
) -> JSONResponse:
    try:
        with _own(subscription_id):
            subscription, secret = await (await _service(request)).rotate_secret(principal.subject, subscription_id)
    except RotatedRecently as error:
        raise Problem(
            429, "Too Many Requests", f"{error}; nothing changed", kind="rotated-recently",
            headers={"Retry-After": str(error.retry_after_seconds)},
        ) from error  # fmt: skip
    return JSONResponse(subscription_view(subscription, secret=secret))


@router.get(
    "/api/v1/subscriptions/{subscription_id}/deadletters",
    summary="Deliveries that exhausted the retry schedule",
    response_model=DeadLetterPage,
    responses={200: {"headers": NEXT_LINK}, **problems(404)},
)
async def dead_letters(
    request: Request,
    subscription_id: SubscriptionId,
    after: Annotated[str | None, Query(max_length=200)] = None,
    size: PageSize = 100,
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    with _own(subscription_id):
        letters, token = await (await _service(request)).dead_letters(principal.subject, subscription_id, after, size)
    body = {"count": len(letters), "deadLetters": [_json(asdict(letter)) for letter in letters]}
    return JSONResponse(body, headers=await next_link(request, token))


@router.post(
    "/api/v1/subscriptions/{subscription_id}/replay",
    status_code=202,
    summary="Queue dead letters again",
    response_model=Replayed,
    responses=problems(404),
    description="All dead letters, or those dead-lettered since `since`, are delivered again with a fresh retry schedule.",
)
async def replay(
    request: Request,
    subscription_id: SubscriptionId,
    body: Annotated[ReplayRequest | None, Body()] = None,
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    with _own(subscription_id):
        count = await (await _service(request)).replay(principal.subject, subscription_id, body.since if body else None)
    return JSONResponse({"replayed": count}, status_code=202)


@router.get(
    "/api/v1/subscriptions/{subscription_id}/deliveries",
    summary="Delivery attempts of the last 14 days, newest first",
    response_model=DeliveryPage,
    responses={200: {"headers": NEXT_LINK}, **problems(404)},
)
async def deliveries(
    request: Request,
    subscription_id: SubscriptionId,
    before: Annotated[str | None, Query(max_length=300)] = None,
    size: PageSize = 100,
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    with _own(subscription_id):
        attempts, token = await (await _service(request)).deliveries(principal.subject, subscription_id, size, before)
    body = {"count": len(attempts), "deliveries": [_json(asdict(attempt)) for attempt in attempts]}
    return JSONResponse(body, headers=await next_link(request, token, name="before"))


def _not_a_webhook(error: NotAWebhook) -> Problem:
    return Problem(409, "Conflict", str(error), kind="not-a-webhook")


@router.post(
    "/api/v1/subscriptions/{subscription_id}/test",
    summary="Push a test event to the endpoint now",
    response_model=SubscriptionTestResult,
    responses={
        **problems(404, 429),
        409: {
            "description": "A notification subscription: there is no webhook to push to; or a pending one: its "
            "endpoint has not accepted the validation event yet"
        },
    },
    description=(
        "Signs and pushes a `herald.subscription.test` event to the subscription's endpoint at once, and answers "
        "with the attempt: status code, latency and error. The push is neither retried nor logged, and the health "
        "figures do not count it. At most 10 in a row per subscription, then one every 6 s. Refused while the "
        "subscription is `pending`: an endpoint gets nothing before it has accepted the validation event."
    ),
)
async def test_push(
    request: Request, subscription_id: SubscriptionId, principal: Principal = Depends(subscriber)
) -> JSONResponse:
    try:
        with _own(subscription_id):
            report = await (await _service(request)).test_push(principal.subject, subscription_id)
    except NotAWebhook as error:
        raise _not_a_webhook(error) from error
    except NotValidated as error:
        raise Problem(409, "Conflict", str(error), kind="not-validated") from error
    except TooManyTestPushes as error:
        raise Problem(
            429, "Too Many Requests", f"{error}; nothing was pushed", kind="test-push-limited",
            headers={"Retry-After": str(error.retry_after_seconds)},
        ) from error  # fmt: skip
    return JSONResponse(_json(asdict(report)))


@router.get(
    "/api/v1/subscriptions/{subscription_id}/health",
    summary="Delivery health of the last hour, day and 14 days",
    response_model=SubscriptionHealthView,
    responses={
        **problems(404),
        409: {"description": "A notification subscription: there are no pushes to report on"},
    },
    description=(
        "Delivered and failed attempts, success rate and p50/p95 latency per window, and the last day by clock "
        "hour and the last hour by ten-minute slot to chart; deliveries waiting for a retry; dead letters; the "
        "last success and failure; the circuit state. Outbound workers write their counts every few seconds, so "
        "the newest attempts may be missing for that long."
    ),
)
async def subscription_health(
    request: Request, subscription_id: SubscriptionId, principal: Principal = Depends(subscriber)
) -> JSONResponse:
    try:
        with _own(subscription_id):
            report = await (await _service(request)).health(principal.subject, subscription_id)
    except NotAWebhook as error:
        raise _not_a_webhook(error) from error
    return JSONResponse(_health_json(report))


def _health_json(report: HealthReport) -> dict[str, Any]:
    subscription = report.subscription

    def window(figures: WindowFigures) -> dict[str, Any]:
        return {
            "delivered": figures.delivered,
            "failed": figures.failed,
            "successRate": figures.success_rate,
            "p50LatencyMs": figures.p50_ms,
            "p95LatencyMs": figures.p95_ms,
        }

    opened = subscription.circuit_opened_at
    return {
        "subscriptionId": subscription.id,
        "status": subscription.status.value,
        "asOf": report.as_of.isoformat(),
        "lastHour": window(report.last_hour),
        "lastDay": window(report.last_day),
        "last14Days": window(report.last_14_days),
        "hourly": [{"start": format_time(p.start), **window(p.figures)} for p in report.hourly],
        "recent": [{"start": format_time(p.start), **window(p.figures)} for p in report.recent],
        "retriesWaiting": report.retries_waiting,
        "deadLetters": report.dead_letters,
        "deadLettersCapped": report.dead_letters_capped,
        "lastSuccess": _json(asdict(report.last_success)) if report.last_success else None,
        "lastFailure": _json(asdict(report.last_failure)) if report.last_failure else None,
        "failingSince": subscription.failing_since.isoformat() if subscription.failing_since else None,
        "circuit": {"state": report.circuit, "openedAt": opened.isoformat() if opened else None},
    }


def _json(record: dict[str, Any]) -> dict[str, Any]:
    return {_camel(k): (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
