"""PATCH through devhost, as a consumer does it: a subscription moved to a second receiver with a list of
types gets the events the new filters select, there and only there, once the new receiver has accepted
the validation event."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.support.devhost_process import devhost_token, open_resource
from tests.support.polling import until

pytestmark = pytest.mark.e2e
VALIDATION = "platform.events.validatesubscription"


def events(receiver, path: str) -> list[dict]:
    bodies = [json.loads(post.body) for post in receiver.posts(path)]
    return [body for body in bodies if body["type"] != VALIDATION]


async def test_a_patched_subscription_pushes_the_new_types_to_the_new_receiver(devhost, receiver):
    consumer = "org:991825827"
    resource = f"urn:e2e:patch:{uuid.uuid4().hex[:10]}"
    open_resource(devhost.port, devhost.env, resource)
    token = devhost_token(devhost.env, consumer, "events.publish events.subscribe")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=devhost.url, timeout=10, headers=auth) as http:
        created = await http.post(
            "/api/v1/subscriptions",
            json={"endPoint": receiver.url("first"), "resourceFilter": resource, "typeFilter": "case.opened"},
        )
        assert created.status_code == 201, created.text
        url = f"/api/v1/subscriptions/{created.json()['id']}"

        async def status_is_active() -> bool:
            return (await http.get(url)).json()["status"] == "active"

        await until(status_is_active, 30, "validation by the first receiver")

        patched = await http.patch(
            url, json={"typeFilter": ["case.opened", "case.closed.*"], "endPoint": receiver.url("second")}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["status"] == "pending"
        assert patched.json()["typeFilter"] == ["case.closed.*", "case.opened"]
        await until(status_is_active, 40, "validation by the second receiver")
        assert [json.loads(p.body)["type"] for p in receiver.posts("second")] == [VALIDATION]

        published = await http.post(
            "/api/v1/events",
            content=json.dumps(
                [
                    {"specversion": "1.0", "id": f"e2e-{kind}", "source": "urn:e2e", "type": kind, "resource": resource}
                    for kind in ("case.opened", "case.closed.late", "case.updated")
                ]
            ),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        assert published.status_code == 202, published.text

        async def both_arrived() -> bool:
            return len(events(receiver, "second")) >= 2

        await until(both_arrived, 30, "events at the second receiver")
        await asyncio.sleep(1)  # anything else on its way would arrive by now
    assert sorted(e["id"] for e in events(receiver, "second")) == ["e2e-case.closed.late", "e2e-case.opened"]
    assert events(receiver, "first") == []
