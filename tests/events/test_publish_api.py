"""POST /api/v1/events through the real FastAPI app against a real Azurite."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib

import httpx
import pytest
from azure.data.tables import UpdateMode
from cloudevents.core.bindings.http import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.support.events import BATCH, STRUCTURED, binary_headers, event, publish
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
        **dict(
            binary_headers(
                resource,
                ce_subject="org%3A991825827",  # percent-encoded per the HTTP binding
                ce_time="2026-03-04T05:06:07Z",
                content_type="application/json",
            )
        ),
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
    assert first["time"] == "2026-03-04T05:06:07Z"  # as sent, as structured mode keeps it
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


async def test_publishing_enqueues_the_inbound_stage(services, stores, client, issuer, resource):
    from shared.events.dispatch import INBOUND_QUEUE

    await publish(client, issuer.headers("events.publish"), [event(resource, "q-1")])
    await stores.event_log.flush()  # answered once durable; the inbound message follows at once
    queue = stores.bus.service.get_queue_client(INBOUND_QUEUE)
    assert await _find_pointer(queue, resource)
    # The outbox entry is cleared once the inbound message is sent.
    assert await stores.event_log.pending_dispatches(resource, committed_before=_far_future()) == []


async def _find_pointer(queue, resource: str) -> bool:
    from shared.adapters.storage_queue_bus import decode_envelope

    async for message in queue.receive_messages(messages_per_page=32, visibility_timeout=1):
        if json.loads(decode_envelope(message.content).body)["resource"] == resource:
            return True
    return False  # no message points at the resource's rows


def _far_future():
    from datetime import UTC, datetime

    return datetime(2100, 1, 1, tzinfo=UTC)


async def read_resource(client: httpx.AsyncClient, issuer: TestIssuer, resource: str) -> list[dict]:
    response = await client.get(
        "/api/v1/events", params={"resource": resource, "size": 1000}, headers=issuer.headers("events.read")
    )
    assert response.status_code == 200
    return response.json()


async def test_republishing_an_event_as_read_back_is_a_duplicate(client, issuer, resource):
    headers = issuer.headers("events.publish")
    sent = event(resource, "relay-1", data={"a": 1})  # no time: Herald adds the receive time
    assert (await publish(client, headers, [sent])).json()["stored"] == 1
    [read_back] = await read_resource(client, issuer, resource)

    relayed = await publish(client, headers, [read_back])  # a relay publishing what it read
    assert relayed.status_code == 202, relayed.text
    assert relayed.json() == {"accepted": ["relay-1"], "stored": 0, "duplicates": 1}
    assert (await publish(client, headers, [sent])).json()["duplicates"] == 1  # the publisher's plain retry
    same_instant = read_back["time"].replace("Z", "+00:00")
    assert (await publish(client, headers, [{**read_back, "time": same_instant}])).json()["duplicates"] == 1

    other_time = await publish(client, headers, [{**read_back, "time": "2020-01-01T00:00:00Z"}])
    other_data = await publish(client, headers, [{**read_back, "data": {"a": 2}}])
    assert other_time.status_code == other_data.status_code == 409
    assert await read_resource(client, issuer, resource) == [read_back]


async def test_an_explicit_time_is_part_of_the_event(client, issuer, resource):
    headers = issuer.headers("events.publish")
    sent = event(resource, "timed-1", time="2026-01-02T03:04:05+01:00")
    assert (await publish(client, headers, [sent])).json()["stored"] == 1
    without_time = {k: v for k, v in sent.items() if k != "time"}
    same_instant = {**sent, "time": "2026-01-02T02:04:05.000000Z"}
    for again in (sent, without_time, same_instant):
        assert (await publish(client, headers, [again])).json() == {
            "accepted": ["timed-1"],
            "stored": 0,
            "duplicates": 1,
        }
    later = await publish(client, headers, [{**sent, "time": "2026-01-02T03:04:06+01:00"}])
    assert later.status_code == 409
    assert [e["time"] for e in await read_resource(client, issuer, resource)] == ["2026-01-02T03:04:05+01:00"]


async def test_republish_rule_inside_one_batch(client, issuer, resource):
    headers = issuer.headers("events.publish")
    timed = event(resource, "in-batch", time="2026-05-06T07:08:09Z")
    untimed = event(resource, "in-batch")
    retried = await publish(client, headers, [timed, untimed])  # the second is a retry without time
    assert retried.json() == {"accepted": ["in-batch", "in-batch"], "stored": 1, "duplicates": 1}
    moved = await publish(
        client, headers, [event(resource, "other"), {**timed, "id": "other", "time": "2020-01-01T00:00:00Z"}]
    )
    assert moved.status_code == 409
    assert moved.json()["conflicts"] == [{"index": 1, "id": "other", "source": "urn:herald:test:publisher"}]


async def test_keys_stored_before_the_time_rule_still_tell_duplicates_from_conflicts(
    client, issuer, resource, services, stores
):
    """Key rows written before they carried the stored time hashed the publisher's time with the rest."""
    from shared.adapters.table_event_log import EVENTS_TABLE, key_row_key
    from shared.adapters.tables import escape_key
    from shared.events.model import event_key_hash

    headers = issuer.headers("events.publish")
    timed = event(resource, "old-timed", time="2026-01-02T03:04:05Z", data={"a": 1})
    untimed = event(resource, "old-untimed", data={"a": 1})
    assert (await publish(client, headers, [timed, untimed])).json()["stored"] == 2
    table = stores.tables.get_table_client(EVENTS_TABLE)
    for document in (timed, untimed):
        key = key_row_key(event_key_hash(document["source"], document["id"]))
        entity = dict(await table.get_entity(escape_key(resource), key))
        legacy_hash = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        entity.pop("tm")
        entity["h"] = legacy_hash[:32]
        await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
    stored = {e["id"]: e for e in await read_resource(client, issuer, resource)}

    for again in (timed, untimed, stored["old-untimed"], {k: v for k, v in timed.items() if k != "time"}):
        assert (await publish(client, headers, [again])).json()["duplicates"] == 1, again
    for changed in ({**timed, "time": "2026-01-02T03:04:06Z"}, {**untimed, "data": {"a": 2}}):
        assert (await publish(client, headers, [changed])).status_code == 409, changed


