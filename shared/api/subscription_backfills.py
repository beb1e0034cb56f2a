"""/api/v1/subscriptions/{id}/backfill(s): push a webhook subscription the stored events of a range
(scope ``events.subscribe``; another consumer's subscription is not found)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.api.dependencies import use_cases
from shared.api.openapi import LOCATION, problems
from shared.api.problems import Problem, not_found
from shared.api.responses import BackfillView
from shared.api.subscriptions import SubscriptionId, subscriber
from shared.events.cursor import CursorExpired, CursorInvalid, encode_cursor
from shared.events.model import instant
from shared.identity.tokens import Principal
from shared.subscriptions.backfill import (
    Backfill,
    BackfillNotFound,
    BackfillRunning,
    Backfills,
    BackfillUnsupported,
    Bound,
    RangeInvalid,
    SubscriptionNotActive,
)
from shared.subscriptions.service import SubscriptionNotFound

router = APIRouter(tags=["subscriptions"])
BackfillId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^bf_[0-9a-f]{32}$")]
_BOUND = "An RFC 3339 time (events Herald stored at or after it) or a read cursor from a next link (events after it)"


class BackfillRequest(BaseModel):
    """``POST …/backfill``. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=200, description=_BOUND)
    to: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Where the range ends: an RFC 3339 time (events stored before it) or a read cursor (events up to "
        "and including it). Default: the events stored when the backfill is asked for.",
    )


_TIME_LIKE = re.compile(r"^\d{4}-")  # a cursor (base64url of "1.…") never starts so


def _bound(value: str, name: str) -> Bound:
    """A time when the value is RFC 3339, else a cursor."""
    try:
        return datetime.fromisoformat(instant(value).replace("Z", "+00:00"))
    except ValueError as error:
        if _TIME_LIKE.match(value):
            detail = (
                f"'{name}' is not an RFC 3339 time with an offset, such as 2026-01-02T03:04:05Z; nothing was started"
            )
            raise Problem(400, "Bad Request", detail, kind="invalid-request") from error
        return value


def backfill_view(backfill: Backfill) -> dict[str, Any]:
    resource = backfill.resource
    view: dict[str, Any] = {
        "id": backfill.id,
        "subscriptionId": backfill.subscription_id,
        "state": backfill.shown_state.value,
        "from": encode_cursor(resource, backfill.start),
        "to": encode_cursor(resource, backfill.end),
        "position": encode_cursor(resource, backfill.cursor),
        "scanComplete": backfill.scan_done,
        "scanned": backfill.scanned,
        "matched": backfill.matched,
        "unauthorized": backfill.unauthorized,
        "pushed": backfill.outcomes.pushed,
        "failed": backfill.outcomes.failed,
        "dropped": backfill.outcomes.dropped,
        "created": backfill.created.isoformat(),
        "updated": backfill.updated.isoformat(),
    }
    if backfill.reason:
        view["reason"] = backfill.reason
    return view


async def _backfills(request: Request) -> Backfills:
    backfills: Backfills = (await use_cases(request)).backfills
    return backfills


@contextmanager
def _found(subscription_id: str, backfill_id: str | None = None) -> Iterator[None]:
    """Only the caller's own subscriptions and their backfills are found; any other is a 404."""
    try:
        yield
    except SubscriptionNotFound as error:
        raise not_found(f"you have no subscription {subscription_id}", "subscription-not-found") from error
    except BackfillNotFound as error:
        raise not_found(
            f"subscription {subscription_id} has no backfill {backfill_id}", "backfill-not-found"
        ) from error


def _location(backfill: Backfill) -> str:
    return f"/api/v1/subscriptions/{backfill.subscription_id}/backfills/{backfill.id}"


@router.post(
    "/api/v1/subscriptions/{subscription_id}/backfill",
    status_code=202,
    summary="Push the stored events of a range",
    description=(
        "Every stored event from `from` to `to` that matches the subscription's filters and that the consumer may "
        "receive is pushed as its live push is (the same `webhook-id`, so a receiver drops what it already has), "
        "in log order, at the pace the endpoint takes. Times are when Herald stored the events. One backfill of a "
        "subscription scans at a time; follow its progress at the `Location`."
    ),
    response_model=BackfillView,
    response_description="The backfill, just started",
    responses={
        202: {"headers": LOCATION},
        **problems(404),
        400: {"description": "An invalid time, cursor or range, or a notification subscription"},
        409: {"description": "The subscription is not active, or another backfill of it is still scanning"},
    },
)
async def start_backfill(
    request: Request,
    subscription_id: SubscriptionId,
    body: Annotated[BackfillRequest, Body()],
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    backfills = await _backfills(request)
    try:
        with _found(subscription_id):
            backfill = await backfills.start(
                principal.subject,
                subscription_id,
                _bound(body.from_, "from"),
                _bound(body.to, "to") if body.to is not None else None,
            )
    except (CursorInvalid, RangeInvalid) as error:
        kind = "cursor-invalid" if isinstance(error, CursorInvalid) else "invalid-range"
        raise Problem(400, "Bad Request", f"{error}; nothing was started", kind=kind) from error
    except CursorExpired as error:
        raise Problem(400, "Bad Request", f"{error}; nothing was started", kind="cursor-expired") from error
    except BackfillUnsupported as error:
        raise Problem(400, "Bad Request", str(error), kind="backfill-unsupported") from error
    except SubscriptionNotActive as error:
        raise Problem(409, "Conflict", str(error), kind="subscription-not-active") from error
    except BackfillRunning as error:
        raise Problem(
            409, "Conflict", str(error), kind="backfill-running", extensions={"backfill": error.backfill_id}
        ) from error
    return JSONResponse(backfill_view(backfill), status_code=202, headers={"Location": _location(backfill)})


@router.get(
    "/api/v1/subscriptions/{subscription_id}/backfills/{backfill_id}",
    summary="A backfill's progress",
    response_model=BackfillView,
    responses=problems(404),
)
async def get_backfill(
    request: Request,
    subscription_id: SubscriptionId,
    backfill_id: BackfillId,
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    with _found(subscription_id, backfill_id):
        backfill = await (await _backfills(request)).get(principal.subject, subscription_id, backfill_id)
    return JSONResponse(backfill_view(backfill))


@router.post(
    "/api/v1/subscriptions/{subscription_id}/backfills/{backfill_id}/cancel",
    summary="Cancel a backfill",
    description="It stops scanning, and its deliveries not yet pushed are dropped. A finished backfill stays as it is.",
    response_model=BackfillView,
    responses=problems(404),
)
async def cancel_backfill(
    request: Request,
    subscription_id: SubscriptionId,
    backfill_id: BackfillId,
    principal: Principal = Depends(subscriber),
) -> JSONResponse:
    with _found(subscription_id, backfill_id):
        backfill = await (await _backfills(request)).cancel(principal.subject, subscription_id, backfill_id)
    return JSONResponse(backfill_view(backfill))
