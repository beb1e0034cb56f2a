"""A consumer checks its receiver and follows its endpoint's health against devhost as a process: a
test push, the health figures, and the failing/recovered pair reaching a second subscription."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.devhost_process import E2E_SETTINGS, devhost_token, open_resource
from tests.support.identities import random_org
from tests.support.polling import until
from tests.support.receiver import Behaviour, Receiver

pytestmark = pytest.mark.e2e
SCOPES = "events.publish events.read events.subscribe"


# devhost's endpoint breakers stay open 1 s (30 by default) and its retries come every 1 s, so the endpoint
# recovers, and its deliveries are retried, within seconds.
DEVHOST_SETTINGS = E2E_SETTINGS | {"HERALD_CIRCUIT_OPEN_SECONDS": "1"}


def _operational(receiver: Receiver, event_type: str, subscription_id: str) -> list[dict[str, Any]]:
    events = [json.loads(post.body) for post in receiver.posts("on-call")]
    return [e for e in events if e["type"] == event_type and e["data"]["subscriptionId"] == subscription_id]


async def test_test_push_health_and_the_failing_recovered_pair(devhost, receiver):
    consumer = random_org()
    token = devhost_token(devhost.env, consumer, SCOPES)
    resource = f"urn:e2e:health:{uuid.uuid4().hex[:8]}"
    open_resource(devhost.port, devhost.env, resource)
    async with httpx.AsyncClient(base_url=devhost.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:

        async def subscribe(payload: dict[str, Any]) -> dict[str, Any]:
            created = await api.post("/api/v1/subscriptions", json=payload)
            assert created.status_code == 201, created.text

            async def active() -> bool:
                fetched = await api.get(f"/api/v1/subscriptions/{created.json()['id']}")
                return bool(fetched.json()["status"] == "active")

            await until(active, 30, "validation")
            return dict(created.json())

        async def health(subscription_id: str) -> dict[str, Any]:
            response = await api.get(f"/api/v1/subscriptions/{subscription_id}/health")
            assert response.status_code == 200, response.text
            return dict(response.json())

        on_call = await subscribe(
            {
                "endPoint": receiver.url("on-call"),
                "resourceFilter": "urn:herald:subscriptions",
                "subjectFilter": consumer,
                "typeFilter": "herald.subscription.*",
            }
        )
        sub = await subscribe({"endPoint": receiver.url("hook"), "resourceFilter": resource})

        # The test push: signed with the subscription's secret, and the attempt answered.
        checked = (await api.post(f"/api/v1/subscriptions/{sub['id']}/test")).json()
        assert checked["delivered"] is True and checked["statusCode"] == 200
        [post] = [p for p in receiver.posts("hook") if json.loads(p.body)["type"] == "herald.subscription.test"]
        assert Webhook(sub["secret"]).verify(post.body.decode(), post.headers)["id"] == checked["eventId"]
        receiver.behaviours["/hook"] = Behaviour(status=500)
        failed = (await api.post(f"/api/v1/subscriptions/{sub['id']}/test")).json()
        assert failed["delivered"] is False and failed["statusCode"] == 500

        # Events to the failing endpoint: after five failures devhost's breaker opens.
        events = [
            {"specversion": "1.0", "id": f"h{n}", "source": "urn:e2e", "type": "e2e.health", "resource": resource}
            for n in range(6)
        ]
        published = await api.post(
            "/api/v1/events", content=json.dumps(events), headers={"content-type": "application/cloudevents-batch+json"}
        )
        assert published.status_code == 202, published.text

        async def failing() -> list[dict[str, Any]]:
            return _operational(receiver, "herald.subscription.failing", sub["id"])

        [notice] = await until(failing, 40, "herald.subscription.failing at the second subscription")
        assert notice["subject"] == consumer and notice["data"]["endPoint"] == receiver.url("hook")
        hook_post = next(p for p in receiver.posts("on-call") if json.loads(p.body)["id"] == notice["id"])
        Webhook(on_call["secret"]).verify(hook_post.body.decode(), hook_post.headers)

        async def counted_failures() -> dict[str, Any] | None:
            figures = await health(sub["id"])
            return figures if figures["lastHour"]["failed"] >= 5 else None

        figures = await until(counted_failures, 15, "failures in the health figures")
        assert figures["circuit"]["state"] == "open" and figures["circuit"]["openedAt"]
        assert figures["lastHour"]["delivered"] == 0 and figures["lastHour"]["successRate"] == 0.0
        assert figures["lastFailure"]["statusCode"] == 500 and figures["lastSuccess"] is None
        assert figures["retriesWaiting"] >= 1

        # The endpoint answers again: the breaker's trial succeeds (after 1 s open, as set) and it recovers.
        receiver.behaviours["/hook"] = Behaviour(status=200)

        async def recovered() -> list[dict[str, Any]]:
            return _operational(receiver, "herald.subscription.recovered", sub["id"])

        [back] = await until(recovered, 60, "herald.subscription.recovered at the second subscription")
        assert back["data"]["circuitOpenedAt"] == notice["data"]["circuitOpenedAt"]

        async def all_delivered() -> dict[str, Any] | None:
            figures = await health(sub["id"])
            return figures if figures["lastHour"]["delivered"] == len(events) else None

        figures = await until(all_delivered, 30, "every event delivered in the health figures")
        assert figures["circuit"] == {"state": "closed", "openedAt": None}
        assert figures["retriesWaiting"] == 0 and figures["deadLetters"] == 0
        assert figures["lastSuccess"]["statusCode"] == 200
        assert figures["lastDay"]["delivered"] == len(events) and figures["lastDay"]["failed"] >= 5
        assert figures["lastHour"]["p50LatencyMs"] is not None
        assert len(_operational(receiver, "herald.subscription.failing", sub["id"])) == 1

        for subscription in (sub, on_call):
            assert (await api.delete(f"/api/v1/subscriptions/{subscription['id']}")).status_code == 204
