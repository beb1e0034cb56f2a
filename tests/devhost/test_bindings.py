"""devhost builds trigger arguments as the Python worker does: host-shaped data through azure-functions' converters.

Each test names what the worker would do with the same function or input, so a divergence that
would pass locally and fail in Azure fails here.
"""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from devhost.bindings import (
    ReceivedMessage,
    annotation_problem,
    decode,
    encode_http_response,
    event_grid_input,
    http_input,
    service_bus_input,
    timer_input,
)
from devhost.functions_index import FunctionIndexError, index_functions

NOW = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)


def _message(body: bytes = b'{"a":1}', **overrides: typing.Any) -> ReceivedMessage:
    fields: dict[str, typing.Any] = {
        "body": body,
        "message_id": "m-1",
        "delivery_count": 3,
        "sequence_number": 7,
        "enqueued_time": NOW,
        "locked_until": NOW + timedelta(minutes=5),
        "lock_token": "lock-1",
        "to": "events-inbound",
        "application_properties": {"traceparent": "00-abc-def-01"},
        "content_type": "application/json",
        "subject": "s",
    }
    return ReceivedMessage(**(fields | overrides))


def test_a_service_bus_message_is_built_by_the_library_converter() -> None:
    message = decode("serviceBusTrigger", func.ServiceBusMessage, service_bus_input("f", [_message()], many=False))
    assert isinstance(message, func.ServiceBusMessage)
    assert message.get_body() == b'{"a":1}'
    assert (message.message_id, message.delivery_count, message.sequence_number) == ("m-1", 3, 7)
    assert message.enqueued_time_utc == NOW
    assert message.locked_until == NOW + timedelta(minutes=5)
    assert message.application_properties == {"traceparent": "00-abc-def-01"}
    assert (message.content_type, message.subject, message.to) == ("application/json", "s", "events-inbound")


def test_a_binary_body_arrives_as_the_host_sends_it_a_utf8_string() -> None:
    message = decode(
        "serviceBusTrigger", func.ServiceBusMessage, service_bus_input("f", [_message(b"\xff")], many=False)
    )
    assert message.get_body() == "\ufffd".encode()


def test_a_batch_is_a_list_of_messages_from_metadata_arrays() -> None:
    batch = service_bus_input("f", [_message(), _message(b"two", message_id="m-2", delivery_count=1)], many=True)
    messages = decode("serviceBusTrigger", typing.List[func.ServiceBusMessage], batch)  # noqa: UP006
    assert [m.get_body() for m in messages] == [b'{"a":1}', b"two"]
    assert [m.message_id for m in messages] == ["m-1", "m-2"]
    assert [m.delivery_count for m in messages] == [3, 1]


def test_a_timer_request_is_decoded_from_the_hosts_json() -> None:
    request = decode(
        "timerTrigger",
        func.TimerRequest,
        timer_input("t", past_due=True, last=NOW, following=NOW + timedelta(minutes=1), updated=NOW),
    )
    assert isinstance(request, func.TimerRequest)
    assert request.past_due is True


def test_an_http_request_carries_route_params_query_and_raw_body() -> None:
    request = decode(
        "httpTrigger",
        func.HttpRequest,
        http_input(
            "api",
            method="POST",
            url="http://127.0.0.1/api/x?a=1",
            headers={"content-type": "application/json"},
            route_params={"id": "42"},
            query={"a": "1"},
            body=b"\x00raw",
        ),
    )
    assert (request.method, request.route_params, request.params) == ("POST", {"id": "42"}, {"a": "1"})
    assert request.get_body() == b"\x00raw"
    assert request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("offset", ["+01:00", "-05:00"])
def test_event_grid_times_with_an_offset_fail_in_the_converter_as_in_azure(offset: str) -> None:
    event = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": f"2026-11-26T10:00:00{offset}"}
    with pytest.raises(ValueError, match="does not match format"):
        decode("eventGridTrigger", func.EventGridEvent, event_grid_input("f", event))
    # ... while a str parameter takes the worker's generic binding and gets the event untouched.
    raw = decode("eventGridTrigger", str, event_grid_input("f", event))
    assert json.loads(raw) == event


def test_an_input_the_converter_does_not_support_fails_with_the_workers_error() -> None:
    from devhost.bindings import Datum, TriggerInput

    with pytest.raises(TypeError, match="unable to decode incoming TypedData"):
        decode("timerTrigger", func.TimerRequest, TriggerInput(Datum("x", "string"), {}))


@pytest.mark.parametrize(
    ("binding", "annotation", "problem"),
    [
        ("serviceBusTrigger", func.ServiceBusMessage, None),
        ("serviceBusTrigger", typing.List[func.ServiceBusMessage], None),  # noqa: UP006
        ("serviceBusTrigger", list[func.ServiceBusMessage], "invalid non-type annotation"),
        ("serviceBusTrigger", func.EventGridEvent, 'does not match its Python annotation "EventGridEvent"'),
        ("eventGridTrigger", func.CloudEvent, None),
        ("eventGridTrigger", str, None),
        ("eventGridTrigger", dict, 'does not match its Python annotation "dict"'),
        ("timerTrigger", func.TimerRequest, None),
        ("httpTrigger", func.HttpRequest, None),
        ("httpTrigger", None, None),
    ],
)
def test_annotations_load_as_they_would_in_the_worker(
    binding: str, annotation: typing.Any, problem: str | None
) -> None:
    found = annotation_problem("f", "arg", binding, annotation)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_devhost_refuses_to_index_a_function_the_worker_would_not_load() -> None:
    app = func.FunctionApp()

    @app.function_name("wrong")
    @app.service_bus_queue_trigger(arg_name="msg", queue_name="q", connection="ServiceBusConnection")
    async def wrong(msg: func.EventGridEvent) -> None:
        return None

    with pytest.raises(FunctionIndexError, match="cannot load the wrong function"):
        index_functions(app, {})


def test_http_responses_keep_one_value_per_header_as_the_host_does() -> None:
    response = func.HttpResponse(b"{}", status_code=201, mimetype="application/json")
    response.headers.add("Link", "<a>; rel=next")
    response.headers.add("Link", "<b>; rel=prev")
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    status, headers, body = encode_http_response(response)
    assert (status, body) == (201, b"{}")
    assert [value for name, value in headers if name.lower() == "link"] == ["<b>; rel=prev"]
    assert sorted(value for name, value in headers if name == "set-cookie") == ["a=1", "b=2"]
    assert ("content-type", "application/json") in [(name.lower(), value) for name, value in headers]
