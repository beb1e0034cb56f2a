"""The authorization matrix: publisher, owner, role holder, delegate and stranger over publish, read,
subscribe and push; and decisions dropped at once when a role changes."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.messages import OUTBOUND_QUEUE, VALIDATION_QUEUE
from tests.support.events import event, publish
from tests.support.pipeline import drain
from tests.support.receiver import Behaviour

PUBLISHER = "org:991825827"
OWNER = "org:974761076"
CLIENT = "org:310000000"  # the party events are about
MANAGER = "person:01017012343"  # holds DAGL for CLIENT
FIRM = "org:999999999"  # accounting firm: CLIENT delegated REGNA to it
STRANGER = "person:01010000110"

POLICY = {
    "publishers": [PUBLISHER],
    "owners": [OWNER],
    "rules": [
        {"roles": ["DAGL"], "actions": ["read", "subscribe"]},
        {"roles": ["REGNA"], "actions": ["read", "subscribe"], "types": ["no.tax.*"]},
        {"roles": ["self"], "actions": ["read"]},
    ],
}


@pytest.fixture
async def governed(client, issuer, services):
    """A resource with a real policy, a role and a delegation, and two events about CLIENT."""
    resource = f"urn:test:governed{uuid.uuid4().hex[:8]}"
    admin = issuer.headers("admin", sub="system:herald-admin")
    assert (await client.put(f"/api/v1/admin/policies/{resource}", json=POLICY, headers=admin)).status_code == 200
    role = {"party": CLIENT, "holder": MANAGER, "role": "DAGL"}
    assert (await client.post("/api/v1/admin/roles", json=role, headers=admin)).status_code == 201
    delegation = {"from": CLIENT, "to": FIRM, "roles": ["REGNA"]}
    assert (await client.post("/api/v1/admin/delegations", json=delegation, headers=admin)).status_code == 201
    events = [
        event(resource, "tax-1", subject=CLIENT, type="no.tax.assessed"),
        event(resource, "hr-1", subject=CLIENT, type="no.hr.hired"),
        event(resource, "other-1", subject="org:974761076", type="no.tax.assessed"),
    ]
    assert (await publish(client, issuer.headers("events.publish", sub=PUBLISHER), events)).status_code == 202
    return resource


async def read_ids(client, issuer, resource, consumer):
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read", sub=consumer)
    )
    assert response.status_code == 200, response.text
    assert response.headers["link"]  # always a next link, even when nothing is visible
    return sorted(e["id"] for e in response.json())


@pytest.mark.parametrize(
    ("consumer", "visible"),
    [
        (OWNER, ["hr-1", "other-1", "tax-1"]),
        (MANAGER, ["hr-1", "tax-1"]),
        (FIRM, ["tax-1"]),  # the delegation covers tax events only
        (STRANGER, []),
        (PUBLISHER, []),  # publishing does not grant reading
    ],
)
async def test_read(client, issuer, governed, consumer, visible):
    assert await read_ids(client, issuer, governed, consumer) == visible


async def test_publish(client, issuer, governed):
    for consumer, status in ((PUBLISHER, 202), (OWNER, 403), (STRANGER, 403)):
        response = await publish(
            client, issuer.headers("events.publish", sub=consumer), [event(governed, f"p-{consumer}", subject=CLIENT)]
        )
        assert response.status_code == status, (consumer, response.text)
    refused = await publish(client, issuer.headers("events.publish", sub=STRANGER), [event(governed, "x")])
    assert refused.json()["resources"] == [governed]
    nobody = await publish(
        client, issuer.headers("events.publish", sub=PUBLISHER), [event("urn:herald:test:no-policy-at-all", "x")]
    )
    assert nobody.status_code == 403


@pytest.mark.parametrize(
    ("consumer", "filters", "status"),
    [
        (OWNER, {}, 201),
        (MANAGER, {"subjectFilter": CLIENT}, 201),
        (MANAGER, {}, 403),  # no subject filter: only owners see every party
        (FIRM, {"subjectFilter": CLIENT, "typeFilter": "no.tax.*"}, 201),
        (FIRM, {"subjectFilter": CLIENT}, 403),  # the delegation is for tax events only
        (FIRM, {"subjectFilter": CLIENT, "typeFilter": "no.hr.hired"}, 403),
        (STRANGER, {"subjectFilter": CLIENT}, 403),
        (STRANGER, {"subjectFilter": STRANGER}, 403),  # 'self' may read, not subscribe, in this policy
    ],
)
async def test_subscribe(client, issuer, governed, receiver, consumer, filters, status):
    body = {"endPoint": receiver.url(f"s{uuid.uuid4().hex[:6]}"), "resourceFilter": governed, **filters}
    response = await client.post(
        "/api/v1/subscriptions", json=body, headers=issuer.headers("events.subscribe", sub=consumer)
    )
    assert response.status_code == status, response.text


async def test_push_is_authorized_again_and_a_refusal_is_logged(client, issuer, governed, receiver, services, stores):
    admin = issuer.headers("admin", sub="system:herald-admin")
    url = receiver.behave("manager-hook", Behaviour(status=200))
    body = {"endPoint": url, "resourceFilter": governed, "subjectFilter": CLIENT}
    created = (
        await client.post("/api/v1/subscriptions", json=body, headers=issuer.headers("events.subscribe", sub=MANAGER))
    ).json()
    await drain(stores, (VALIDATION_QUEUE,))

    await publish(client, issuer.headers("events.publish", sub=PUBLISHER), [event(governed, "push-1", subject=CLIENT)])
    await drain(stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
    # The role is revoked: the next push is refused at once, not after a cache expires.
    revoked = await client.delete(
        "/api/v1/admin/roles", params={"party": CLIENT, "holder": MANAGER, "role": "DAGL"}, headers=admin
    )
    assert revoked.status_code == 204
    await publish(client, issuer.headers("events.publish", sub=PUBLISHER), [event(governed, "push-2", subject=CLIENT)])
    await drain(stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))

    pushed = [json.loads(p.body)["id"] for p in receiver.posts("manager-hook")]
    assert "push-1" in pushed and "push-2" not in pushed
    log = await client.get(
        f"/api/v1/subscriptions/{created['id']}/deliveries", headers=issuer.headers("events.subscribe", sub=MANAGER)
    )
    outcomes = {d["eventId"]: d["outcome"] for d in log.json()["deliveries"]}
    assert outcomes["push-2"] == "unauthorized" and outcomes["push-1"] == "delivered"
    assert await read_ids(client, issuer, governed, MANAGER) == []


async def test_reading_never_stalls_on_pages_of_refused_events(client, issuer, governed):
    """A stranger's pages are empty, but every next link advances; the anchor returned [] with no next."""
    headers = issuer.headers("events.read", sub=STRANGER)
    url = f"/api/v1/events?resource={governed}&size=1"
    seen_links = set()
    for _ in range(3):
        response = await client.get(url, headers=headers)
        assert response.json() == []
        url = response.headers["link"][1 : response.headers["link"].index(">")]
        seen_links.add(url)
    assert len(seen_links) == 1  # at the head: the link no longer moves, and polling it is correct


