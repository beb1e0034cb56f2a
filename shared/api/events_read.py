"""GET /api/v1/events: read a resource's events with a cursor that never skips."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from shared.api.auth import require_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import CLOUD_EVENT_BATCH, NEXT_LINK, problems
from shared.api.problems import Problem
from shared.events.cursor import CursorExpired, CursorInvalid, decode_cursor, encode_cursor
from shared.events.model import MAX_RESOURCE_LENGTH
from shared.events.reading import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, EventFilter
from shared.identity.authorization import Action, event_request
from shared.identity.tokens import Principal

router = APIRouter(tags=["events"])

BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
EVENTS_PATH = "/api/v1/events"
_PARAMETERS = {"resource", "after", "subject", "alternativesubject", "type", "source", "size"}
NonEmpty = Annotated[str, Query(min_length=1, max_length=MAX_RESOURCE_LENGTH)]


@router.get(
    EVENTS_PATH,
    summary="Read events",
    description=(
        "Events of one resource in log order. Every response, empty pages included, carries "
        '`Link: <…>; rel="next"`: follow it to see every matching event exactly once, and keep '
        "following it to poll for new ones. An expired or foreign cursor is a 400."
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
    try:
        position = decode_cursor(after, resource) if after is not None else None
        services = await use_cases(request)
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

    query = {name: value for name, value in request.query_params.items() if name != "after"}
    query["after"] = encode_cursor(resource, page.next)
    # From the configured public URL, never the request's Host: a forged Host must not steer the
    # reader (and its token) elsewhere.
    next_url = f"{services.settings.public_base_url.rstrip('/')}{EVENTS_PATH}?{urlencode(query)}"
    return Response(
        content=page.body(),
        media_type=BATCH_MEDIA_TYPE,
        headers={"Link": f'<{next_url}>; rel="next"', "Cache-Control": "no-store"},
    )
