"""/api/v1/subscriptions: create, identical create, validation, list, get, delete, enable, rotate."""

from __future__ import annotations

import pytest

from shared.subscriptions.messages import VALIDATION_QUEUE
from tests.support.identities import random_org
from tests.support.pipeline import drain
from tests.support.receiver import Behaviour

SUBSCRIBE = ("events.subscribe",)


def body(resource: str, endpoint: str, **filters):
    return {"endPoint": endpoint, "resourceFilter": resource, **filters}


async def create(client, issuer, payload, sub="org:991825827"):
    return await client.post("/api/v1/subscriptions", json=payload, headers=issuer.headers(*SUBSCRIBE, sub=sub))


async def test_create_returns_pending_subscription_with_secret_once(client, issuer, receiver, resource, services):
    response = await create(client, issuer, body(resource, receiver.url("hook"), typeFilter="no.case.*"))
    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "pending"
    assert created["secret"].startswith("whsec_")
    assert created["consumer"] == "org:991825827"
    assert response.headers["location"] == f"/api/v1/subscriptions/{created['id']}"

    fetched = await client.get(f"/api/v1/subscriptions/{created['id']}", headers=issuer.headers(*SUBSCRIBE))
    assert fetched.status_code == 200
    assert "secret" not in fetched.json()

    again = await create(client, issuer, body(resource, receiver.url("hook"), typeFilter="no.case.*"))
    assert again.status_code == 200
    assert again.json()["id"] == created["id"]
    assert "secret" not in again.json()


async def test_validation_event_activates_the_subscription(client, issuer, receiver, resource, services, stores):
    created = (await create(client, issuer, body(resource, receiver.url("valid")))).json()
    await drain(stores, (VALIDATION_QUEUE,))
    [validation] = receiver.posts("valid")
    assert validation.headers["content-type"].startswith("application/cloudevents+json")
    import json

    event = json.loads(validation.body)
    assert event["type"] == "platform.events.validatesubscription"
    assert event["source"].endswith(f"/api/v1/subscriptions/{created['id']}")
    from standardwebhooks import Webhook

    Webhook(created["secret"]).verify(validation.body.decode(), validation.headers)
    status = (await client.get(f"/api/v1/subscriptions/{created['id']}", headers=issuer.headers(*SUBSCRIBE))).json()[
        "status"
    ]
    assert status == "active"


async def test_abuse_protection_handshake_grants_a_rate(client, issuer, receiver, resource, services, stores):
    url = receiver.behave(
        "rated", Behaviour(options_headers={"WebHook-Allowed-Origin": "*", "WebHook-Allowed-Rate": "30"})
    )
    created = (await create(client, issuer, body(resource, url))).json()
    await drain(stores, (VALIDATION_QUEUE,))
    [options] = [r for r in receiver.received["/rated"] if r.method == "OPTIONS"]
    assert options.headers["webhook-request-origin"] == "127.0.0.1"
    fetched = (await client.get(f"/api/v1/subscriptions/{created['id']}", headers=issuer.headers(*SUBSCRIBE))).json()
    assert fetched["status"] == "active"
    assert fetched["allowedRatePerMinute"] == 30


async def test_failed_validation_is_retried_later(client, issuer, receiver, resource, services, stores):
    url = receiver.behave("down", Behaviour(status=503))
    created = (await create(client, issuer, body(resource, url))).json()
    await drain(stores, (VALIDATION_QUEUE,))
    assert len(receiver.posts("down")) == 1
    fetched = (await client.get(f"/api/v1/subscriptions/{created['id']}", headers=issuer.headers(*SUBSCRIBE))).json()
    assert fetched["status"] == "pending"  # the next attempt is a delayed message (10 s)