async def test_admin_routes_need_the_admin_scope_and_valid_identities(client, issuer, governed):
    not_admin = issuer.headers("events.read", "events.publish", "events.subscribe", sub=OWNER)
    assert (await client.get(f"/api/v1/admin/policies/{governed}", headers=not_admin)).status_code == 403
    admin = issuer.headers("admin", sub="system:herald-admin")
    fetched = await client.get(f"/api/v1/admin/policies/{governed}", headers=admin)
    assert fetched.json()["owners"] == [OWNER]
    bad_role = await client.post(
        "/api/v1/admin/roles", json={"party": "org:123", "holder": MANAGER, "role": "DAGL"}, headers=admin
    )
    assert bad_role.status_code == 400 and "organisation number" in bad_role.text
    bad_policy = await client.put(f"/api/v1/admin/policies/{governed}", json={"publishers": ["nobody"]}, headers=admin)
    assert bad_policy.status_code == 400
    unknown_field = await client.put(f"/api/v1/admin/policies/{governed}", json={"readers": []}, headers=admin)
    assert unknown_field.status_code == 400
    roles = await client.get("/api/v1/admin/roles", params={"holder": FIRM}, headers=admin)
    assert roles.json()["grants"] == [{"party": CLIENT, "role": "REGNA", "delegated": True}]
    assert (await client.get("/api/v1/admin/policies/urn:herald:test:none", headers=admin)).status_code == 404


async def test_an_administrator_deletes_a_policy_and_publishing_is_refused_at_once(client, issuer, governed):
    admin = issuer.headers("admin", sub="system:herald-admin")
    deleted = await client.delete(f"/api/v1/admin/policies/{governed}", headers=admin)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/admin/policies/{governed}", headers=admin)).status_code == 404
    again = await client.delete(f"/api/v1/admin/policies/{governed}", headers=admin)
    assert again.status_code == 404 and again.headers["content-type"] == "application/problem+json"
    refused = await client.post(
        "/api/v1/events",
        json=[{"specversion": "1.0", "id": "after-delete", "source": "urn:s", "type": "t", "resource": governed}],
        headers={**issuer.headers("events.publish", sub=OWNER), "content-type": "application/cloudevents-batch+json"},
    )
    assert refused.status_code == 403


# ---------------------------------------------------------------------------------- ingest


