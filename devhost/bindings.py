"""Trigger inputs as the Functions host hands them to the Python worker, decoded by azure-functions itself.

The host sends each invocation's input and trigger metadata as typed data (string, bytes, JSON or
an HTTP record); the worker turns them into ``azure.functions.meta.Datum`` values and calls the
converter that the ``azure-functions`` library registers for the binding type. At load time the
worker refuses a function whose trigger parameter's annotation that converter does not accept, and
an annotation of ``str`` or ``bytes`` takes the raw value through the worker's generic binding.

devhost does exactly that with the same library, so an input or an annotation that Azure's worker
rejects is rejected here too, with the same error, instead of passing locally and failing in Azure.
The shapes follow the worker's ``bindings/meta.py`` (``from_incoming_proto``), ``datumdef.py`` and
``functions.py`` (``add_function``), and what the host puts in the trigger metadata.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from azure.functions._thirdparty import typing_inspect
from azure.functions.meta import Datum

__all__ = [
    "Datum",
    "TriggerInput",
    "annotation_problem",
    "decode",
    "encode_http_response",
    "event_grid_input",
    "http_input",
    "service_bus_input",
    "timer_input",
]

GENERIC = "generic"


@dataclass(frozen=True)
class TriggerInput:
    """One invocation's trigger data and metadata, as the worker receives them."""

    data: Datum | None
    metadata: Mapping[str, Datum] = field(default_factory=dict)


class _GenericBinding:
    """The worker's binding for parameters annotated ``str`` or ``bytes``: the raw value."""

    @staticmethod
    def check_input_type_annotation(pytype: type) -> bool:
        return isinstance(pytype, type) and issubclass(pytype, str | bytes)

    @staticmethod
    def decode(data: Datum, *, trigger_metadata: Mapping[str, Datum]) -> Any:
        if data.type in ("string", "bytes", "json"):
            return data.value
        raise ValueError(f'unexpected type of data received for the "generic" binding : {data.type!r}')


def _converter(binding_type: str) -> Any:
    """The converter azure-functions registers for a binding type (the worker's ``get_binding``)."""
    registry: Any = func.get_binding_registry()  # type: ignore[no-untyped-call]
    return registry.get(binding_type)


def _binding(binding_type: str) -> Any:
    converter = _converter(binding_type) if binding_type != GENERIC else None
    return converter or _GenericBinding


def _has_implicit_output(binding_type: str) -> bool:
    converter = _converter(binding_type)
    return bool(converter is not None and getattr(converter, "has_implicit_output", lambda: False)())


def effective_binding(binding_type: str, annotation: Any) -> str:
    """``str``/``bytes`` annotations take the generic binding, unless the trigger has an implicit output."""
    if annotation in (str, bytes) and not _has_implicit_output(binding_type):
        return GENERIC
    return binding_type


def annotation_problem(function_name: str, parameter: str, binding_type: str, annotation: Any) -> str | None:
    """Why the worker would refuse to load this trigger parameter, in the worker's words; None if it loads."""
    if annotation is None:
        return None
    # The worker's own test: PEP 585 aliases such as ``list[X]`` are neither types nor, for the
    # typing_inspect that azure-functions vendors, generic types; only ``typing.List[X]`` loads.
    if not isinstance(annotation, type) and not typing_inspect.is_generic_type(annotation):  # type: ignore[no-untyped-call]
        return f"cannot load the {function_name} function: binding {parameter} has invalid non-type annotation {annotation!r}"
    binding = _binding(effective_binding(binding_type, annotation))
    try:
        accepted = bool(binding.check_input_type_annotation(annotation))
    except TypeError:
        accepted = False
    if accepted:
        return None
    name = getattr(annotation, "__name__", repr(annotation))
    return (
        f"cannot load the {function_name} function: type of {parameter} binding in function.json "
        f'"{binding_type}" does not match its Python annotation "{name}"'
    )


def decode(binding_type: str, annotation: Any, trigger: TriggerInput) -> Any:
    """The trigger argument, built by the converter the worker would call (``from_incoming_proto``)."""
    binding = _binding(effective_binding(binding_type, annotation))
    try:
        return binding.decode(trigger.data, trigger_metadata=dict(trigger.metadata))
    except NotImplementedError:
        kind = trigger.data.type if trigger.data is not None else None
        raise TypeError(
            "unable to decode incoming TypedData: unsupported combination of TypedData field "
            f"{kind!r} and expected binding type {binding}"
        ) from None


# --- what the host sends, per trigger ----------------------------------------------------------


def _json(value: Any) -> Datum:
    return Datum(json.dumps(value, ensure_ascii=False, separators=(",", ":")), "json")


def _host_time(moment: datetime) -> str:
    """Times as the host serialises them (JSON.NET, round-trip: seven fractional digits, ``Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


def _sys_metadata(function_name: str) -> Datum:
    """The ``sys`` entry the host adds to every invocation's trigger metadata."""
    return _json({"MethodName": function_name, "UtcNow": _host_time(datetime.now(UTC)), "RandGuid": str(uuid.uuid4())})


