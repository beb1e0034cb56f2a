"""GET /api/v1/events: pages, next links on every response, filters, and cursor errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.events.cursor import encode_cursor
from shared.events.log import Position
from tests.support.events import event, next_link, publish, read_all


async def test_empty_resource_still_has_a_next_link_that_sees_later_events(client, issuer, resource):
    headers = issuer.headers("events.read", "events.publish")
    first = await client.get("/api/v1/events", params={"resource": resource}, headers=headers)
    assert first.status_code == 200 and first.json() == []
    follow = next_link(first)
    await publish(client, headers, [event(resource, "later")])
    second = await client.get(follow, headers=headers)
    assert [e["id"] for e in second.json()] == ["later"]
    third = await client.get(next_link(second), headers=headers)
    assert third.json() == []
    assert next_link(third)


async def test_pages_follow_each_other_without_gaps_or_repeats(client, issuer, resource):
    headers = issuer.headers("events.read", "events.publish")
    for start in range(0, 250, 50):  # five appends: several log rows
        await publish(client, headers, [event(resource, f"p-{i}") for i in range(start, start + 50)])
    seen, _ = await read_all(client, headers, f"/api/v1/events?resource={resource}&size=7")
    assert [e["id"] for e in seen] == [f"p-{i}" for i in range(250)]


async def test_next_link_keeps_the_filters(client, issuer, resource):
    headers = issuer.headers("events.read", "events.publish")
    await publish(
        client, headers, [event(resource, f"f-{i}", subject=f"person:{i % 3}", type=f"t.{i % 2}") for i in range(60)]
    )
    response = await client.get(
        "/api/v1/events",
        params={"resource": resource, "subject": "person:1", "type": "t.0", "size": 3},
        headers=headers,
    )
    link = next_link(response)
    assert "subject=person%3A1" in link and "type=t.0" in link and "size=3" in link
    seen, _ = await read_all(client, headers, link)
    expected = [f"f-{i}" for i in range(60) if i % 3 == 1 and i % 2 == 0]
    assert [e["id"] for e in response.json() + seen] == expected


@pytest.mark.parametrize("name", ["subject", "alternativesubject", "type", "source"])
async def test_each_filter_is_exact(client, issuer, resource, name):
    headers = issuer.headers("events.read", "events.publish")
    await publish(client, headers, [event(resource, "a", **{name: "urn:a"}), event(resource, "b", **{name: "urn:ab"})])
    response = await client.get("/api/v1/events", params={"resource": resource, name: "urn:a"}, headers=headers)
    assert [e["id"] for e in response.json()] == ["a"]


async def test_sparse_filter_never_stalls(client, issuer, resource):
    """A page scans a bounded part of the log; empty pages advance, and the match is found."""
    headers = issuer.headers("events.read", "events.publish")
    noise = "n" * 60_000  # 300 events of 60 KB: more than one request may scan (16 MiB)
    for batch in range(5):
        await publish(
            client, headers, [event(resource, f"n-{batch}-{i}", subject="person:noise", data=noise) for i in range(60)]
        )
    await publish(client, headers, [event(resource, "needle", subject="person:needle")])
    url = f"/api/v1/events?resource={resource}&subject=person%3Aneedle"
    pages = 0
    found: list[str] = []
    while not found:
        response = await client.get(url, headers=headers)
        pages += 1
        found = [e["id"] for e in response.json()]
        url = next_link(response)
        assert pages < 10
    assert found == ["needle"]
    assert pages >= 2  # the first page scanned only part of the noise and came back empty, with a next link


async def test_size_bounds(client, issuer, resource):
    headers = issuer.headers("events.read")
    for size in ("0", "1001", "ten"):
        response = await client.get("/api/v1/events", params={"resource": resource, "size": size}, headers=headers)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"


async def test_resource_is_required(client, issuer):
    response = await client.get("/api/v1/events", headers=issuer.headers("events.read"))
    assert response.status_code == 400
    assert "resource" in response.json()["detail"]


async def test_unknown_and_repeated_parameters_are_refused(client, issuer, resource):
    headers = issuer.headers("events.read")
    unknown = await client.get("/api/v1/events", params={"resource": resource, "sbject": "x"}, headers=headers)
    assert unknown.status_code == 400 and "sbject" in unknown.json()["detail"]
    repeated = await client.get(f"/api/v1/events?resource={resource}&type=a&type=b", headers=headers)
    assert repeated.status_code == 400 and "type" in repeated.json()["detail"]


@pytest.mark.parametrize("after", ["garbage", "MS4x", encode_cursor("urn:other:resource", Position(1, 0))])
async def test_invalid_cursor_is_400_not_a_restart(client, issuer, resource, after):
    headers = issuer.headers("events.read", "events.publish")
    await publish(client, headers, [event(resource, "x")])
    response = await client.get("/api/v1/events", params={"resource": resource, "after": after}, headers=headers)
    assert response.status_code == 400
    assert response.json()["type"] == "urn:herald:problem:cursor-invalid"


async def test_cursor_ahead_of_the_log_is_invalid(client, issuer, resource):
    headers = issuer.headers("events.read", "events.publish")
    await publish(client, headers, [event(resource, "x")])
    for position in (Position(5, -1), Position(1, 3)):
        response = await client.get(
            "/api/v1/events", params={"resource": resource, "after": encode_cursor(resource, position)}, headers=headers
        )
        assert response.status_code == 400
        assert response.json()["type"] == "urn:herald:problem:cursor-invalid"


async def test_cursor_into_expired_events_is_400(services, stores, client, issuer, resource):
    headers = issuer.headers("events.read", "events.publish")
    await publish(client, headers, [event(resource, "old-1"), event(resource, "old-2")])
    first = await client.get("/api/v1/events", params={"resource": resource, "size": 1}, headers=headers)
    mid_row_cursor = next_link(first)
    await publish(client, headers, [event(resource, "new")])
    removed = await stores.event_log.expire(resource, datetime.now(UTC) - timedelta(milliseconds=1))
    assert removed == 3
    expired = await client.get(mid_row_cursor, headers=headers)
    assert expired.status_code == 400
    assert expired.json()["type"] == "urn:herald:problem:cursor-expired"
    assert (await client.get("/api/v1/events", params={"resource": resource}, headers=headers)).json() == []


async def test_from_now_sees_only_later_events_and_from_a_time_starts_there(client, issuer, resource):
    headers = issuer.headers("events.read", "events.publish")
    await publish(client, headers, [event(resource, "old")])
    now = await client.get("/api/v1/events", params={"resource": resource, "from": "now"}, headers=headers)
    assert now.status_code == 200 and now.json() == []
    assert "from=" not in next_link(now)
    between = datetime.now(UTC)
    await publish(client, headers, [event(resource, "new")])
    later = await client.get(next_link(now), headers=headers)
    assert [e["id"] for e in later.json()] == ["new"]
    since = await client.get(
        "/api/v1/events", params={"resource": resource, "from": between.isoformat()}, headers=headers
    )
    assert [e["id"] for e in since.json()] == ["new"]
    before = await client.get(
        "/api/v1/events",
        params={"resource": resource, "from": (between - timedelta(hours=1)).isoformat()},
        headers=headers,
    )
    assert [e["id"] for e in before.json()] == ["old", "new"]


@pytest.mark.parametrize("start", ["yesterday", "2026-11-26T10:00:00"])
async def test_from_must_be_now_or_a_zoned_time_and_not_beside_a_cursor(client, issuer, resource, start):
    headers = issuer.headers("events.read")
    response = await client.get("/api/v1/events", params={"resource": resource, "from": start}, headers=headers)
    assert response.status_code == 400 and "'from'" in response.json()["detail"]
    page = await client.get("/api/v1/events", params={"resource": resource}, headers=headers)
    both = await client.get(f"{next_link(page)}&from=now", headers=headers)
    assert both.status_code == 400 and "either" in both.json()["detail"]
