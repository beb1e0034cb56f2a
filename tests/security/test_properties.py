"""Property-based tests (hypothesis) of the pure rules hostile input reaches first: CloudEvents
validation, read cursors, subscription matching and its index keys, the notification status machine."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.api.subscription_schemas import SubscriptionRequest
from shared.events.cursor import CursorInvalid, decode_cursor, encode_cursor
from shared.events.log import Position
from shared.events.model import MAX_EVENT_BYTES, EventInvalid, EventTooLarge, event_key_hash, validate_event
from shared.notifications.model import Channel, Status
from shared.notifications.status import STATUSES, TRANSITIONS, can_move, event_type, is_final
from shared.subscriptions.model import (
    FilterProblem,
    Filters,
    index_keys_for_event,
    matches_pattern,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

printable = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
token = st.text(alphabet=string.ascii_letters + string.digits + ".-_:", min_size=1, max_size=30)
urn = st.builds(
    lambda nid, nss: f"urn:{nid}:{nss}", st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True), token
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(printable),
        "source": draw(token),
        "type": draw(printable),
        "resource": draw(urn),
    }
    if draw(st.booleans()):
        document["subject"] = draw(printable)
    if draw(st.booleans()):
        document["alternativesubject"] = draw(printable)
    if draw(st.booleans()):
        document["data"] = draw(json_values)
    for name in draw(st.lists(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True), max_size=3, unique=True)):
        if name not in document and name not in ("data_base64", "time", "datacontenttype", "dataschema", "specversion"):
            document[name] = draw(st.booleans() | st.integers(-(2**31), 2**31 - 1) | printable)
    return document


# ------------------------------------------------------------------------------- CloudEvents


@EXAMPLES
@given(valid_events())
def test_a_valid_event_is_stored_as_sent(document):
    validated = validate_event(document, received_at=NOW)
    stored = json.loads(validated.body)
    assert {k: v for k, v in stored.items() if k != "time"} == document
    assert stored["time"] == "2026-11-21T12:00:00.000000Z"
    assert len(validated.body) <= MAX_EVENT_BYTES
    assert validated.key_hash == event_key_hash(document["source"], document["id"])
    # Same content, same hash: a replay is recognised; other content is told apart.
    assert validate_event(dict(document), received_at=NOW).content_hash == validated.content_hash
    assert validate_event({**document, "zz9": "other"}, received_at=NOW).content_hash != validated.content_hash


@EXAMPLES
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8) | json_values)
def test_any_json_is_refused_with_reasons_or_accepted_never_crashes(document):
    try:
        validate_event(document, received_at=NOW)
    except EventInvalid as error:
        assert error.problems and all(isinstance(p.attribute, str) and p.detail for p in error.problems)
    except EventTooLarge:
        pass


@EXAMPLES
@given(
    valid_events(),
    st.sampled_from(["id", "source", "type", "resource", "subject", "alternativesubject"]),
    st.sampled_from([chr(c) for c in [*range(0x00, 0x20), 0x7F]]),
    st.integers(0, 5),
)
def test_control_characters_in_attributes_are_refused(document, attribute, control, at):
    value = str(document.get(attribute) or "x")
    document[attribute] = value[:at] + control + value[at:]
    with pytest.raises(EventInvalid) as raised:
        validate_event(document, received_at=NOW)
    assert attribute in {p.attribute for p in raised.value.problems}


@EXAMPLES
@given(valid_events(), st.sampled_from(["id", "source", "type", "resource"]), json_values)
def test_required_attributes_must_be_non_empty_strings(document, attribute, value):
    assume(not isinstance(value, str) or value == "")
    document[attribute] = value
    with pytest.raises(EventInvalid) as raised:
        validate_event(document, received_at=NOW)
    assert attribute in {p.attribute for p in raised.value.problems}


# ------------------------------------------------------------------------------------ cursor


@EXAMPLES
@given(urn, st.integers(0, 2**53), st.integers(-1, 10_000))
def test_a_cursor_round_trips_for_its_resource_only(resource, seq, index):
    cursor = encode_cursor(resource, Position(seq, index))
    assert decode_cursor(cursor, resource) == Position(seq, index)
    assert set(cursor) <= set(string.ascii_letters + string.digits + "-_")  # safe in a URL as is
    with pytest.raises(CursorInvalid):
        decode_cursor(cursor, resource + "x")


@EXAMPLES
@given(st.text(max_size=200) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")), urn)
def test_any_text_as_cursor_is_invalid_or_a_position_never_a_crash(text, resource):
    try:
        position = decode_cursor(text, resource)
    except CursorInvalid:
        return
    assert position.seq >= 0 and position.index >= -1


# ---------------------------------------------------------------------------------- matching

filter_values = st.sampled_from(["a", "ab", "abc", "b", "person:1", "urn:x:y"])


@st.composite
def filters_and_event(draw: st.DrawFn) -> tuple[Filters, dict[str, Any]]:
    resource = draw(st.sampled_from(["urn:r:one", "urn:r:two"]))

    def pattern() -> str | None:
        value = draw(st.none() | filter_values)
        return value + "*" if value is not None and draw(st.booleans()) else value

    filters = Filters(
        resource=draw(st.sampled_from(["urn:r:one", "urn:r:two"])),
        source=pattern(),
        subject=draw(st.none() | filter_values),
        alternativesubject=draw(st.none() | filter_values),
        type=pattern(),
    )
    event: dict[str, Any] = {"resource": resource, "source": draw(filter_values), "type": draw(filter_values)}
    for name in ("subject", "alternativesubject"):
        if (value := draw(st.none() | filter_values)) is not None:
            event[name] = value
    return filters, event


@settings(max_examples=1000, deadline=None)
@given(filters_and_event())
def test_the_index_never_hides_a_matching_subscription(pair):
    filters, event = pair
    if filters.matches(event):
        assert filters.index_key() in index_keys_for_event(event)


@settings(max_examples=1000, deadline=None)
@given(filters_and_event())
def test_matching_is_the_conjunction_of_the_filters(pair):
    f, e = pair

    def pattern_ok(pattern: str | None, value: str | None) -> bool:
        if pattern is None:
            return True
        if pattern.endswith("*"):
            return value is not None and value.startswith(pattern[:-1])
        return value == pattern

    expected = (
        e["resource"] == f.resource
        and pattern_ok(f.source, e.get("source"))
        and pattern_ok(f.type, e.get("type"))
        and (f.subject is None or e.get("subject") == f.subject)
        and (f.alternativesubject is None or e.get("alternativesubject") == f.alternativesubject)
    )
    assert f.matches(e) == expected


@EXAMPLES
@given(printable, st.text(max_size=20))
def test_a_prefix_pattern_matches_exactly_its_extensions(prefix, rest):
    assume("*" not in prefix)
    assert matches_pattern(prefix + "*", prefix + rest)
    assert matches_pattern(prefix, prefix) and (rest == "" or not matches_pattern(prefix, prefix + rest))
    assert not matches_pattern(prefix, None)


@EXAMPLES
@given(
    st.text(max_size=30), st.sampled_from(["typeFilter", "sourceFilter", "subjectFilter", "alternativeSubjectFilter"])
)
def test_a_stored_filter_can_match_some_event(value, field):
    """A filter is refused, or some event value satisfies it (no silently dead subscriptions)."""
    try:
        request = SubscriptionRequest.model_validate(
            {"endPoint": "https://example.com/hook", "resourceFilter": "urn:r:one", field: value}
        )
    except (ValueError, FilterProblem):
        return
    filters = request.filters()
    stored = {
        "typeFilter": filters.type,
        "sourceFilter": filters.source,
        "subjectFilter": filters.subject,
        "alternativeSubjectFilter": filters.alternativesubject,
    }[field]
    if stored is None:
        return
    candidate = stored[:-1] + "x" if stored.endswith("*") and field in ("typeFilter", "sourceFilter") else stored
    document = {"specversion": "1.0", "id": "1", "source": "urn:s", "type": "t", "resource": "urn:r:one"}
    document[
        {
            "typeFilter": "type",
            "sourceFilter": "source",
            "subjectFilter": "subject",
            "alternativeSubjectFilter": "alternativesubject",
        }[field]
    ] = candidate
    validated = validate_event(document, received_at=NOW)  # the matching value is a valid event attribute
    assert filters.matches(json.loads(validated.body))


# ---------------------------------------------------------------------------- status machine


@pytest.mark.parametrize("channel", list(Channel))
def test_the_status_graph_is_acyclic_and_every_status_is_reachable(channel):
    graph = TRANSITIONS[channel]
    reachable, frontier = {Status.NEW}, [Status.NEW]
    while frontier:
        for target in graph.get(frontier.pop(), frozenset()):
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == STATUSES[channel]

    def cycle_from(node: Status, path: tuple[Status, ...]) -> bool:
        return any(t in path or cycle_from(t, (*path, t)) for t in graph.get(node, frozenset()))

    assert not cycle_from(Status.NEW, (Status.NEW,))
    assert len({event_type(channel, s) for s in STATUSES[channel]}) == len(STATUSES[channel])


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(Channel)), st.lists(st.sampled_from(list(Status)), max_size=30))
def test_any_sequence_of_updates_ends_in_at_most_one_final_status(channel, updates):
    """Reports early, twice, out of order: applying only allowed moves, status only goes forward and
    a final status never changes again."""
    current, seen = Status.NEW, [Status.NEW]
    for target in updates:
        if can_move(channel, current, target):
            assert not is_final(channel, current)
            assert target not in seen  # never back to an earlier status
            current = target
            seen.append(current)
        else:
            assert target == current or target not in TRANSITIONS[channel].get(current, frozenset())
    assert sum(is_final(channel, s) for s in seen) <= 1
    if is_final(channel, current):
        assert all(not can_move(channel, current, s) for s in Status)
