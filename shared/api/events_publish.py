"""POST /api/v1/events: publish CloudEvents in structured, batched or binary mode."""

from __future__ import annotations

import base64
import math
import re
import zlib
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shared.api.auth import require_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import problems, publish_headers, publish_request_body
from shared.api.problems import Problem
from shared.events.model import (
    MAX_EVENT_BYTES,
    EventInvalid,
    EventTooLarge,
    MalformedJSON,
    ValidatedEvent,
    decode_json,
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


# Request content codings Herald decodes (RFC 9110 §8.4.1), by their zlib window: gzip, and deflate as
# RFC 9110 defines it, the zlib format (RFC 1950); a bare RFC 1951 stream is not deflate here.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPTED_CODINGS = "gzip, deflate"


async def read_body(request: Request, limit: int) -> bytes:
    """The body, decoded from its ``Content-Encoding``, at most ``limit`` bytes before and after decoding.

    A larger body is refused without being buffered whole, and decompression stops as soon as its
    output passes the limit, so a small compressed body never inflates past it in memory.
    """
    coding = _content_coding(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large_request(limit)
    inflater = _Inflater(coding, limit) if coding else None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large_request(limit)
        chunks.append(inflater.feed(chunk) if inflater else chunk)
    if inflater:
        inflater.finish()
    return b"".join(chunks)


def _content_coding(request: Request) -> str | None:
    codings = [
        coding.strip().lower()
        for value in request.headers.getlist("content-encoding")
        for coding in value.split(",")
        if coding.strip() and coding.strip().lower() != "identity"
    ]
    if len(codings) == 1 and codings[0] in _CODINGS:
        return codings[0]
    if not codings:
        return None
    raise Problem(
        415,
        "Unsupported Media Type",
        f"Content-Encoding {', '.join(codings)} is not supported: send the body with one of {ACCEPTED_CODINGS}, "
        "or without Content-Encoding",
        kind="unsupported-content-encoding",
        headers={"Accept-Encoding": ACCEPTED_CODINGS},
    )


class _Inflater:
    """Decompresses a body as it arrives, never producing more than ``limit`` bytes in all."""

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding
        self._limit = limit
        self._size = 0
        self._stream = zlib.decompressobj(_CODINGS[coding])

    def feed(self, data: bytes) -> bytes:
        pieces: list[bytes] = []
        while data:
            if self._stream.eof:
                if self._coding == "deflate":
                    raise self._undecodable("data follows the end of the stream")
                # Another gzip member (RFC 1952 §2.2): members concatenate.
                self._stream = zlib.decompressobj(_CODINGS[self._coding])
            try:
                piece = self._stream.decompress(data, self._limit - self._size + 1)
            except zlib.error as error:
                raise self._undecodable(str(error)) from error
            self._size += len(piece)
            if self._size > self._limit:
                raise _too_large_request(self._limit)
            pieces.append(piece)
            data = self._stream.unused_data if self._stream.eof else self._stream.unconsumed_tail
        return b"".join(pieces)

    def finish(self) -> None:
        if not self._stream.eof:
            raise self._undecodable("the body ends before the compressed stream does")

    def _undecodable(self, reason: str) -> Problem:
        return Problem(
            400,
            "Bad Request",
            f"the body is not valid {self._coding} (Content-Encoding): {reason}",
            kind="malformed-body",
        )


def _too_large_request(limit: int) -> Problem:
    return Problem(
        413, "Content Too Large", f"the request body exceeds {limit // (1024 * 1024)} MiB", kind="request-too-large"
    )


def parse_json(body: bytes) -> Any:
    try:
        return decode_json(body)
    except MalformedJSON as error:
        raise Problem(400, "Bad Request", str(error), kind="malformed-body") from error


# Binary-mode data Herald keeps as a JSON string (`data`), as structured mode carries it: text
# (RFC 2046 text/*, RFC 7303 XML) in UTF-8. JSON types are parsed; everything else is `data_base64`.
_TEXT_TYPE = re.compile(r"^(text/[a-z0-9!#$&^_.+-]+|application/([a-z0-9!#$&^_.+-]*\+)?xml)$")
_UTF8_CHARSETS = {None, "utf-8", "us-ascii"}
# CloudEvents HTTP binding §3.1.3.2: a value may be an RFC 9110 quoted-string, then is percent-decoded once.
_QUOTED_STRING = re.compile(rb'^"((?:[^"\\]|\\.)*)"$', re.DOTALL)
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
_PERCENT_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


def _header_problem(header: str, detail: str) -> Problem:
    return Problem(
        400,
        "Bad Request",
        f"the {header} header is not valid: {detail}",
        kind="invalid-events",
        extensions={
            "errors": [{"index": 0, "attribute": header.removeprefix("ce-"), "header": header, "detail": detail}]
        },
    )


def _header_text(header: str, raw: bytes) -> str:
    """A header value's bytes as text: the ASGI scope holds them as sent (see docs/architecture.md)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _header_problem(header, "its bytes are not UTF-8; percent-encode the value's UTF-8 bytes") from error


def _attribute_value(header: str, raw: bytes) -> str:
    """A ``ce-`` header's attribute value: quoted-string unescaped, then one round of percent-decoding."""
    value = raw.strip(b" \t")
    if value.startswith(b'"'):
        quoted = _QUOTED_STRING.match(value)
        if quoted is None:
            raise _header_problem(header, "a double-quoted value must end with its closing quote")
        value = _QUOTED_PAIR.sub(rb"\1", quoted.group(1))
    decoded = _PERCENT_ESCAPE.sub(lambda escape: bytes([int(escape.group(1), 16)]), value)
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _header_problem(header, "its percent-decoded bytes are not UTF-8") from error


def _media_type(content_type: str) -> tuple[str, str | None]:
    """The media type (lowercase) and its charset parameter, if any (lowercase, unquoted)."""
    media, *parameters = content_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


def _binary_data(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The event's ``data`` (JSON, or UTF-8 text) or ``data_base64`` (any other bytes), as structured mode has it."""
    if not body:
        return {}
    media, charset = _media_type(content_type or "")
    if _JSON_TYPE.match(media):
        return {"data": parse_json(body)}
    if _TEXT_TYPE.match(media) and charset in _UTF8_CHARSETS:
        try:
            return {"data": body.decode("ascii" if charset == "us-ascii" else "utf-8")}
        except UnicodeDecodeError as error:
            raise Problem(
                400,
                "Bad Request",
                f"the body is not {charset or 'UTF-8'} text, as its Content-Type {content_type} says",
                kind="malformed-body",
            ) from error
    return {"data_base64": base64.b64encode(body).decode("ascii")}


def _binary_event(request: Request, body: bytes) -> dict[str, Any]:
    """The structured-mode event of a binary-mode request (CloudEvents HTTP binding §3.1)."""
    document: dict[str, Any] = {}
    content_type: str | None = None
    for raw_name, raw_value in request.scope["headers"]:
        header = raw_name.decode("latin-1").lower()
        if header == "content-type":
            content_type = _header_text(header, raw_value)
        elif header == "ce-datacontenttype":
            raise Problem(
                400,
                "Bad Request",
                "binary mode carries the data content type in Content-Type, not ce-datacontenttype",
                kind="invalid-events",
            )
        elif header.startswith("ce-"):
            if header[3:] in document:
                raise _header_problem(header, "it appears more than once")
            document[header[3:]] = _attribute_value(header, raw_value)
    if content_type is not None:
        document["datacontenttype"] = content_type
    return document | _binary_data(body, content_type)


def _documents(request: Request, body: bytes) -> list[Any]:
    media, _ = _media_type(request.headers.get("content-type", ""))
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
        "(source, id) again is accepted once; the same key with other content is a 409. The body may be "
        f"compressed: Content-Encoding {ACCEPTED_CODINGS}."
    ),
    responses={
        **problems(413, 429, 503),
        400: {"description": "Invalid events: `errors` names each event (`index`) and attribute; nothing was stored"},
        403: {"description": "The token lacks events.publish, or the publisher may not publish to a resource"},
        409: {"description": "A (source, id) was published before with other content; the others were accepted"},
        415: {
            "description": "Neither structured, batch nor binary mode; or a Content-Encoding Herald does not decode",
            "headers": {
                "Accept-Encoding": {
                    "description": "The codings Herald decodes, when the Content-Encoding was the problem",
                    "schema": {"type": "string"},
                }
            },
        },
    },
    openapi_extra={
        "parameters": publish_headers(ACCEPTED_CODINGS),
        "requestBody": publish_request_body(STRUCTURED, BATCH),
    },
)
async def publish_events(
    request: Request, principal: Principal = Depends(require_scope("events.publish"))
) -> JSONResponse:
    body = await read_body(request, MAX_REQUEST_BYTES)
    events = validate_all(_documents(request, body))
    services = await use_cases(request)
    await _authorize(services.access.authorizer, principal.subject, events)
    try:
        wait = await services.publish_limiter.take(principal.subject, len(events))
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
