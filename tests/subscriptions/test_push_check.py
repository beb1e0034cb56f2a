"""POST /api/v1/subscriptions/{id}/test: a signed test event pushed at once, and the attempt answered,
so a consumer checks its receiver without a publisher."""

from __future__ import annotations

import json

from standardwebhooks import Webhook

from shared.subscriptions.messages import VALIDATION_QUEUE
from shared.subscriptions.model import Status
from tests.subscriptions.conftest import active_subscription
from tests.subscriptions.notification_targets.conftest import notification
from tests.support.identities import random_org
from tests.support.pipeline import drain
from tests.support.receiver import Behaviour, Receiver


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


async def test_an_unreachable_receiver_is_reported_with_the_connection_error(client, issuer, resource, stores):
    consumer = random_org()
    gone = Receiver()  # validated, then stopped: nobody listens on its port any more
    await gone.start()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": gone.url("nobody"), "resourceFilter": resource}, sub=consumer
    )
    await gone.stop()

    report = (await _test(client, issuer, sub["id"], consumer)).json()

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


async def test_a_pending_subscription_is_not_test_pushed_new_or_after_a_new_endpoint(
    client, issuer, receiver, resource, stores
):
    """An endpoint that has not accepted the validation event gets nothing, test pushes included."""
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("proven"), "resourceFilter": resource}, sub=consumer
    )
    created = await client.post(
        "/api/v1/subscriptions",
        json={"endPoint": receiver.url("unproven"), "resourceFilter": resource},
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    assert created.status_code == 201 and created.json()["status"] == "pending"
    moved = await client.patch(
        f"/api/v1/subscriptions/{sub['id']}",
        json={"endPoint": receiver.url("moved")},
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    assert moved.status_code == 200 and moved.json()["status"] == "pending"

    for subscription_id in (created.json()["id"], sub["id"]):
        refused = await _test(client, issuer, subscription_id, consumer)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "pending" in refused.json()["detail"]
    for path in ("unproven", "proven", "moved"):
        assert _tests_posted(receiver, path) == []


async def test_a_subscription_disabled_before_its_endpoint_ever_accepted_is_not_test_pushed(
    client, issuer, receiver, resource, stores
):
    """Refusing the validation event (410 disables at once) is no way around the rule: only an endpoint
    that accepted it is test-pushed, and a disabled subscription keeps the endpoint that did."""
    consumer = random_org()
    headers = issuer.headers("events.subscribe", sub=consumer)
    refusing = receiver.behave("refusing", Behaviour(status=410))
    created = await client.post(
        "/api/v1/subscriptions", json={"endPoint": refusing, "resourceFilter": resource}, headers=headers
    )
    await drain(stores, (VALIDATION_QUEUE,))
    path = f"/api/v1/subscriptions/{created.json()['id']}"
    assert (await client.get(path, headers=headers)).json()["status"] == "disabled"
    refused = await _test(client, issuer, created.json()["id"], consumer)
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    assert "disabled" in refused.json()["detail"]
    assert _tests_posted(receiver, "refusing") == []

    # One that accepted, then was disabled (its endpoint now answers 410), is still its consumer's to check.
    proven = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("proven"), "resourceFilter": resource}, sub=consumer
    )
    await stores.subscription_store.update(
        (await stores.subscription_store.get(consumer, proven["id"])).index_key,
        proven["id"],
        lambda s: s.with_status(Status.DISABLED, reason="the endpoint answered 410 Gone"),
    )
    checked = await _test(client, issuer, proven["id"], consumer)
    assert checked.status_code == 200, checked.text
    assert len(_tests_posted(receiver, "proven")) == 1
