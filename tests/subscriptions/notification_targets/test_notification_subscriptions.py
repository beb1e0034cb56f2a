"""Notification subscriptions through the API, fan-out, the notify stage and the order pipeline (Azurite)."""

from __future__ import annotations

import json

from shared.notifications.messages import QUEUES
from shared.subscriptions.messages import NOTIFY_QUEUE, OUTBOUND_QUEUE, VALIDATION_QUEUE
from tests.subscriptions.notification_targets.conftest import (
    KARI,
    OLA,
    PER,
    drain,
    fan_out,
    notification,
    notify,
    publish,
    queued,
    status_event,
    subscribe,
)


async def test_a_notification_subscription_is_active_at_once_without_a_secret(client, issuer, consumer, resource):
    payload = {"resourceFilter": resource, "typeFilter": "signal.status.changed", "notification": notification()}
    response = await subscribe(client, issuer, consumer, payload)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "active" and "secret" not in created
    assert created["endPoint"] is None
    assert created["notification"]["notificationChannel"] == "EmailPreferred"
    assert created["notification"]["emailTemplate"]["contentType"] == "Html"
    assert created["notification"]["sendingTimePolicy"] == "Anytime"

    again = await subscribe(client, issuer, consumer, payload)
    assert again.status_code == 200 and again.json()["id"] == created["id"]
    other = await subscribe(
        client, issuer, consumer, {**payload, "notification": notification(notificationChannel="Sms")}
    )
    assert other.status_code == 201 and other.json()["id"] != created["id"]

    fetched = await client.get(
        f"/api/v1/subscriptions/{created['id']}", headers=issuer.headers("events.subscribe", sub=consumer)
    )
    assert fetched.json() == created
    listed = await client.get("/api/v1/subscriptions", headers=issuer.headers("events.subscribe", sub=consumer))
    assert {s["id"] for s in listed.json()["subscriptions"]} == {created["id"], other.json()["id"]}


async def test_exactly_one_of_endpoint_and_notification(client, issuer, consumer, resource, receiver):
    both = {"resourceFilter": resource, "endPoint": receiver.url("x"), "notification": notification()}
    neither = {"resourceFilter": resource}
    for payload in (both, neither):
        response = await subscribe(client, issuer, consumer, payload)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "exactly one of endPoint" in response.json()["detail"]


async def test_templates_are_validated_at_subscription_time(client, issuer, consumer, resource):
    too_long = notification(notificationChannel="Sms", smsTemplate={"body": "€" * 1300})
    response = await subscribe(client, issuer, consumer, {"resourceFilter": resource, "notification": too_long})
    assert response.status_code == 400
    assert "notification.smsTemplate.body" in response.json()["detail"] and "segments" in response.json()["detail"]

    no_email = notification(notificationChannel="Email", emailTemplate=None)
    response = await subscribe(client, issuer, consumer, {"resourceFilter": resource, "notification": no_email})
    assert response.status_code == 400 and "notification.emailTemplate" in response.json()["detail"]

    unknown = {**notification(), "ignoreReservation": True}
    response = await subscribe(client, issuer, consumer, {"resourceFilter": resource, "notification": unknown})
    assert response.status_code == 400


async def test_a_notification_subscription_needs_the_order_scope(client, issuer, consumer, resource):
    payload = {"resourceFilter": resource, "notification": notification()}
    response = await subscribe(client, issuer, consumer, payload, scopes=("events.subscribe",))
    assert response.status_code == 403 and "notifications.order" in response.json()["detail"]