@pytest.mark.parametrize(
    ("topic_identity", "stored"),
    [(PUBLISHER, True), (OWNER, False), (STRANGER, False), (None, False)],  # None: HERALD_EVENTGRID_PUBLISHER unset
)
async def test_ingest_publishes_as_the_topic_identity(
    client, issuer, governed, services, stores, topic_identity, stored
):
    """Events from the Event Grid topic pass the same publish check as POST /api/v1/events, as the
    identity the topic maps to."""
    from shared.api.events_publish import STRUCTURED
    from shared.events.ingest import EVENTGRID_QUEUE
    from shared.messaging import OutgoingMessage
    from tests.events.test_eventgrid_ingest import topic_publishes_as

    topic_publishes_as(services, topic_identity)
    routed = event(governed, f"grid-{uuid.uuid4().hex[:8]}", subject=CLIENT, type="no.tax.assessed")
    message = OutgoingMessage(body=json.dumps(routed).encode(), message_id=routed["id"], content_type=STRUCTURED)
    await stores.bus.send(EVENTGRID_QUEUE, [message])
    assert await drain(stores, (EVENTGRID_QUEUE,)) == 1  # refused or not, the message completes
    assert (routed["id"] in await read_ids(client, issuer, governed, OWNER)) is stored


@pytest.mark.parametrize(
    "herald_resource", ["urn:herald:subscriptions", "urn:herald:notifications", f"urn:herald:notifications:{PUBLISHER}"]
)
async def test_herald_resources_refuse_every_outside_publisher(client, issuer, herald_resource):
    """Herald's own namespace is Herald's to write, even when a policy lists the publisher."""
    admin = issuer.headers("admin", sub="system:herald-admin")
    policy = {"publishers": [PUBLISHER, "*"], "owners": [OWNER]}
    assert (
        await client.put(f"/api/v1/admin/policies/{herald_resource}", json=policy, headers=admin)
    ).status_code == 200
    try:
        forged = event(herald_resource, f"forged-{uuid.uuid4().hex[:8]}", type="herald.subscription.disabled")
        response = await publish(client, issuer.headers("events.publish", sub=PUBLISHER), [forged])
        assert response.status_code == 403, response.text
        assert response.json()["resources"] == [herald_resource]
    finally:
        closed = {"publishers": [], "owners": []}
        await client.put(f"/api/v1/admin/policies/{herald_resource}", json=closed, headers=admin)


# ------------------------------------------------------------------------ condition endpoints

INTERNAL = [
    "http://10.0.0.1/condition",
    "https://169.254.169.254/metadata/instance",
    "https://[64:ff9b::a9fe:a9fe]/condition",  # NAT64 form of 169.254.169.254
    "http://example.org/condition",  # plain http to a name outside
]


@pytest.mark.parametrize("orderer", [PUBLISHER, OWNER, STRANGER])
async def test_condition_endpoints_follow_the_webhook_endpoint_policy_for_everyone(client, issuer, receiver, orderer):
    """Whoever orders, Herald GETs only what it would push to: the same refusals as endPoint."""
    order = {
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "s", "body": "b"},
        "recipients": [{"emailAddress": "kari@example.com"}],
    }
    headers = issuer.headers("notifications.order", "events.subscribe", sub=orderer)
    for url in INTERNAL:
        ordered = await client.post(
            "/api/v1/notifications/orders",
            json={**order, "idempotencyId": uuid.uuid4().hex, "conditionEndpoint": url},
            headers=headers,
        )
        assert ordered.status_code == 400, (url, ordered.text)
        subscribed = await client.post(
            "/api/v1/subscriptions", json={"endPoint": url, "resourceFilter": "urn:test:any"}, headers=headers
        )
        assert subscribed.status_code == 400, (url, subscribed.text)
        [error] = ordered.json()["errors"]
        assert subscribed.json()["detail"] == f"endPoint {error['detail']}"  # one policy, one reason
    allowed = await client.post(
        "/api/v1/notifications/orders",
        json={**order, "idempotencyId": uuid.uuid4().hex, "conditionEndpoint": receiver.url("condition")},
        headers=headers,
    )
    assert allowed.status_code == 202, allowed.text


# ------------------------------------------------------------------------- orders' resourceId


@pytest.mark.parametrize(
    ("orderer", "resource", "status"),
    [
        (PUBLISHER, None, 202),  # the governed resource: its publisher may name it
        (OWNER, None, 403),  # owning (reading every event) does not grant publishing
        (MANAGER, None, 403),
        (FIRM, None, 403),
        (STRANGER, None, 403),
        (STRANGER, f"urn:herald:notifications:{PUBLISHER}", 403),  # another party's status stream
        (STRANGER, "urn:herald:subscriptions", 403),
        (STRANGER, f"urn:herald:notifications:{STRANGER}", 202),  # its own status stream
    ],
)
async def test_an_order_names_a_resource_only_where_its_orderer_may_publish(
    client, issuer, governed, orderer, resource, status
):
    """An order's status events are published into its resourceId: the publish check decides."""
    body = {
        "idempotencyId": uuid.uuid4().hex,
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "s", "body": "b"},
        "recipients": [{"emailAddress": "kari@example.com"}],
        "resourceId": resource or governed,
    }
    response = await client.post(
        "/api/v1/notifications/orders", json=body, headers=issuer.headers("notifications.order", sub=orderer)
    )
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["resource"] == body["resourceId"]