TEXT_DATA = "<case id='42'>Blåbær sak</case>"


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "text/plain; charset=utf-8", "application/xml", "application/atom+xml", 'text/csv; charset="UTF-8"'],
)
async def test_binary_mode_text_data_is_kept_as_text(client, issuer, resource, content_type):
    """The Python SDK sends the string as the body; read back, the SDK gives the same string again."""
    sent = CloudEvent(
        attributes={
            "id": "text-1",
            "source": "urn:herald:test:publisher",
            "type": "no.example.case.updated",
            "resource": resource,
            "datacontenttype": content_type,
        },
        data=TEXT_DATA,
    )
    message = to_binary(sent, JSONFormat())
    headers = {**issuer.headers("events.publish"), **message.headers}
    response = await client.post("/api/v1/events", headers=headers, content=message.body)
    assert response.status_code == 202, response.text

    [stored] = await read_resource(client, issuer, resource)
    assert stored["data"] == TEXT_DATA and "data_base64" not in stored
    assert stored["datacontenttype"] == content_type
    assert JSONFormat().read(None, json.dumps(stored)).get_data() == TEXT_DATA


async def test_binary_mode_text_in_another_charset_keeps_its_bytes(client, issuer, resource):
    headers = [
        *issuer.headers("events.publish").items(),
        *binary_headers(resource, content_type="text/plain; charset=iso-8859-1"),
    ]
    body = "Blåbær sak".encode("latin-1")
    assert (await client.post("/api/v1/events", headers=headers, content=body)).status_code == 202
    [stored] = await read_resource(client, issuer, resource)
    assert base64.b64decode(stored["data_base64"]) == body and "data" not in stored


@pytest.mark.parametrize(
    ("header", "attribute"),
    [
        ('"org:991825827"', "org:991825827"),  # a quoted-string loses its quotes
        ('"Bl%C3%A5b%C3%A6r sak"', "Blåbær sak"),  # then one round of percent-decoding
        ('"say \\"hi\\""', 'say "hi"'),  # with quoted-pairs unescaped
        ("100%2525", "100%25"),  # one round only
    ],
)
async def test_binary_mode_header_values_are_decoded_as_the_http_binding_says(
    client, issuer, resource, header, attribute
):
    headers = [*issuer.headers("events.publish").items(), *binary_headers(resource, ce_subject=header)]
    assert (await client.post("/api/v1/events", headers=headers)).status_code == 202
    [stored] = await read_resource(client, issuer, resource)
    assert stored["subject"] == attribute


async def test_compressed_bodies_are_decoded(client, issuer, resource):
    headers = issuer.headers("events.publish")
    batch = json.dumps([event(resource, f"z-{i}", data={"n": i}) for i in range(3)]).encode()
    member = gzip.compress(batch[: len(batch) // 2]) + gzip.compress(batch[len(batch) // 2 :])  # two gzip members
    for coding, body in {"gzip": gzip.compress(batch), "deflate": zlib.compress(batch), "GZIP": member}.items():
        response = await client.post(
            "/api/v1/events", headers={**headers, **BATCH, "content-encoding": coding}, content=body
        )
        assert response.status_code == 202, (coding, response.text)
    assert [e["id"] for e in await read_resource(client, issuer, resource)] == ["z-0", "z-1", "z-2"]
