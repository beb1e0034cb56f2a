"""Webhooks behind a gateway: a bearer token as Herald's own identity (Entra ID in Azure; here, as
locally, the issuer devhost would be), or fixed custom headers whose values are secrets. Signatures go
in every case; header values never come back from the API, are sealed in the table, and never logged."""

from __future__ import annotations

import json
import logging
import uuid

import jwt
import pytest
from azure.data.tables.aio import TableServiceClient
from standardwebhooks import Webhook

from shared.adapters.table_subscription_store import INDEX_TABLE
from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.messages import OUTBOUND_QUEUE
from shared.subscriptions.targets import (
    AuthenticationKind,
    EndpointAuthentication,
    HeraldOwn,
    TargetProblem,
    check_audience_for,
)
from tests.subscriptions.conftest import active_subscription, events_received
from tests.support.events import event, publish
from tests.support.identities import random_org
from tests.support.pipeline import drain
from tests.support.receiver import Behaviour
from tests.support.tokens import ISSUER

PIPELINE = (INBOUND_QUEUE, OUTBOUND_QUEUE)
# The audience names the endpoint's own host (the receivers listen on 127.0.0.1).
AUDIENCE = "api://127.0.0.1/case-gateway"
HANDSHAKE = {"webhook-allowed-origin": "*", "webhook-allowed-rate": "*"}


async def test_a_bearer_token_as_herald_for_the_audience_and_the_signature_reach_the_endpoint(
    client, issuer, receiver, resource, stores
):
    url = receiver.behave("gated", Behaviour(status=200, options_headers=HANDSHAKE))
    created = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": url,
            "resourceFilter": resource,
            "authentication": {"type": "entraToken", "audience": AUDIENCE},
        },
    )
    assert created["authentication"] == {"type": "entraToken", "audience": AUDIENCE}
    await publish(client, issuer.headers("events.publish"), [event(resource, "gated-1", data={"n": 1})])
    await drain(stores, PIPELINE)

    assert [e["id"] for e in events_received(receiver, "gated")] == ["gated-1"]
    requests = receiver.received["/gated"]  # the handshake, the validation event and the event
    assert [r.method for r in requests] == ["OPTIONS", "POST", "POST"]
    for request in requests:
        scheme, _, token = request.headers["authorization"].partition(" ")
        assert scheme == "Bearer"
        # Signed by the issuer, for the audience the consumer named, as Herald.
        claims = jwt.decode(token, issuer.key.public_key(), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
        assert claims["sub"] == "system:herald"
        with pytest.raises(jwt.InvalidAudienceError):
            jwt.decode(token, issuer.key.public_key(), algorithms=["RS256"], audience="api://someone-else")
    for post in receiver.posts("gated"):
        Webhook(created["secret"]).verify(post.body, post.headers)  # signatures stay on


async def test_custom_headers_arrive_and_their_values_are_never_shown_stored_in_the_clear_or_logged(
    client, issuer, receiver, resource, stores, settings, caplog
):
    caplog.set_level(logging.DEBUG)
    # '"' and '\\' are allowed in a value, and an echo in JSON escapes them: that form is a secret too.
    key, tenant = f"hk_{uuid.uuid4().hex}", f'tenant-"{uuid.uuid4().hex}"\\x'
    # An endpoint that echoes the request's headers: what it answers lands in the delivery log.
    url = receiver.behave("keyed", Behaviour(status=200, options_headers=HANDSHAKE, echo=True))
    headers = issuer.headers("events.subscribe")
    created = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": url,
            "resourceFilter": resource,
            "authentication": {"type": "headers", "headers": {"X-Api-Key": key, "X-Tenant": tenant}},
        },
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, "keyed-1")])
    await drain(stores, PIPELINE)

    requests = receiver.received["/keyed"]
    assert [r.method for r in requests] == ["OPTIONS", "POST", "POST"]
    assert all(r.headers["x-api-key"] == key and r.headers["x-tenant"] == tenant for r in requests)
    for post in receiver.posts("keyed"):
        Webhook(created["secret"]).verify(post.body, post.headers)

    subscription = f"/api/v1/subscriptions/{created['id']}"
    answers = [
        json.dumps(created),
        (await client.get(subscription, headers=headers)).text,
        (await client.get("/api/v1/subscriptions", headers=headers)).text,
        deliveries := (await client.get(f"{subscription}/deliveries", headers=headers)).text,
        (await client.get(f"{subscription}/deadletters", headers=headers)).text,
    ]
    assert created["authentication"] == {
        "type": "headers",
        "headerNames": ["X-Api-Key", "X-Tenant"],
        "valuesHidden": True,
    }
    assert "[redacted]" in deliveries  # the echoed values, taken out of the responses the log keeps
    excerpts = " ".join(d.get("responseExcerpt") or "" for d in json.loads(deliveries)["deliveries"])
    assert excerpts.count("[redacted]") == 2  # both values, in the answer to the event the log keeps
    async with TableServiceClient.from_connection_string(settings.storage_connection_string) as tables:
        [row] = [
            dict(e)
            async for e in tables.get_table_client(INDEX_TABLE).query_entities(
                "RowKey eq @id", parameters={"id": created["id"]}
            )
        ]
    assert row["authHeaders"].startswith("v2.local.")  # sealed, bound to the subscription
    for value in (key, tenant):
        assert not any(value in answer for answer in answers)
        assert value not in excerpts and json.dumps(value)[1:-1] not in excerpts
        assert value not in json.dumps(row, default=str)
        assert value not in caplog.text


