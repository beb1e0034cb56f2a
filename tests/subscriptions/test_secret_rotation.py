"""Rotating a signing secret: a receiver that switches to the new secret at once accepts the very next
push, even from a worker that read the subscription before the rotation; the old secret still
verifies for the documented 24 hours."""

from __future__ import annotations

import json
from dataclasses import replace

from standardwebhooks import Webhook

from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.messages import OUTBOUND_QUEUE
from shared.subscriptions.model import Secrets
from tests.subscriptions.conftest import active_subscription
from tests.support.events import event, publish
from tests.support.pipeline import drain

PIPELINE = (INBOUND_QUEUE, OUTBOUND_QUEUE)


def pushed(receiver, path: str) -> dict:
    return {json.loads(p.body)["id"]: p for p in receiver.posts(path)}


async def test_the_first_push_after_a_rotation_verifies_with_the_new_secret_alone(
    client, issuer, receiver, resource, services, stores
):
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("rotating"), "resourceFilter": resource}
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, "before")])
    await drain(stores, PIPELINE)  # the outbound worker now holds the subscription as read before the rotation
    rotated = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/rotate-secret", headers=issuer.headers("events.subscribe")
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != sub["secret"]

    await publish(client, issuer.headers("events.publish"), [event(resource, "after")])
    await drain(stores, PIPELINE)
    posts = pushed(receiver, "rotating")
    after = posts["after"]
    Webhook(new_secret).verify(after.body.decode(), after.headers)  # the receiver switched at once
    Webhook(sub["secret"]).verify(after.body.decode(), after.headers)  # or it has not yet: both sign for 24 h
    Webhook(sub["secret"]).verify(posts["before"].body.decode(), posts["before"].headers)

    # The new secret was sealed at rest all along, like the others.
    table = stores.tables.get_table_client("subscriptions")
    [entity] = [e async for e in table.query_entities("RowKey eq @id", parameters={"id": sub["id"]})]
    stored = " ".join(str(v) for v in entity.values())
    assert new_secret[len("whsec_") :] not in stored and sub["secret"][len("whsec_") :] not in stored


async def test_a_second_rotation_moments_after_the_first_is_refused_and_changes_nothing(
    client, issuer, receiver, resource, services, stores
):
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("twice"), "resourceFilter": resource}
    )
    url = f"/api/v1/subscriptions/{sub['id']}/rotate-secret"
    first = await client.post(url, headers=issuer.headers("events.subscribe"))
    assert first.status_code == 200
    again = await client.post(url, headers=issuer.headers("events.subscribe"))
    assert again.status_code == 429
    assert again.headers["content-type"] == "application/problem+json"
    assert 0 < int(again.headers["retry-after"]) <= 30
    assert "rotated moments ago" in again.json()["detail"]
    assert first.json()["secret"] not in again.text

    await publish(client, issuer.headers("events.publish"), [event(resource, "signed")])
    await drain(stores, PIPELINE)
    post = pushed(receiver, "twice")["signed"]
    Webhook(first.json()["secret"]).verify(post.body.decode(), post.headers)


async def test_a_subscription_stored_before_secrets_were_made_ahead_rotates_without_a_gap(
    client, issuer, receiver, resource, services, stores
):
    """Such a subscription has no upcoming secret for cached copies to sign with: its first rotation
    makes one and waits out the workers' cache before it hands the new secret over."""
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("legacy"), "resourceFilter": resource}
    )
    store = stores.subscription_store
    stored = await store.get(sub["consumer"], sub["id"])
    assert stored is not None and stored.secrets.upcoming is not None
    # As subscriptions were stored before: no upcoming secret.
    await store.update(stored.index_key, stored.id, lambda s: replace(s, secrets=Secrets(s.secrets.current)))
    await publish(client, issuer.headers("events.publish"), [event(resource, "before")])
    await drain(stores, PIPELINE)  # the outbound worker holds the subscription with no upcoming secret
    rotated = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/rotate-secret", headers=issuer.headers("events.subscribe")
    )
    assert rotated.status_code == 200, rotated.text

    await publish(client, issuer.headers("events.publish"), [event(resource, "after")])
    await drain(stores, PIPELINE)
    after = pushed(receiver, "legacy")["after"]
    Webhook(rotated.json()["secret"]).verify(after.body.decode(), after.headers)
