"""Publishing with real clients (the CloudEvents JavaScript and Python SDKs, raw HTTP) to Herald under
devhost, which hands the app request headers and bodies as the Functions host does."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import azure.functions as func
import httpx
import pytest
from cloudevents.core.bindings.http import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from devhost import DevHost, DevHostOptions
from shared.api.app import create_api
from shared.services import Services
from tests.conftest import REPO
from tests.support.events import STRUCTURED, binary_headers, event
from tests.support.tokens import TestIssuer

SOURCE = "urn:herald:test:publisher"
TYPE = "no.example.case.updated"

# The JavaScript SDK's own emitter and HTTP transport (Node's http module), as a publisher uses them.
JS_EMIT = """
const { CloudEvent, emitterFor, httpTransport, Mode } = require("cloudevents");
const [url, token, attributes] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
const emit = emitterFor(httpTransport(url), { mode: Mode.BINARY });
emit(new CloudEvent(attributes), { headers: { authorization: `Bearer ${token}` } })
  .then((response) => console.log(response.body), (error) => { console.error(error); process.exit(1); });
"""
# The JavaScript SDK reading an event as Herald pushes and returns it (structured mode).
JS_READ = """
const { HTTP } = require("cloudevents");
const event = HTTP.toEvent({ headers: { "content-type": "application/cloudevents+json" }, body: process.argv[1] });
console.log(JSON.stringify(event.data));
"""


async def node(script: str, *args: str) -> str:
    """Runs a Node script beside the event loop that serves devhost."""
    process = await asyncio.create_subprocess_exec(
        "node", "-e", script, *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest.fixture
async def herald(services: Services) -> AsyncIterator[str]:
    """Herald's HTTP API under devhost, in-process, on the tests' services."""

    async def provide() -> Services:
        return services

    app = func.AsgiFunctionApp(app=create_api(provide), http_auth_level=func.AuthLevel.ANONYMOUS)
    options = DevHostOptions(
        port=0,
        storage_connection_string=services.settings.storage_connection_string,
        route_prefix="",
        provision_app=False,
    )
    async with DevHost(app, options) as host:
        yield host.url


async def stored_events(url: str, issuer: TestIssuer, resource: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get(
            "/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read")
        )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


async def js_publish(url: str, issuer: TestIssuer, **attributes: Any) -> dict[str, Any]:
    token = issuer.token(scopes=("events.publish",))
    answer: dict[str, Any] = json.loads(await node(JS_EMIT, f"{url}/api/v1/events", token, json.dumps(attributes)))
    return answer


async def test_text_data_from_the_javascript_sdk_comes_back_as_its_string(herald, issuer, resource):
    xml = "<case id='42'><title>Blåbær sak</title></case>"
    answer = await js_publish(
        herald, issuer, id="js-xml", source=SOURCE, type=TYPE, resource=resource, datacontenttype="text/xml", data=xml
    )
    assert answer == {"accepted": ["js-xml"], "stored": 1, "duplicates": 0}

    [stored] = await stored_events(herald, issuer, resource)
    assert stored["data"] == xml
    assert json.loads(await node(JS_READ, json.dumps(stored))) == xml
    assert JSONFormat().read(None, json.dumps(stored)).get_data() == xml


async def test_a_raw_latin1_header_from_the_javascript_sdk_is_refused_as_the_functions_host_does(
    herald, issuer, resource
):
    """Node writes header values as Latin-1 bytes; the host's Kestrel, decoding UTF-8 strictly, answers 400."""
    answer = await js_publish(
        herald,
        issuer,
        id="js-subject",
        source=SOURCE,
        type=TYPE,
        resource=resource,
        subject="Blåbær sak",
        data={"a": 1},
    )
    assert answer["status"] == 400 and "ce-subject" in answer["detail"], answer
    assert await stored_events(herald, issuer, resource) == []


@pytest.mark.parametrize(
    "subject",
    [
        "Blåbær sak".encode(),  # raw UTF-8 bytes: outside the binding, but the host passes them on
        b"Bl%C3%A5b%C3%A6r%20sak",  # percent-encoded, as the HTTP binding says
        b'"Bl%C3%A5b%C3%A6r sak"',  # an older binding's quoted-string
    ],
)
async def test_a_non_ascii_attribute_reaches_herald_as_sent(herald, issuer, resource, subject):
    headers = [*issuer.headers("events.publish").items(), *binary_headers(resource, ce_subject=subject)]
    async with httpx.AsyncClient(base_url=herald) as http:
        response = await http.post("/api/v1/events", headers=headers)
    assert response.status_code == 202, response.text
    [stored] = await stored_events(herald, issuer, resource)
    assert stored["subject"] == "Blåbær sak"


async def test_the_python_sdk_binary_mode_round_trips(herald, issuer, resource):
    sent = CloudEvent(
        attributes={
            "id": "py-1",
            "source": SOURCE,
            "type": TYPE,
            "resource": resource,
            "subject": 'Blåbær "sak" 100%',
            "datacontenttype": "text/plain; charset=utf-8",
        },
        data="Blåbær sak",
    )
    message = to_binary(sent, JSONFormat())
    async with httpx.AsyncClient(base_url=herald) as http:
        response = await http.post(
            "/api/v1/events", headers={**issuer.headers("events.publish"), **message.headers}, content=message.body
        )
    assert response.status_code == 202, response.text
    [stored] = await stored_events(herald, issuer, resource)
    read = JSONFormat().read(None, json.dumps(stored))
    assert read.get_subject() == 'Blåbær "sak" 100%'
    assert read.get_data() == "Blåbær sak"


async def test_a_gzip_body_passes_the_host_and_is_decoded(herald, issuer, resource):
    body = gzip.compress(json.dumps(event(resource, "gz-1", data={"title": "Blåbær sak"})).encode())
    headers = {**issuer.headers("events.publish"), **STRUCTURED, "content-encoding": "gzip"}
    async with httpx.AsyncClient(base_url=herald) as http:
        response = await http.post("/api/v1/events", headers=headers, content=body)
    assert response.status_code == 202, response.text
    [stored] = await stored_events(herald, issuer, resource)
    assert stored["data"] == {"title": "Blåbær sak"}
