"""CloudEvents validation rules (pure functions, no storage)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.events.cursor import CursorInvalid, decode_cursor, encode_cursor
from shared.events.log import Position
from shared.events.model import (
    MAX_EVENT_BYTES,
    EventInvalid,
    EventTooLarge,
    event_key_hash,
    instant,
    is_republish,
    validate_event,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def base(**changes):
    document = {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": "t",
        "resource": "urn:altinn:resource:skattemelding",
    }
    document.update(changes)
    return document


def test_valid_event_gets_receive_time_and_compact_body():
    validated = validate_event(base(), received_at=NOW)
    assert (
        validated.body
        == b'{"specversion":"1.0","id":"1","source":"/s","type":"t","resource":"urn:altinn:resource:skattemelding","time":"2026-11-21T12:00:00.000000Z"}'
    )


def test_content_hash_ignores_receive_time_but_not_content():
    a = validate_event(base(data={"x": 1}), received_at=NOW)
    b = validate_event(base(data={"x": 1}), received_at=datetime(2030, 1, 1, tzinfo=UTC))
    c = validate_event(base(data={"x": 2}), received_at=NOW)
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.key_hash == c.key_hash == event_key_hash("/s", "1")


@pytest.mark.parametrize(
    "spelling",
    ["2026-01-02T03:04:05+01:00", "2026-01-02T02:04:05Z", "2026-01-02t02:04:05.000z", "2026-01-01T21:04:05.0-05:00"],
)
def test_one_instant_has_one_spelling(spelling):
    assert instant(spelling) == "2026-01-02T02:04:05Z"


def test_instants_keep_digits_beyond_microseconds():
    assert instant("2026-01-02T03:04:05.1234567Z") != instant("2026-01-02T03:04:05.1234568Z")
    assert instant("2026-01-02T03:04:05.120Z") == "2026-01-02T03:04:05.12Z"


def test_republish_rule_compares_time_apart_from_content():
    first = validate_event(base(data={"x": 1}), received_at=NOW)
    stored = (first.content_hash, first.stored_time)
    read_back = validate_event({**base(data={"x": 1}), "time": "2026-11-21T13:00:00+01:00"}, received_at=NOW)
    retry = validate_event(base(data={"x": 1}), received_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert is_republish(read_back, *stored) and is_republish(retry, *stored)
    assert not is_republish(validate_event(base(data={"x": 1}, time="2026-11-21T12:00:01Z"), received_at=NOW), *stored)
    assert not is_republish(validate_event(base(data={"x": 2}), received_at=NOW), *stored)


def test_key_hash_separates_source_and_id():
    assert event_key_hash("a", "bc") != event_key_hash("ab", "c")


def test_all_problems_are_reported_at_once():
    with pytest.raises(EventInvalid) as caught:
        validate_event({"specversion": "2.0", "id": "", "Bad": 1}, received_at=NOW)
    assert {p.attribute for p in caught.value.problems} >= {"specversion", "id", "source", "type", "resource", "Bad"}


@pytest.mark.parametrize("resource", ["urn:altinn:resource:a", "URN:x-y:a/b:c", "urn:herald:test:1f2e"])
def test_urn_resources(resource):
    assert validate_event(base(resource=resource), received_at=NOW).resource == resource


@pytest.mark.parametrize(
    "resource", ["urn::a", "urn:a:b c", "http://x", "urn:-x:a", "urn:" + "a" * 40 + ":x", "urn:x:" + "a" * 300]
)
def test_bad_resources(resource):
    with pytest.raises(EventInvalid):
        validate_event(base(resource=resource), received_at=NOW)


def test_size_limit():
    with pytest.raises(EventTooLarge) as caught:
        validate_event(base(data="x" * MAX_EVENT_BYTES), received_at=NOW)
    assert caught.value.size > MAX_EVENT_BYTES


def test_extension_values():
    assert validate_event(base(flag=True, count=7, name="x"), received_at=NOW)
    with pytest.raises(EventInvalid):
        validate_event(base(count=2**31), received_at=NOW)


def test_cursor_round_trip_and_binding():
    token = encode_cursor("urn:a:b", Position(12, 3))
    assert decode_cursor(token, "urn:a:b") == Position(12, 3)
    with pytest.raises(CursorInvalid):
        decode_cursor(token, "urn:a:c")
    with pytest.raises(CursorInvalid):
        decode_cursor("!!!", "urn:a:b")


@pytest.mark.parametrize("encoded", ["aGVsbG8=!", "æøå", 42])
def test_data_base64_that_is_not_base64_is_a_problem_of_the_event(encoded):
    with pytest.raises(EventInvalid) as raised:
        validate_event(base(data_base64=encoded), received_at=NOW)
    assert [(p.attribute, p.detail) for p in raised.value.problems] == [("data_base64", "must be base64")]
