"""Who may order what: the resource an order names and the sender it claims."""

from __future__ import annotations

import uuid

from shared.identity.authorization import ResourcePolicy
from tests.notifications.conftest import order_body, post_order
from tests.support.identities import random_org

H = "notifications.order"
ORDERS = "/api/v1/notifications/orders"


def emails(n: int) -> list[dict[str, str]]:
    return [{"emailAddress": f"r{i}.{uuid.uuid4().hex[:6]}@example.com"} for i in range(n)]


async def events_in(client, issuer, resource: str, reader: str) -> list[dict]:
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read", sub=reader)
    )
    assert response.status_code == 200, response.text
    return list(response.json())


async def assert_nothing_stored(client, issuer, sender: str, body: dict) -> None:
    """The refused order's idempotency id still makes a NEW order once the refused fields are dropped."""
    fixed = order_body(idempotencyId=body["idempotencyId"], recipients=emails(1))
    again = await client.post(ORDERS, json=fixed, headers=issuer.headers(H, sub=sender))
    assert again.status_code == 202, again.text


# --------------------------------------------------------------------------- the order's resource


async def test_an_order_names_only_a_resource_its_orderer_may_publish_to(client, issuer, harness, sender):
    victim = random_org()
    resource = f"urn:no:test:case{uuid.uuid4().hex[:8]}"
    await harness.services.access.policies.put(resource, ResourcePolicy(publishers=[victim], owners=[victim]))
    await harness.services.access.authorizer.changed()

    body = order_body(resourceId=resource, recipients=emails(1))
    refused = await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["resource"] == resource and resource in refused.json()["detail"]
    await assert_nothing_stored(client, issuer, sender, body)

    allowed = await post_order(client, issuer, victim, resourceId=resource, recipients=emails(1))
    assert allowed.status_code == 202, allowed.text
    await harness.run(allowed.json()["orderId"])
    # Only the victim's own order's status events are in its resource.
    published = await events_in(client, issuer, resource, victim)
    assert published and {e["data"]["orderId"] for e in published} == {allowed.json()["orderId"]}


async def test_an_order_never_names_another_partys_status_stream_or_herald_resources(client, issuer, harness, sender):
    victim = random_org()
    for resource in (
        f"urn:herald:notifications:{victim}",
        f"URN:HERALD:notifications:{victim}",
        "urn:herald:subscriptions",
        "urn:herald:notifications",
    ):
        body = order_body(resourceId=resource, sendersReference="from-your-bank", recipients=emails(1))
        refused = await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))
        assert refused.status_code == 403, (resource, refused.text)
        assert refused.json()["resource"] == resource
        await assert_nothing_stored(client, issuer, sender, body)
    assert await events_in(client, issuer, f"urn:herald:notifications:{victim}", victim) == []

    own = await post_order(client, issuer, sender, resourceId=f"urn:herald:notifications:{sender}")
    assert own.status_code == 202, own.text


# ------------------------------------------------------------------------------------- senders


