"""CloudEvents 1.0 validation for published events.

Validation runs at the edge and reports every problem of every event at once, so a publisher can
fix a whole batch from one response. A validated event keeps its structured-mode JSON: that exact
byte string is what Herald stores, returns to readers and pushes to webhooks.

Herald adds ``time`` (the receive time) when the publisher leaves it out, so what a reader gets back
differs from what was sent in exactly that attribute. Idempotency therefore compares ``time`` apart
from the rest: publishing an event again is a duplicate when everything but ``time`` is the same and
``time`` is absent (a plain retry) or names the stored instant (a relay republishing what it read);
any other difference, a different explicit ``time`` included, is a conflict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.urns import URN_PATTERN

SPEC_VERSION = "1.0"
# The documented per-event limit: the event's structured-mode JSON, as stored, in bytes.
MAX_EVENT_BYTES = 64 * 1024
MAX_RESOURCE_LENGTH = 256
MAX_ATTRIBUTE_LENGTH = 4096

_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

REQUIRED_STRINGS = ("id", "source", "type")
OPTIONAL_STRINGS = ("subject", "alternativesubject")
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class AttributeProblem:
    attribute: str
    detail: str


class EventInvalid(Exception):
    """One event failed validation; ``problems`` lists every reason."""

    def __init__(self, problems: list[AttributeProblem], event_id: str | None = None) -> None:
        super().__init__("; ".join(f"{p.attribute}: {p.detail}" for p in problems))
        self.problems = problems
        self.event_id = event_id


class MalformedJSON(ValueError):
    """A body that is not one JSON text Herald accepts (UTF-8, no NaN/Infinity, not nested too deeply)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(body: bytes) -> Any:
    """Decode a structured-mode body (one event, or a batch) exactly as the publisher sent it."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as error:
        raise MalformedJSON("the body is not UTF-8") from error
    except RecursionError as error:
        raise MalformedJSON("the body is nested too deeply") from error
    except ValueError as error:
        raise MalformedJSON(f"the body is not valid JSON: {error}") from error


class EventTooLarge(Exception):
    def __init__(self, size: int, event_id: str | None) -> None:
        super().__init__(f"event is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes")
        self.size = size
        self.event_id = event_id


@dataclass(frozen=True)
class ValidatedEvent:
    """A valid event ready for the log. ``body`` is its structured-mode JSON (UTF-8)."""

    id: str
    source: str
    type: str
    resource: str
    subject: str | None
    alternativesubject: str | None
    body: bytes
    # Identifies the event for idempotency: (source, id).
    key_hash: str
    # Identifies what the publisher sent apart from ``time``, so a replay with other content is told apart (409).
    content_hash: str
    # The instant of the stored ``time`` (see ``instant``): the publisher's, or the receive time Herald added.
    stored_time: str
    # Whether the publisher gave ``time``; a republish without it matches any stored time.
    time_given: bool


def event_key_hash(source: str, event_id: str) -> str:
    return hashlib.sha256(f"{source}\x00{event_id}".encode()).hexdigest()[:32]


def content_hash(document: Mapping[str, Any]) -> str:
    """What idempotency compares besides ``time``: every other attribute and the data, in one spelling."""
    content = {name: value for name, value in document.items() if name != "time"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def instant(time: str) -> str:
    """The instant an RFC 3339 timestamp names, in one spelling: UTC, ``Z``, no trailing fractional zeros.

    So ``2026-01-02T03:04:05+01:00`` and ``2026-01-02T02:04:05.000Z`` compare equal, and digits
    beyond microseconds still count. Raises ValueError for anything that is not RFC 3339.
    """
    match = _RFC3339.match(time)
    if match is None:
        raise ValueError(f"{time!r} is not an RFC 3339 timestamp")
    date, clock, fraction, offset = match.groups()
    moment = datetime.fromisoformat(f"{date}T{clock}{'+00:00' if offset in 'Zz' else offset}")
    digits = (fraction or "").rstrip("0")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + (f".{digits}" if digits else "") + "Z"


def is_republish(event: ValidatedEvent, stored_hash: str, stored_time: str) -> bool:
    """Whether ``event`` repeats the stored event of its (source, id): a duplicate rather than a conflict."""
    return event.content_hash == stored_hash and (not event.time_given or event.stored_time == stored_time)


def stored_identity(body: bytes) -> tuple[str, str]:
    """The content hash and time instant of a stored event (its structured JSON), as ``is_republish`` takes them."""
    document = json.loads(body)
    return content_hash(document), instant(document["time"])


def _is_uri_reference(value: str) -> bool:
    return bool(value) and not any(ch.isspace() for ch in value)


def _check_string(name: str, value: Any, problems: list[AttributeProblem], *, required: bool) -> str | None:
    if value is None:
        if required:
            problems.append(AttributeProblem(name, "is required"))
        return None
    if not isinstance(value, str):
        problems.append(AttributeProblem(name, "must be a string"))
        return None
    if value == "":
        problems.append(AttributeProblem(name, "must not be empty"))
        return None
    if len(value) > MAX_ATTRIBUTE_LENGTH:
        problems.append(AttributeProblem(name, f"must be at most {MAX_ATTRIBUTE_LENGTH} characters"))
        return None
    if _CONTROL.search(value):
        problems.append(AttributeProblem(name, "must not contain control characters"))
        return None
    return value


def _check_extension_value(name: str, value: Any, problems: list[AttributeProblem]) -> None:
    # CloudEvents' type system in JSON: String, Boolean, Integer (32-bit); URI and Timestamp travel as strings.
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT32[0] <= value <= INT32[1]:
            problems.append(AttributeProblem(name, "integer extension values must fit in 32 bits"))
        return
    if isinstance(value, str):
        _check_string(name, value, problems, required=False)
        return
    problems.append(AttributeProblem(name, "extension values must be a string, an integer or a boolean"))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def validate_event(document: Any, *, received_at: datetime) -> ValidatedEvent:
    """Validate one structured-mode event (a decoded JSON object) and build its stored form."""
    if not isinstance(document, dict):
        raise EventInvalid([AttributeProblem("(event)", "must be a JSON object")])
    problems: list[AttributeProblem] = []
    raw_id = document.get("id")
    event_id = raw_id if isinstance(raw_id, str) and raw_id else None

    specversion = document.get("specversion")
    if specversion is None:
        problems.append(AttributeProblem("specversion", "is required"))
    elif specversion != SPEC_VERSION:
        problems.append(AttributeProblem("specversion", f'must be "{SPEC_VERSION}"'))

    values = {name: _check_string(name, document.get(name), problems, required=True) for name in REQUIRED_STRINGS}
    if values["source"] is not None and not _is_uri_reference(values["source"]):
        problems.append(AttributeProblem("source", "must be a URI-reference"))

    resource = _check_string("resource", document.get("resource"), problems, required=True)
    if resource is not None and (len(resource) > MAX_RESOURCE_LENGTH or not URN_PATTERN.match(resource)):
        problems.append(AttributeProblem("resource", "must be a URN such as urn:altinn:resource:skattemelding"))
        resource = None

    optional = {name: _check_string(name, document.get(name), problems, required=False) for name in OPTIONAL_STRINGS}

    given_time: str | None = None
    if (time := document.get("time")) is not None:
        try:
            if not isinstance(time, str):
                raise ValueError
            given_time = instant(time)
        except ValueError:
            problems.append(AttributeProblem("time", "must be an RFC 3339 timestamp"))

    content_type = document.get("datacontenttype")
    if content_type is not None and (not isinstance(content_type, str) or not _MEDIA_TYPE.match(content_type)):
        problems.append(AttributeProblem("datacontenttype", "must be a media type such as application/json"))

    schema = document.get("dataschema")
    if schema is not None and (
        not isinstance(schema, str) or not _SCHEME.match(schema) or not _is_uri_reference(schema)
    ):
        problems.append(AttributeProblem("dataschema", "must be an absolute URI"))

    if "data" in document and "data_base64" in document:
        problems.append(AttributeProblem("data_base64", "must not be given together with data"))
    if (encoded := document.get("data_base64")) is not None:
        try:
            if not isinstance(encoded, str):
                raise binascii.Error
            base64.b64decode(encoded, validate=True)
        except ValueError:  # binascii.Error, or text that is not ASCII
            problems.append(AttributeProblem("data_base64", "must be base64"))

    known = {"specversion", "data", "data_base64", "time", "datacontenttype", "dataschema", "resource"}
    known.update(REQUIRED_STRINGS, OPTIONAL_STRINGS)
    for name, value in document.items():
        if name in known:
            continue
        if not _EXTENSION_NAME.match(name):
            problems.append(AttributeProblem(name, "attribute names must be 1-20 lowercase letters or digits"))
            continue
        if value is None:
            problems.append(AttributeProblem(name, "must not be null"))
            continue
        _check_extension_value(name, value, problems)

    if problems:
        raise EventInvalid(problems, event_id)

    assert values["id"] and values["source"] and values["type"] and resource
    stored: dict[str, Any] = dict(document)
    if given_time is None:
        stored["time"] = format_time(received_at)
    try:
        body = json.dumps(stored, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError as error:  # a lone surrogate (\ud800) decoded from a JSON escape
        raise EventInvalid(
            [AttributeProblem("(event)", "must be valid Unicode: no lone surrogates")], event_id
        ) from error
    if len(body) > MAX_EVENT_BYTES:
        raise EventTooLarge(len(body), event_id)
    return ValidatedEvent(
        id=values["id"],
        source=values["source"],
        type=values["type"],
        resource=resource,
        subject=optional["subject"],
        alternativesubject=optional["alternativesubject"],
        body=body,
        key_hash=event_key_hash(values["source"], values["id"]),
        content_hash=content_hash(document),
        stored_time=given_time or instant(stored["time"]),
        time_given=given_time is not None,
    )