@pytest.mark.parametrize(
    ("authentication", "fragment"),
    [
        ({"type": "headers", "headers": {f"X-H{i}": f"value-{i}-secret" for i in range(6)}}, "headers"),
        ({"type": "headers", "headers": {}}, "headers"),
        ({"type": "headers", "headers": {"Content-Type": "text/plain"}}, "Herald sets itself"),
        ({"type": "headers", "headers": {"webhook-id": "msg_1"}}, "Herald sets itself"),
        ({"type": "headers", "headers": {"Host": "elsewhere.example"}}, "Herald sets itself"),
        ({"type": "headers", "headers": {"X Api Key": "v"}}, "token characters"),
        ({"type": "headers", "headers": {"X-A": "one", "x-a": "two"}}, "named twice"),
        ({"type": "headers", "headers": {"X-Api-Key": "sec\r\nX-Injected: yes"}}, "visible ASCII"),
        ({"type": "headers", "headers": {"X-Api-Key": 42}}, "string"),
        ({"type": "entraToken", "audience": "https://management.azure.com"}, "Microsoft or Azure service"),
        ({"type": "entraToken", "audience": "https://storage.azure.com/"}, "Microsoft or Azure service"),
        ({"type": "entraToken", "audience": "https://graph.microsoft.com"}, "Microsoft or Azure service"),
        ({"type": "entraToken", "audience": "00000003-0000-0000-c000-000000000000"}, "bare client id"),
        ({"type": "entraToken", "audience": "api://contoso/.default"}, "without /.default"),
        ({"type": "entraToken", "audience": "contoso"}, "application ID URI"),
        ({"type": "entraToken", "audience": "api://contoso", "scope": "x"}, "Extra inputs"),
        ({"type": "basic", "username": "u"}, "type"),
        # Only for the endPoint's own host: never another API where Herald's identity may hold a role, nor
        # an api://<guid> that names no host, nor Herald's own API.
        ({"type": "entraToken", "audience": "api://contoso-case-gateway"}, "endPoint's host"),
        ({"type": "entraToken", "audience": "api://5f1c8a52-3b0e-4a59-9b61-2f0d8c1e7a44"}, "endPoint's host"),
        ({"type": "entraToken", "audience": "https://127.0.0.1.contoso.no"}, "endPoint's host"),
        ({"type": "entraToken", "audience": "api://127.0.0.2"}, "endPoint's host"),
        ({"type": "entraToken", "audience": "api://herald"}, "Herald's own API"),
        ({"type": "entraToken", "audience": "API://Herald/"}, "Herald's own API"),
    ],
)
async def test_bad_authentication_is_a_400_problem_that_stores_nothing_and_quotes_no_value(
    client, issuer, receiver, authentication, fragment
):
    consumer = random_org()
    payload = {"endPoint": receiver.url("never"), "resourceFilter": "urn:test:y", "authentication": authentication}
    headers = issuer.headers("events.subscribe", sub=consumer)
    response = await client.post("/api/v1/subscriptions", json=payload, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.text
    for value in authentication.get("headers", {}).values():
        assert len(str(value)) < 6 or str(value) not in response.text
    assert (await client.get("/api/v1/subscriptions", headers=headers)).json()["count"] == 0
    assert receiver.received["/never"] == []


async def test_patch_sets_replaces_and_removes_authentication_keeping_values_hidden(
    client, issuer, receiver, resource, stores
):
    url = receiver.behave("patched", Behaviour(status=200))
    created = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    path, headers = f"/api/v1/subscriptions/{created['id']}", issuer.headers("events.subscribe")
    key = f"hk_{uuid.uuid4().hex}"

    patched = await client.patch(
        path, json={"authentication": {"type": "headers", "headers": {"X-Api-Key": key}}}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["authentication"] == {"type": "headers", "headerNames": ["X-Api-Key"], "valuesHidden": True}
    assert patched.json()["status"] == "active" and key not in patched.text
    await publish(client, issuer.headers("events.publish"), [event(resource, "patched-1")])
    await drain(stores, PIPELINE)
    [post] = [p for p in receiver.posts("patched") if json.loads(p.body)["id"] == "patched-1"]
    assert post.headers["x-api-key"] == key

    refused = await client.patch(
        path, json={"authentication": {"type": "entraToken", "audience": "https://vault.azure.net"}}, headers=headers
    )
    assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
    assert (await client.get(path, headers=headers)).json()["authentication"]["type"] == "headers"  # nothing changed

    replaced = await client.patch(
        path, json={"authentication": {"type": "entraToken", "audience": AUDIENCE}}, headers=headers
    )
    assert replaced.json()["authentication"] == {"type": "entraToken", "audience": AUDIENCE}
    removed = await client.patch(path, json={"authentication": None}, headers=headers)
    assert removed.status_code == 200 and "authentication" not in removed.json()


@pytest.mark.parametrize(
    ("audience", "endpoint"),
    [
        ("api://hooks.contoso.no", "https://hooks.contoso.no/herald"),
        ("https://hooks.contoso.no", "https://hooks.contoso.no/herald"),
        ("api://Hooks.Contoso.NO/case-api", "https://hooks.contoso.no:8443/herald"),
        ("https://HOOKS.contoso.no/apis/cases", "https://hooks.CONTOSO.no/herald"),
    ],
)
def test_an_audience_on_the_endpoint_s_own_host_is_accepted(audience, endpoint):
    assert check_audience_for(audience, endpoint) == audience


@pytest.mark.parametrize(
    ("audience", "endpoint"),
    [
        ("api://contoso.no", "https://hooks.contoso.no/herald"),  # a parent domain is another host
        ("api://hooks.contoso.no.evil.example", "https://hooks.contoso.no/herald"),
        ("api://5f1c8a52-3b0e-4a59-9b61-2f0d8c1e7a44", "https://hooks.contoso.no/herald"),
        ("api://hooks.contoso.no", "https://other.contoso.no/herald"),
    ],
)
def test_an_audience_of_another_host_is_refused(audience, endpoint):
    with pytest.raises(TargetProblem, match="endPoint's host"):
        check_audience_for(audience, endpoint)


async def test_patch_refuses_an_endpoint_the_audience_does_not_name(client, issuer, receiver, resource, stores):
    url = receiver.behave("bound", Behaviour(status=200))
    created = await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": url, "resourceFilter": resource, "authentication": {"type": "entraToken", "audience": AUDIENCE}},
    )
    path, headers = f"/api/v1/subscriptions/{created['id']}", issuer.headers("events.subscribe")
    moved = await client.patch(path, json={"endPoint": url.replace("127.0.0.1", "localhost")}, headers=headers)
    assert moved.status_code == 400 and "endPoint's host" in moved.text
    assert (await client.get(path, headers=headers)).json()["endPoint"] == url


def test_no_audience_on_the_host_of_herald_s_own_is_issued_whatever_its_path():
    """An endpoint on Herald's own API host could otherwise ask for ``https://<that host>/anything``."""
    own = HeraldOwn.of(audiences=["https://herald.contoso.no"])
    endpoint = "https://herald.contoso.no/hooks"
    for audience in ("https://herald.contoso.no", "https://HERALD.contoso.no/other", "api://herald.contoso.no/x"):
        with pytest.raises(TargetProblem, match="Herald's own API"):
            own.check(endpoint, None, EndpointAuthentication(AuthenticationKind.ENTRA_TOKEN, audience=audience))
    HeraldOwn.of(audiences=["https://herald.contoso.no"]).check(
        "https://hooks.contoso.no/h",
        None,
        EndpointAuthentication(AuthenticationKind.ENTRA_TOKEN, audience="https://hooks.contoso.no"),
    )