async def test_a_sender_must_be_granted_to_the_orderer(client, issuer, harness, sender):
    admin = issuer.headers("admin", sub="system:herald-admin")
    impersonating = [
        {"emailTemplate": {"subject": "Skatt", "body": "b", "fromAddress": "noreply@skatteetaten.no"}},
        {
            "notificationChannel": "Sms",
            "emailTemplate": None,
            "smsTemplate": {"body": "b", "senderNumber": "Skatteetat"},
            "recipients": [{"mobileNumber": "+4799999901"}],
        },
    ]
    for overrides in impersonating:
        body = {k: v for k, v in order_body(**overrides).items() if v is not None}
        refused = await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))
        assert refused.status_code == 403, refused.text
        problem = refused.json()
        assert problem["type"].endswith("sender-not-granted") and "administrator" in problem["detail"]
        assert problem["senders"][0]["value"] in ("noreply@skatteetaten.no", "Skatteetat")
        await assert_nothing_stored(client, issuer, sender, body)

    # The configured default senders stay available to everyone.
    default = {"subject": "s", "body": "b", "fromAddress": "NoReply@herald.local"}
    assert (await post_order(client, issuer, sender, emailTemplate=default)).status_code == 202

    grant = {"emailDomains": ["skatteetaten.no"], "emailAddresses": ["post@example.org"], "smsSenders": ["Skatteetat"]}
    put = await client.put(f"/api/v1/admin/senders/{sender}", json=grant, headers=admin)
    assert put.status_code == 200 and put.json()["orderer"] == sender
    for overrides in impersonating:
        body = {k: v for k, v in order_body(**overrides).items() if v is not None}
        assert (await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))).status_code == 202
    for address, status in (("post@example.org", 202), ("other@example.org", 403), ("x@sub.skatteetaten.no", 403)):
        template = {"subject": "s", "body": "b", "fromAddress": address}
        assert (await post_order(client, issuer, sender, emailTemplate=template)).status_code == status, address
    # A grant is the orderer's own: another orderer is still refused.
    body = {k: v for k, v in order_body(**impersonating[0]).items() if v is not None}
    assert (await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=random_org()))).status_code == 403

    assert (await client.delete(f"/api/v1/admin/senders/{sender}", headers=admin)).status_code == 204
    assert (await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))).status_code == 403


async def test_sender_grants_are_administered_with_the_admin_scope_only(client, issuer, harness, sender):
    admin = issuer.headers("admin", sub="system:herald-admin")
    path = f"/api/v1/admin/senders/{sender}"
    grant = {"smsSenders": ["Kommunen"]}
    assert (await client.put(path, json=grant, headers=issuer.headers(H, sub=sender))).status_code == 403
    assert (await client.get(path, headers=admin)).status_code == 404
    for bad in ({"smsSenders": ["Kommunen"], "senders": []}, {"emailAddresses": ["nope"]}, {"emailDomains": ["a b"]}):
        response = await client.put(path, json=bad, headers=admin)
        assert response.status_code == 400, (bad, response.text)
    assert (await client.put("/api/v1/admin/senders/org:123", json=grant, headers=admin)).status_code == 400
    assert (await client.put(path, json=grant, headers=admin)).status_code == 200
    assert (await client.get(path, headers=admin)).json() == {
        "orderer": sender,
        "emailAddresses": [],
        "emailDomains": [],
        "smsSenders": ["Kommunen"],
    }
    listed = (await client.get("/api/v1/admin/senders", headers=admin)).json()["grants"]
    assert {"orderer": sender, "emailAddresses": [], "emailDomains": [], "smsSenders": ["Kommunen"]} in listed
    assert (await client.delete(path, headers=admin)).status_code == 204
    assert (await client.delete(path, headers=admin)).status_code == 404


async def test_a_notification_subscription_may_claim_only_granted_senders(client, issuer, harness, sender, resource):
    scopes = ("events.subscribe", "notifications.order")
    notification = {
        "notificationChannel": "Sms",
        "smsTemplate": {"body": "Your tax return: $data.status$", "senderNumber": "Skatteetat"},
    }
    payload = {"resourceFilter": resource, "notification": notification}
    refused = await client.post("/api/v1/subscriptions", json=payload, headers=issuer.headers(*scopes, sub=sender))
    assert refused.status_code == 403, refused.text
    assert refused.json()["senders"] == [{"location": "smsTemplate.senderNumber", "value": "Skatteetat"}]
    listed = await client.get("/api/v1/subscriptions", headers=issuer.headers("events.subscribe", sub=sender))
    assert listed.json()["subscriptions"] == []

    admin = issuer.headers("admin", sub="system:herald-admin")
    assert (
        await client.put(f"/api/v1/admin/senders/{sender}", json={"smsSenders": ["Skatteetat"]}, headers=admin)
    ).status_code == 200
    created = await client.post("/api/v1/subscriptions", json=payload, headers=issuer.headers(*scopes, sub=sender))
    assert created.status_code == 201, created.text
