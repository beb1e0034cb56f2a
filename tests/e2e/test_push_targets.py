"""devhost as a developer runs it: a webhook behind a gateway (a bearer token as Herald from devhost's
issuer, and a custom header), and an Event Grid topic destination (a local fake of the publish API that
checks devhost's token, validated with the code its validation event carried), each from subscribing to
the pushed event."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from standardwebhooks import Webhook

from devhost.issuer import DEFAULT_ISSUER, issue_token
from shared.subscriptions.signed_event import SIGNATURE_EXTENSIONS, canonical_json
from tests.support.devhost_process import DevhostProcess
from tests.support.eventgrid_topic import EventGridTopicFake
from tests.support.polling import until
from tests.support.receiver import Behaviour, Receiver

pytestmark = pytest.mark.e2e
SCOPES = "events.publish events.read events.subscribe"
AUDIENCE = "api://127.0.0.1/contoso-gateway"  # on the endpoint's own host, as Herald requires


def issuer_key(devhost: DevhostProcess) -> Any:
    """devhost's public signing key, from the JWKS it serves its issuer's keys in."""
    return jwt.PyJWKSet.from_json((devhost.state / "jwks.json").read_text()).keys[0].key


async def subscribe_and_publish(
    devhost: DevhostProcess, target: dict[str, Any], topic: EventGridTopicFake | None = None
) -> tuple[dict[str, Any], str]:
    """Subscribes to a fresh resource, waits until the subscription is active (for a ``topic``
    destination: sends back the code its validation event carried), publishes one event; returns the
    created subscription and the event's id."""
    resource = f"urn:e2e:herald:{uuid.uuid4().hex[:10]}"
    # Tokens as `python -m devhost token` makes them, with devhost's key, without a process each.
    admin = issue_token("system:e2e-admin", ["admin"], state_dir=devhost.state)
    token = issue_token("org:991825827", SCOPES.split(), state_dir=devhost.state)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=devhost.url, headers=headers, timeout=10) as http:
        policy = {"publishers": ["*"], "owners": ["*"]}
        answer = await http.put(
            f"/api/v1/admin/policies/{resource}", json=policy, headers={"Authorization": f"Bearer {admin}"}
        )
        assert answer.status_code == 200, answer.text
        response = await http.post("/api/v1/subscriptions", json={"resourceFilter": resource, **target})
        assert response.status_code == 201, response.text
        created = response.json()
        if topic is not None:

            async def code() -> str | None:
                sent = [e for e in topic.events() if e["type"] == "platform.events.validatesubscription"]
                return str(sent[-1]["data"]["validationCode"]) if sent else None

            path = f"/api/v1/subscriptions/{created['id']}"
            validated = await http.post(f"{path}/validate", json={"validationCode": await until(code)})
            assert validated.status_code == 200, validated.text

        async def active() -> bool:
            return bool((await http.get(f"/api/v1/subscriptions/{created['id']}")).json()["status"] == "active")

        await until(active)
        event_id = f"e2e-{uuid.uuid4().hex[:8]}"
        event = {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:e2e",
            "type": "no.e2e.pushed",
            "resource": resource,
        }
        published = await http.post(
            "/api/v1/events", content=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"}
        )
        assert published.status_code == 202, published.text
    return created, event_id


async def test_a_webhook_behind_a_gateway_gets_herald_s_token_a_custom_header_and_the_signature(devhost):
    receiver = Receiver()
    await receiver.start()
    try:
        url = receiver.behave("gated", Behaviour(status=200))
        key = f"hk_{uuid.uuid4().hex}"
        created, event_id = await subscribe_and_publish(
            devhost, {"endPoint": url, "authentication": {"type": "entraToken", "audience": AUDIENCE}}
        )
        # A second subscription of the same endpoint passes a custom header instead.
        keyed, keyed_id = await subscribe_and_publish(
            devhost, {"endPoint": url, "authentication": {"type": "headers", "headers": {"X-Api-Key": key}}}
        )

        async def pushed() -> list[Any]:
            return [p for p in receiver.posts("gated") if json.loads(p.body)["id"] in (event_id, keyed_id)]

        posts = await until(lambda: _both(pushed))
    finally:
        await receiver.stop()
    by_id = {json.loads(p.body)["id"]: p for p in posts}
    bearer = by_id[event_id].headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(bearer, issuer_key(devhost), algorithms=["RS256"], audience=AUDIENCE, issuer=DEFAULT_ISSUER)
    assert claims["sub"] == "system:herald"
    Webhook(created["secret"]).verify(by_id[event_id].body, by_id[event_id].headers)
    assert by_id[keyed_id].headers["x-api-key"] == key and "authorization" not in by_id[keyed_id].headers
    Webhook(keyed["secret"]).verify(by_id[keyed_id].body, by_id[keyed_id].headers)
    assert keyed["authentication"] == {"type": "headers", "headerNames": ["X-Api-Key"], "valuesHidden": True}
    logged = (devhost.state / "devhost.log").read_text()
    assert key not in logged and bearer not in logged


async def _both(pushed: Callable[[], Awaitable[list[Any]]]) -> list[Any] | None:
    found = await pushed()
    return found if len(found) == 2 else None


async def test_an_event_grid_topic_destination_gets_the_event_published_with_devhost_s_token(devhost):
    topic = EventGridTopicFake(key=issuer_key(devhost), issuer=DEFAULT_ISSUER)
    await topic.start()
    try:
        destination = {"type": "eventGridTopic", "topicEndpoint": topic.endpoint}
        created, event_id = await subscribe_and_publish(devhost, {"destination": destination}, topic)

        async def published() -> list[dict[str, Any]]:
            return [e for e in topic.events() if e["id"] == event_id]

        [event] = await until(published)
    finally:
        await topic.stop()
    assert created["destination"] == destination and created["endPoint"] is None
    assert event["type"] == "no.e2e.pushed" and event["source"] == "urn:e2e" and event["time"]
    # Signed over the event's canonical form without the three extensions that carry the signature.
    signature = {header: event.pop(extension) for header, extension in SIGNATURE_EXTENSIONS.items()}
    Webhook(created["secret"]).verify(canonical_json(event), signature)
    assert topic.refused == [] and all(p.claims["sub"] == "system:herald" for p in topic.published)
    tokens = [p.headers["Authorization"].removeprefix("Bearer ") for p in topic.published]
    logged = (devhost.state / "devhost.log").read_text()
    assert tokens and not any(token in logged for token in tokens)
