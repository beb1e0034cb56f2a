"""POST /api/v1/events: publish CloudEvents in structured, batched or binary mode."""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.api.auth import require_scope
from shared.api.problems import Problem
from shared.events.model import (
    MAX_EVENT_BYTES,
    EventInvalid,
    EventTooLarge,
    MalformedJSON,
    ValidatedEvent,
    decode_json,
    format_time,
    validate_event,
)
from shared.identity.authorization import Authorizer
from shared.identity.rate_limit import BeyondBurst
from shared.identity.tokens import Principal

router = APIRouter(tags=["events"])

MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_BATCH_EVENTS = 1000
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_JSON_TYPE = re.compile(r"^(application|text)/([a-z0-9.+-]*\+)?json$")


class PublishAccepted(BaseModel):
    accepted: list[str]
    stored: int
    duplicates: int


async def read_body(request: Request, limit: int) -> bytes:
    """Reads at most ``limit`` bytes; a larger body is refused without being buffered whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large_request(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large_request(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large_request(limit: int) -> Problem:
    return Problem(
        413, "Content Too Large", f"the request body exceeds {limit // (1024 * 1024)} MiB", kind="request-too-large"
    )


def parse_json(body: bytes) -> Any:
    try:
        return decode_json(body)
    except MalformedJSON as error:
        raise Problem(400, "Bad Request", str(error), kind="malformed-body") from error


class _StrictJSONFormat(JSONFormat):
    """Binary mode: a body declared as JSON must be JSON (the SDK would keep it as text)."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> dict[str, Any] | str | bytes | None:
        if not body:
            return None
        media = (datacontenttype or "").split(";")[0].strip().lower()
        if _JSON_TYPE.match(media):
            parsed: dict[str, Any] = parse_json(body)
            return parsed
        return body


def _binary_event(request: Request, body: bytes) -> dict[str, Any]:
    headers = {
        name: value
        for name, value in request.headers.items()
        if name.lower().startswith("ce-") or name.lower() == "content-type"
    }
    for name in headers:
        if name.lower() == "ce-datacontenttype":
            raise Problem(
                400,
                "Bad Request",
                "binary mode carries the data content type in Content-Type, not ce-datacontenttype",
                kind="invalid-events",
            )
    captured: dict[str, Any] = {}

    def capture(attributes: dict[str, Any], data: dict[str, Any] | str | bytes | None) -> Any:
        # The SDK decodes the ce- headers and the body; Herald validates them itself to name every problem.
        captured.update(attributes=attributes, data=data)
        return None

    try:
        from_binary(HTTPMessage(headers=headers, body=body), _StrictJSONFormat(), capture)
    except ValueError as error:
        raise Problem(
            400,
            "Bad Request",
            "a ce- header is not valid",
            kind="invalid-events",
            extensions={"errors": [{"index": 0, "attribute": "(headers)", "detail": str(error)}]},
        ) from error
    attributes: dict[str, Any] = captured["attributes"]
    data = captured["data"]
    document: dict[str, Any] = dict(attributes)
    if isinstance(document.get("time"), datetime):
        document["time"] = format_time(document["time"])
    if isinstance(data, bytes):
        document["data_base64"] = base64.b64encode(data).decode("ascii")
    elif data is not None:
        document["data"] = data
    return document


def _documents(request: Request, body: bytes) -> list[Any]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == STRUCTURED:
        return [parse_json(body)]
    if media == BATCH:
        batch = parse_json(body)
        if not isinstance(batch, list):
            raise Problem(400, "Bad Request", "a batch must be a JSON array of events", kind="malformed-body")
        if not batch:
            raise Problem(400, "Bad Request", "the batch holds no events", kind="malformed-body")
        if len(batch) > MAX_BATCH_EVENTS:
            raise Problem(
                413, "Content Too Large", f"a batch holds at most {MAX_BATCH_EVENTS} events", kind="request-too-large"
            )
        return batch
    if "ce-specversion" in request.headers:
        return [_binary_event(request, body)]
    raise Problem(
        415,
        "Unsupported Media Type",
        f"send events as {STRUCTURED}, as {BATCH}, or in binary mode with ce- headers",
        kind="unsupported-media-type",
    )