async def test_list_get_delete_are_scoped_to_the_consumer(client, issuer, receiver, resource, services):
    mine = [
        (await create(client, issuer, body(resource, receiver.url(f"l{i}")), sub="org:310000000")).json()
        for i in range(3)
    ]
    other = (await create(client, issuer, body(resource, receiver.url("other")), sub="org:974761076")).json()

    listed = await client.get(
        "/api/v1/subscriptions", params={"size": 2}, headers=issuer.headers(*SUBSCRIBE, sub="org:310000000")
    )
    assert listed.json()["count"] == 2
    follow = listed.headers["link"][1 : listed.headers["link"].index(">")]
    rest = await client.get(follow, headers=issuer.headers(*SUBSCRIBE, sub="org:310000000"))
    ids = [s["id"] for s in listed.json()["subscriptions"] + rest.json()["subscriptions"]]
    assert ids == [s["id"] for s in mine]

    stranger = issuer.headers(*SUBSCRIBE, sub="org:310000000")
    assert (await client.get(f"/api/v1/subscriptions/{other['id']}", headers=stranger)).status_code == 404
    assert (await client.delete(f"/api/v1/subscriptions/{other['id']}", headers=stranger)).status_code == 404

    assert (await client.delete(f"/api/v1/subscriptions/{mine[0]['id']}", headers=stranger)).status_code == 204
    assert (await client.get(f"/api/v1/subscriptions/{mine[0]['id']}", headers=stranger)).status_code == 404
    recreated = await create(client, issuer, body(resource, receiver.url("l0")), sub="org:310000000")
    assert recreated.status_code == 201 and recreated.json()["id"] != mine[0]["id"]


async def test_a_forged_host_does_not_steer_the_subscription_lists_next_link(
    client, issuer, receiver, resource, services
):
    consumer = random_org()
    for i in range(2):
        await create(client, issuer, body(resource, receiver.url(f"h{i}")), sub=consumer)
    headers = issuer.headers(*SUBSCRIBE, sub=consumer)
    listed = await client.get(
        "/api/v1/subscriptions", params={"size": 1}, headers={**headers, "host": "attacker.example"}
    )
    link = listed.headers["link"]
    assert "attacker" not in link
    assert link.startswith(f"<{services.settings.public_base_url.rstrip('/')}/api/v1/subscriptions?"), link


async def test_rotate_secret_returns_a_new_secret(client, issuer, receiver, resource, services):
    created = (await create(client, issuer, body(resource, receiver.url("rot")))).json()
    rotated = await client.post(
        f"/api/v1/subscriptions/{created['id']}/rotate-secret", headers=issuer.headers(*SUBSCRIBE)
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != created["secret"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"resourceFilter": "urn:test:y"}, "endPoint"),
        ({"endPoint": "https://example.org/hook"}, "resourceFilter"),
        ({"endPoint": "not a url", "resourceFilter": "urn:test:y"}, "endPoint"),
        ({"endPoint": "ftp://example.org/", "resourceFilter": "urn:test:y"}, "endPoint"),
        ({"endPoint": "https://user:pw@example.org/", "resourceFilter": "urn:test:y"}, "endPoint"),
        ({"endPoint": "https://example.org/", "resourceFilter": "not-a-urn"}, "resourceFilter"),
        ({"endPoint": "https://example.org/", "resourceFilter": "urn:test:y", "subjectFilter": ""}, "empty"),
        ({"endPoint": "https://example.org/", "resourceFilter": "urn:test:y", "typeFilter": ""}, "empty"),
        ({"endPoint": "https://example.org/", "resourceFilter": "urn:test:y", "typeFilter": "a*b"}, "prefix"),
        (
            {"endPoint": "https://example.org/", "resourceFilter": "urn:test:y", "sourceFilter": "has space*"},
            "never match",
        ),
        (
            {"endPoint": "https://example.org/", "resourceFilter": "urn:test:y", "subjectFilter": "a\u0000b"},
            "never match",
        ),
        (
            {"endPoint": "https://example.org/", "resourceFilter": "urn:test:y", "includeSubunits": True},
            "includeSubunits",
        ),
        ({"endPoint": "http://example.org/", "resourceFilter": "urn:test:y"}, "loopback"),
    ],
)
async def test_bad_requests_are_400_problems_and_store_nothing(client, issuer, payload, fragment, services):
    consumer = random_org()
    response = await client.post(
        "/api/v1/subscriptions", json=payload, headers=issuer.headers(*SUBSCRIBE, sub=consumer)
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.text
    listed = await client.get("/api/v1/subscriptions", headers=issuer.headers(*SUBSCRIBE, sub=consumer))
    assert listed.json()["count"] == 0


async def test_subscribe_scope_is_required(client, issuer, resource):
    response = await client.post(
        "/api/v1/subscriptions", json=body(resource, "https://example.org"), headers=issuer.headers("events.read")
    )
    assert response.status_code == 403
