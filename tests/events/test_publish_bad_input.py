"""Bad input to POST /api/v1/events: a clear 4xx problem, and nothing stored."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib

import pytest

from tests.support.events import BATCH, STRUCTURED, binary_headers, event, publish


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


def publisher_binary_headers(issuer, resource, **headers: str | bytes) -> list[tuple[str, str | bytes]]:
    return [*issuer.headers("events.publish").items(), *binary_headers(resource, **headers)]


async def test_binary_mode_json_body_must_be_json(client, issuer, resource):
    headers = publisher_binary_headers(issuer, resource, content_type="application/json")
    assert_problem(await client.post("/api/v1/events", headers=headers, content=b"{nope"), 400)


async def test_binary_mode_header_injection_is_refused(client, issuer, resource):
    headers = publisher_binary_headers(issuer, resource, ce_type="t%0D%0AX-Injected: 1")
    problem = assert_problem(await client.post("/api/v1/events", headers=headers, content=b""), 400)
    assert problem["errors"][0]["attribute"] == "type"
    await assert_nothing_stored(client, issuer, resource)


@pytest.mark.parametrize(
    ("subject", "detail"),
    [
        ("%C0%A0", "not UTF-8"),  # an overlong encoding of a space: the HTTP binding says reject
        ("Bl%E5b%E6r", "not UTF-8"),  # Latin-1 bytes, percent-encoded
        ("Bl\xe5b\xe6r".encode("latin-1"), "not UTF-8"),  # Latin-1 bytes, raw
        ('"unclosed', "closing quote"),
    ],
)
async def test_binary_mode_header_that_does_not_decode_is_named(client, issuer, resource, subject, detail):
    response = await client.post(
        "/api/v1/events", headers=publisher_binary_headers(issuer, resource, ce_subject=subject)
    )
    problem = assert_problem(response, 400)
    assert "ce-subject" in problem["detail"] and detail in problem["detail"]
    assert problem["errors"] == [
        {"index": 0, "attribute": "subject", "header": "ce-subject", "detail": problem["errors"][0]["detail"]}
    ]
    await assert_nothing_stored(client, issuer, resource)


async def test_binary_mode_attribute_given_twice_is_refused(client, issuer, resource):
    headers = [*publisher_binary_headers(issuer, resource), ("ce-id", "second")]
    assert "ce-id" in assert_problem(await client.post("/api/v1/events", headers=headers), 400)["detail"]
    await assert_nothing_stored(client, issuer, resource)


async def test_binary_mode_text_that_is_not_utf8_is_refused(client, issuer, resource):
    headers = [*publisher_binary_headers(issuer, resource), ("content-type", "text/plain")]
    response = await client.post("/api/v1/events", headers=headers, content="Blåbær".encode("latin-1"))
    assert "UTF-8" in assert_problem(response, 400)["detail"]
    await assert_nothing_stored(client, issuer, resource)


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
async def test_unsupported_content_encoding_is_415_with_the_supported_ones(client, issuer, resource, coding):
    body = json.dumps(event(resource, "coded")).encode()
    headers = {**issuer.headers("events.publish"), **STRUCTURED, "content-encoding": coding}
    response = await client.post("/api/v1/events", headers=headers, content=body)
    assert coding in assert_problem(response, 415)["detail"]
    assert response.headers["accept-encoding"] == "gzip, deflate"
    await assert_nothing_stored(client, issuer, resource)


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", lambda plain: plain),  # labelled gzip, sent plain
        ("gzip", lambda plain: gzip.compress(plain)[:-12]),  # cut short
        ("gzip", lambda plain: gzip.compress(plain) + b"trailing"),
        ("deflate", lambda plain: zlib.compress(plain)[2:]),  # a bare RFC 1951 stream is not HTTP's deflate
        ("deflate", lambda plain: gzip.compress(plain)),
    ],
)
async def test_body_that_does_not_decompress_is_400(client, issuer, resource, coding, body):
    plain = json.dumps(event(resource, "coded")).encode()
    headers = {**issuer.headers("events.publish"), **STRUCTURED, "content-encoding": coding}
    response = await client.post("/api/v1/events", headers=headers, content=body(plain))
    assert coding in assert_problem(response, 400)["detail"]
    await assert_nothing_stored(client, issuer, resource)


def gzip_of_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    return b"".join(compressor.compress(block) for _ in range(size // len(block))) + compressor.flush()


async def test_decompression_stops_at_the_request_limit(client, issuer, resource):
    """256 MiB of zeros in 256 KiB of gzip: refused as too large without ever being inflated past 4 MiB."""
    bomb = gzip_of_zeros(256 * 1024 * 1024)
    assert len(bomb) < 300 * 1024
    headers = {**issuer.headers("events.publish"), **STRUCTURED, "content-encoding": "gzip"}
    tracemalloc.start()
    try:
        response = await client.post("/api/v1/events", headers=headers, content=bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "4 MiB" in assert_problem(response, 413)["detail"]
    assert peak < 16 * 1024 * 1024, peak
    await assert_nothing_stored(client, issuer, resource)
