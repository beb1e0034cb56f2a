"""CloudEvents validation rules (pure functions, no storage)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.events.cursor import CursorInvalid, decode_cursor, encode_cursor
from shared.events.log import Position
from shared.events.model import MAX_EVENT_BYTES, EventInvalid, EventTooLarge, event_key_hash, validate_event

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