def http_input(
    function_name: str,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    route_params: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
) -> TriggerInput:
    """An ``RpcHttp`` record as the worker's ``Datum.from_typed_data`` unpacks it (the raw body as bytes)."""
    value = {
        "method": Datum(method, "string"),
        "url": Datum(url, "string"),
        "headers": {name: Datum(text, "string") for name, text in headers.items()},
        "body": Datum(body, "bytes"),
        "params": {name: Datum(text, "string") for name, text in route_params.items()},
        "query": {name: Datum(text, "string") for name, text in query.items()},
    }
    metadata = {
        "Query": _json(dict(query)),
        "Headers": _json(dict(headers)),
        "sys": _sys_metadata(function_name),
    }
    return TriggerInput(Datum(value, "http"), metadata)


def event_grid_input(function_name: str, event: Mapping[str, Any]) -> TriggerInput:
    """One event of the delivered array, as JSON (the host invokes the function once per event)."""
    return TriggerInput(_json(dict(event)), {"data": _json(dict(event)), "sys": _sys_metadata(function_name)})


def timer_input(
    function_name: str, *, past_due: bool, last: datetime, following: datetime, updated: datetime
) -> TriggerInput:
    """The ``TimerInfo`` the host serialises: schedule, schedule status and past-due flag."""
    info = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {"Last": last.isoformat(), "Next": following.isoformat(), "LastUpdated": updated.isoformat()},
        "IsPastDue": past_due,
    }
    return TriggerInput(_json(info), {"timer": _json(info), "sys": _sys_metadata(function_name)})


@dataclass(frozen=True)
class ReceivedMessage:
    """What the Service Bus extension knows of one locked message."""

    body: bytes
    message_id: str
    delivery_count: int
    sequence_number: int
    enqueued_time: datetime
    locked_until: datetime
    lock_token: str
    to: str
    application_properties: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    correlation_id: str | None = None
    subject: str | None = None
    expires_at: datetime | None = None
    scheduled_enqueue_time: datetime | None = None


def _message_metadata(message: ReceivedMessage) -> dict[str, Any]:
    """The extension's binding data for one message, by the names the converter reads."""
    fields: dict[str, Any] = {
        "MessageId": message.message_id,
        "DeliveryCount": message.delivery_count,
        "SequenceNumber": message.sequence_number,
        "EnqueuedTimeUtc": _host_time(message.enqueued_time),
        "LockedUntil": _host_time(message.locked_until),
        "LockToken": message.lock_token,
        "To": message.to,
        "ApplicationProperties": dict(message.application_properties),
        "UserProperties": dict(message.application_properties),
        "ContentType": message.content_type,
        "CorrelationId": message.correlation_id,
        "Label": message.subject,
        "Subject": message.subject,
        "ExpiresAtUtc": _host_time(message.expires_at) if message.expires_at else None,
        "ScheduledEnqueueTimeUtc": (
            _host_time(message.scheduled_enqueue_time) if message.scheduled_enqueue_time else None
        ),
    }
    return {name: value for name, value in fields.items() if value is not None}


def _body_text(body: bytes) -> str:
    # The host hands a message body to non-.NET workers as a UTF-8 string (lossy for binary bodies:
    # azure-functions-host#3125), so devhost does too.
    return body.decode("utf-8", errors="replace")


def service_bus_input(function_name: str, messages: list[ReceivedMessage], *, many: bool) -> TriggerInput:
    """One message (``cardinality="one"``), or a batch whose metadata are ``<Name>Array`` lists."""
    if not many:
        (message,) = messages
        metadata = {
            name: Datum(value, "string") if isinstance(value, str) else _json(value)
            for name, value in _message_metadata(message).items()
        }
        metadata["sys"] = _sys_metadata(function_name)
        return TriggerInput(Datum(_body_text(message.body), "string"), metadata)
    per_message = [_message_metadata(message) for message in messages]
    names = sorted({name for fields in per_message for name in fields})
    arrays = {f"{name}Array": _json([fields.get(name) for fields in per_message]) for name in names}
    arrays["sys"] = _sys_metadata(function_name)
    # A batch's bodies arrive as a string collection (the worker reads ``value.string``).
    bodies = SimpleNamespace(string=[_body_text(message.body) for message in messages])
    return TriggerInput(Datum(bodies, "collection_string"), arrays)


def encode_http_response(value: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of what an HTTP function returned, through the ``http`` output converter.

    The worker encodes the return value this way and the host builds the response from the record:
    one value per header name (the last one wins), ``Set-Cookie`` headers as separate cookies.
    """
    if value is None:
        return 204, [], b""
    if isinstance(value, bytes):
        value = func.HttpResponse(value)
    datum = _converter("http").encode(value, expected_type=None)
    if datum.type == "string":
        return 200, [("content-type", "text/plain; charset=utf-8")], str(datum.value).encode("utf-8")
    if datum.type != "http":
        raise TypeError(f"HTTP function returned {type(value).__name__}, which the http binding cannot encode")
    record = datum.value
    headers = [(str(name), str(text.value)) for name, text in record["headers"].items()]
    for cookie in record.get("cookies") or []:
        headers.extend(("set-cookie", morsel.OutputString()) for morsel in cookie.values())
    body = record["body"].value if record.get("body") is not None else b""
    return int(record["status_code"].value), headers, body if isinstance(body, bytes) else str(body).encode()