async def test_status_change_notifies_the_subject_once_and_statuses_come_back(
    client, issuer, harness, services, consumer, resource, residents, herald
):
    payload = {"resourceFilter": resource, "typeFilter": "signal.status.changed", "notification": notification()}
    subscription = (await subscribe(client, issuer, consumer, payload)).json()
    publisher = "org:991825827"
    events = [
        status_event(resource, f"person:{KARI}", "SIG-1-2", title="Lamp <b>out</b>"),
        status_event(resource, f"person:{OLA}", "SIG-2-2"),
        status_event(resource, f"person:{PER}", "SIG-3-2"),
        {**status_event(resource, f"person:{KARI}", "SIG-1-1"), "type": "signal.created"},  # filtered out
    ]
    await publish(client, issuer, events, publisher)
    await fan_out(herald)
    assert await queued(herald, OUTBOUND_QUEUE, subscription["id"]) == []  # the webhook worker never sees them
    outcomes = await notify(herald, subscription["id"])
    assert sorted(o.event_id for o in outcomes) == ["SIG-1-2", "SIG-2-2", "SIG-3-2"]
    assert all(o.outcome == "ordered" and o.created for o in outcomes)
    by_event = {o.event_id: o.order_id for o in outcomes}

    feature = harness.feature
    order = await feature.orders.get(consumer, by_event["SIG-1-2"])
    assert order.creator == consumer and order.senders_reference == "SIG-1-2" and order.resource_id == resource
    assert order.recipients[0].national_identity_number == KARI

    await drain(herald, QUEUES)  # the notification triggers: start the orders, send email and SMS
    await harness.deliver_reports()
    sent = {m["to"]: m for m in harness.sink.captured() if m["to"] in ("kari.nordmann@example.com", "+4741234567")}
    email = sent["kari.nordmann@example.com"]
    assert email["subject"] == "Report SIG-1: In progress"
    assert email["body"] == (
        "<p>Dear Kari &lt;Nordmann&gt;, Lamp &lt;b&gt;out&lt;/b&gt; is now In progress "
        f"(signal.status.changed, person:{KARI}).</p>"
    )
    assert sent["+4741234567"]["body"] == "Report SIG-1: In progress"  # Ola has no email: SMS
    reserved = await feature.orders.status(consumer, by_event["SIG-3-2"])
    assert [n.status.value for n in reserved.notifications] == ["Failed_RecipientReserved"]

    # The orders' status events land in the publisher's resource, referenced by the event id.
    read = await client.get(
        "/api/v1/events",
        params={"resource": resource, "source": "urn:herald:notifications"},
        headers=issuer.headers("events.read", sub=publisher),
    )
    latest = {}
    for item in read.json():
        latest[item["data"]["sendersReference"]] = item["data"]["status"]
    assert latest == {"SIG-1-2": "Delivered", "SIG-2-2": "Delivered", "SIG-3-2": "Failed_RecipientReserved"}

    # Redelivery of the same deliveries (and a re-published event) creates no second order.
    await publish(client, issuer, events[:1], publisher)
    await fan_out(herald)
    again = await notify(herald, subscription["id"])
    assert again == []  # a duplicate event is not stored again, so nothing fans out
    from shared.subscriptions.delivery import Delivery

    replayed = await services.notifier.handle([Delivery(f"{resource}|*:", subscription["id"], resource, 1, 0)])
    assert [(o.order_id, o.created) for o in replayed] == [(by_event["SIG-1-2"], False)]

    # Each event the subscription handled is in its delivery log.
    log = await client.get(
        f"/api/v1/subscriptions/{subscription['id']}/deliveries",
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    outcomes_logged = {d["eventId"]: d["outcome"] for d in log.json()["deliveries"]}
    assert outcomes_logged == {"SIG-1-2": "ordered", "SIG-2-2": "ordered", "SIG-3-2": "ordered"}


async def test_events_without_a_person_subject_are_skipped_and_logged(
    client, issuer, harness, services, consumer, resource, herald
):
    payload = {"resourceFilter": resource, "notification": notification()}
    subscription = (await subscribe(client, issuer, consumer, payload)).json()
    await publish(client, issuer, [status_event(resource, "case:42", "no-person")], "org:991825827")
    await fan_out(herald)
    [outcome] = await notify(herald, subscription["id"])
    assert outcome.outcome == "skipped" and "person:" in (outcome.reason or "")
    log = await client.get(
        f"/api/v1/subscriptions/{subscription['id']}/deliveries",
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    [entry] = log.json()["deliveries"]
    assert entry["outcome"] == "skipped" and entry["eventId"] == "no-person" and "subject" in entry["error"]


async def test_webhook_and_notification_subscriptions_share_a_resource(
    client, issuer, harness, services, consumer, resource, receiver, residents, herald
):
    hook = await client.post(
        "/api/v1/subscriptions",
        json={"resourceFilter": resource, "endPoint": receiver.url("hook")},
        headers=issuer.headers("events.subscribe", sub=consumer),
    )
    await drain(herald, (VALIDATION_QUEUE,))
    notifying = (
        await subscribe(client, issuer, consumer, {"resourceFilter": resource, "notification": notification()})
    ).json()
    await publish(client, issuer, [status_event(resource, f"person:{KARI}", "shared-1")], "org:991825827")
    await fan_out(herald)
    await drain(herald, (OUTBOUND_QUEUE,))
    pushed = [json.loads(r.body) for r in receiver.posts("hook")]
    assert [e["id"] for e in pushed if e["type"] == "signal.status.changed"] == ["shared-1"]
    assert hook.json()["id"] != notifying["id"]
    # The trigger itself, as devhost/Functions run it.
    await drain(herald, (NOTIFY_QUEUE,))
    again = await notify(herald, notifying["id"])
    assert again == []  # the trigger consumed the message
    await drain(herald, QUEUES)  # send the order now, so no later test's worker finds it queued
    assert any(m["to"] == "kari.nordmann@example.com" for m in harness.sink.captured())
