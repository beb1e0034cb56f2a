"""POST /api/v1/subscriptions/{id}/test: a signed test event pushed at once, and the attempt answered,
so a consumer checks its receiver without a publisher."""

from __future__ import annotations

import json
import socket

from standardwebhooks import Webhook

from tests.subscriptions.conftest import active_subscription
from tests.subscriptions.notification_targets.conftest import notification
from tests.support.identities import random_org
from tests.support.receiver import Behaviour


def _tests_posted(receiver, path: str) -> list:
    return [p for p in receiver.posts(path) if json.loads(p.body)["type"] == "herald.subscription.test"]


async def _test(client, issuer, subscription_id: str, consumer: str):
    return await client.post(
        f"/api/v1/subscriptions/{subscription_id}/test", headers=issuer.headers("events.subscribe", sub=consumer)
    )


async def test_a_test_push_is_signed_and_answered_with_its_attempt(client, issuer, receiver, resource, stores):
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("checked"), "resourceFilter": resource}, sub=consumer
    )
    receiver.behaviours["/checked"] = Behaviour(status=202, delay=0.05)

    response = await _test(client, issuer, sub["id"], consumer)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["delivered"] is True and report["statusCode"] == 202 and report["error"] is None
    assert 50 <= report["latencyMs"] < 5000
    assert report["responseExcerpt"] == "ok"
    [post] = _tests_posted(receiver, "checked")
    pushed = Webhook(sub["secret"]).verify(post.body.decode(), post.headers)  # raises unless Herald signed it
    assert pushed["id"] == report["eventId"] and post.headers["webhook-id"] == report["webhookId"]
    assert pushed["data"] == {"subscriptionId": sub["id"], "test": True}
    assert pushed["subject"] == consumer
    # A check, not a delivery: nothing in the delivery log.
    log = await client.get(
        f"/api/v1/subscriptions/{sub['id']}/deliveries", headers=issuer.headers("events.subscribe", sub=consumer)
    )
    assert log.json()["count"] == 0


async def test_a_failing_receiver_is_reported_with_its_status(client, issuer, receiver, resource, stores):
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("broken"), "resourceFilter": resource}, sub=consumer
    )
    receiver.behaviours["/broken"] = Behaviour(status=500)

    report = (await _test(client, issuer, sub["id"], consumer)).json()

    assert report["delivered"] is False and report["statusCode"] == 500
    assert report["error"] == "the endpoint answered 500"
    assert report["latencyMs"] >= 0
    assert len(_tests_posted(receiver, "broken")) == 1  # not retried


async def test_an_unreachable_receiver_is_reported_with_the_connection_error(client, issuer, resource):
    consumer = random_org()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    created = await client.post(
        "/api/v1/subscriptions",
        json={"endPoint": f"http://127.0.0.1:{port}/nobody", "resourceFilter": resource},
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    assert created.status_code == 201
    assert created.json()["status"] == "pending"  # a test push does not wait for validation

    report = (await _test(client, issuer, created.json()["id"], consumer)).json()

    assert report["delivered"] is False and report["statusCode"] is None
    assert report["error"].startswith("cannot connect")
    assert report["latencyMs"] >= 0 and report["responseExcerpt"] is None


async def test_test_pushes_are_rate_limited_per_subscription(client, issuer, receiver, resource, stores):
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("eager"), "resourceFilter": resource}, sub=consumer
    )
    answers = [(await _test(client, issuer, sub["id"], consumer)).status_code for _ in range(11)]

    assert answers == [200] * 10 + [429]
    refused = await _test(client, issuer, sub["id"], consumer)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 6
    assert len(_tests_posted(receiver, "eager")) == 10


async def test_other_consumers_and_bad_ids_get_problems_and_nothing_is_pushed(
    client, issuer, receiver, resource, stores
):
    owner, stranger = random_org(), random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("private"), "resourceFilter": resource}, sub=owner
    )
    for method, path in (("POST", "test"), ("GET", "health")):
        for subscription_id, expected in ((sub["id"], 404), ("sub_" + "0" * 32, 404), ("not-an-id", 400)):
            response = await client.request(
                method,
                f"/api/v1/subscriptions/{subscription_id}/{path}",
                headers=issuer.headers("events.subscribe", sub=stranger),
            )
            assert response.status_code == expected, (method, path, subscription_id, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        without_scope = await client.request(
            method, f"/api/v1/subscriptions/{sub['id']}/{path}", headers=issuer.headers("events.read", sub=owner)
        )
        assert without_scope.status_code == 403
    assert _tests_posted(receiver, "private") == []


async def test_a_notification_subscription_has_no_webhook_to_test_or_report_on(client, issuer, resource):
    consumer = random_org()
    created = await client.post(
        "/api/v1/subscriptions",
        json={"resourceFilter": resource, "notification": notification()},
        headers=issuer.headers("events.subscribe", "notifications.order", sub=consumer),
    )
    assert created.status_code == 201, created.text
    for method, path in (("POST", "test"), ("GET", "health")):
        response = await client.request(
            method,
            f"/api/v1/subscriptions/{created.json()['id']}/{path}",
            headers=issuer.headers("events.subscribe", sub=consumer),
        )
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert "notifies people" in response.json()["detail"]
