from __future__ import annotations

import json

from shared.subscriptions.messages import VALIDATION_QUEUE
from tests.support.pipeline import drain


async def active_subscription(client, issuer, services, payload, sub="org:991825827") -> dict:
    """Create a subscription and run its validation, so it is active."""
    response = await client.post(
        "/api/v1/subscriptions", json=payload, headers=issuer.headers("events.subscribe", sub=sub)
    )
    assert response.status_code == 201, response.text
    await drain(services, (VALIDATION_QUEUE,))
    created = response.json()
    fetched = await client.get(
        f"/api/v1/subscriptions/{created['id']}", headers=issuer.headers("events.subscribe", sub=sub)
    )
    assert fetched.json()["status"] == "active"
    return created


def events_received(receiver, path: str) -> list[dict]:
    return [
        json.loads(r.body)
        for r in receiver.posts(path)
        if json.loads(r.body)["type"] != "platform.events.validatesubscription"
    ]
