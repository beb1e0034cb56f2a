"""POST /api/v1/events through the real FastAPI app against a real Azurite."""

from __future__ import annotations

import base64
import json

import httpx

from tests.support.events import STRUCTURED, event, publish
from tests.support.tokens import TestIssuer


async def count_stored(client: httpx.AsyncClient, issuer: TestIssuer, resource: str) -> int:
    response = await client.get(
        "/api/v1/events", params={"resource": resource, "size": 1000}, headers=issuer.headers("events.read")
    )
    assert response.status_code == 200
    return len(response.json())


async def test_structured_event_is_accepted_stored_and_read_back(client, issuer, resource):
    sent = event(resource, "e-1", subject="person:12345678901", data={"status": "received"})
    response = await client.post(
        "/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, json=sent
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": ["e-1"], "stored": 1, "duplicates": 0}

    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.headers["content-type"].startswith("application/cloudevents-batch+json")
    [stored] = read.json()
    assert {k: v for k, v in stored.items() if k != "time"} == sent
    assert stored["time"].endswith("Z")  # set to the receive time when absent


async def test_publisher_time_is_kept(client, issuer, resource):
    sent = event(resource, "t-1", time="2026-01-02T03:04:05+01:00")
    await client.post("/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, json=sent)
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json()[0]["time"] == "2026-01-02T03:04:05+01:00"


async def test_batch_of_500_events_is_stored_in_order(client, issuer, resource):
    batch = [event(resource, f"b-{i}", data={"n": i}) for i in range(500)]
    response = await publish(client, issuer.headers("events.publish"), batch)
    assert response.status_code == 202
    assert response.json()["accepted"] == [f"b-{i}" for i in range(500)]
    read = await client.get(
        "/api/v1/events", params={"resource": resource, "size": 1000}, headers=issuer.headers("events.read")
    )
    assert [e["id"] for e in read.json()] == [f"b-{i}" for i in range(500)]


async def test_binary_mode_with_json_and_binary_data(client, issuer, resource):
    headers = {
        **issuer.headers("events.publish"),
        "ce-specversion": "1.0",
        "ce-id": "bin-1",
        "ce-source": "urn:herald:test:publisher",
        "ce-type": "no.example.case.updated",
        "ce-resource": resource,
        "ce-subject": "org%3A991825827",  # percent-encoded per the HTTP binding
        "ce-time": "2026-03-04T05:06:07Z",
        "content-type": "application/json",
    }
    assert (await client.post("/api/v1/events", headers=headers, content=b'{"status": "closed"}')).status_code == 202
    headers.update({"ce-id": "bin-2", "content-type": "application/octet-stream"})
    assert (await client.post("/api/v1/events", headers=headers, content=b"\x00\x01\xff")).status_code == 202

    first, second = (
        await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    ).json()
    assert first["subject"] == "org:991825827"
    assert first["data"] == {"status": "closed"}
    assert first["datacontenttype"] == "application/json"
    assert first["time"] == "2026-03-04T05:06:07.000000Z"
    assert base64.b64decode(second["data_base64"]) == b"\x00\x01\xff"


async def test_same_source_and_id_is_accepted_once(client, issuer, resource):
    headers = issuer.headers("events.publish")
    sent = event(resource, "dup-1", data={"a": 1})
    first = await publish(client, headers, [sent])
    again = await publish(client, headers, [sent, event(resource, "dup-2")])
    assert first.json() == {"accepted": ["dup-1"], "stored": 1, "duplicates": 0}
    assert again.status_code == 202
    assert again.json() == {"accepted": ["dup-1", "dup-2"], "stored": 1, "duplicates": 1}
    assert await count_stored(client, issuer, resource) == 2


async def test_replayed_batch_is_not_stored_twice(client, issuer, resource):
    headers = issuer.headers("events.publish")
    batch = [event(resource, f"r-{i}") for i in range(300)]
    assert (await publish(client, headers, batch)).json()["stored"] == 300
    replay = await publish(client, headers, batch)
    assert replay.json() == {"accepted": [e["id"] for e in batch], "stored": 0, "duplicates": 300}
    assert await count_stored(client, issuer, resource) == 300


async def test_same_key_with_other_content_is_a_conflict(client, issuer, resource):
    headers = issuer.headers("events.publish")
    await publish(client, headers, [event(resource, "c-1", data={"a": 1})])
    response = await publish(client, headers, [event(resource, "c-1", data={"a": 2})])
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["conflicts"] == [{"index": 0, "id": "c-1", "source": "urn:herald:test:publisher"}]
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert [e["data"] for e in read.json()] == [{"a": 1}]


async def test_duplicate_inside_one_batch_is_stored_once(client, issuer, resource):
    response = await publish(client, issuer.headers("events.publish"), [event(resource, "x"), event(resource, "x")])
    assert response.json() == {"accepted": ["x", "x"], "stored": 1, "duplicates": 1}


async def test_events_of_several_resources_in_one_batch(client, issuer, resource, services):
    from tests.conftest import open_resource

    other = await open_resource(services, resource + "-other")
    response = await publish(
        client, issuer.headers("events.publish"), [event(resource, "1"), event(other, "2"), event(resource, "3")]
    )
    assert response.status_code == 202
    assert [
        e["id"]
        for e in (
            await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
        ).json()
    ] == ["1", "3"]
    assert [
        e["id"]
        for e in (
            await client.get("/api/v1/events", params={"resource": other}, headers=issuer.headers("events.read"))
        ).json()
    ] == ["2"]


async def test_large_events_are_packed_across_rows(client, issuer, resource):
    big = "x" * 60_000
    batch = [event(resource, f"big-{i}", data={"blob": big}) for i in range(40)]
    assert (await publish(client, issuer.headers("events.publish"), batch)).status_code == 202
    read = await client.get(
        "/api/v1/events", params={"resource": resource, "size": 100}, headers=issuer.headers("events.read")
    )
    assert [e["id"] for e in read.json()] == [f"big-{i}" for i in range(40)]
    assert all(e["data"]["blob"] == big for e in read.json())


async def test_publishing_enqueues_the_inbound_stage(services, client, issuer, resource):
    from shared.events.dispatch import INBOUND_QUEUE

    await publish(client, issuer.headers("events.publish"), [event(resource, "q-1")])
    queue = services.bus.service.get_queue_client(INBOUND_QUEUE)
    assert await _find_pointer(queue, resource)
    # The outbox entry is cleared once the inbound message is sent.
    assert await services.event_log.pending_dispatches(resource, committed_before=_far_future()) == []


async def _find_pointer(queue, resource: str) -> bool:
    from shared.adapters.storage_queue_bus import decode_envelope

    async for message in queue.receive_messages(messages_per_page=32, visibility_timeout=1):
        if json.loads(decode_envelope(message.content).body)["resource"] == resource:
            return True
    return False  # no message points at the resource's rows


def _far_future():
    from datetime import UTC, datetime

    return datetime(2100, 1, 1, tzinfo=UTC)