def validate_all(documents: list[Any]) -> list[ValidatedEvent]:
    received_at = datetime.now(UTC)
    events: list[ValidatedEvent] = []
    invalid: list[dict[str, Any]] = []
    too_large: list[dict[str, Any]] = []
    for index, document in enumerate(documents):
        try:
            events.append(validate_event(document, received_at=received_at))
        except EventInvalid as error:
            invalid.extend(
                {"index": index, "id": error.event_id, "attribute": p.attribute, "detail": p.detail}
                for p in error.problems
            )
        except EventTooLarge as error:
            too_large.append({"index": index, "id": error.event_id, "size": error.size})
    if invalid:
        count = len({item["index"] for item in invalid})
        raise Problem(
            400,
            "Invalid CloudEvents",
            f"{count} of {len(documents)} events are not valid CloudEvents; nothing was stored",
            kind="invalid-events",
            extensions={"errors": invalid},
        )
    if too_large:
        raise Problem(
            413,
            "Event Too Large",
            f"{len(too_large)} of {len(documents)} events exceed {MAX_EVENT_BYTES} bytes; nothing was stored",
            kind="event-too-large",
            extensions={"errors": too_large},
        )
    return events


async def _authorize(authorizer: Authorizer, publisher: str, events: list[ValidatedEvent]) -> None:
    refused = await authorizer.refused_publishing(publisher, (event.resource for event in events))
    if refused:
        raise Problem(
            403,
            "Forbidden",
            f"{publisher} may not publish events for {', '.join(refused)}; nothing was stored",
            kind="publish-forbidden",
            extensions={"resources": refused},
        )


@router.post(
    "/api/v1/events",
    status_code=202,
    response_model=PublishAccepted,
    summary="Publish CloudEvents",
    description=(
        "Structured mode (`application/cloudevents+json`), batch mode (`application/cloudevents-batch+json`, "
        f"up to {MAX_BATCH_EVENTS} events and 4 MiB) or binary mode (`ce-*` headers). Each event needs the "
        f"`resource` extension (a URN) and is at most {MAX_EVENT_BYTES} bytes. Publishing the same "
        "(source, id) again is accepted once; the same key with other content is a 409."
    ),
    responses={
        400: {"description": "Invalid events"},
        409: {"description": "Key reused"},
        413: {"description": "Too large"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                STRUCTURED: {"schema": {"type": "object"}},
                BATCH: {"schema": {"type": "array", "items": {"type": "object"}}},
            },
            "required": True,
        }
    },
)
async def publish_events(
    request: Request, principal: Principal = Depends(require_scope("events.publish"))
) -> JSONResponse:
    body = await read_body(request, MAX_REQUEST_BYTES)
    events = validate_all(_documents(request, body))
    services = await request.app.state.services()
    await _authorize(services.access.authorizer, principal.subject, events)
    try:
        wait = services.publish_limiter.take(principal.subject, len(events))
    except BeyondBurst as beyond:
        # Waiting never helps: the request itself is too large for the publisher's limit.
        raise Problem(
            413,
            "Content Too Large",
            f"a request holds at most {beyond.most} events under the publish limit; "
            f"this one holds {beyond.tokens}: split it",
            kind="request-too-large",
            extensions={"maxEvents": beyond.most},
        ) from beyond
    if wait is not None:
        retry_after = max(1, math.ceil(wait))
        raise Problem(
            429,
            "Too Many Requests",
            f"{principal.subject} publishes faster than its limit; retry in {retry_after} s",
            kind="rate-limited",
            headers={"Retry-After": str(retry_after)},
        )
    result = await services.publisher.publish(events)
    if result.conflicts:
        raise Problem(
            409,
            "Conflict",
            f"{len(result.conflicts)} events reuse a (source, id) already published with other content; "
            "the other events of the request were accepted",
            kind="event-id-conflict",
            extensions={
                "conflicts": [{"index": c.index, "id": c.id, "source": c.source} for c in result.conflicts],
                "accepted": result.accepted,
            },
        )
    payload = PublishAccepted(accepted=result.accepted, stored=result.stored, duplicates=result.duplicates)
    return JSONResponse(payload.model_dump(), status_code=202)
