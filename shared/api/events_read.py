"""GET /api/v1/events: read a resource's events with a cursor that never skips."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from shared.api.auth import require_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import CLOUD_EVENT_BATCH, NEXT_LINK, problems
from shared.api.paging import next_link
from shared.api.problems import Problem
from shared.events.cursor import CursorExpired, CursorInvalid, decode_cursor, encode_cursor
from shared.events.model import MAX_RESOURCE_LENGTH
from shared.events.reading import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, EventFilter
from shared.identity.authorization import Action, event_request
from shared.identity.tokens import Principal

router = APIRouter(tags=["events"])

BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
EVENTS_PATH = "/api/v1/events"
_PARAMETERS = {"resource", "after", "from", "subject", "alternativesubject", "type", "source", "size"}
NonEmpty = Annotated[str, Query(min_length=1, max_length=MAX_RESOURCE_LENGTH)]


@router.get(
    EVENTS_PATH,
    summary="Read events",
    description=(
        "Events of one resource in log order. Every response, empty pages included, carries "
        '`Link: <…>; rel="next"`: follow it to see every matching event exactly once, and keep '
        "following it to poll for new ones. An expired or foreign cursor is a 400. Without `after`, reading "
        "starts at the oldest stored event, or where `from` says: `now` (only events stored from now on) or a "
        "date-time (the first event stored at or after it)."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "The page's events, oldest first (possibly none)",
            "content": {BATCH_MEDIA_TYPE: {"schema": {"$ref": CLOUD_EVENT_BATCH}}},
            "headers": {"Link": {**NEXT_LINK["Link"], "required": True}},
        },
        **problems(503),
        400: {"description": "Invalid parameters, or an expired or foreign cursor"},
    },
)
async def read_events(
    request: Request,
    resource: Annotated[str, Query(min_length=1, max_length=MAX_RESOURCE_LENGTH, description="The resource URN")],
    after: Annotated[str | None, Query(min_length=1, max_length=200, description="Cursor from a next link")] = None,
    start: Annotated[
        str | None,
        Query(
            alias="from",
            min_length=1,
            max_length=40,
            description="Where to start without a cursor: `now`, or an RFC 3339 date-time (storage time)",
        ),
    ] = None,
    subject: NonEmpty | None = None,
    alternativesubject: NonEmpty | None = None,
    type: NonEmpty | None = None,
    source: NonEmpty | None = None,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    principal: Principal = Depends(require_scope("events.read")),
) -> Response:
    unknown = sorted(set(request.query_params.keys()) - _PARAMETERS)
    if unknown:
        raise Problem(400, "Bad Request", f"unknown query parameters: {', '.join(unknown)}", kind="invalid-request")
    repeated = sorted(name for name in _PARAMETERS if len(request.query_params.getlist(name)) > 1)
    if repeated:
        raise Problem(400, "Bad Request", f"give each parameter once: {', '.join(repeated)}", kind="invalid-request")
    if after is not None and start is not None:
        raise Problem(400, "Bad Request", "give either 'after' or 'from', not both", kind="invalid-request")
    moment = _start_time(start) if start is not None and start != "now" else None
    try:
        position = decode_cursor(after, resource) if after is not None else None
        services = await use_cases(request)
        if start == "now":
            position = await services.reader.head(resource)
        elif moment is not None:
            position = await services.reader.position_at(resource, moment)
        authorizer = services.access.authorizer

        async def permit(events: Sequence[dict[str, Any]]) -> list[bool]:
            answers: list[bool] = await authorizer.allowed(
                [event_request(principal.subject, e, Action.READ) for e in events]
            )
            return answers

        page = await services.reader.read(
            resource,
            position,
            size,
            EventFilter(subject=subject, alternativesubject=alternativesubject, type=type, source=source),
            permit,
        )
    except CursorExpired as error:
        raise Problem(400, "Bad Request", str(error), kind="cursor-expired") from error
    except CursorInvalid as error:
        raise Problem(400, "Bad Request", str(error), kind="cursor-invalid") from error

    link = await next_link(request, encode_cursor(resource, page.next), drop=("from",))
    return Response(
        content=page.body(),
        media_type=BATCH_MEDIA_TYPE,
        headers={**link, "Cache-Control": "no-store"},
    )


def _start_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise Problem(
            400, "Bad Request", "'from' must be 'now' or an RFC 3339 date-time", kind="invalid-request"
        ) from error
    if moment.tzinfo is None:
        raise Problem(400, "Bad Request", "'from' needs a time zone offset, such as Z", kind="invalid-request")
    return moment
