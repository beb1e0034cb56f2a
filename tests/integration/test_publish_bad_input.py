"""Bad input to POST /api/v1/events: a clear 4xx problem, and nothing stored."""

from __future__ import annotations

import json

import pytest

from tests.support.events import BATCH, STRUCTURED, event, publish


async def assert_nothing_stored(client, issuer, resource):
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.status_code == 200
    assert read.json() == []


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    return problem


async def test_malformed_json(client, issuer, resource):
    response = await client.post(
        "/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, content=b'{"id": '
    )
    assert "not valid JSON" in assert_problem(response, 400)["detail"]


async def test_nan_is_not_json(client, issuer, resource):
    body = json.dumps(event(resource, "n", data={"x": float("nan")}))
    response = await client.post(
        "/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, content=body
    )
    assert_problem(response, 400)
    await assert_nothing_stored(client, issuer, resource)


async def test_deeply_nested_json(client, issuer, resource):
    body = '{"specversion":"1.0","data":' + "[" * 100_000 + "]" * 100_000 + "}"
    response = await client.post(
        "/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, content=body
    )
    assert_problem(response, 400)


async def test_invalid_utf8(client, issuer):
    response = await client.post(
        "/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, content=b'{"id":"\xff"}'
    )
    assert "UTF-8" in assert_problem(response, 400)["detail"]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml"])
async def test_wrong_content_type(client, issuer, resource, content_type):
    response = await client.post(
        "/api/v1/events",
        headers={**issuer.headers("events.publish"), "content-type": content_type},
        content=json.dumps(event(resource, "w")),
    )
    assert "application/cloudevents+json" in assert_problem(response, 415)["detail"]
    await assert_nothing_stored(client, issuer, resource)


@pytest.mark.parametrize(
    ("change", "attribute"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"specversion": None}, "specversion"),
        ({"id": ""}, "id"),
        ({"id": None}, "id"),
        ({"source": None}, "source"),
        ({"source": "has spaces in it"}, "source"),
        ({"type": 7}, "type"),
        ({"resource": None}, "resource"),
        ({"resource": "not-a-urn"}, "resource"),
        ({"resource": "urn:x"}, "resource"),
        ({"subject": ""}, "subject"),
        ({"subject": "line\nbreak"}, "subject"),
        ({"time": "yesterday"}, "time"),
        ({"time": "2026-13-45T00:00:00Z"}, "time"),
        ({"datacontenttype": "json"}, "datacontenttype"),
        ({"dataschema": "relative/path"}, "dataschema"),
        ({"data_base64": "%%%"}, "data_base64"),
        ({"data": 1, "data_base64": "AA=="}, "data_base64"),
        ({"Upper": "x"}, "Upper"),
        ({"waytoolongextensionname": "x"}, "waytoolongextensionname"),
        ({"ext": {"nested": True}}, "ext"),
        ({"ext": 1.5}, "ext"),
        ({"ext": 2**40}, "ext"),
        ({"ext": None}, "ext"),
    ],
)
async def test_invalid_attribute_is_named(client, issuer, resource, change, attribute):
    document = event(resource, "bad-1")
    for name, value in change.items():
        if value is None:
            document.pop(name, None)
            if name == "ext":
                document[name] = None
        else:
            document[name] = value
    response = await client.post(
        "/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, content=json.dumps(document)
    )
    problem = assert_problem(response, 400)
    assert attribute in [error["attribute"] for error in problem["errors"]]
    await assert_nothing_stored(client, issuer, resource)


async def test_batch_is_all_or_nothing_and_names_each_invalid_event(client, issuer, resource):
    batch = [
        event(resource, "ok-1"),
        event(resource, "bad-a", source=""),
        event(resource, "ok-2"),
        {"specversion": "1.0"},
    ]
    problem = assert_problem(await publish(client, issuer.headers("events.publish"), batch), 400)
    assert {error["index"] for error in problem["errors"]} == {1, 3}
    assert {error["id"] for error in problem["errors"] if error["index"] == 1} == {"bad-a"}
    assert "nothing was stored" in problem["detail"]
    await assert_nothing_stored(client, issuer, resource)


async def test_batch_must_be_a_non_empty_array(client, issuer):
    headers = {**issuer.headers("events.publish"), **BATCH}
    assert_problem(await client.post("/api/v1/events", headers=headers, content=b"{}"), 400)
    assert_problem(await client.post("/api/v1/events", headers=headers, content=b"[]"), 400)


async def test_event_over_64_kib_is_413(client, issuer, resource):
    batch = [event(resource, "fits", data="x" * 1000), event(resource, "huge", data="x" * 70_000)]
    problem = assert_problem(await publish(client, issuer.headers("events.publish"), batch), 413)
    assert problem["errors"] == [{"index": 1, "id": "huge", "size": problem["errors"][0]["size"]}]
    assert problem["errors"][0]["size"] > 65536
    await assert_nothing_stored(client, issuer, resource)


async def test_event_just_under_the_limit_is_accepted(client, issuer, resource):
    document = event(resource, "edge", time="2026-01-01T00:00:00Z")
    overhead = len(json.dumps({**document, "data": ""}, separators=(",", ":")).encode())
    document["data"] = "y" * (64 * 1024 - overhead)
    assert len(json.dumps(document, separators=(",", ":")).encode()) == 64 * 1024
    response = await client.post(
        "/api/v1/events", headers={**issuer.headers("events.publish"), **STRUCTURED}, content=json.dumps(document)
    )
    assert response.status_code == 202, response.text


async def test_request_over_4_mib_is_413(client, issuer, resource):
    body = b"[" + b",".join([json.dumps(event(resource, str(i), data="z" * 50_000)).encode() for i in range(90)]) + b"]"
    assert len(body) > 4 * 1024 * 1024
    assert_problem(
        await client.post("/api/v1/events", headers={**issuer.headers("events.publish"), **BATCH}, content=body), 413
    )
    await assert_nothing_stored(client, issuer, resource)


async def test_binary_mode_json_body_must_be_json(client, issuer, resource):
    headers = {
        **issuer.headers("events.publish"),
        "ce-specversion": "1.0",
        "ce-id": "b",
        "ce-source": "s",
        "ce-type": "t",
        "ce-resource": resource,
        "content-type": "application/json",
    }
    assert_problem(await client.post("/api/v1/events", headers=headers, content=b"{nope"), 400)


async def test_binary_mode_header_injection_is_refused(client, issuer, resource):
    headers = {
        **issuer.headers("events.publish"),
        "ce-specversion": "1.0",
        "ce-id": "b",
        "ce-source": "s",
        "ce-type": "t%0D%0AX-Injected: 1",
        "ce-resource": resource,
    }
    problem = assert_problem(await client.post("/api/v1/events", headers=headers, content=b""), 400)
    assert problem["errors"][0]["attribute"] == "type"
    await assert_nothing_stored(client, issuer, resource)
